import { expect } from 'chai';
import express from 'express';
import { ConnectionRegistry, ReconnectBudget, installGracefulShutdown, shutdownGracefully, silentLogger, websocket, wsTimeouts } from '../lib/index.js';
import { createTestClock, type TestClock } from '../lib/testing/index.js';
import { rawClient } from './support/raw-client.js';
import { closed, expectRefused, openClient, startExpress, until, type ExpressTestServer } from './support/express-server.js';

// Real sockets; the timers (shutdown deadline, the managers' close timeouts, the duplicate-signal
// window) run on a fake clock injected into the library only, moved explicitly. Signals are
// emitted on `process` (listeners only: nothing is really sent) on SIGUSR2, which neither mocha
// nor Node use.
describe('graceful shutdown (lib/express/shutdown)', () => {
  let server: ExpressTestServer | undefined;
  let t: TestClock;

  beforeEach(() => {
    t = createTestClock();
  });

  /** Whether `promise` has settled yet, read synchronously. */
  function watch<T>(promise: Promise<T>): { readonly settled: boolean; promise: Promise<T> } {
    const state = { settled: false, promise };
    void promise.finally(() => (state.settled = true));
    return state;
  }

  async function serve(closeTimeoutMs = 2_000, registry?: ConnectionRegistry): Promise<ExpressTestServer> {
    const app = express();
    app.use(wsTimeouts({ closeTimeoutMs }, { env: {} }));
    app.get('/ws', websocket(async (manager) => {
      for await (const m of manager) await manager.sendTextWithTimeout(String(m));
    }, { logger: silentLogger }));
    app.get('/hello', (_req, res) => res.send('hi'));
    server = await startExpress(app, { logger: silentLogger, registry, clock: t.clock });
    return server;
  }

  afterEach(async () => {
    if (server?.http.listening) await server.close();
    // A shutdown the test left waiting on the fake clock still holds its peers: end them, or they
    // keep the mocha process alive for seconds after the last test.
    else for (const ws of server?.gateway.wss.clients ?? []) ws.terminate();
    server = undefined;
  });

  describe('shutdownGracefully()', () => {
    it('closes every WebSocket with 1001 going_away, stops the server and resolves true', async () => {
      const s = await serve();
      const clients = [await openClient(`${s.wsUrl}/ws`), await openClient(`${s.wsUrl}/ws`)];
      const closes = clients.map(closed);
      const clean = await shutdownGracefully(s.http, s.gateway, { logger: silentLogger, timeoutMs: 2_000 });
      expect(clean).to.equal(true);
      expect(await Promise.all(closes)).to.deep.equal([
        { code: 1001, reason: 'going_away' },
        { code: 1001, reason: 'going_away' },
      ]);
      expect(s.http.listening).to.equal(false);
      expect(await s.connections()).to.equal(0);
    });

    it('runs onClosed after every WebSocket has closed, and a failing onClosed still shuts down', async () => {
      const s = await serve();
      const client = await openClient(`${s.wsUrl}/ws`);
      let openAtOnClosed = -1;
      const clean = await shutdownGracefully(s.http, s.gateway, {
        logger: silentLogger,
        onClosed: () => {
          openAtOnClosed = client.readyState;
          throw new Error('cleanup failed');
        },
      });
      expect(openAtOnClosed).to.equal(client.CLOSED);
      expect(clean).to.equal(true);
    });

    it('answers 503 to an upgrade still in the middleware chain when shutdown begins', async () => {
      const app = express();
      app.get('/ws', async (_req, _res, next) => void setTimeout(next, 300), websocket(() => undefined, { logger: silentLogger }));
      const s = (server = await startExpress(app, { logger: silentLogger }));
      const refused = expectRefused(`${s.wsUrl}/ws`);
      while (s.gateway.pending === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const clean = await shutdownGracefully(s.http, s.gateway, { logger: silentLogger, timeoutMs: 2_000 });
      expect((await refused).statusCode).to.equal(503);
      expect(clean).to.equal(true);
      expect(s.gateway.wss.clients.size).to.equal(0);
    });

    it('is bounded: a peer that never answers the close frame is terminated after closeTimeoutMs', async () => {
      const s = await serve(150);
      const peer = await rawClient(s.port, '/ws'); // never answers close frames
      const shutdown = watch(shutdownGracefully(s.http, s.gateway, { logger: silentLogger, timeoutMs: 2_000, clock: t.clock }));
      await t.tickAsync(149);
      expect(shutdown.settled, '1 ms before closeTimeoutMs').to.equal(false);
      await t.tickAsync(1);
      expect(await shutdown.promise).to.equal(true);
      expect(peer.frames.some((f) => f.opcode === 0x8 && f.payload.readUInt16BE(0) === 1001)).to.equal(true);
      await peer.closed;
    });

    it('resolves false when its own deadline passes first', async () => {
      const s = await serve(1_000);
      const peer = await rawClient(s.port, '/ws'); // holds its close for closeTimeoutMs = 1 s
      const shutdown = watch(shutdownGracefully(s.http, s.gateway, { logger: silentLogger, timeoutMs: 100, clock: t.clock }));
      await t.tickAsync(99);
      expect(shutdown.settled, '1 ms before the deadline').to.equal(false);
      await t.tickAsync(1);
      expect(await shutdown.promise).to.equal(false);
      await peer.closed; // destroyed by the deadline, long before its closeTimeoutMs
    });
  });

  describe('shutdownGracefully() with a reconnectBudget (rolling drain)', () => {
    for (const target of ['gateway', 'registry'] as const) {
      it(`stops listening, advises every client, then closes each with 1001 at its slot (target: the ${target})`, async () => {
        const registry = new ConnectionRegistry({ logger: silentLogger, clock: t.clock });
        const s = await serve(2_000, target === 'registry' ? registry : undefined);
        const clients = [];
        for (let i = 0; i < 3; i++) clients.push(await openClient(`${s.wsUrl}/ws`));
        const advice = clients.map((ws) => new Promise<Record<string, unknown>>((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data))))));
        const closes = clients.map(closed);
        const managers = [...s.gateway.managers];
        const reconnectBudget = new ReconnectBudget({ jitterMs: 0, rate: 10, clock: t.clock }); // a slot every 100 ms
        const shutdown = watch(
          shutdownGracefully(s.http, target === 'registry' ? registry : s.gateway, { logger: silentLogger, timeoutMs: 10_000, clock: t.clock, reconnectBudget }),
        );
        expect(s.http.listening, 'stops accepting first').to.equal(false);
        expect((await Promise.all(advice)).map((a) => [a.type, a.reason, a.retryAfterMs])).to.deep.equal([
          ['reconnectAdvised', 'going_away', 0],
          ['reconnectAdvised', 'going_away', 100],
          ['reconnectAdvised', 'going_away', 200],
        ]);
        expect(managers.map((m) => m.state)).to.deep.equal(['closing', 'open', 'open']);
        await t.tickAsync(99);
        expect(managers[1]!.state, '1 ms before its slot').to.equal('open');
        await t.tickAsync(1);
        expect(managers[1]!.state, 'at its slot').to.equal('closing');
        await t.tickAsync(99);
        expect(managers[2]!.state).to.equal('open');
        await t.tickAsync(1);
        expect(await Promise.all(closes)).to.deep.equal(Array(3).fill({ code: 1001, reason: 'going_away' }));
        expect(await shutdown.promise).to.equal(true);
      });
    }

    it('raises the pace to fit the shutdown timeout (less one closeTimeoutMs) and still ends clean', async () => {
      const s = await serve(500);
      const clients = [];
      for (let i = 0; i < 4; i++) clients.push(await openClient(`${s.wsUrl}/ws`));
      const closes = clients.map(closed);
      const managers = [...s.gateway.managers];
      const reconnectBudget = new ReconnectBudget({ jitterMs: 0, rate: 1, clock: t.clock }); // 4 s for 4 closes; 1 s is left
      const shutdown = watch(shutdownGracefully(s.http, s.gateway, { logger: silentLogger, timeoutMs: 1_500, clock: t.clock, reconnectBudget }));
      await t.tickAsync(749);
      expect(managers[3]!.state, '1 ms before the last slot (3 × 250 ms)').to.equal('open');
      await t.tickAsync(1);
      expect(managers[3]!.state).to.equal('closing');
      expect((await Promise.all(closes)).map((c) => c.code)).to.deep.equal([1001, 1001, 1001, 1001]);
      expect(await shutdown.promise).to.equal(true);
    });
  });

  describe('installGracefulShutdown()', () => {
    it('shuts down on a signal and exits 0', async () => {
      const s = await serve();
      const ws = await openClient(`${s.wsUrl}/ws`);
      const close = closed(ws);
      let exitCode: number | undefined;
      const exited = new Promise<void>((resolve) => {
        const uninstall = installGracefulShutdown(s.http, s.gateway, {
          signals: ['SIGUSR2'],
          logger: silentLogger,
          exit: (code) => {
            exitCode = code;
            uninstall();
            resolve();
          },
        });
      });
      process.emit('SIGUSR2', 'SIGUSR2');
      await exited;
      expect(exitCode).to.equal(0);
      expect(await close).to.deep.equal({ code: 1001, reason: 'going_away' });
      expect(process.listenerCount('SIGUSR2')).to.equal(0);
    });

    for (const target of ['gateway', 'registry'] as const) {
      it(`forced by its deadline, exits 1 with no connection left open (target: the ${target})`, async () => {
        const registry = new ConnectionRegistry({ logger: silentLogger, clock: t.clock });
        const s = await serve(5_000, target === 'registry' ? registry : undefined); // each close would wait 5 s for the peer's close frame
        const peer = await rawClient(s.port, '/ws'); // never answers the close frame
        const idle = await fetch(`${s.httpUrl}/hello`); // and an idle keep-alive HTTP connection
        expect(await idle.text()).to.equal('hi');
        const codes: number[] = [];
        let openAtExit!: Promise<number>;
        const uninstall = installGracefulShutdown(s.http, target === 'registry' ? registry : s.gateway, {
          signals: ['SIGUSR2'],
          timeoutMs: 150,
          logger: silentLogger,
          clock: t.clock,
          exit: (code) => {
            codes.push(code);
            openAtExit = s.connections();
          },
        });
        process.emit('SIGUSR2', 'SIGUSR2');
        await t.tickAsync(149);
        expect(codes, '1 ms before the deadline').to.deep.equal([]);
        await t.tickAsync(1);
        uninstall();
        expect(codes).to.deep.equal([1]);
        expect(await openAtExit).to.equal(0); // TCP connections the server holds, upgraded or not
        await peer.closed;
      });
    }

    it('exits 1 at once on a second signal during shutdown', async () => {
      const s = await serve(1_000);
      await rawClient(s.port, '/ws'); // keeps the first shutdown busy until the fake clock reaches its closeTimeoutMs
      const codes: number[] = [];
      const uninstall = installGracefulShutdown(s.http, s.gateway, { signals: ['SIGUSR2', 'SIGWINCH'], logger: silentLogger, clock: t.clock, exit: (code) => codes.push(code) });
      process.emit('SIGUSR2', 'SIGUSR2');
      process.emit('SIGWINCH', 'SIGWINCH');
      expect(codes).to.deep.equal([1]);
      uninstall();
    });

    it('counts the same signal repeated within 500 ms once (npm forwarding the Ctrl-C the terminal sent)', async () => {
      const s = await serve(1_000);
      const peer = await rawClient(s.port, '/ws'); // keeps the shutdown busy for closeTimeoutMs = 1 s
      const codes: number[] = [];
      const uninstall = installGracefulShutdown(s.http, s.gateway, { signals: ['SIGUSR2'], logger: silentLogger, clock: t.clock, exit: (code) => codes.push(code) });
      process.emit('SIGUSR2', 'SIGUSR2');
      process.emit('SIGUSR2', 'SIGUSR2');
      await t.tickAsync(499);
      process.emit('SIGUSR2', 'SIGUSR2');
      expect(codes).to.deep.equal([]);
      await t.tickAsync(501); // the peer's closeTimeoutMs: it is terminated and the shutdown ends clean
      await peer.closed;
      await until(() => codes.length > 0);
      expect(codes).to.deep.equal([0]);
      uninstall();
    });

    it('takes the same signal 500 ms later as a second request: exits 1', async () => {
      const s = await serve(1_000);
      await rawClient(s.port, '/ws'); // keeps the shutdown busy for closeTimeoutMs = 1 s
      const codes: number[] = [];
      const uninstall = installGracefulShutdown(s.http, s.gateway, { signals: ['SIGUSR2'], logger: silentLogger, clock: t.clock, exit: (code) => codes.push(code) });
      process.emit('SIGUSR2', 'SIGUSR2');
      await t.tickAsync(500);
      process.emit('SIGUSR2', 'SIGUSR2');
      expect(codes).to.deep.equal([1]);
      uninstall();
    });

    it('returns a function that removes its signal listeners', () => {
      const before = process.listenerCount('SIGUSR2');
      const uninstall = installGracefulShutdown(null as never, { closeAll: async () => undefined }, { signals: ['SIGUSR2'] });
      expect(process.listenerCount('SIGUSR2')).to.equal(before + 1);
      uninstall();
      expect(process.listenerCount('SIGUSR2')).to.equal(before);
    });
  });
});

