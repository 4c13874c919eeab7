import { expect } from 'chai';
import express, { type NextFunction, type Request, type Response } from 'express';
import WebSocket from 'ws';
import { ConnectionRegistry } from '../lib/registry.js';
import { websocket } from '../lib/express/index.js';
import { captureLogs } from '../lib/testing/log-capture.js';
import { rawClient } from '../spec/support/raw-client.js';
import { closed, nextMessage, openClient, startExpress, type ExpressTestServer } from '../spec/support/express-server.js';
import { unhandledRejections } from './support/hooks.js';
import { jsonRoute } from './support/json-route.js';
import { ms, reliabilityCase } from './support/report.js';
import { clientFrame, closeCodeOf, max, waitFor } from './support/util.js';

const PEERS = 20;
const MAX_PAYLOAD = 64 * 1024;

const report = reliabilityCase('Bad input', {
  load: `${PEERS} peers per kind of bad input, all at once, on Express + attachWebSockets (maxPayload 64 KiB)`,
  faults: 'invalid UTF-8 in a text frame (from ws clients, and from raw peers that then ignore the close), a 100 KiB frame, invalid JSON and binary on a JSON route, binary on a text route, frames after a close frame',
});

describe(report.name, function () {
  let server: ExpressTestServer;
  let registry: ConnectionRegistry;
  const logs = captureLogs();
  const delivered: string[] = [];

  before(async () => {
    registry = new ConnectionRegistry({
      logger: logs.logger,
      config: { pingIntervalMs: 300, pongTimeoutMs: 500, closeTimeoutMs: 500, resolutionMs: 50, idleTimeoutMs: 0, connectionTimeoutMs: 0, messageTimeoutMs: 1_000 },
    });
    const app = express();
    // ?peer=<name> names the connection, so each log line can be traced to the peer that caused it.
    app.use((req: Request, res: Response, next: NextFunction) => {
      if (typeof req.query.peer === 'string') res.locals.userId = req.query.peer;
      next();
    });
    app.get(
      '/ws/echo',
      websocket(async (manager) => {
        for await (const message of manager) {
          if (typeof message !== 'string') continue; // binary on a text route: read and dropped
          delivered.push(message);
          await manager.sendTextWithTimeout(message);
        }
      }),
    );
    app.get('/ws/json', websocket(jsonRoute(logs.logger)));
    server = await startExpress(app, { registry, logger: logs.logger, wss: { maxPayload: MAX_PAYLOAD, perMessageDeflate: false } });
  });

  after(async () => {
    await registry?.closeAll();
    await server?.close();
  });

  /** warn/error lines logged about the connection of `peer`. */
  const problemsOf = (peer: string) => logs.entries.filter((e) => (e.level === 'warn' || e.level === 'error') && e.meta.userId === peer);

  it('closes invalid UTF-8 with 1007, and bounds a peer that then ignores the close frame', async () => {
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: PEERS }, async (_, i) => {
        const ws = await openClient(`${server.wsUrl}/ws/echo?peer=utf8-${i}`);
        ws.on('error', () => undefined);
        const end = closed(ws);
        ws.send(Buffer.from([0x68, 0xc3, 0x28, 0xff]), { binary: false }); // "h" then two invalid sequences
        return end;
      }),
    );
    expect(results.map((r) => r.code)).to.deep.equal(Array(PEERS).fill(1007));
    const politeMs = Date.now() - started;

    // Raw peers send the same bytes and then ignore the 1007 close frame: the manager's own
    // timeouts end them (ws alone would wait its 30 s closeTimeout).
    const rawStarted = Date.now();
    // Each sends as soon as it is connected: the server pings it 0.3 s after accepting it, and a
    // raw peer never answers, so waiting for all of them first would race the pong timeout.
    const raws = await Promise.all(
      Array.from({ length: PEERS }, async (_, i) => {
        const raw = await rawClient(server.port, `/ws/echo?peer=utf8-raw-${i}`);
        raw.socket.write(clientFrame(0x1, Buffer.from([0xc3, 0x28])));
        return raw;
      }),
    );
    await Promise.all(raws.map((r) => r.closed));
    const rawMs = Date.now() - rawStarted;
    expect(raws.every((r) => r.frames.some((f) => f.opcode === 0x8 && closeCodeOf(f.payload) === 1007))).to.equal(true);
    expect(rawMs).to.be.below(2_000);

    for (let i = 0; i < PEERS; i++) {
      for (const peer of [`utf8-${i}`, `utf8-raw-${i}`]) {
        const errors = problemsOf(peer).filter((e) => e.meta.errorCode === 'WS_ERR_INVALID_UTF8');
        expect(errors, `invalid UTF-8 logged once for ${peer}`).to.have.length(1);
      }
    }
    expect(delivered).to.deep.equal([]);
    report.figure(`invalid UTF-8: ${PEERS}/${PEERS} ws clients closed 1007 within ${ms(politeMs)}, ${PEERS}/${PEERS} raw peers ignoring the close gone within ${ms(rawMs)}, each logged once`);
  });

  it('closes a frame over maxPayload with 1009', async () => {
    const results = await Promise.all(
      Array.from({ length: PEERS }, async (_, i) => {
        const ws = await openClient(`${server.wsUrl}/ws/echo?peer=big-${i}`);
        ws.on('error', () => undefined);
        const end = closed(ws);
        ws.send('z'.repeat(100 * 1024));
        return end;
      }),
    );
    expect(results.map((r) => r.code)).to.deep.equal(Array(PEERS).fill(1009));
    for (let i = 0; i < PEERS; i++) {
      expect(problemsOf(`big-${i}`).filter((e) => e.meta.errorCode === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'), `logged once for big-${i}`).to.have.length(1);
    }
    report.figure(`100 KiB frame: ${PEERS}/${PEERS} closed 1009, logged once each`);
  });

  it('answers invalid JSON with an invalid_json error and keeps the connection; closes binary on a JSON route with 1003', async () => {
    const answers = await Promise.all(
      Array.from({ length: PEERS }, async (_, i) => {
        const ws = await openClient(`${server.wsUrl}/ws/json?peer=json-${i}`);
        ws.send('{"ticket": "T-1",'); // cut short
        const error = JSON.parse(await nextMessage(ws));
        ws.send('{"ticket": "T-1"}');
        const ack = JSON.parse(await nextMessage(ws));
        const end = closed(ws);
        ws.send(Buffer.from([1, 2, 3])); // binary where JSON text is expected
        return { error, ack, close: await end };
      }),
    );
    for (const a of answers) {
      expect(a.error).to.deep.equal({ type: 'error', error: 'invalid_json', message: 'Message is not valid JSON; nothing was done' });
      expect(a.ack).to.deep.equal({ type: 'ack' });
      expect(a.close).to.deep.equal({ code: 1003, reason: 'unsupported_data: send JSON text frames' });
    }
    for (let i = 0; i < PEERS; i++) {
      expect(problemsOf(`json-${i}`).map((e) => e.message)).to.deep.equal(['Invalid JSON message', 'Binary message on a JSON route, closing']);
    }
    report.figure(`invalid JSON: ${PEERS}/${PEERS} got {"error":"invalid_json"} and their next valid message acked; binary on the JSON route: ${PEERS}/${PEERS} closed 1003`);
  });

  it('drops binary on a text route and ignores frames sent after a close frame', async () => {
    const kept = await Promise.all(
      Array.from({ length: PEERS }, async (_, i) => {
        const ws = await openClient(`${server.wsUrl}/ws/echo?peer=binary-${i}`);
        ws.send(Buffer.from([0xde, 0xad]));
        ws.send(`still here ${i}`);
        const echo = await nextMessage(ws);
        ws.close();
        await closed(ws);
        return echo === `still here ${i}`;
      }),
    );
    expect(kept.every(Boolean)).to.equal(true);

    // Raw peers: a close frame, then three text frames on the same write.
    const raws = await Promise.all(Array.from({ length: PEERS }, (_, i) => rawClient(server.port, `/ws/echo?peer=after-close-${i}`)));
    for (const raw of raws) {
      raw.socket.write(Buffer.concat([clientFrame(0x8, Buffer.from([0x03, 0xe8])), ...[1, 2, 3].map((n) => clientFrame(0x1, Buffer.from(`after-close ${n}`)))]));
    }
    await Promise.all(raws.map((r) => r.closed));
    expect(raws.every((r) => r.frames.some((f) => f.opcode === 0x8 && closeCodeOf(f.payload) === 1000))).to.equal(true);
    // Server side: the server closes while the peer keeps sending and never answers.
    const talkers = await Promise.all(Array.from({ length: PEERS }, (_, i) => rawClient(server.port, `/ws/echo?peer=talker-${i}`)));
    await waitFor('the talkers to be registered', () => [...registry.managers()].filter((m) => m.userId?.startsWith('talker-')).length === PEERS);
    const closing = [...registry.managers()].filter((m) => m.userId?.startsWith('talker-')).map((m) => m.gracefulClose());
    const timers = talkers.map((t) => setInterval(() => t.socket.writable && t.socket.write(clientFrame(0x1, Buffer.from('talk during close'))), 20));
    const outcomes = await Promise.all(closing);
    timers.forEach(clearInterval);
    await Promise.all(talkers.map((t) => t.closed));
    expect(outcomes).to.deep.equal(Array(PEERS).fill('terminated'));

    expect(delivered.filter((m) => m.startsWith('after-close ')), "frames after the peer's close frame").to.deep.equal([]);
    // While the server's own close is pending, ws still reads the peer's frames: the handler may see
    // some, its replies resolve false (closing), and nothing throws.
    const duringClose = delivered.filter((m) => m === 'talk during close').length;
    for (let i = 0; i < PEERS; i++) {
      expect(problemsOf(`binary-${i}`)).to.have.length(0);
      expect(problemsOf(`after-close-${i}`)).to.have.length(0);
      expect(problemsOf(`talker-${i}`).map((e) => e.message)).to.deep.equal(['WebSocket peer did not answer the close frame, terminating']);
    }
    report.figure(
      `binary on a text route: ${PEERS}/${PEERS} dropped, connection kept; frames after the peer's close: 0/${PEERS * 3} delivered; ` +
        `peers talking through the server's close: ${PEERS}/${PEERS} terminated after the close timeout (${duringClose} frames read meanwhile, none answered)`,
    );
  });

  it('keeps serving: no crash, no unhandled rejection, nothing left open', async () => {
    const ws = await openClient(`${server.wsUrl}/ws/echo?peer=after-all`);
    ws.send('ok?');
    expect(await nextMessage(ws)).to.equal('ok?');
    ws.close();
    await closed(ws);
    await waitFor('every bad connection to be gone', () => registry.size === 0 && server.gateway.size === 0);
    await server.drained(2_000);
    expect(unhandledRejections).to.deep.equal([]);
    const errors = logs.entries.filter((e) => e.level === 'error');
    expect(errors.map((e) => e.message)).to.deep.equal([]);
    report.figure(`afterwards: echo still served, 0 connections left, 0 unhandled rejections, 0 error-level lines (${logs.entries.filter((e) => e.level === 'warn').length} warn lines in all)`);
  });
});
