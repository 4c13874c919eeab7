import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { createServer, get as httpGet } from 'node:http';
import { connect } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import WebSocket from 'ws';
import {
  CloseCode,
  DEFAULT_TIMEOUT_CONFIG,
  attachWebSockets,
  websocket,
  wsTimeouts,
  type ManagerOptions,
  type WebSocketHandler,
  type WebSocketTimeoutManager,
} from '../lib/index.js';
import { captureLogs, createTestClock } from '../lib/testing/index.js';
import { closed, expectRefused, nextMessage, openClient, startExpress, until, type ExpressTestServer } from './support/express-server.js';

// Real sockets on 127.0.0.1, ephemeral ports, short real timeouts. The handshake timeout runs on a
// fake clock injected into the gateway only (`clock` option): the globals stay real.
const ENV = { env: {} }; // the defaults column, whatever the test process's WS_* variables say

const echo: WebSocketHandler = async (manager) => {
  for await (const message of manager) {
    if (!(await manager.sendTextWithTimeout(String(message)))) break;
  }
};

/** Rejects with 401 unless `Authorization: Bearer good` (or `?token=good`) is present. */
function auth(req: Request, res: Response, next: NextFunction): void {
  const token = req.get('authorization')?.replace(/^Bearer /, '') ?? req.query.token;
  if (token !== 'good') {
    res.status(401).send('no valid token');
    return;
  }
  res.locals.userId = 'alice';
  next();
}

