import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSocket, runToExit, startExample, type RunningExample, type TestSocket } from '../../support/run-example.js';

// Acceptance: the example started as its README says (`node --import tsx examples/ticket-scans/server.ts`),
// probed over HTTP and WebSocket with short real timeouts.
const SCRIPT = 'examples/ticket-scans/server.ts';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('examples/ticket-scans', function () {
  this.timeout(30_000);
  let app: RunningExample;
  const sockets: TestSocket[] = [];

  before(async () => {
    // SESSION_TIMEOUT_MINUTES=0.01: 600 ms of silence expires a scanner; statistics every 300 ms.
    app = await startExample(SCRIPT, { SESSION_TIMEOUT_MINUTES: '0.01', SESSION_CLEANUP_INTERVAL_MINUTES: '0.005', WS_TIMER_RESOLUTION: '0.05' });
  });

  after(async () => {
    for (const socket of sockets) socket.ws.terminate();
    await app?.stop('SIGKILL');
  });

  async function scanner(): Promise<TestSocket> {
    const socket = await openSocket(`${app.wsUrl}/ws/scans`);
    sockets.push(socket);
    return socket;
  }

  function postScan(body: string) {
    return fetch(`${app.url}/scans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  }

  it('logs "Started session expiry" with the timeout from SESSION_TIMEOUT_MINUTES at start-up', () => {
    const started = app.logs().find((l) => String(l.message).startsWith('Started session expiry with'));
    expect(started).to.include({ message: 'Started session expiry with 0.01 minute timeout', idleTimeoutMs: 600 });
  });

  it('broadcasts a POST /scans to every connected scanner and answers 202 with the count', async () => {
    const [a, b] = [await scanner(), await scanner()];
    const res = await postScan('{"ticketId":"T-1","gate":"A"}');
    expect(res.status).to.equal(202);
    expect(await res.json()).to.deep.equal({ sent: 2, failed: 0 });
    for (const socket of [a, b]) {
      await socket.waitForMessages(1);
      expect(socket.json()[0]).to.deep.include({ type: 'scan', scan: { ticketId: 'T-1', gate: 'A' } });
    }
    for (const socket of [a, b]) socket.ws.close(1000);
    await Promise.all([a.closed, b.closed]);
  });

  it('answers 400 to a scan that is not a JSON object', async () => {
    const res = await postScan('[1,2]');
    expect(res.status).to.equal(400);
  });

  it('expires a scanner idle for SESSION_TIMEOUT_MINUTES with the notice and 4001, and keeps a busy one', async () => {
    const [idle, busy] = [await scanner(), await scanner()];
    const chatter = setInterval(() => busy.ws.send('heartbeat'), 150);
    try {
      const closed = await idle.closed;
      expect(closed).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      expect(idle.json()[0]).to.include({ type: 'connectionTimeout', reason: 'idle', message: 'Connection closed due to inactivity', idleSeconds: 0.6 });
      await sleep(300);
      expect(busy.ws.readyState).to.equal(busy.ws.OPEN);
    } finally {
      clearInterval(chatter);
    }
    const lines = app.logs();
    expect(lines.find((l) => l.message === 'WebSocket connected' && l.totalConnections === 2)).to.not.equal(undefined);
    expect(lines.find((l) => l.message === 'WebSocket closed' && l.totalConnections === 1)).to.not.equal(undefined);
  });

  it('answers /health and /metrics from the registry', async () => {
    const health = await fetch(`${app.url}/health`);
    expect(health.status).to.equal(200);
    const body = (await health.json()) as { status: string; sessions: Record<string, unknown> };
    expect(body.status).to.equal('healthy');
    expect(body.sessions).to.include({ activeSessions: 1, closedSessions: 3 });
    const metrics = await fetch(`${app.url}/metrics`);
    expect(metrics.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    expect(text).to.include('ws_timeouts_active_connections 1');
    expect(text).to.include('ws_timeouts_timeouts_total{reason="idle",role="none"} 1');
  });

  it('logs the cleanup statistics every SESSION_CLEANUP_INTERVAL_MINUTES: "Cleaned up N inactive session(s)"', async () => {
    const runs = () => app.logs().filter((l) => /^Cleaned up \d+ inactive session\(s\)$/.test(String(l.message)));
    const cleaned = () => runs().reduce((sum, l) => sum + Number(l.cleanupCount), 0);
    // The two scanners of the expiry test: the idle one, and the busy one once its chatter stopped.
    for (let i = 0; i < 250 && cleaned() < 2; i++) await sleep(20);
    expect(cleaned()).to.equal(2);
    expect(runs().length).to.be.above(2); // one line per run, also when it cleaned up nothing
    for (const run of runs()) expect(run.message).to.equal(`Cleaned up ${run.cleanupCount as number} inactive session(s)`);
  });

  it('closes every scanner with 1001 going_away on SIGTERM and exits 0', async () => {
    const last = await scanner();
    const code = await app.stop('SIGTERM');
    expect(await last.closed).to.deep.equal({ code: 1001, reason: 'going_away' });
    expect(code).to.equal(0);
    expect(app.logs().map((l) => l.message)).to.include('Stopped session expiry');
  });

  it('refuses a bad SESSION_TIMEOUT_MINUTES and PORT on stderr, naming both, and exits 1 before listening', async () => {
    const run = await runToExit(SCRIPT, { SESSION_TIMEOUT_MINUTES: '30m', PORT: 'eighty' });
    expect(run.code).to.equal(1);
    expect(run.stderr).to.include('SESSION_TIMEOUT_MINUTES="30m"');
    expect(run.stderr).to.include('PORT="eighty"');
    expect(run.stdout).to.not.include('listening');
  });

  it('takes SESSION_TIMEOUT_MINUTES from .env, as the README says: .env.example copied, the line uncommented', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ticket-scans-'));
    try {
      const example = readFileSync('.env.example', 'utf8');
      expect(example).to.match(/^# SESSION_TIMEOUT_MINUTES=30$/m);
      writeFileSync(join(dir, '.env'), example.replace(/^# SESSION_TIMEOUT_MINUTES=30$/m, 'SESSION_TIMEOUT_MINUTES=45'));
      const fromFile = await startExample(SCRIPT, {}, { cwd: dir });
      await fromFile.stop('SIGTERM');
      expect(fromFile.logs().find((l) => String(l.message).startsWith('Started session expiry'))).to.include({ idleTimeoutMs: 45 * 60_000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts an empty SESSION_TIMEOUT_MINUTES as unset, as an empty WS_* variable: the default 30 minutes', async () => {
    const empty = await startExample(SCRIPT, { SESSION_TIMEOUT_MINUTES: '', SESSION_CLEANUP_INTERVAL_MINUTES: ' ', WS_PING_INTERVAL: '' });
    await empty.stop('SIGTERM');
    expect(empty.logs().find((l) => String(l.message).startsWith('Started session expiry'))).to.include({
      message: 'Started session expiry with 30.0 minute timeout',
      idleTimeoutMs: 30 * 60_000,
    });
  });

  it('refuses a session timeout under an explicit timer resolution, naming SESSION_TIMEOUT_MINUTES', async () => {
    const run = await runToExit(SCRIPT, { SESSION_TIMEOUT_MINUTES: '0.001', WS_TIMER_RESOLUTION: '1' }); // 60 ms < 1 s resolution
    expect(run.code).to.equal(1);
    expect(run.stderr).to.include('WS_TIMER_RESOLUTION/SESSION_TIMEOUT_MINUTES (idleTimeoutMs)');
    expect(run.stderr).to.include('SESSION_TIMEOUT_MINUTES (idleTimeoutMs)=60 ms');
  });
});
