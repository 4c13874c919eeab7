import { expect } from 'chai';
import { createSocketPair, createTestClock, type TestClock } from '../../lib/testing/index.js';

// What the conformance table cannot show on real sockets in a few milliseconds (ws's own
// 30-second close timeout, the vanished peer's buffers) and the client helpers themselves.
// The shared behaviours live in socket-conformance.spec.ts.
const STILL_WAITING = Symbol('still waiting');

describe('createSocketPair()', () => {
  let t: TestClock;

  beforeEach(() => {
    t = createTestClock();
  });

  /** What `promise` settled with once pending frames and promise callbacks have run, else STILL_WAITING: a wait that would hang fails at once. */
  function settledNow<T>(promise: Promise<T>): Promise<T | typeof STILL_WAITING> {
    return Promise.race([promise, t.flush().then((): typeof STILL_WAITING => STILL_WAITING)]);
  }

  describe('InMemoryServerSocket', () => {
    it("destroys the connection 30 s after its close frame when the client never answers, as ws's closeTimeout does", async () => {
      const { server, client } = createSocketPair({ clock: t, answerClose: false });
      const closes: number[] = [];
      server.on('close', (code: number) => closes.push(code));
      server.close(1000);
      await t.tickAsync(29_999);
      expect(server.readyState).to.equal(2);
      await t.tickAsync(1);
      expect(closes).to.deep.equal([1006]);
      expect(client.closeEvent).to.deep.equal({ code: 1000, reason: '' });
      expect(t.fake.countTimers()).to.equal(0);
    });

    it('takes its close timeout from closeTimeoutMs and clears it once the handshake completes', async () => {
      const { server } = createSocketPair({ clock: t, closeTimeoutMs: 100 });
      server.close(1000);
      await t.flush();
      expect(server.readyState).to.equal(3);
      expect(t.fake.countTimers()).to.equal(0);
    });

    it('lets a test force readyState without events, for code that only reads it', () => {
      const { server } = createSocketPair();
      let closed = false;
      server.on('close', () => (closed = true));
      server.readyState = 3;
      expect(server.readyState).to.equal(3);
      expect(closed).to.equal(false);
    });

    it("accepts ws's send(data, { binary }, cb) form at run time", async () => {
      const { server, client } = createSocketPair();
      const calls: unknown[] = [];
      (server.send as (...args: unknown[]) => void).call(server, 'as binary', { binary: true }, (err: unknown) => calls.push(err));
      await t.flush();
      expect(Buffer.isBuffer(client.received[0])).to.equal(true);
      expect(calls).to.deep.equal([null]);
    });
  });

  describe('TestClient', () => {
    it('records text as strings and binary as Buffers, and parses the text frames with receivedJson()', async () => {
      const { server, client } = createSocketPair();
      server.send('{"a":1}');
      server.send(Buffer.from([1]));
      server.send('[2]');
      await t.flush();
      expect(client.received.length).to.equal(3);
      expect(client.receivedJson()).to.deep.equal([{ a: 1 }, [2]]);
    });

    it("emits ws-client style 'message', 'ping' and 'close' events", async () => {
      const { server, client } = createSocketPair();
      const events: unknown[] = [];
      client.on('message', (data: Buffer, isBinary: boolean) => events.push(['message', data.toString(), isBinary]));
      client.on('ping', (data: Buffer) => events.push(['ping', data.toString()]));
      client.on('close', (code: number, reason: Buffer) => events.push(['close', code, reason.toString()]));
      server.send('hi');
      server.ping('p');
      server.close(4000, 'bye');
      await t.flush();
      expect(events).to.deep.equal([['message', 'hi', false], ['ping', 'p'], ['close', 4000, 'bye']]);
    });

    it('nextMessage() resolves at once with a message that arrived before it was called', async () => {
      // The hang users met: the welcome arrived during a flush or tick, then nextJson() waited for a second message.
      const { server, client } = createSocketPair();
      server.send('welcome');
      await t.flush();
      expect(client.received).to.deep.equal(['welcome']);
      expect(await settledNow(client.nextMessage())).to.equal('welcome');
    });

    it('nextMessage() and nextJson() share one read cursor: each message is returned once, in order, then they wait', async () => {
      const { server, client } = createSocketPair();
      server.send('"a"');
      server.send('"b"');
      await t.flush();
      expect(await settledNow(client.nextMessage())).to.equal('"a"');
      expect(await settledNow(client.nextJson())).to.equal('b');
      const third = client.nextMessage();
      expect(await settledNow(third)).to.equal(STILL_WAITING);
      server.send('"c"');
      expect(await settledNow(third)).to.equal('"c"');
    });

    it('calls made before the messages arrive get successive messages', async () => {
      const { server, client } = createSocketPair();
      const first = client.nextMessage();
      const second = client.nextMessage();
      server.send('one');
      server.send('two');
      expect(await settledNow(Promise.all([first, second]))).to.deep.equal(['one', 'two']);
    });

    it('nextMessage(index) returns received[index], waiting for it if needed, and moves the cursor past it', async () => {
      const { server, client } = createSocketPair();
      server.send('first');
      server.send('second');
      await t.flush();
      expect(await settledNow(client.nextMessage(1))).to.equal('second');
      const third = client.nextMessage(2);
      server.send('third');
      server.send('fourth');
      expect(await settledNow(third)).to.equal('third');
      expect(await settledNow(client.nextMessage())).to.equal('fourth');
      expect(await settledNow(client.nextMessage(0))).to.equal('first');
      expect(await settledNow(client.nextMessage())).to.equal('second');
      for (const index of [-1, 1.5]) {
        expect(await settledNow(client.nextMessage(index).catch(String))).to.match(/RangeError: .*index must be an integer >= 0, got/);
      }
    });

    it('nextMessage() still returns the unread messages once the connection has closed, then rejects naming the close code', async () => {
      const { server, client } = createSocketPair();
      server.send('last words');
      server.close(4001, 'idle_timeout');
      await t.flush();
      expect(client.closeEvent).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      expect(await settledNow(client.nextMessage())).to.equal('last words');
      const error = await settledNow(client.nextMessage().catch((err: unknown) => err));
      expect(String(error)).to.match(/closed \(4001\) before message #1 arrived/);
    });

    it('nextMessage() rejects when the connection closes while it waits', async () => {
      const { server, client } = createSocketPair();
      const next = client.nextMessage().catch((err: unknown) => err);
      server.close(4001, 'idle_timeout');
      expect(String(await settledNow(next))).to.match(/closed \(4001\) before message #0 arrived/);
    });

    it('receivedJson<T>() and nextJson<T>() return the type the test names, an unchecked cast', async () => {
      interface Welcome {
        type: 'welcome';
        room: string;
      }
      const { server, client } = createSocketPair();
      const next: Promise<Welcome> = client.nextJson<Welcome>();
      const after: Promise<Welcome> = client.nextJson<Welcome>();
      server.send('{"type":"welcome","room":"lobby"}');
      server.send('{"type":"other"}');
      await t.flush();
      const all: Welcome[] = client.receivedJson<Welcome>();
      expect(all[0]!.room).to.equal('lobby');
      expect((await next).room).to.equal('lobby');
      // Nothing is checked: a message of another shape comes back typed as a Welcome all the same.
      expect(await after).to.deep.equal({ type: 'other' });
    });

    it('nextJson() parses the next frame and refuses a binary one', async () => {
      const { server, client } = createSocketPair();
      server.send('{"type":"welcome"}');
      expect(await client.nextJson()).to.deep.equal({ type: 'welcome' });
      server.send(Buffer.from([1]));
      let error: unknown;
      await client.nextJson().catch((err: unknown) => (error = err));
      expect(error).to.be.instanceOf(TypeError);
    });

    it('waitForClose() resolves at once on a closed connection', async () => {
      const { server, client } = createSocketPair();
      server.terminate();
      await t.flush();
      expect(await client.waitForClose()).to.deep.equal({ code: 1006, reason: '' });
      expect(client.readyState).to.equal(3);
    });

    it('can stop answering pings and the close frame at any time through autoPong and answerClose', async () => {
      const { server, client } = createSocketPair();
      let pongs = 0;
      server.on('pong', () => pongs++);
      client.autoPong = false;
      client.answerClose = false;
      server.ping();
      server.close(1000);
      await t.flush();
      expect(client.pings).to.equal(1);
      expect(pongs).to.equal(0);
      expect(server.readyState).to.equal(2);
    });

    it('a vanished client takes bufferBytes of sends, which succeed, then the rest piles up in bufferedAmount', async () => {
      const { server, client } = createSocketPair();
      client.vanish({ bufferBytes: 10 });
      const calls: unknown[] = [];
      server.send('12345', (err) => calls.push(err));
      server.send('67890', (err) => calls.push(err));
      server.send('overflow', (err) => calls.push(err));
      await t.flush();
      expect(calls).to.deep.equal([null, null]);
      expect(server.bufferedAmount).to.equal(8);
      expect(client.received).to.deep.equal([]);
      server.terminate();
      await t.flush();
      expect(calls).to.have.length(3);
      expect((calls[2] as Error).message).to.equal('Cannot call write after a stream was destroyed');
      expect(client.closeEvent).to.equal(null); // it is gone: it never learns
    });

    it('sends nothing once vanished', async () => {
      const { server, client } = createSocketPair();
      const messages: unknown[] = [];
      server.on('message', (data: Buffer) => messages.push(data.toString()));
      client.vanish();
      client.send('ghost');
      client.pong();
      client.close(1000);
      await t.flush();
      expect(messages).to.deep.equal([]);
      expect(server.readyState).to.equal(1);
      expect(client.gone).to.equal(true);
    });
  });
});
