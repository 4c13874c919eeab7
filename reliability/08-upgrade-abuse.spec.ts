import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import type WebSocket from 'ws';
import { attachWebSockets, websocket, type WebSocketGateway } from '../lib/express/index.js';
import { silentLogger } from '../lib/logger.js';
import { closed, expectRefused, openClient } from '../spec/support/express-server.js';
import { ms, reliabilityCase } from './support/report.js';
import { max, waitFor } from './support/util.js';

const REJECTED = 200;
const SLOWLORIS = 50;
const HANGING = 10;
const MAX_CONNECTIONS = 30;
const MAX_PER_IP = 5;
/** Node's own limits on a request's headers and whole request, as the README recommends setting them. */
const HEADERS_TIMEOUT = 1_000;
const REQUEST_TIMEOUT = 2_000;
const CHECK_INTERVAL = 100;
const HANDSHAKE_TIMEOUT = 500;

const report = reliabilityCase('Upgrade abuse', {
  load: `${REJECTED} unauthenticated upgrades at once, ${SLOWLORIS} slow-header (slowloris) sockets, ${HANGING} upgrades stuck in middleware, connection caps filled past their limit`,
  faults: `no token (401 from middleware); headers never finished or trickled a byte per 200 ms (headersTimeout ${HEADERS_TIMEOUT / 1000} s, requestTimeout ${REQUEST_TIMEOUT / 1000} s); a middleware that never answers (handshakeTimeoutMs ${HANDSHAKE_TIMEOUT}); maxConnections ${MAX_CONNECTIONS}, maxConnectionsPerIp ${MAX_PER_IP}`,
});

