import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import express, { type Request, type RequestHandler } from 'express';
import WebSocket from 'ws';
import {
  attachWebSockets,
  ConfigError,
  ConnectionRegistry,
  DEFAULT_TIMEOUT_CONFIG,
  silentLogger,
  websocket,
  wsTimeouts,
  WebSocketTimeoutManager,
  type ManagedSocket,
  type ManagerOptions,
  type WebSocketHandler,
} from '../../lib/index.js';
import { closed, openClient, startExpress } from '../support/express-server.js';
import { captureLogs, connectHandler, createTestClock, installTestClock, type TestClock } from '../../lib/testing/index.js';

/** What a handler can see of its connection: compared between a real upgrade and connectHandler(). */
function snapshot(manager: WebSocketTimeoutManager, req: Request): Record<string, unknown> {
  return {
    method: req.method,
    path: req.path,
    originalUrl: req.originalUrl,
    query: { ...req.query },
    params: { ...req.params },
    trace: req.get('x-trace'),
    upgrade: req.get('upgrade'),
    ip: req.ip,
    protocol: req.protocol,
    wsTimeouts: req.wsTimeouts,
    config: manager.config,
    userId: manager.userId,
    route: manager.labels?.route,
    state: manager.state,
  };
}

describe('connectHandler()', () => {
  let t: TestClock;

  beforeEach(() => {
    t = createTestClock();
  });

  it('gives the handler what a real upgrade through wsTimeouts() and websocket() gives it', async () => {
    // The real thing: an Express route on a real server, a real ws client, no fake time.
    const seen: Array<Record<string, unknown>> = [];
    const capture: WebSocketHandler = (manager, req) => {
      seen.push(snapshot(manager, req));
      void manager.gracefulClose();
    };
    const app = express();
    app.get(
      '/ws/rooms/:room',
      wsTimeouts({ idleTimeoutMs: 5_000 }, { env: { WS_PING_INTERVAL: '10' } }),
      (_req, res, next) => {
        res.locals.userId = 'alice';
        next();
      },
      websocket(capture, { config: { messageTimeoutMs: 2_000 }, logger: silentLogger }),
    );
    const server = createServer(app);
    const gateway = attachWebSockets(server, app, { logger: silentLogger });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const client = new WebSocket(`ws://127.0.0.1:${port}/ws/rooms/lobby?token=abc&tag=a&tag=b`, { headers: { 'X-Trace': 't-1' } });
      await once(client, 'close');
    } finally {
      await gateway.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }

    // The same route, in memory.
    connectHandler(capture, {
      path: '/ws/rooms/lobby',
      route: '/ws/rooms/:room',
      params: { room: 'lobby' },
      query: { token: 'abc', tag: ['a', 'b'] },
      headers: { 'X-Trace': 't-1' },
      env: { WS_PING_INTERVAL: '10' },
      config: { idleTimeoutMs: 5_000 },
      userId: 'alice',
      managerOptions: { config: { messageTimeoutMs: 2_000 } },
      clock: t,
    });

    expect(seen).to.have.length(2);
    expect(seen[1]).to.deep.equal(seen[0]);
    expect(seen[0]).to.deep.include({ path: '/ws/rooms/lobby', params: { room: 'lobby' }, query: { token: 'abc', tag: ['a', 'b'] }, userId: 'alice' });
    expect(seen[0]!.config).to.include({ idleTimeoutMs: 5_000, pingIntervalMs: 10_000, messageTimeoutMs: 2_000 });
  });

  it('creates the manager with the very options the gateway gives it for the same request: one accept path', async () => {
    // Each path hands its manager options to a sink that records them; nothing else differs.
    const logs = captureLogs();
    const recorded: ManagerOptions[] = [];
    const sink = {
      clock: t.clock,
      add(ws: ManagedSocket, options: ManagerOptions): WebSocketTimeoutManager {
        recorded.push(options);
        return new WebSocketTimeoutManager(ws, options).start();
      },
    };
    const route: ManagerOptions = { config: { messageTimeoutMs: 2_000 }, labels: { role: 'speaker' }, heartbeatMode: 'application', userId: 'fallback' };
    const capture: WebSocketHandler = (manager) => void manager.gracefulClose();
    const authenticate: RequestHandler = (req, _res, next) => {
      Object.assign(req, { user: { id: 42 } });
      next();
    };

    const app = express();
    const rooms = express.Router();
    rooms.get('/rooms/:room', wsTimeouts({ idleTimeoutMs: 5_000 }, { env: { WS_PING_INTERVAL: '10' } }), authenticate, websocket(capture, route));
    app.use('/ws', rooms);
    const server = await startExpress(app, { registry: sink, clock: t.clock, logger: logs.logger });
    try {
      await closed(await openClient(`${server.wsUrl}/ws/rooms/lobby?token=abc`));
    } finally {
      await server.close();
    }

    connectHandler(capture, {
      path: '/ws/rooms/lobby',
      route: '/ws/rooms/:room',
      params: { room: 'lobby' },
      query: { token: 'abc' },
      env: { WS_PING_INTERVAL: '10' },
      config: { idleTimeoutMs: 5_000 },
      prepare: (req, res) => authenticate(req, res, () => undefined),
      managerOptions: route,
      registry: sink,
      clock: t,
      logger: logs.logger,
    });

    expect(recorded).to.have.length(2);
    expect(recorded[1]).to.deep.equal(recorded[0]);
    expect(recorded[0]).to.deep.include({ userId: '42', labels: { role: 'speaker', route: '/ws/rooms/:room' }, heartbeatMode: 'application' });
    expect(recorded[0]!.config).to.include({ idleTimeoutMs: 5_000, pingIntervalMs: 10_000, messageTimeoutMs: 2_000 });
    expect(recorded[0]!.clock).to.equal(t.clock);
    expect(recorded[0]!.logger).to.equal(logs.logger);
  });

  it("lets the route's own logger win over the logger option, as websocket(handler, { logger }) wins over attachWebSockets' logger", async () => {
    const kit = captureLogs();
    const fromRoute = captureLogs();
    connectHandler(() => undefined, { clock: t, logger: kit.logger, config: { idleTimeoutMs: 1_000 }, managerOptions: { logger: fromRoute.logger } });
    await t.tickAsync(2_000);
    expect(fromRoute.find('WebSocket timeout')?.meta).to.include({ reason: 'idle' });
    expect(kit.find('WebSocket timeout')).to.equal(undefined);
  });

  it('parses env as the wsTimeouts() middleware does, with config on top, into req.wsTimeouts', () => {
    const { request, manager } = connectHandler(() => undefined, {
      clock: t,
      env: { WS_IDLE_TIMEOUT: '30', WS_TIMEOUT_PROFILE: 'production' },
      config: { pingIntervalMs: 5_000 },
    });
    expect(request.wsTimeouts).to.include({ idleTimeoutMs: 30_000, connectionTimeoutMs: 600_000, pingIntervalMs: 5_000 });
    expect(Object.isFrozen(request.wsTimeouts)).to.equal(true);
    expect(manager.config).to.equal(request.wsTimeouts);
  });

  it('throws the ConfigError of a bad WS_* value, naming the variable', () => {
    let error: unknown;
    try {
      connectHandler(() => undefined, { clock: t, env: { WS_IDLE_TIMEOUT: '30s' } });
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.name)).to.deep.equal(['WS_IDLE_TIMEOUT']);
  });

  it("uses the library defaults, not the machine's environment, unless env is given", () => {
    const saved = process.env.WS_IDLE_TIMEOUT;
    process.env.WS_IDLE_TIMEOUT = '7';
    try {
      expect(connectHandler(() => undefined, { clock: t }).manager.config).to.deep.equal(DEFAULT_TIMEOUT_CONFIG);
      expect(connectHandler(() => undefined, { clock: t, env: process.env }).manager.config.idleTimeoutMs).to.equal(7_000);
    } finally {
      if (saved === undefined) delete process.env.WS_IDLE_TIMEOUT;
      else process.env.WS_IDLE_TIMEOUT = saved;
    }
  });

  it('takes the user id from res.locals.userId, else req.user.id, else managerOptions.userId', () => {
    const handler = (): void => undefined;
    expect(connectHandler(handler, { clock: t, userId: 'alice', managerOptions: { userId: 'route' } }).manager.userId).to.equal('alice');
    const fromUser = connectHandler(handler, { clock: t, prepare: (req) => Object.assign(req, { user: { id: 42 } }), managerOptions: { userId: 'route' } });
    expect(fromUser.manager.userId).to.equal('42');
    expect(connectHandler(handler, { clock: t, managerOptions: { userId: 'route' } }).manager.userId).to.equal('route');
    expect(connectHandler(handler, { clock: t }).manager.userId).to.equal(undefined);
  });

  it('labels the manager with the route pattern, else the path', () => {
    expect(connectHandler(() => undefined, { clock: t, path: '/ws/a/1', route: '/ws/a/:id' }).manager.labels).to.deep.equal({ route: '/ws/a/:id' });
    expect(connectHandler(() => undefined, { clock: t, path: '/ws/a/1', managerOptions: { labels: { role: 'x' } } }).manager.labels).to.deep.equal({
      role: 'x',
      route: '/ws/a/1',
    });
  });

  it('calls the handler synchronously and resolves done when it returns', async () => {
    let ran = false;
    const { done } = connectHandler(
      async (manager) => {
        ran = true;
        await manager.receiveWithTimeout(1_000);
      },
      { clock: t },
    );
    expect(ran).to.equal(true);
    await t.tickAsync(1_000);
    await done;
  });

  for (const [kind, handler] of [
    ['throws', (): void => {
      throw new Error('boom');
    }],
    ['rejects', async (): Promise<void> => {
      await Promise.resolve();
      throw new Error('boom');
    }],
  ] as const) {
    it(`closes with 1011 internal_error, logs the error and rejects done when the handler ${kind}`, async () => {
      const logs = captureLogs();
      const { client, done } = connectHandler(handler, { clock: t, logger: logs.logger });
      let error: unknown;
      await done.catch((err: unknown) => (error = err));
      expect((error as Error).message).to.equal('boom');
      expect(await client.waitForClose()).to.deep.equal({ code: 1011, reason: 'internal_error' });
      expect(logs.find('WebSocket handler failed')?.meta.error).to.equal(error);
    });
  }

  it('starts automatic enforcement like websocket(), unless start is false', async () => {
    const started = connectHandler(() => undefined, { clock: t, config: { idleTimeoutMs: 1_000 } });
    const manual = connectHandler(() => undefined, { clock: t, config: { idleTimeoutMs: 1_000 }, start: false });
    await t.tickAsync(2_000);
    expect(started.client.closeEvent?.code).to.equal(4001);
    expect(manual.client.closeEvent).to.equal(null);
    expect(manual.manager.isIdle()).to.equal(true);
  });

  it('creates the manager with registry.add() when given a registry', async () => {
    const registry = new ConnectionRegistry({ clock: t.clock, logger: silentLogger });
    const { manager } = connectHandler(() => undefined, { clock: t, registry, path: '/ws/echo' });
    expect(registry.size).to.equal(1);
    expect(manager.labels).to.include({ route: '/ws/echo' });
    await manager.gracefulClose();
    expect(registry.size).to.equal(0);
  });

  it("refuses a clock that is not the registry's: the registry's managers would never time out on it", () => {
    const onRealTime = new ConnectionRegistry({ logger: silentLogger });
    for (const clock of [t, t.clock]) {
      expect(() => connectHandler(() => undefined, { clock, registry: onRealTime })).to.throw(
        TypeError,
        /registry runs on another clock.*new ConnectionRegistry\(\{ clock: t\.clock \}\).*or leave out the clock option/,
      );
    }
    expect(onRealTime.size).to.equal(0);
  });

  it("runs the pair on the registry's clock when no clock is given", async () => {
    const registry = new ConnectionRegistry({ clock: t.clock, logger: silentLogger });
    const { server, client } = connectHandler(() => undefined, { registry, answerClose: false });
    server.close(1000); // the client never answers: ws's 30 s close timeout ends the connection
    await t.tickAsync(30_000);
    expect(server.readyState).to.equal(3);
    expect(client.closeEvent).to.deep.equal({ code: 1000, reason: '' });
  });

  it('drives the pair from the options: a client that ignores pings is terminated', async () => {
    const { client, manager } = connectHandler(() => undefined, { clock: t, autoPong: false, config: { idleTimeoutMs: 0, pingIntervalMs: 1_000, pongTimeoutMs: 1_000 } });
    await t.tickAsync(3_000);
    expect(client.pings).to.equal(1);
    expect(manager.state).to.equal('closed');
    expect(client.closeEvent).to.deep.equal({ code: 1006, reason: '' });
  });

  it('uses the clock of installTestClock() when none is given, so an install that starts earlier than the last one is not delayed', async () => {
    // Regression: the default clock's shared scheduler outlives each install; after an install
    // that ran 90 fake seconds, the next one (back at DEFAULT_START) saw its deadlines 90 s late.
    for (const runMs of [90_000, 2_000]) {
      const installed = installTestClock();
      try {
        const { manager } = connectHandler(() => undefined, { config: { idleTimeoutMs: runMs - 1_000 } });
        await installed.tickAsync(runMs);
        expect(manager.state, `after ${runMs} ms`).to.equal('closed');
      } finally {
        installed.uninstall();
      }
    }
  });

  it('refuses a handler that is not a function and a path that carries its query string', () => {
    expect(() => connectHandler('nope' as unknown as WebSocketHandler)).to.throw(TypeError, /handler must be a function/);
    expect(() => connectHandler(() => undefined, { path: '/ws?x=1' })).to.throw(TypeError, /query option/);
    expect(() => connectHandler(() => undefined, { path: 'ws' })).to.throw(TypeError, /must start with "\/"/);
  });
});
