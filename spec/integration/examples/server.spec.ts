import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { closed, expectRefused, nextMessage, openClient, until } from '../../support/express-server.js';
import { rawClient } from '../../support/raw-client.js';
import { startExample, type ExampleServer } from '../../support/example-server.js';

// The example server as a user starts it: `npm start` in a child process, with real timeouts
// shortened through the environment. Timeline comments give the server's configured times.
const FAST = {
  WS_IDLE_TIMEOUT: '1',
  WS_CONNECTION_TIMEOUT: '3',
  WS_PING_INTERVAL: '0.2',
  WS_PONG_TIMEOUT: '0.5',
  WS_TIMER_RESOLUTION: '0.05',
  WS_CLOSE_TIMEOUT: '1',
};

describe('examples/server.ts (npm start)', function () {
  this.timeout(60_000);

  describe('running with short timeouts', () => {
    let server: ExampleServer;
    before(async () => {
      server = await startExample(FAST);
    });
    after(async () => server?.kill());

    it('serves the dashboard page and its script at /', async () => {
      const page = await fetch(`${server.httpUrl}/`);
      expect(page.status).to.equal(200);
      expect(page.headers.get('content-type')).to.match(/text\/html/);
      const html = await page.text();
      expect(html).to.include('live connections').and.include('dashboard.js');
      const script = await fetch(`${server.httpUrl}/dashboard.js`);
      expect(script.status).to.equal(200);
      expect(script.headers.get('content-type')).to.match(/javascript/);
    });

    it('answers /health with JSON status and connection counts', async () => {
      const res = await fetch(`${server.httpUrl}/health`);
      expect(res.headers.get('content-type')).to.match(/application\/json/);
      const body = (await res.json()) as { status: string; sessions: { activeSessions: number } };
      expect(body.status).to.equal('healthy');
      expect(body.sessions.activeSessions).to.be.a('number');
    });

    it('answers /metrics with Prometheus text', async () => {
      const res = await fetch(`${server.httpUrl}/metrics`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/plain/);
      const text = await res.text();
      expect(text).to.include('# TYPE ws_timeouts_timeouts_total counter');
      expect(text).to.include('ws_timeouts_active_connections');
    });

    it('echoes each text message unchanged on /ws/echo and lists the connection in /api/connections', async () => {
      const ws = await openClient(`${server.wsUrl}/ws/echo?user=echo-test`);
      for (const text of ['hello', 'unicode ✓ 🚀', JSON.stringify({ a: 1 })]) {
        ws.send(text);
        expect(await nextMessage(ws)).to.equal(text);
      }
      const view = (await (await fetch(`${server.httpUrl}/api/connections`)).json()) as {
        connections: Array<{ route: string; user: string; state: string; idleRemainingMs: number }>;
      };
      const mine = view.connections.find((c) => c.user === 'echo-test');
      expect(mine).to.include({ route: '/ws/echo', state: 'open' });
      expect(mine!.idleRemainingMs).to.be.within(0, 1000);
      ws.close();
      await closed(ws);
    });

    it('closes a silent connection with 4001 after WS_IDLE_TIMEOUT, after the JSON notice', async () => {
      const ws = await openClient(`${server.wsUrl}/ws/echo?user=idle-test&token=do-not-log`);
      const notice = nextMessage(ws);
      const started = Date.now();
      // 0 s: open; pings every 0.2 s are answered but are not activity; 1 s: idle -> notice, close 4001.
      expect(await closed(ws)).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      expect(Date.now() - started).to.be.within(900, 2000);
      expect(JSON.parse(await notice)).to.include({ type: 'connectionTimeout', reason: 'idle', idleSeconds: 1 });
    });

    it('logs one structured line per connect, timeout and close, without the query string', async () => {
      await until(() => server.logs().some((e) => e.message === 'WebSocket closed' && e.userId === 'idle-test'), 3_000);
      const mine = server.logs().filter((e) => e.userId === 'idle-test');
      const messages = mine.map((e) => e.message);
      expect(messages.filter((m) => m === 'WebSocket connected')).to.have.length(1);
      expect(messages.filter((m) => m === 'WebSocket timeout')).to.have.length(1);
      expect(messages.filter((m) => m === 'WebSocket closed')).to.have.length(1);
      expect(mine.find((e) => e.message === 'WebSocket timeout')).to.include({ reason: 'idle', route: '/ws/echo' });
      for (const entry of mine) expect(entry.connectionId).to.be.a('string');
      expect(server.stdout()).not.to.include('do-not-log');
    });

    it('closes a busy connection with 4002 after WS_CONNECTION_TIMEOUT', async () => {
      const ws = await openClient(`${server.wsUrl}/ws/echo`);
      const chatter = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('still here'), 300);
      const started = Date.now();
      try {
        // 0-3 s: a message every 0.3 s keeps it from idling; 3 s: lifetime -> close 4002.
        expect(await closed(ws)).to.deep.equal({ code: 4002, reason: 'max_lifetime' });
        expect(Date.now() - started).to.be.within(2800, 4500);
      } finally {
        clearInterval(chatter);
      }
    });

    it('terminates a peer that stops answering pings (pong timeout), without a close frame', async () => {
      const peer = await rawClient(server.port, '/ws/echo'); // never answers pings
      const started = Date.now();
      // 0.2 s: ping; 0.7 s: pong overdue -> terminated, not closed as idle at 1 s (no close frame,
      // below). The upper bound leaves room for a busy machine; the order of verdicts needs none.
      await peer.closed;
      expect(Date.now() - started).to.be.within(500, 2_500);
      expect(peer.frames.filter((f) => f.opcode === 0x9).length).to.be.greaterThan(0);
      expect(peer.frames.some((f) => f.opcode === 0x8)).to.equal(false);
    });

    it('broadcasts a POSTed ticket scan to every /ws/scans socket, not to echo sockets', async () => {
      const scanners = [await openClient(`${server.wsUrl}/ws/scans?user=gate-a`), await openClient(`${server.wsUrl}/ws/scans?user=gate-b`)];
      const echo = await openClient(`${server.wsUrl}/ws/echo`);
      let echoGot = 0;
      echo.on('message', () => echoGot++);
      const received = scanners.map(nextMessage);
      const res = await fetch(`${server.httpUrl}/scans`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ticketId: 'T-42', gate: 'A', status: 'valid' }),
      });
      expect(res.status).to.equal(202);
      expect(await res.json()).to.deep.equal({ delivered: 2 });
      for (const message of await Promise.all(received)) {
        expect(JSON.parse(message)).to.include({ type: 'scan', ticketId: 'T-42', gate: 'A', status: 'valid' });
      }
      expect(echoGot).to.equal(0);
      for (const ws of [...scanners, echo]) ws.close();
    });

    it('closes a connection whose message is over the 64 KiB maxPayload with 1009, and echoes one at the limit', async () => {
      const ws = await openClient(`${server.wsUrl}/ws/echo`);
      const atLimit = 'x'.repeat(64 * 1024);
      ws.send(atLimit);
      expect(await nextMessage(ws)).to.equal(atLimit);
      const close = closed(ws);
      ws.send('x'.repeat(64 * 1024 + 1));
      expect((await close).code).to.equal(1009);
    });

    it('closes a connection by its id on POST /api/connections/:id/close (notice, then 1000), and answers 410 Gone once it is gone', async () => {
      const ws = await openClient(`${server.wsUrl}/ws/echo?user=close-test`);
      const view = (await (await fetch(`${server.httpUrl}/api/connections`)).json()) as { fleet: unknown; connections: Array<{ id: string; user: string }> };
      expect(view.fleet).to.equal(null); // no REDIS_URL: a single server
      const { id } = view.connections.find((c) => c.user === 'close-test')!;
      const notice = nextMessage(ws);
      const close = closed(ws);
      const closeIt = () => fetch(`${server.httpUrl}/api/connections/${encodeURIComponent(id)}/close`, { method: 'POST' });
      const first = await closeIt();
      expect([first.status, await first.json()]).to.deep.equal([200, { result: 'closed' }]);
      expect(JSON.parse(await notice)).to.include({ type: 'closedByOperator' });
      expect(await close).to.deep.equal({ code: 1000, reason: 'closed_by_operator' });
      const second = await closeIt();
      expect([second.status, await second.json()]).to.deep.equal([410, { result: 'gone' }]);
    });

    it('refuses a bad POST /scans with 400', async () => {
      const res = await fetch(`${server.httpUrl}/scans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(res.status).to.equal(400);
    });

    it('refuses a malformed ?user= with HTTP 400 before the upgrade', async () => {
      const refusal = await expectRefused(`${server.wsUrl}/ws/echo?user=${encodeURIComponent('<script>')}`);
      expect(refusal.statusCode).to.equal(400);
    });

    it('answers 426 to a plain GET of a WebSocket route and 404 to an unknown one', async () => {
      expect((await fetch(`${server.httpUrl}/ws/echo`)).status).to.equal(426);
      expect((await expectRefused(`${server.wsUrl}/ws/nope`)).statusCode).to.equal(404);
    });
  });

  it('prints every bad variable on stderr and exits non-zero before listening', async () => {
    const server = await startExample({ WS_IDLE_TIMEOUT: 'soon', WS_PING_INTERVAL: '-1', WS_TIMEOUT_PROFILE: 'fast', PORT: 'eighty' }, { waitForListening: false });
    const { code } = await server.exited;
    expect(code).to.not.equal(0);
    const stderr = server.stderr();
    for (const name of ['WS_IDLE_TIMEOUT', 'WS_PING_INTERVAL', 'WS_TIMEOUT_PROFILE', 'PORT']) expect(stderr).to.include(name);
    expect(server.logs().some((e) => e.message === 'Example server listening')).to.equal(false);
  });

  describe('.env', () => {
    let server: ExampleServer | undefined;
    let dir: string | undefined;
    afterEach(async () => {
      await server?.kill();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('reads .env in the current directory, and a variable already set wins over the file', async () => {
      dir = mkdtempSync(join(tmpdir(), 'ws-timeouts-env-'));
      writeFileSync(join(dir, '.env'), '# from .env.example\nWS_IDLE_TIMEOUT=7\nWS_PONG_TIMEOUT=9\n');
      server = await startExample({ WS_PONG_TIMEOUT: '8' }, { cwd: dir });
      const listening = server.logs().find((e) => e.message === 'Example server listening');
      expect(listening).to.include({ envFile: join(dir, '.env'), idleTimeoutMs: 7_000, pongTimeoutMs: 8_000 });
    });

    it('starts without one, on the environment alone', async () => {
      dir = mkdtempSync(join(tmpdir(), 'ws-timeouts-env-'));
      server = await startExample({ WS_IDLE_TIMEOUT: '6' }, { cwd: dir });
      const listening = server.logs().find((e) => e.message === 'Example server listening');
      expect(listening).to.include({ envFile: null, idleTimeoutMs: 6_000 });
    });
  });

  describe('shutdown', () => {
    let server: ExampleServer | undefined;
    afterEach(async () => server?.kill());

    it('on SIGTERM closes open sockets with 1001 going_away, and npm start exits 0', async () => {
      server = await startExample(FAST);
      const sockets = [await openClient(`${server.wsUrl}/ws/echo`), await openClient(`${server.wsUrl}/ws/scans`)];
      const closes = sockets.map(closed);
      // To npm itself, as a process manager running `npm start` would: the start script execs
      // node, so npm's forwarded signal reaches the server.
      process.kill(server.proc.pid!, 'SIGTERM');
      expect(await Promise.all(closes)).to.deep.equal([
        { code: 1001, reason: 'going_away' },
        { code: 1001, reason: 'going_away' },
      ]);
      expect(await server.exited).to.deep.equal({ code: 0, signal: null });
      expect(server.logs().find((e) => e.message === 'Shutdown complete')).to.include({ clean: true });
    });

    it('on Ctrl-C (SIGINT to the whole process group, as a terminal sends it) shuts down cleanly and leaves nothing running', async () => {
      server = await startExample(FAST);
      const ws = await openClient(`${server.wsUrl}/ws/echo`);
      const close = closed(ws);
      process.kill(-server.proc.pid!, 'SIGINT');
      expect(await close).to.deep.equal({ code: 1001, reason: 'going_away' });
      await server.exited; // npm itself answers SIGINT with 130, whatever the server did
      await until(() => !server!.groupAlive(), 3_000);
      expect(server.logs().find((e) => e.message === 'Shutdown complete')).to.include({ clean: true });
    });
  });
});