describe(report.name, function () {
  let http: Server;
  let gateway: WebSocketGateway;
  let port: number;
  let wsUrl: string;
  let accepted = 0;
  let reachedRoute = 0;
  const clients: WebSocket[] = [];

  const connections = (): Promise<number> => new Promise((resolve, reject) => http.getConnections((err, n) => (err ? reject(err) : resolve(n))));

  before(async () => {
    const app = express();
    app.set('trust proxy', true); // X-Forwarded-For stands in for many client addresses on 127.0.0.1
    const auth = (req: Request, res: Response, next: NextFunction): void => {
      if (req.get('authorization') !== 'Bearer good-token') {
        res.status(401).type('text/plain').send('invalid token');
        return;
      }
      next();
    };
    const count = (_req: Request, _res: Response, next: NextFunction): void => {
      reachedRoute++;
      next();
    };
    const keep = websocket(async (manager) => {
      accepted++;
      for await (const _ of manager); // holds the connection until the client closes
    });
    app.get('/ws/private', auth, keep);
    app.get('/ws/open', count, keep);
    app.get('/ws/hang', () => undefined); // never answers, never calls next()
    http = createServer({ headersTimeout: HEADERS_TIMEOUT, requestTimeout: REQUEST_TIMEOUT, connectionsCheckingInterval: CHECK_INTERVAL }, app);
    gateway = attachWebSockets(http, app, {
      logger: silentLogger,
      maxConnections: MAX_CONNECTIONS,
      maxConnectionsPerIp: MAX_PER_IP,
      handshakeTimeoutMs: HANDSHAKE_TIMEOUT,
      wss: { perMessageDeflate: false },
    });
    await new Promise<void>((resolve) => http.listen({ port: 0, host: '127.0.0.1', backlog: 1024 }, resolve));
    port = (http.address() as AddressInfo).port;
    wsUrl = `ws://127.0.0.1:${port}`;
  });

  after(async () => {
    for (const ws of clients) ws.terminate();
    await gateway?.close();
    http?.closeAllConnections();
    await new Promise((resolve) => http?.close(resolve));
  });

  it(`refuses ${REJECTED} unauthenticated upgrades with the middleware's 401: no socket accepted, no TCP connection left`, async () => {
    const started = Date.now();
    const refusals = await Promise.all(Array.from({ length: REJECTED }, () => expectRefused(`${wsUrl}/ws/private?token=nope`)));
    expect(refusals.map((r) => r.statusCode)).to.deep.equal(Array(REJECTED).fill(401));
    expect(refusals.every((r) => r.body === 'invalid token')).to.equal(true);
    const drained = await waitFor('the refused connections to close', async () => (await connections()) === 0, 5_000);
    expect(accepted).to.equal(0);
    expect(gateway.size).to.equal(0);
    expect(gateway.pending).to.equal(0);
    // And a client with the token still gets in.
    const ws = await openClient(`${wsUrl}/ws/private`, { headers: { Authorization: 'Bearer good-token' } });
    ws.close();
    await closed(ws);
    expect(accepted).to.equal(1);
    report.figure(`${REJECTED}/${REJECTED} refused 401 by middleware in ${ms(Date.now() - started)}, 0 sockets accepted, 0 TCP connections left ${ms(drained)} after the last answer`);
  });

  it('drops upgrades whose headers never finish with Node’s headersTimeout (408), whether silent or trickling', async () => {
    const started = Date.now();
    const peers = await Promise.all(
      Array.from({ length: SLOWLORIS }, (_, i) =>
        new Promise<{ socket: Socket; closedAfter: Promise<{ ms: number; response: string }> }>((resolve) => {
          const socket = connect(port, '127.0.0.1');
          let response = '';
          let trickle: NodeJS.Timeout | undefined;
          socket.on('error', () => undefined);
          socket.on('data', (d) => (response += d.toString()));
          const opened = Date.now();
          const closedAfter = new Promise<{ ms: number; response: string }>((done) =>
            socket.once('close', () => {
              clearInterval(trickle);
              done({ ms: Date.now() - opened, response });
            }),
          );
          socket.once('connect', () => {
            socket.write(`GET /ws/open HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`);
            // Half stop there; half keep sending one more header byte every 200 ms, forever.
            if (i % 2 === 1) trickle = setInterval(() => socket.writable && socket.write('X'), 200);
            resolve({ socket, closedAfter });
          });
        }),
      ),
    );
    const ends = await Promise.all(peers.map((p) => p.closedAfter));
    const worst = max(ends.map((e) => e.ms));
    expect(worst).to.be.below(HEADERS_TIMEOUT + CHECK_INTERVAL + 2_000);
    expect(ends.every((e) => e.response.startsWith('HTTP/1.1 408'))).to.equal(true, ends.map((e) => e.response.split('\r\n')[0]).join(','));
    expect(accepted).to.equal(1); // only the authenticated client of the previous test
    expect(reachedRoute).to.equal(0);
    report.figure(`${SLOWLORIS}/${SLOWLORIS} slow-header sockets answered 408 and closed by Node within ${ms(worst)} (headersTimeout ${ms(HEADERS_TIMEOUT)}), total ${ms(Date.now() - started)}`);
  });

  it('answers 503 to upgrades stuck in middleware after handshakeTimeoutMs', async () => {
    const started = Date.now();
    const refusals = await Promise.all(Array.from({ length: HANGING }, () => expectRefused(`${wsUrl}/ws/hang`)));
    const took = Date.now() - started;
    expect(refusals.map((r) => r.statusCode)).to.deep.equal(Array(HANGING).fill(503));
    expect(took).to.be.within(HANDSHAKE_TIMEOUT - 10, HANDSHAKE_TIMEOUT + 2_000);
    await waitFor('the hung upgrades to close', async () => (await connections()) === 0, 3_000);
    expect(gateway.pending).to.equal(0);
    report.figure(`${HANGING}/${HANGING} upgrades stuck in middleware answered 503 after ${ms(took)} (handshakeTimeoutMs ${HANDSHAKE_TIMEOUT})`);
  });

  it(`caps sockets per address (${MAX_PER_IP}) and per server (${MAX_CONNECTIONS}) with 503 before the upgrade`, async () => {
    const from = (ip: string) => ({ headers: { 'X-Forwarded-For': ip } });
    for (let i = 0; i < MAX_PER_IP; i++) clients.push(await openClient(`${wsUrl}/ws/open`, from('10.0.0.1')));
    const perIp = await expectRefused(`${wsUrl}/ws/open`, from('10.0.0.1'));
    expect(perIp.statusCode).to.equal(503);
    expect(perIp.headers['retry-after']).to.equal('5');
    clients.push(await openClient(`${wsUrl}/ws/open`, from('10.0.0.2'))); // another address still gets in

    // Fill the server: 5 per address up to 30 open sockets.
    for (let n = gateway.size, ip = 2; n < MAX_CONNECTIONS; n++) {
      if (n % MAX_PER_IP === 0) ip++;
      clients.push(await openClient(`${wsUrl}/ws/open`, from(`10.0.0.${ip}`)));
    }
    expect(gateway.size).to.equal(MAX_CONNECTIONS);
    const routeCallsBefore = reachedRoute;
    const overServer = await Promise.all(Array.from({ length: 10 }, (_, i) => expectRefused(`${wsUrl}/ws/open`, from(`10.0.1.${i}`))));
    expect(overServer.map((r) => r.statusCode)).to.deep.equal(Array(10).fill(503));
    expect(reachedRoute, 'no middleware ran for the refused upgrades').to.equal(routeCallsBefore);
    expect(gateway.size).to.equal(MAX_CONNECTIONS);

    // One leaves, one more gets in.
    const leaving = clients.pop()!;
    leaving.close();
    await closed(leaving);
    await waitFor('the gateway to count the close', () => gateway.size === MAX_CONNECTIONS - 1);
    clients.push(await openClient(`${wsUrl}/ws/open`, from('10.0.2.1')));
    report.figure(
      `per address: 6th socket from one address refused 503 (Retry-After 5), another address admitted; per server: 10/10 upgrades over ${MAX_CONNECTIONS} refused 503 before any middleware ran, and admitted again once one closed`,
    );
  });
});
