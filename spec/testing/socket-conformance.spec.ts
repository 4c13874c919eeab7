import { expect } from 'chai';
import { WebSocketTimeoutManager, silentLogger, type ManagerOptions } from '../../lib/index.js';
import { inMemoryHarness, realWsHarness, sleep, until, type Harness, type ServerSocket } from './harness.js';
import { SHORT_TIMEOUTS } from '../support/short-timeouts.js';

/**
 * One table of `ws` 8 behaviours, run once against the kit's in-memory pair and once against
 * real `ws` sockets on 127.0.0.1. A behaviour that passes on real sockets and fails on the
 * double is a bug in the double: this table is what keeps it from drifting.
 *
 * Real time only (no fake timers), with short timeouts.
 */
interface Behaviour {
  title: string;
  run(h: Harness): Promise<void>;
}

type CloseRecord = { code: number; reason: string; count: number };

function recordClose(server: ServerSocket): CloseRecord {
  const record: CloseRecord = { code: -1, reason: '', count: 0 };
  server.on('close', (code: number, reason: Buffer) => {
    expect(Buffer.isBuffer(reason)).to.equal(true);
    Object.assign(record, { code, reason: reason.toString(), count: record.count + 1 });
  });
  return record;
}

function callback(): { cb: (err?: Error | null) => void; calls: Array<Error | null | undefined> } {
  const calls: Array<Error | null | undefined> = [];
  return { cb: (err) => void calls.push(err), calls };
}

/**
 * Sends 1 MiB frames to a client that stopped reading until they pile up in `bufferedAmount`
 * (at once on the double; after a few MB of kernel buffers on real sockets).
 */
async function fillBuffers(server: ServerSocket): Promise<Array<Array<Error | null | undefined>>> {
  const chunk = Buffer.alloc(1 << 20, 0x61);
  const results: Array<Array<Error | null | undefined>> = [];
  for (let i = 0; i < 64 && server.bufferedAmount === 0; i++) {
    const { cb, calls } = callback();
    server.send(chunk, cb);
    results.push(calls);
    await sleep(2);
  }
  expect(server.bufferedAmount, 'bufferedAmount after 64 MiB to a client that does not read').to.be.above(0);
  return results;
}

