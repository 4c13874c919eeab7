import { expect } from 'chai';
import { Writable } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import winston from 'winston';
import WebSocket from 'ws';
import { ConnectionRegistry } from '../lib/registry.js';
import { createLogger } from '../lib/logger.js';
import { websocket } from '../lib/express/index.js';
import { rawClient } from '../spec/support/raw-client.js';
import { closed, expectRefused, nextMessage, openClient, startExpress } from '../spec/support/express-server.js';
import { startExample, type ExampleServer } from '../spec/support/example-server.js';
import { track } from './support/children.js';
import { reliabilityCase } from './support/report.js';
import { clientFrame, waitFor } from './support/util.js';

// Distinct, greppable secrets; each must never appear in any log line.
const SECRETS = {
  query: 'qs-secret-7f3a91',
  header: 'hdr-secret-0c55e2',
  cookie: 'cookie-secret-a19b04',
  message: 'msg-secret-5d2e77',
  body: 'body-secret-93c1f0',
  error: 'err-secret-2b8d4c',
};
const ALL = Object.values(SECRETS);

const report = reliabilityCase('Secrets', {
  load: 'the example server (`npm start`, LOG_LEVEL=debug) and an in-process Express + registry app on the library logger, each driven through connects, echoes, refusals, timeouts, errors and shutdown',
  faults: 'a token in the query string, an Authorization header, a cookie, a message, a POST body, and a thrown error message quoting the URL, a token=… pair and a bearer token',
});

const leaks = (lines: string[]) => lines.filter((line) => ALL.some((secret) => line.includes(secret)));

describe(report.name, function () {
  let example: ExampleServer | undefined;
  after(async () => example?.kill());

  it('keeps every secret out of every log line of the example server', async () => {
    example = await startExample({ WS_IDLE_TIMEOUT: '0.6', WS_PING_INTERVAL: '0.2', WS_PONG_TIMEOUT: '0.4', WS_TIMER_RESOLUTION: '0.05', WS_CLOSE_TIMEOUT: '0.3', LOG_LEVEL: 'debug' });
    track(example.proc, { group: true });
    const headers = { Authorization: `Bearer ${SECRETS.header}`, Cookie: `session=${SECRETS.cookie}` };
    // A connection carrying the token three ways, echoing a message with a secret, closed for idleness.
    const ws = await openClient(`${example.wsUrl}/ws/echo?user=alice&token=${SECRETS.query}`, { headers });
    ws.send(`my password is ${SECRETS.message}`);
    expect(await nextMessage(ws)).to.include(SECRETS.message);
    const idle = closed(ws);
    // Refusals: a bad user name (400 from middleware) and an unknown route (404), both with the token.
    expect((await expectRefused(`${example.wsUrl}/ws/echo?user=bad!!&token=${SECRETS.query}`, { headers })).statusCode).to.equal(400);
    expect((await expectRefused(`${example.wsUrl}/ws/nope?token=${SECRETS.query}`, { headers })).statusCode).to.equal(404);
    // A raw peer that never answers pings (pong_timeout) and one that sends invalid UTF-8 (1007).
    const silent = await rawClient(example.port, `/ws/echo?token=${SECRETS.query}`);
    const broken = await rawClient(example.port, `/ws/echo?token=${SECRETS.query}`);
    broken.socket.write(clientFrame(0x1, Buffer.from([0xc3, 0x28])));
    // A scan whose body carries a secret field, and plain HTTP routes with the token.
    await fetch(`${example.httpUrl}/scans?token=${SECRETS.query}`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ ticketId: 'T-1', gate: 'A', token: SECRETS.body }) });
    await fetch(`${example.httpUrl}/health?token=${SECRETS.query}`, { headers });
    expect((await idle).code).to.equal(4001);
    await Promise.all([silent.closed, broken.closed]);
    // Shutdown logs too.
    const open = await openClient(`${example.wsUrl}/ws/scans?token=${SECRETS.query}`, { headers });
    const shutdown = closed(open);
    process.kill(example.proc.pid!, 'SIGTERM');
    await shutdown;
    expect((await example.exited).code).to.equal(0);

    const lines = `${example.stdout()}\n${example.stderr()}`.split('\n').filter((line) => line.trim() !== '');
    const messages = new Set(example.logs().map((e) => String(e.message)));
    for (const expected of ['WebSocket timeout', 'WebSocket upgrade refused', 'WebSocket error', 'Shutdown complete']) {
      expect([...messages], `the run logged "${expected}"`).to.include(expected);
    }
    expect(leaks(lines)).to.deep.equal([]);
    report.figure(`example server: ${lines.length} log lines (${messages.size} distinct messages: connects, refusals, pong and idle timeouts, invalid UTF-8, scan, shutdown), 0 contain any of the ${ALL.length} secrets`);
  });

  it('keeps every secret out of the library logger’s output, even in meta a handler passes it', async () => {
    const lines: string[] = [];
    // Captures exactly what the default JSON logger would write: the formatted line.
    const capture = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const logger = createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream: capture })] });
    const registry = new ConnectionRegistry({ logger, config: { idleTimeoutMs: 300, pingIntervalMs: 100, pongTimeoutMs: 200, resolutionMs: 20, closeTimeoutMs: 200 } });
    const app = express();
    app.get(
      '/ws/fails',
      (req: Request, _res: Response, next: NextFunction) => {
        // What an application might log about a request: the library's format redacts it.
        logger.info('upgrade request', { url: req.originalUrl, headers: req.headers, query: req.query, authorization: req.get('authorization') });
        next();
      },
      websocket(async (manager, req) => {
        const first = await manager.receiveWithTimeout(1_000);
        // An error message quoting the request and an upstream answer, as real ones do.
        throw new Error(
          `lookup failed for ${req.originalUrl} after ${String(first).length} bytes: upstream answered "token=${SECRETS.error} rejected" to Authorization: Bearer ${SECRETS.header}`,
        );
      }),
    );
    const server = await startExpress(app, { registry, logger });
    try {
      const ws = await openClient(`${server.wsUrl}/ws/fails?token=${SECRETS.query}`, { headers: { Authorization: `Bearer ${SECRETS.header}`, Cookie: `sid=${SECRETS.cookie}` } });
      ws.send(`token=${SECRETS.message}`);
      expect((await closed(ws)).code).to.equal(1011);
      await waitFor('the close to be logged', () => registry.size === 0);
    } finally {
      await server.close();
    }
    expect(lines.some((l) => l.includes('WebSocket handler failed'))).to.equal(true);
    expect(lines.some((l) => l.includes('upgrade request'))).to.equal(true);
    const leaked = leaks(lines);
    // The thrown message quotes the URL, a token=… pair and a bearer token: each value is redacted, the rest kept.
    expect(lines.find((l) => l.includes('WebSocket handler failed'))).to.include('/ws/fails?[redacted]').and.include('token=[redacted]').and.include('Authorization: [redacted]');
    expect(leaked, leaked.join('\n')).to.deep.equal([]);
    report.figure(`library logger: ${lines.length} lines (connect, a handler error quoting the URL, a token=… pair and a bearer token, application meta with url/headers/query, close), 0 secrets`);
  });
});