describe('Express integration (lib/express)', () => {
  let server: ExpressTestServer | undefined;
  let logs: ReturnType<typeof captureLogs>;
  let seen: Array<{ manager: WebSocketTimeoutManager; req: Request }>;

  /** A handler that records what it was given, then echoes. */
  const recording: WebSocketHandler = (manager, req) => {
    seen.push({ manager, req });
    return echo(manager, req);
  };

  beforeEach(() => {
    logs = captureLogs();
    seen = [];
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function serve(app: express.Express, options: Parameters<typeof startExpress>[1] = {}): Promise<ExpressTestServer> {
    server = await startExpress(app, { logger: logs.logger, ...options });
    return server;
  }

  function route(options: ManagerOptions = {}) {
    return websocket(recording, { logger: logs.logger, ...options });
  }

  describe('accepting a WebSocket route', () => {
    it('hands the route handler a started manager and the request once the chain reaches websocket()', async () => {
      const app = express();
      app.use(wsTimeouts(undefined, ENV));
      app.get('/ws/echo', auth, route());
      const s = await serve(app);

      const ws = await openClient(`${s.wsUrl}/ws/echo`, { headers: { authorization: 'Bearer good' } });
      ws.send('hello');
      expect(await nextMessage(ws)).to.equal('hello');
      expect(seen).to.have.length(1);
      expect(seen[0]!.manager.userId).to.equal('alice');
      expect(seen[0]!.manager.labels).to.deep.equal({ route: '/ws/echo' });
      expect(seen[0]!.req.path).to.equal('/ws/echo');
      expect(s.gateway.size).to.equal(1);
      ws.close();
      await closed(ws);
      await s.drained();
      expect(s.gateway.size).to.equal(0);
    });

    it('takes the user id from req.user.id when res.locals.userId is not set', async () => {
      const app = express();
      app.get(
        '/ws',
        (req, _res, next) => {
          (req as Request & { user?: { id: number } }).user = { id: 42 };
          next();
        },
        route(),
      );
      const s = await serve(app);
      const ws = await openClient(`${s.wsUrl}/ws`);
      expect(seen[0]!.manager.userId).to.equal('42');
      ws.close();
    });

    it('keeps plain HTTP routes working on the same server, keep-alive included', async () => {
      const app = express();
      app.get('/ws/echo', route());
      app.get('/hello', (_req, res) => res.json({ hello: 'world' }));
      const s = await serve(app);
      const ws = await openClient(`${s.wsUrl}/ws/echo`);
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${s.httpUrl}/hello`);
        expect(res.status).to.equal(200);
        expect(await res.json()).to.deep.equal({ hello: 'world' });
      }
      ws.send('still here');
      expect(await nextMessage(ws)).to.equal('still here');
      ws.close();
    });

    it('answers a plain (non-upgrade) GET to a WebSocket route with 426 Upgrade Required', async () => {
      const app = express();
      app.get('/ws/echo', route());
      const s = await serve(app);
      const res = await fetch(`${s.httpUrl}/ws/echo`);
      expect(res.status).to.equal(426);
      expect(res.headers.get('upgrade')).to.equal('websocket');
      expect(seen).to.have.length(0);
    });

    it('delivers a first frame the client sent together with the handshake (the upgrade head)', async () => {
      const app = express();
      app.get('/ws/echo', route());
      const s = await serve(app);
      const frame = maskedTextFrame('early');
      const socket = connect(s.port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise((resolve) => socket.once('connect', resolve));
      const received: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.write(Buffer.concat([Buffer.from(handshake('/ws/echo', s.port)), frame]));
      const until = Date.now() + 2000;
      while (!Buffer.concat(received).includes('early') && Date.now() < until) await delay(10);
      expect(Buffer.concat(received).toString('latin1')).to.match(/^HTTP\/1\.1 101/).and.include('early');
      socket.destroy();
    });
    it('keeps a frame that arrives while the middleware chain is still running, in order', async () => {
      const app = express();
      app.get('/ws/echo', async (_req, _res, next) => void (await delay(60), next()), route());
      const s = await serve(app);
      const socket = connect(s.port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise((resolve) => socket.once('connect', resolve));
      const received: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.write(Buffer.concat([Buffer.from(handshake('/ws/echo', s.port)), maskedTextFrame('first')]));
      await delay(20); // still in the middleware
      socket.write(maskedTextFrame('second'));
      const end = Date.now() + 2000;
      while (!Buffer.concat(received).includes('second') && Date.now() < end) await delay(10);
      const text = Buffer.concat(received).toString('latin1');
      expect(text).to.match(/^HTTP\/1\.1 101/);
      expect(text.indexOf('first')).to.be.greaterThan(0).and.lessThan(text.indexOf('second'));
      socket.destroy();
    });
  });

  describe('middleware that answers before the upgrade', () => {
    for (const [status, body] of [
      [401, 'no valid token'],
      [403, 'forbidden'],
      [429, 'slow down'],
    ] as const) {
      it(`sends a middleware's ${status} as a real HTTP response, never accepts the socket and leaks nothing`, async () => {
        const app = express();
        app.get('/ws/echo', (_req, res) => void res.status(status).set('X-Reason', 'test').send(body), route());
        const s = await serve(app);

        const refusal = await expectRefused(`${s.wsUrl}/ws/echo`);
        expect(refusal.statusCode).to.equal(status);
        expect(refusal.body).to.equal(body);
        expect(refusal.headers['x-reason']).to.equal('test');
        expect(refusal.headers.connection).to.equal('close');
        expect(seen).to.have.length(0);
        expect(s.gateway.wss.clients.size).to.equal(0);
        await s.drained();
        expect(s.gateway.pending).to.equal(0);
      });
    }

    it('never runs the handler when a middleware answers and still calls next()', async () => {
      const app = express();
      app.get('/ws/echo', (_req, res, next) => {
        res.status(401).send('no valid token');
        next(); // a common bug: the response is sent, and the chain goes on anyway
      }, route());
      const s = await serve(app);
      const refusal = await expectRefused(`${s.wsUrl}/ws/echo`);
      expect(refusal.statusCode).to.equal(401);
      expect(refusal.body).to.equal('no valid token');
      await s.drained();
      expect(seen).to.have.length(0);
      expect(s.gateway.wss.clients.size).to.equal(0);
      expect(s.gateway.size).to.equal(0);
    });

    it('never accepts once a middleware has started a response (headers written) before next()', async () => {
      const app = express();
      app.get('/ws/echo', (_req, res, next) => {
        res.writeHead(403, { 'Content-Type': 'text/plain' });
        next();
        res.end('forbidden');
      }, route());
      const s = await serve(app);
      const refusal = await expectRefused(`${s.wsUrl}/ws/echo`);
      expect(refusal.statusCode).to.equal(403);
      await s.drained();
      expect(seen).to.have.length(0);
      expect(s.gateway.size).to.equal(0);
    });

    it('keeps no maxConnectionsPerIp slot for a request refused by a middleware that still called next()', async () => {
      const app = express();
      app.get('/ws/refused', (_req, res, next) => {
        res.status(401).send('no');
        next();
      }, route());
      app.get('/ws/echo', route());
      const s = await serve(app, { maxConnectionsPerIp: 1 });
      for (let i = 0; i < 3; i++) expect((await expectRefused(`${s.wsUrl}/ws/refused`)).statusCode).to.equal(401);
      await s.drained();
      const ws = await openClient(`${s.wsUrl}/ws/echo`); // the one slot of 127.0.0.1 is still free
      ws.close();
      await closed(ws);
    });

    it('sends 401 from an auth middleware and accepts the same route with a valid token', async () => {
      const app = express();
      app.get('/ws/echo', auth, route());
      const s = await serve(app);
      const refusal = await expectRefused(`${s.wsUrl}/ws/echo`);
      expect(refusal.statusCode).to.equal(401);
      const ws = await openClient(`${s.wsUrl}/ws/echo?token=good`);
      expect(seen).to.have.length(1);
      ws.close();
      await s.drained().catch(() => undefined);
    });

    it("answers an unknown path with Express's 404", async () => {
      const app = express();
      app.get('/ws/echo', route());
      const s = await serve(app);
      const refusal = await expectRefused(`${s.wsUrl}/nope`);
      expect(refusal.statusCode).to.equal(404);
      await s.drained();
    });

    it('answers 500 when a middleware throws, rejects or calls next(err)', async () => {
      const app = express();
      app.get('/throws', () => {
        throw new Error('boom');
      }, route());
      app.get('/rejects', async () => {
        await delay(5);
        throw new Error('async boom');
      }, route());
      app.get('/next', (_req, _res, next) => next(new Error('passed on')), route());
      app.set('env', 'test'); // keep finalhandler from printing the stack traces
      const s = await serve(app);
      for (const path of ['/throws', '/rejects', '/next']) {
        const refusal = await expectRefused(`${s.wsUrl}${path}`);
        expect(refusal.statusCode, path).to.equal(500);
      }
      expect(seen).to.have.length(0);
      await s.drained();
    });

    it('lets an error-handling middleware shape the refusal', async () => {
      const app = express();
      app.get('/ws', (_req, _res, next) => next(Object.assign(new Error('nope'), { status: 418 })), route());
      app.use((err: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
        res.status(err.status ?? 500).json({ error: err.message });
      });
      const s = await serve(app);
      const refusal = await expectRefused(`${s.wsUrl}/ws`);
      expect(refusal.statusCode).to.equal(418);
      expect(JSON.parse(refusal.body)).to.deep.equal({ error: 'nope' });
    });

    it('waits for asynchronous middleware before accepting', async () => {
      const app = express();
      app.get(
        '/ws',
        async (_req, res, next) => {
          await delay(50);
          res.locals.userId = 'late';
          next();
        },
        route(),
      );
      const s = await serve(app);
      const ws = await openClient(`${s.wsUrl}/ws`);
      expect(seen[0]!.manager.userId).to.equal('late');
      ws.close();
    });

    it('leaks nothing when the client gives up while the middleware chain is still running', async () => {
      const app = express();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      app.get(
        '/ws',
        async (_req, _res, next) => {
          await gate;
          next();
        },
        route(),
      );
      const s = await serve(app);
      const ws = new WebSocket(`${s.wsUrl}/ws`);
      ws.on('error', () => undefined);
      await until(() => s.gateway.pending === 1);
      ws.terminate();
      await s.drained();
      expect(s.gateway.pending).to.equal(0);
      release();
      await delay(20);
      expect(seen).to.have.length(0);
      expect(s.gateway.wss.clients.size).to.equal(0);
    });

    it('answers 503 when the chain neither answers nor reaches websocket() within handshakeTimeoutMs', async () => {
      const t = createTestClock();
      const app = express();
      app.get('/ws', () => undefined /* forgets next() */, route());
      const s = await serve(app, { handshakeTimeoutMs: 100, clock: t.clock });
      const refusal = expectRefused(`${s.wsUrl}/ws`);
      await until(() => s.gateway.pending === 1);
      await t.tickAsync(99);
      expect(s.gateway.pending, 'still in the chain 1 ms before the timeout').to.equal(1);
      await t.tickAsync(1);
      expect(s.gateway.pending, 'refused at the timeout').to.equal(0);
      expect((await refusal).statusCode).to.equal(503);
      await s.drained();
    });

    it('survives a middleware that answers after the handshake timeout already did', async () => {
      const t = createTestClock();
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let lateAnswer!: () => void;
      const answeredLate = new Promise<void>((resolve) => (lateAnswer = resolve));
      const app = express();
      app.get('/ws', async (_req, res) => {
        await released;
        res.status(401).end('too late'); // write after end: must not crash the server
        lateAnswer();
      }, route());
      const s = await serve(app, { handshakeTimeoutMs: 50, clock: t.clock });
      const refusal = expectRefused(`${s.wsUrl}/ws`);
      await until(() => s.gateway.pending === 1);
      await t.tickAsync(50);
      expect((await refusal).statusCode).to.equal(503);
      release();
      await answeredLate;
      expect((await fetch(`${s.httpUrl}/ws`)).status).to.equal(401); // alive; a plain GET runs the same chain
    });

    it('answers 400 (as ws does) when the request reaches websocket() with a broken handshake, and leaks nothing', async () => {
      const app = express();
      app.get('/ws', route());
      const s = await serve(app);
      const reply = await rawRequest(s.port, `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      expect(reply).to.match(/^HTTP\/1\.1 400/).and.include('Missing or invalid Sec-WebSocket-Key header');
      const badVersion = await rawRequest(s.port, `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 7\r\n\r\n`);
      expect(badVersion).to.match(/^HTTP\/1\.1 400/).and.match(/Sec-WebSocket-Version: 13, 8/i);
      expect(seen).to.have.length(0);
      await s.drained();
    });
    it("answers a refusal of the wss options' verifyClient with its status, message and headers, and accepts what it lets through", async () => {
      const app = express();
      app.get('/ws', route());
      const s = await serve(app, {
        wss: { verifyClient: ({ req }, done) => (req.headers.origin === 'https://good.example' ? done(true) : done(false, 403, 'Origin not allowed', { 'X-Refused-By': 'origin' })) },
      });
      const refusal = await expectRefused(`${s.wsUrl}/ws`, { origin: 'https://evil.example' });
      expect(refusal).to.deep.include({ statusCode: 403, body: 'Origin not allowed' });
      expect(refusal.headers['x-refused-by']).to.equal('origin');
      const ws = await openClient(`${s.wsUrl}/ws`, { origin: 'https://good.example' });
      expect(seen).to.have.length(1);
      ws.close();
    });
  });

  describe('logging refused upgrades', () => {
    /** The `WebSocket upgrade refused` lines logged so far, once the server holds no connection. */
    async function refusedLines(s: ExpressTestServer) {
      await s.drained();
      return logs.entries.filter((e) => e.message === 'WebSocket upgrade refused');
    }

    it('logs one line with path (never the query string), status and reason, and never a header', async () => {
      const app = express();
      app.get('/ws/echo', auth, route());
      const s = await serve(app);
      await expectRefused(`${s.wsUrl}/ws/echo?token=secret-value`, { headers: { authorization: 'Bearer also-secret' } });
      const lines = await refusedLines(s);
      expect(lines).to.have.length(1);
      expect(lines[0]).to.deep.include({ level: 'info', meta: { path: '/ws/echo', status: 401, reason: 'middleware_response' } });
      expect(JSON.stringify(logs.entries)).not.to.include('secret');
    });

    const handshakeClock = createTestClock();
    const cases: Array<{ name: string; level: 'info' | 'warn'; status: number; reason: string; app(): express.Express; options?: Parameters<typeof startExpress>[1]; refuse(s: ExpressTestServer): Promise<unknown> }> = [
      {
        name: "Express's 404 for an unknown path",
        level: 'info',
        status: 404,
        reason: 'no_route',
        app: () => express(),
        refuse: (s) => expectRefused(`${s.wsUrl}/ws/nope?token=x`),
      },
      {
        name: "a 404 from the route's own middleware",
        level: 'info',
        status: 404,
        reason: 'middleware_response',
        app: () => express().get('/ws/nope', (_req, res) => void res.sendStatus(404), route()),
        refuse: (s) => expectRefused(`${s.wsUrl}/ws/nope?token=x`),
      },
      {
        name: 'a middleware error (500)',
        level: 'warn',
        status: 500,
        reason: 'middleware_response',
        app: () => express().set('env', 'test').get('/ws/nope', (_req, _res, next) => next(new Error('boom')), route()),
        refuse: (s) => expectRefused(`${s.wsUrl}/ws/nope?token=x`),
      },
      {
        name: 'a route config that does not validate (500)',
        level: 'warn',
        status: 500,
        reason: 'invalid_route_config',
        app: () => express().set('env', 'test').use(wsTimeouts({ connectionTimeoutMs: 30_000, idleTimeoutMs: 10_000, pingIntervalMs: 5_000 }, ENV)).get('/ws/nope', route({ config: { idleTimeoutMs: 40_000 } })),
        refuse: (s) => expectRefused(`${s.wsUrl}/ws/nope?token=x`),
      },
      {
        name: "ws's own 400 for a broken handshake",
        level: 'info',
        status: 400,
        reason: 'invalid_handshake',
        app: () => express().get('/ws/nope', route()),
        refuse: (s) => rawRequest(s.port, 'GET /ws/nope?token=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n'),
      },
      {
        name: 'the maxConnections limit (503)',
        level: 'warn',
        status: 503,
        reason: 'max_connections',
        app: () => express().get('/ws/nope', route()),
        options: { maxConnections: 0 },
        refuse: (s) => expectRefused(`${s.wsUrl}/ws/nope?token=x`),
      },
      {
        name: 'the maxConnectionsPerIp limit (503)',
        level: 'warn',
        status: 503,
        reason: 'max_connections_per_ip',
        app: () => express().get('/ws/nope', route()),
        options: { maxConnectionsPerIp: 0 },
        refuse: (s) => expectRefused(`${s.wsUrl}/ws/nope?token=x`),
      },
      {
        name: 'the handshake timeout (503)',
        level: 'warn',
        status: 503,
        reason: 'handshake_timeout',
        app: () => express().get('/ws/nope', () => undefined, route()),
        options: { handshakeTimeoutMs: 50, clock: handshakeClock.clock },
        refuse: async (s) => {
          const refusal = expectRefused(`${s.wsUrl}/ws/nope?token=x`);
          await until(() => s.gateway.pending === 1);
          await handshakeClock.tickAsync(50);
          return refusal;
        },
      },
      {
        name: "a refusal by the wss options' verifyClient (401)",
        level: 'info',
        status: 401,
        reason: 'verify_client',
        app: () => express().get('/ws/nope', route()),
        options: { wss: { verifyClient: () => false } },
        refuse: (s) => expectRefused(`${s.wsUrl}/ws/nope?token=x`),
      },
      {
        name: "a verifyClient's callback refusal with its own status (403)",
        level: 'info',
        status: 403,
        reason: 'verify_client',
        app: () => express().get('/ws/nope', route()),
        options: { wss: { verifyClient: (_info, done) => done(false, 403, 'Origin not allowed') } },
        refuse: (s) => expectRefused(`${s.wsUrl}/ws/nope?token=x`),
      },
      {
        name: 'a plain request to a WebSocket route (426)',
        level: 'info',
        status: 426,
        reason: 'not_an_upgrade',
        app: () => express().get('/ws/nope', route()),
        refuse: (s) => new Promise((resolve) => httpGet(`${s.httpUrl}/ws/nope?token=x`, { agent: false }, (res) => res.resume().on('end', resolve))),
      },
    ];
    for (const c of cases) {
      it(`logs ${c.name} once, as ${c.status} ${c.reason}`, async () => {
        const s = await serve(c.app(), c.options);
        await c.refuse(s);
        const lines = await refusedLines(s);
        expect(lines, JSON.stringify(logs.entries)).to.have.length(1);
        expect(lines[0]!.level).to.equal(c.level);
        expect(lines[0]!.meta).to.include({ path: '/ws/nope', status: c.status, reason: c.reason });
        expect(JSON.stringify(logs.entries)).not.to.include('token');
      });
    }

    it('logs an upgrade that reached websocket() without a gateway as 426 no_gateway, saying what to call', async () => {
      const app = express();
      app.get('/ws/nope', route());
      const http = createServer(app); // attachWebSockets() forgotten: Node hands upgrades to Express as plain requests
      await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = http.address() as { port: number };
        expect((await expectRefused(`ws://127.0.0.1:${port}/ws/nope?token=x`)).statusCode).to.equal(426);
        const lines = logs.entries.filter((e) => e.message === 'WebSocket upgrade refused');
        expect(lines).to.have.length(1);
        expect(lines[0]).to.deep.include({ level: 'warn' });
        expect(lines[0]!.meta).to.include({ path: '/ws/nope', status: 426, reason: 'no_gateway' });
        expect(lines[0]!.meta.detail).to.include('attachWebSockets(server, app)');
      } finally {
        http.closeAllConnections();
        await new Promise((resolve) => http.close(resolve));
      }
    });
  });

  describe('config per route', () => {
    it("configures the manager from req.wsTimeouts: the app's config with the route's overrides on top", async () => {
      const app = express();
      app.use(wsTimeouts({ idleTimeoutMs: 20_000, pingIntervalMs: 10_000 }, ENV));
      app.get('/ws/app', route());
      app.get('/ws/custom', wsTimeouts({ idleTimeoutMs: 5_000 }), route());
      app.get('/ws/option', route({ config: { messageTimeoutMs: 250 } }));
      const s = await serve(app);

      const clients = [
        await openClient(`${s.wsUrl}/ws/app`),
        await openClient(`${s.wsUrl}/ws/custom`),
        await openClient(`${s.wsUrl}/ws/option`),
      ];
      const [plain, custom, option] = seen.map((x) => x.manager.config);
      expect(plain).to.include({ idleTimeoutMs: 20_000, pingIntervalMs: 10_000, connectionTimeoutMs: DEFAULT_TIMEOUT_CONFIG.connectionTimeoutMs });
      expect(custom).to.include({ idleTimeoutMs: 5_000, pingIntervalMs: 10_000 });
      expect(option).to.include({ idleTimeoutMs: 20_000, messageTimeoutMs: 250 });
      for (const ws of clients) ws.close();
    });

    it("enforces the route timeout on the real socket, on the gateway's clock: 4001 after the route idle timeout", async () => {
      const t = createTestClock();
      const app = express();
      app.use(wsTimeouts({ idleTimeoutMs: 60_000 }, ENV));
      app.get('/ws/quick', wsTimeouts({ idleTimeoutMs: 150, resolutionMs: 10 }), route());
      const s = await serve(app, { clock: t.clock });
      const ws = await openClient(`${s.wsUrl}/ws/quick`);
      const notice = nextMessage(ws);
      const close = closed(ws);
      await until(() => seen.length === 1);
      const { manager } = seen[0]!;
      await t.tickAsync(149);
      expect(manager.state, '1 ms before the idle timeout').to.equal('open');
      await t.tickAsync(1 + 10); // the deadline, plus one scheduler resolution
      expect(manager.state, 'at the idle timeout').not.to.equal('open');
      expect(await close).to.deep.equal({ code: CloseCode.IdleTimeout, reason: 'idle_timeout' });
      expect(JSON.parse(await notice)).to.include({ type: 'connectionTimeout', reason: 'idle' });
    });

    it('answers 500 and accepts nothing when route options make the config invalid', async () => {
      const app = express();
      app.set('env', 'test');
      app.use(wsTimeouts({ connectionTimeoutMs: 30_000, idleTimeoutMs: 10_000, pingIntervalMs: 5_000 }, ENV));
      // valid alone, but not under the app's 30 s lifetime
      app.get('/ws', route({ config: { idleTimeoutMs: 40_000 } }));
      const s = await serve(app);
      const refusal = await expectRefused(`${s.wsUrl}/ws`);
      expect(refusal.statusCode).to.equal(500);
      expect(seen).to.have.length(0);
    });
  });

  describe('routers, params and query', () => {
    it('works on a mounted express.Router() with route params and req.query', async () => {
      const app = express();
      const rooms = express.Router();
      rooms.get('/:room', wsTimeouts({ idleTimeoutMs: 7_000 }, ENV), route());
      const api = express.Router();
      api.use('/rooms', rooms);
      app.use('/api', api);
      const s = await serve(app);

      const ws = await openClient(`${s.wsUrl}/api/rooms/lobby?lang=fr&n=2`);
      const { manager, req } = seen[0]!;
      expect(req.params).to.deep.equal({ room: 'lobby' });
      expect(req.query).to.deep.equal({ lang: 'fr', n: '2' });
      expect(req.baseUrl).to.equal('/api/rooms');
      expect(manager.labels).to.deep.equal({ route: '/api/rooms/:room' });
      expect(manager.config.idleTimeoutMs).to.equal(7_000);
      ws.close();
    });

    it('runs router-level middleware (auth on the router) before the upgrade', async () => {
      const app = express();
      const secured = express.Router();
      secured.use(auth);
      secured.get('/feed', route());
      app.use('/secure', secured);
      const s = await serve(app);
      expect((await expectRefused(`${s.wsUrl}/secure/feed`)).statusCode).to.equal(401);
      const ws = await openClient(`${s.wsUrl}/secure/feed?token=good`);
      expect(seen[0]!.manager.userId).to.equal('alice');
      ws.close();
    });

    it('serves several WebSocket routes from one WebSocketServer', async () => {
      const app = express();
      app.get('/a', route());
      app.get('/b', route());
      const s = await serve(app);
      const a = await openClient(`${s.wsUrl}/a`);
      const b = await openClient(`${s.wsUrl}/b`);
      expect(s.gateway.wss.clients.size).to.equal(2);
      expect(seen.map((x) => x.manager.labels?.route)).to.deep.equal(['/a', '/b']);
      a.close();
      b.close();
    });
  });

  describe('handler errors', () => {
    it('closes with 1011 internal_error and logs when the handler throws', async () => {
      const app = express();
      app.get('/ws', websocket(() => {
        throw new Error('handler bug');
      }, { logger: logs.logger }));
      const s = await serve(app);
      const ws = await openClient(`${s.wsUrl}/ws`);
      expect(await closed(ws)).to.deep.equal({ code: 1011, reason: 'internal_error' });
      const entry = logs.find('WebSocket handler failed');
      expect(entry?.meta).to.include({ route: '/ws' });
      expect(entry?.meta.connectionId).to.be.a('string');
    });

    it('closes with 1011 when the handler rejects later', async () => {
      const app = express();
      app.get('/ws', websocket(async (manager) => {
        await manager.receiveWithTimeout(1000);
        throw new Error('after a message');
      }, { logger: logs.logger }));
      const s = await serve(app);
      const ws = await openClient(`${s.wsUrl}/ws`);
      ws.send('go');
      expect((await closed(ws)).code).to.equal(1011);
    });
  });

  describe('connection limits', () => {
    it('answers 503 before any middleware runs once maxConnections are open', async () => {
      const app = express();
      let middlewareRuns = 0;
      app.get('/ws', (_req, _res, next) => (middlewareRuns++, next()), route());
      const s = await serve(app, { maxConnections: 2 });
      const open = [await openClient(`${s.wsUrl}/ws`), await openClient(`${s.wsUrl}/ws`)];
      const refusal = await expectRefused(`${s.wsUrl}/ws`);
      expect(refusal.statusCode).to.equal(503);
      expect(refusal.headers['retry-after']).to.equal('5');
      expect(middlewareRuns).to.equal(2);
      open[0]!.close();
      await closed(open[0]!);
      await until(() => s.gateway.size === 1);
      const again = await openClient(`${s.wsUrl}/ws`);
      again.close();
      open[1]!.close();
    });

    it('answers 503 once one address holds maxConnectionsPerIp', async () => {
      const app = express();
      app.get('/ws', route());
      const s = await serve(app, { maxConnectionsPerIp: 1 });
      const first = await openClient(`${s.wsUrl}/ws`);
      expect((await expectRefused(`${s.wsUrl}/ws`)).statusCode).to.equal(503);
      first.close();
      await closed(first);
      await s.drained();
      const second = await openClient(`${s.wsUrl}/ws`);
      second.close();
    });
  });

  describe('attachWebSockets()', () => {
    it('refuses to attach a second gateway to the same server', async () => {
      const app = express();
      const s = await serve(app);
      expect(() => attachWebSockets(s.http, app)).to.throw(/already attached/);
    });

    it('rejects a bad limit, naming it', () => {
      const app = express();
      expect(() => attachWebSockets(createServer(), app, { maxConnections: -1 })).to.throw(RangeError, /maxConnections/);
    });

    it('closeAll() closes every connection with 1001 going_away', async () => {
      const app = express();
      app.get('/ws', route());
      const s = await serve(app);
      const clients = [await openClient(`${s.wsUrl}/ws`), await openClient(`${s.wsUrl}/ws`)];
      const closes = clients.map(closed);
      await s.gateway.closeAll();
      expect(await Promise.all(closes)).to.deep.equal([
        { code: 1001, reason: 'going_away' },
        { code: 1001, reason: 'going_away' },
      ]);
      expect(s.gateway.size).to.equal(0);
    });
  });
});

// -------------------------------------------------------------------------------------------

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes `request` on a raw TCP connection and resolves with everything the server sent before closing it. */
async function rawRequest(port: number, request: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let reply = '';
  socket.on('data', (chunk: Buffer) => (reply += chunk.toString('latin1')));
  socket.write(request);
  await new Promise((resolve) => socket.once('close', resolve));
  return reply;
}

function handshake(path: string, port: number): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  );
}

/** One masked text frame (clients must mask), payload under 126 bytes. */
function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}