const behaviours: Behaviour[] = [
  // ------------------------------------------------------------------ state
  {
    title: 'is OPEN when accepted, with the ws readyState constants, no subprotocol, nothing buffered and not paused',
    async run(h) {
      const { server } = await h.connect();
      expect(server.readyState).to.equal(1);
      expect([server.OPEN, server.CLOSING, server.CLOSED]).to.deep.equal([1, 2, 3]);
      expect(server.protocol).to.equal('');
      expect(server.extensions).to.equal('');
      expect(server.bufferedAmount).to.equal(0);
      expect(server.isPaused).to.equal(false);
    },
  },

  // ------------------------------------------------------------------ data frames
  {
    title: "emits 'message' with (data: Buffer, isBinary): false for text frames, true for binary frames",
    async run(h) {
      const { server, client } = await h.connect();
      const seen: Array<[Buffer, boolean]> = [];
      server.on('message', (data: Buffer, isBinary: boolean) => seen.push([data, isBinary]));
      client.send('héllo');
      client.send(Buffer.from([0, 1, 2]));
      client.send('{"a":1}');
      await until(() => seen.length === 3, 'three messages');
      expect(seen.map(([data]) => Buffer.isBuffer(data))).to.deep.equal([true, true, true]);
      expect(seen.map(([data, isBinary]) => (isBinary ? [...data] : data.toString()))).to.deep.equal(['héllo', [0, 1, 2], '{"a":1}']);
      expect(seen.map(([, isBinary]) => isBinary)).to.deep.equal([false, true, false]);
    },
  },
  {
    title: 'sends strings as text frames and Buffers as binary frames, in order',
    async run(h) {
      const { server, client } = await h.connect();
      server.send('one');
      server.send(Buffer.from([7, 8]));
      server.send('three');
      await client.nextMessage(2);
      expect(client.received[0]).to.equal('one');
      expect(Buffer.isBuffer(client.received[1])).to.equal(true);
      expect([...(client.received[1] as Buffer)]).to.deep.equal([7, 8]);
      expect(client.received[2]).to.equal('three');
    },
  },
  {
    title: 'sends a Buffer as a text frame with { binary: false }',
    async run(h) {
      const { server, client } = await h.connect();
      (server.send as unknown as (data: Buffer, options: { binary: boolean }) => void).call(server, Buffer.from('as text'), { binary: false });
      expect(await client.nextMessage()).to.equal('as text');
    },
  },
  {
    title: 'calls the send callback with null once the frame is written',
    async run(h) {
      const { server, client } = await h.connect();
      const { cb, calls } = callback();
      server.send('x', cb);
      await until(() => calls.length === 1, 'the send callback');
      expect(calls).to.deep.equal([null]);
      await client.nextMessage(0);
    },
  },

  // ------------------------------------------------------------------ server-initiated close
  {
    title: "close(code, reason): CLOSING at once; the client reads the frame and answers; 'close' then carries the code and reason",
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      server.close(4001, 'idle_timeout');
      expect(server.readyState).to.equal(2);
      expect(await client.waitForClose()).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      await until(() => closed.count === 1, "the server's close event");
      expect(closed).to.deep.equal({ code: 4001, reason: 'idle_timeout', count: 1 });
      expect(server.readyState).to.equal(3);
      expect(client.closeFrame).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
    },
  },
  {
    title: 'close() without a code sends an empty close frame: both sides see 1005',
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      server.close();
      expect(await client.waitForClose()).to.deep.equal({ code: 1005, reason: '' });
      await until(() => closed.count === 1, "the server's close event");
      expect(closed.code).to.equal(1005);
    },
  },
  {
    title: "close() twice sends one close frame and emits 'close' once",
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      server.close(1000, 'first');
      server.close(4000, 'second');
      await client.waitForClose();
      await sleep(h.quietMs);
      expect(closed).to.deep.equal({ code: 1000, reason: 'first', count: 1 });
      expect(client.closeFrame).to.deep.equal({ code: 1000, reason: 'first' });
    },
  },
  {
    title: 'close() throws a TypeError for a code that may not be sent and a RangeError for a reason over 123 bytes, and stays OPEN',
    async run(h) {
      const { server } = await h.connect();
      for (const code of [1004, 1005, 1006, 999, 1015, 2000, 5000]) {
        expect(() => server.close(code), `code ${code}`).to.throw(TypeError, 'First argument must be a valid error code number');
      }
      expect(() => server.close(1000, 'é'.repeat(62))).to.throw(RangeError, 'The message must not be greater than 123 bytes');
      expect(server.readyState).to.equal(1);
      expect(() => server.close(3000, 'x'.repeat(123))).to.not.throw();
    },
  },
  {
    title: 'send() and ping() after close() never throw: their callbacks get "WebSocket is not open: readyState 2 (CLOSING)", later 3 (CLOSED)',
    async run(h) {
      const { server, client } = await h.connect();
      server.close(1000);
      const sent = callback();
      const pinged = callback();
      server.send('late', sent.cb);
      server.ping(undefined, undefined, pinged.cb);
      await until(() => sent.calls.length === 1 && pinged.calls.length === 1, 'both callbacks');
      expect(sent.calls[0]?.message).to.equal('WebSocket is not open: readyState 2 (CLOSING)');
      expect(pinged.calls[0]?.message).to.equal('WebSocket is not open: readyState 2 (CLOSING)');
      await client.waitForClose();
      await until(() => server.readyState === 3, 'CLOSED');
      const after = callback();
      server.send('later', after.cb);
      await until(() => after.calls.length === 1, 'the callback');
      expect(after.calls[0]?.message).to.equal('WebSocket is not open: readyState 3 (CLOSED)');
      expect(client.received).to.deep.equal([]);
    },
  },
  {
    title: 'counts data passed to send() after the close in bufferedAmount, as ws does',
    async run(h) {
      const { server, client } = await h.connect();
      server.close(1000);
      await client.waitForClose();
      await until(() => server.readyState === 3, 'CLOSED');
      const before = server.bufferedAmount;
      server.send('abcd');
      expect(server.bufferedAmount - before).to.equal(4);
    },
  },
  {
    title: 'stays CLOSING with a client that ignores the close frame, still delivering its messages; terminate() ends it with 1006 (the client saw the frame code)',
    async run(h) {
      const { server, client } = await h.connect({ answerClose: false });
      const closed = recordClose(server);
      const messages: string[] = [];
      server.on('message', (data: Buffer) => messages.push(data.toString()));
      server.close(4002, 'max_lifetime');
      await until(() => client.closeFrame !== null, 'the client to read the close frame');
      expect(client.closeFrame).to.deep.equal({ code: 4002, reason: 'max_lifetime' });
      client.send('still talking');
      await until(() => messages.length === 1, 'the message sent after the close frame');
      expect(messages).to.deep.equal(['still talking']);
      await sleep(h.quietMs);
      expect(server.readyState).to.equal(2);
      expect(closed.count).to.equal(0);
      server.terminate();
      await until(() => closed.count === 1, "the server's close event");
      expect(closed).to.deep.equal({ code: 1006, reason: '', count: 1 });
      expect(await client.waitForClose()).to.deep.equal({ code: 4002, reason: 'max_lifetime' });
    },
  },

  // ------------------------------------------------------------------ client-initiated close
  {
    title: "answers the client's close frame with the same code: messages sent before it arrive first, and both sides end with its code and reason",
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      const messages: string[] = [];
      server.on('message', (data: Buffer) => messages.push(data.toString()));
      client.send('a');
      client.send('b');
      client.close(4000, 'bye');
      expect(client.readyState).to.equal(2);
      await until(() => closed.count === 1, "the server's close event");
      expect(messages).to.deep.equal(['a', 'b']);
      expect(closed).to.deep.equal({ code: 4000, reason: 'bye', count: 1 });
      expect(server.readyState).to.equal(3);
      expect(await client.waitForClose()).to.deep.equal({ code: 4000, reason: 'bye' });
      expect(client.closeFrame).to.deep.equal({ code: 4000, reason: 'bye' });
    },
  },
  {
    title: 'a client close() without a code: both sides see 1005',
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      client.close();
      await until(() => closed.count === 1, "the server's close event");
      expect(closed.code).to.equal(1005);
      expect((await client.waitForClose()).code).to.equal(1005);
    },
  },
  {
    title: 'drops what a client sends after its own close, without throwing; an invalid client close code throws a TypeError',
    async run(h) {
      const { server, client } = await h.connect();
      expect(() => client.close(1006)).to.throw(TypeError);
      const messages: string[] = [];
      server.on('message', (data: Buffer) => messages.push(data.toString()));
      client.close(1000);
      expect(() => client.send('after close')).to.not.throw();
      await client.waitForClose();
      expect(() => client.send('after closed')).to.not.throw();
      await sleep(h.quietMs);
      expect(messages).to.deep.equal([]);
    },
  },

  // ------------------------------------------------------------------ terminate
  {
    title: "terminate(): CLOSING at once, then 'close' with 1006 and an empty reason; the client sees 1006 and no close frame",
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      server.terminate();
      expect(server.readyState).to.equal(2);
      await until(() => closed.count === 1, "the server's close event");
      expect(closed).to.deep.equal({ code: 1006, reason: '', count: 1 });
      expect(server.readyState).to.equal(3);
      expect(await client.waitForClose()).to.deep.equal({ code: 1006, reason: '' });
      expect(client.closeFrame).to.equal(null);
    },
  },
  {
    title: "close() and terminate() on a closed socket do nothing and emit no second 'close'",
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      server.terminate();
      await until(() => closed.count === 1, "the server's close event");
      expect(() => server.close(1000)).to.not.throw();
      expect(() => server.terminate()).to.not.throw();
      await sleep(h.quietMs);
      expect(closed.count).to.equal(1);
      expect(server.readyState).to.equal(3);
      await client.waitForClose();
    },
  },
  {
    title: 'a client that drops the connection without a close frame ends the server socket with 1006',
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      client.terminate();
      await until(() => closed.count === 1, "the server's close event");
      expect(closed).to.deep.equal({ code: 1006, reason: '', count: 1 });
      expect((await client.waitForClose()).code).to.equal(1006);
    },
  },

  // ------------------------------------------------------------------ ping / pong
  {
    title: "ping(data): the client answers with a pong carrying the same data; the server emits 'pong'",
    async run(h) {
      const { server, client } = await h.connect();
      const pongs: string[] = [];
      server.on('pong', (data: Buffer) => pongs.push(data.toString()));
      server.ping('abc');
      server.ping();
      await until(() => pongs.length === 2, 'two pongs');
      expect(pongs).to.deep.equal(['abc', '']);
      expect(client.pings).to.equal(2);
    },
  },
  {
    title: 'a client with autoPong off counts the pings and sends no pong',
    async run(h) {
      const { server, client } = await h.connect({ autoPong: false });
      let pongs = 0;
      server.on('pong', () => pongs++);
      server.ping();
      await until(() => client.pings === 1, 'the ping');
      await sleep(h.quietMs);
      expect(pongs).to.equal(0);
      client.pong();
      await until(() => pongs === 1, 'the pong sent by hand');
    },
  },
  {
    title: "a client's unsolicited pong reaches the server as a 'pong' event",
    async run(h) {
      const { server, client } = await h.connect();
      const pongs: string[] = [];
      server.on('pong', (data: Buffer) => pongs.push(data.toString()));
      client.pong('unsolicited');
      await until(() => pongs.length === 1, 'the pong');
      expect(pongs).to.deep.equal(['unsolicited']);
    },
  },
  {
    title: "a client's ping gets an automatic pong from the server, which emits 'ping'",
    async run(h) {
      const { server, client } = await h.connect();
      const pings: string[] = [];
      server.on('ping', (data: Buffer) => pings.push(data.toString()));
      client.ping('hello?');
      await until(() => client.pongs === 1 && pings.length === 1, 'the ping and its pong');
      expect(pings).to.deep.equal(['hello?']);
    },
  },
  {
    title: 'a client that stopped reading answers no ping until it reads again',
    async run(h) {
      const { server, client } = await h.connect();
      let pongs = 0;
      server.on('pong', () => pongs++);
      client.stopReading();
      server.ping();
      await sleep(h.quietMs);
      expect(pongs).to.equal(0);
      client.startReading();
      await until(() => pongs === 1, 'the pong once the client reads');
    },
  },

  // ------------------------------------------------------------------ backpressure
  {
    title: 'a client that stopped reading: sends pile up in bufferedAmount with their callbacks pending; reading again drains them and runs the callbacks with null',
    async run(h) {
      const { server, client } = await h.connect();
      client.stopReading();
      await sleep(5);
      const results = await fillBuffers(server);
      expect(results.at(-1), 'the callback of the last send').to.deep.equal([]);
      client.startReading();
      await until(() => server.bufferedAmount === 0 && results.every((calls) => calls.length === 1), 'the buffers to drain', 10_000);
      expect(results.flat().every((err) => err === null)).to.equal(true);
      await until(() => client.received.length === results.length, 'every frame read');
    },
  },
  {
    title: 'sends still buffered when the socket is terminated get an error in their callback',
    async run(h) {
      const { server, client } = await h.connect();
      client.stopReading();
      await sleep(5);
      await fillBuffers(server);
      const last = callback();
      server.send('small', last.cb);
      server.terminate();
      await until(() => last.calls.length === 1, 'the callback');
      expect(last.calls[0]).to.be.instanceOf(Error);
      expect(server.bufferedAmount).to.equal(0);
    },
  },
  {
    title: 'a client that is not reading notices that the connection ended only once it reads again',
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      client.stopReading();
      await sleep(5);
      server.send('already sent');
      server.terminate();
      await until(() => closed.count === 1, "the server's close event");
      await sleep(h.quietMs);
      expect(client.closeEvent).to.equal(null);
      client.startReading();
      expect(await client.waitForClose()).to.deep.equal({ code: 1006, reason: '' });
    },
  },
  {
    title: 'a vanished client answers no ping and no close frame while small sends still succeed; terminate() ends it with 1006',
    async run(h) {
      const { server, client } = await h.connect();
      const closed = recordClose(server);
      let pongs = 0;
      server.on('pong', () => pongs++);
      client.vanish();
      const sent = callback();
      server.send('into the void', sent.cb);
      server.ping();
      await until(() => sent.calls.length === 1, 'the send callback');
      expect(sent.calls).to.deep.equal([null]);
      server.close(1000);
      await sleep(h.quietMs);
      expect(pongs).to.equal(0);
      expect(server.readyState).to.equal(2);
      server.terminate();
      await until(() => closed.count === 1, "the server's close event");
      expect(closed.code).to.equal(1006);
    },
  },

  // ------------------------------------------------------------------ pause / resume
  {
    title: 'pause() holds client messages until resume(), then delivers them in order; isPaused tells',
    async run(h) {
      const { server, client } = await h.connect();
      const messages: string[] = [];
      server.on('message', (data: Buffer) => messages.push(data.toString()));
      server.pause!();
      expect(server.isPaused).to.equal(true);
      client.send('p1');
      client.send('p2');
      await sleep(h.quietMs);
      expect(messages).to.deep.equal([]);
      server.resume!();
      expect(server.isPaused).to.equal(false);
      await until(() => messages.length === 2, 'both messages');
      expect(messages).to.deep.equal(['p1', 'p2']);
    },
  },
  {
    title: 'a paused server reads no pong until resume()',
    async run(h) {
      const { server } = await h.connect();
      let pongs = 0;
      server.on('pong', () => pongs++);
      server.pause!();
      server.ping();
      await sleep(h.quietMs);
      expect(pongs).to.equal(0);
      server.resume!();
      await until(() => pongs === 1, 'the pong after resume');
    },
  },
  {
    title: 'pause() and resume() on a closed socket do nothing',
    async run(h) {
      const { server, client } = await h.connect();
      server.terminate();
      await client.waitForClose();
      await until(() => server.readyState === 3, 'CLOSED');
      server.pause!();
      expect(server.isPaused).to.equal(false);
      server.resume!();
      expect(server.isPaused).to.equal(false);
    },
  },
];

// ------------------------------------------------------------------ the manager on both
function manage(server: ServerSocket, options: ManagerOptions = {}): WebSocketTimeoutManager {
  return new WebSocketTimeoutManager(server, { logger: silentLogger, ...options, config: { ...SHORT_TIMEOUTS, ...options.config } });
}

const managerBehaviours: Behaviour[] = [
  {
    title: 'WebSocketTimeoutManager: sends the JSON notice, then closes an idle connection with 4001',
    async run(h) {
      const { server, client } = await h.connect();
      manage(server, { config: { idleTimeoutMs: 30 } }).start();
      expect(await client.waitForClose()).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      expect(client.receivedJson()[0]).to.include({ type: 'connectionTimeout', reason: 'idle', idleSeconds: 0.03 });
    },
  },
  {
    title: 'WebSocketTimeoutManager: terminates a client that ignores pings after ping interval + pong timeout, with no close frame',
    async run(h) {
      const { server, client } = await h.connect({ autoPong: false });
      const heartbeat = { pingIntervalMs: 20, pongTimeoutMs: 50 };
      const started = Date.now(); // before the manager exists: its deadlines run from its construction
      const manager = manage(server, { config: heartbeat }).start();
      expect(await client.waitForClose()).to.deep.equal({ code: 1006, reason: '' });
      expect(Date.now() - started).to.be.at.least(heartbeat.pingIntervalMs + heartbeat.pongTimeoutMs - 5);
      expect(client.pings).to.be.at.least(1);
      expect(client.closeFrame).to.equal(null);
      expect(manager.state).to.equal('closed');
    },
  },
  {
    title: "WebSocketTimeoutManager: keeps a client that answers pings, and measures the round trip",
    async run(h) {
      const { server, client } = await h.connect();
      const manager = manage(server, { config: { pingIntervalMs: 20 } }).start();
      // No ping goes out while one is outstanding: a third ping means the first two pongs were credited.
      await until(() => client.pings >= 3, 'three pings');
      expect(manager.state).to.equal('open');
      expect(manager.lastRttMs).to.be.at.least(0);
      await manager.gracefulClose();
    },
  },
  {
    title: "WebSocketTimeoutManager: gracefulClose resolves 'closed' with an answering client, 'terminated' after closeTimeoutMs with one that ignores the frame",
    async run(h) {
      const answering = await h.connect();
      expect(await manage(answering.server).gracefulClose(4000, 'done')).to.equal('closed');
      expect(await answering.client.waitForClose()).to.deep.equal({ code: 4000, reason: 'done' });

      const ignoring = await h.connect({ answerClose: false });
      const closeTimeoutMs = 50;
      const started = Date.now();
      expect(await manage(ignoring.server, { config: { closeTimeoutMs } }).gracefulClose(4000, 'done')).to.equal('terminated');
      expect(Date.now() - started).to.be.at.least(closeTimeoutMs - 5);
      expect(await ignoring.client.waitForClose()).to.deep.equal({ code: 4000, reason: 'done' });
    },
  },
  {
    title: 'WebSocketTimeoutManager: a send to a client that stopped reading resolves false at the deadline, and the client reads 4003 once it reads again',
    async run(h) {
      const { server, client } = await h.connect();
      const manager = manage(server, { config: { closeTimeoutMs: 5_000 }, maxBufferedBytes: Infinity });
      client.stopReading();
      await sleep(5);
      await fillBuffers(server);
      const started = Date.now();
      expect(await manager.sendTextWithTimeout('late', 50)).to.equal(false);
      expect(Date.now() - started).to.be.within(45, 1_000);
      client.startReading();
      expect(await client.waitForClose()).to.deep.equal({ code: 4003, reason: 'send_timeout' });
    },
  },
  {
    title: 'WebSocketTimeoutManager: loses no message, in order, when its receive queue pauses and resumes the socket',
    async run(h) {
      const { server, client } = await h.connect();
      const manager = manage(server, { maxQueuedMessages: 2 });
      for (let i = 0; i < 10; i++) client.send(`m${i}`);
      // ws still emits the rest of a chunk it already read after pause(); the double stops at once.
      await until(() => manager.queuedMessages >= 2 && server.isPaused, 'the queue to fill and pause the socket');
      const all = [];
      for (let i = 0; i < 10; i++) all.push(await manager.receiveWithTimeout(2_000));
      expect(all).to.deep.equal(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9']);
      expect(server.isPaused).to.equal(false);
      await manager.gracefulClose();
    },
  },
];

for (const make of [inMemoryHarness, realWsHarness]) {
  const harness = make();
  describe(`socket conformance: ${harness.name}`, () => {
    afterEach(() => harness.teardown());
    for (const behaviour of [...behaviours, ...managerBehaviours]) {
      it(behaviour.title, () => behaviour.run(harness));
    }
  });
}
