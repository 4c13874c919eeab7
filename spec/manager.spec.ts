import { expect } from 'chai';
import sinon from 'sinon';
import { defaultLogger } from '../lib/logger.js';
import { WebSocketTimeoutManager, type ManagerOptions } from '../lib/manager.js';
import { ReconnectBudget } from '../lib/reconnect-budget.js';
import { Scheduler } from '../lib/scheduler.js';
import { createSocketPair } from '../lib/testing/socket-pair.js';
import { createTestClock, type TestClock } from '../lib/testing/clock.js';
import { captureLogs } from '../lib/testing/log-capture.js';
import { settles } from './support/settles.js';

// Every test runs on its own fake clock, injected: no global is touched, no real time passes.
describe('WebSocketTimeoutManager', () => {
  let t: TestClock;
  let logs: ReturnType<typeof captureLogs>;

  beforeEach(() => {
    t = createTestClock();
    logs = captureLogs();
  });

  function setup(options: ManagerOptions = {}, pairOptions = {}) {
    const { server, client } = createSocketPair(pairOptions);
    const scheduler = new Scheduler({ clock: t.clock, resolutionMs: options.config?.resolutionMs ?? 100 });
    const manager = new WebSocketTimeoutManager(server, {
      clock: t.clock,
      logger: logs.logger,
      scheduler,
      userId: 'user-1',
      ...options,
    });
    return { server, client, manager, scheduler };
  }

  describe('constructor', () => {
    it("takes a string second argument as the user id: new WebSocketTimeoutManager(ws, 'user-1')", () => {
      const { server } = createSocketPair();
      const info = sinon.stub(defaultLogger(), 'info'); // the call shape leaves no room for a logger
      try {
        const manager = new WebSocketTimeoutManager(server, 'user-7');
        expect(manager.userId).to.equal('user-7');
        expect(info.firstCall.args).to.deep.equal(['WebSocket connected', { connectionId: manager.id, userId: 'user-7' }]);
      } finally {
        info.restore();
      }
    });

    it('refuses any other second argument with a TypeError that says what to pass', () => {
      for (const bad of [42, null, true, ['user-1'], () => 'user-1']) {
        const { server } = createSocketPair();
        expect(() => new WebSocketTimeoutManager(server, bad as unknown as ManagerOptions), String(bad)).to.throw(
          TypeError,
          /WebSocketTimeoutManager: the second argument must be an options object \(e\.g\. \{ userId, config \}\) or a user id string, got /,
        );
      }
    });
  });

  describe("the socket's events", () => {
    it("reach the manager first, then the socket's own listeners, with the same arguments", async () => {
      const { server, client, manager } = setup();
      const seen: unknown[][] = [];
      server.on('message', (...args: unknown[]) => seen.push([...args.map(String), manager.queuedMessages]));
      client.send('hello');
      await t.flush();
      expect(seen).to.deep.equal([['hello', 'false', 1]]);
      expect(await settles(t, manager.receiveWithTimeout(10), 'receive')).to.equal('hello');
    });

    it("log an 'error' with the connection id, and do not throw when nothing else listens", () => {
      const { server, manager } = setup();
      expect(server.emit('error', Object.assign(new Error('boom'), { code: 'EBOOM' }))).to.equal(true);
      expect(logs.find('WebSocket error')?.meta).to.include({ connectionId: manager.id, errorCode: 'EBOOM' });
      const heard: Error[] = [];
      server.on('error', (err: Error) => heard.push(err));
      server.emit('error', new Error('again'));
      expect(heard.map((e) => e.message)).to.deep.equal(['again']);
    });

    it('reach the manager through listeners on a socket of your own with no emit()', async () => {
      const { server } = createSocketPair();
      const listeners = new Map<string, Array<(...args: any[]) => void>>();
      // Only what ManagedSocket promises: on/off, no emit.
      const own = {
        get readyState() {
          return server.readyState;
        },
        get bufferedAmount() {
          return server.bufferedAmount;
        },
        send: server.send.bind(server),
        ping: server.ping.bind(server),
        close: server.close.bind(server),
        terminate: server.terminate.bind(server),
        on(event: string, listener: (...args: any[]) => void) {
          listeners.set(event, [...(listeners.get(event) ?? []), listener]);
          return own;
        },
        off(event: string, listener: (...args: any[]) => void) {
          listeners.set(event, (listeners.get(event) ?? []).filter((l) => l !== listener));
          return own;
        },
        fire(event: string, ...args: unknown[]) {
          for (const listener of listeners.get(event) ?? []) listener.apply(own, args);
        },
      };
      const manager = new WebSocketTimeoutManager(own, { clock: t.clock, logger: logs.logger, scheduler: new Scheduler({ clock: t.clock, resolutionMs: 100 }) });
      expect([...listeners.keys()].sort()).to.deep.equal(['close', 'error', 'message', 'pong']);
      own.fire('message', Buffer.from('hi'), false);
      expect(await settles(t, manager.receiveWithTimeout(10), 'receive')).to.equal('hi');
      own.fire('close', 1000, Buffer.from('bye'));
      expect(manager.state).to.equal('closed');
      expect([...listeners.values()].flat()).to.deep.equal([]);
    });
  });

  describe('#receiveWithTimeout()', () => {
    /** Ticks to 1 ms before `deadlineMs`, where `receive` must still wait, then to it, where it must be null. */
    async function expectNullAt(receive: Promise<unknown>, deadlineMs: number, why = '1 ms before the deadline'): Promise<void> {
      let result: unknown = 'pending';
      void receive.then((m) => (result = m));
      await t.tickAsync(deadlineMs - 1);
      expect(result, why).to.equal('pending');
      await t.tickAsync(1);
      expect(result).to.equal(null);
    }

    it('resolves a message that arrived before anyone called receive', async () => {
      const { client, manager } = setup();
      client.send('early');
      await t.flush();
      expect(await settles(t, manager.receiveWithTimeout(10), 'receive')).to.equal('early');
    });

    it('resolves null when the timeout passes first, not a millisecond earlier', async () => {
      const { manager } = setup();
      await expectNullAt(manager.receiveWithTimeout(500), 500);
    });

    it('waits heartbeatIntervalMs by default', async () => {
      const { manager } = setup({ config: { heartbeatIntervalMs: 2_000 } });
      await expectNullAt(manager.receiveWithTimeout(), 2_000);
    });

    it('holds no timer of its own while it waits: the receives of many connections share their scheduler\'s one timer', async () => {
      const scheduler = new Scheduler({ clock: t.clock, resolutionMs: 100 });
      const results: unknown[] = [];
      for (let i = 0; i < 20; i++) {
        const manager = new WebSocketTimeoutManager(createSocketPair().server, { clock: t.clock, logger: logs.logger, scheduler });
        void manager.receiveWithTimeout(60_000).then((m) => results.push(m));
      }
      expect(t.fake.countTimers()).to.equal(1);
      await t.tickAsync(59_999);
      expect(results, '1 ms before the deadline').to.deep.equal([]);
      await t.tickAsync(1);
      expect(results).to.deep.equal(Array(20).fill(null));
    });

    it('times out concurrent receives each at its own deadline, and hands the next message to the oldest still waiting', async () => {
      const { client, manager } = setup();
      const seen: string[] = [];
      const record = (name: string) => (m: unknown) => seen.push(`${name}: ${String(m)} at ${t.now() - start}`);
      const start = t.now();
      void manager.receiveWithTimeout(1_000).then(record('first'));
      void manager.receiveWithTimeout(300).then(record('second'));
      void manager.receiveWithTimeout(2_000).then(record('third'));
      await t.tickAsync(299);
      expect(seen).to.deep.equal([]);
      await t.tickAsync(1);
      expect(seen).to.deep.equal(['second: null at 300']);
      client.send('a');
      await t.tickAsync(1_000);
      expect(seen).to.deep.equal(['second: null at 300', 'first: a at 300']);
      await t.tickAsync(700);
      expect(seen).to.deep.equal(['second: null at 300', 'first: a at 300', 'third: null at 2000']);
    });

    it('resolves null at its deadline on a started manager, whose own timeouts keep their times', async () => {
      const { client, manager } = setup({ config: { idleTimeoutMs: 1_000 } });
      manager.start();
      await expectNullAt(manager.receiveWithTimeout(500), 500);
      let result: unknown = 'pending';
      // A receive that outlives the idle timeout ends with the connection's close.
      void manager.receiveWithTimeout(5_000).then((m) => (result = m));
      await t.tickAsync(499);
      expect(client.closeFrame, 'before the idle timeout').to.equal(null);
      await t.tickAsync(101);
      expect(client.closeFrame?.code).to.equal(4001);
      expect(result).to.equal(null);
    });

    it('keeps its deadline after stop()', async () => {
      const { manager } = setup({ config: { idleTimeoutMs: 1_000 } });
      manager.start();
      const receive = manager.receiveWithTimeout(2_000);
      manager.stop();
      await expectNullAt(receive, 2_000, 'no idle close after stop()');
    });

    it('keeps its deadline while a lifetime close waits for its reconnect-budget slot, and the lifetime is judged once', async () => {
      const budget = new ReconnectBudget({ rate: 1, clock: t.clock }); // a close slot a second
      const config = { connectionTimeoutMs: 1_000, idleTimeoutMs: 0, pingIntervalMs: 500, pongTimeoutMs: 500 };
      const timeouts: string[] = [];
      const first = setup({ config, reconnectBudget: budget });
      const second = setup({ config, reconnectBudget: budget, onTimeout: (reason) => timeouts.push(reason) });
      first.manager.start();
      second.manager.start();
      await t.tickAsync(1_100); // both lifetimes ended: the first took the slot now, the second waits for the next
      expect(timeouts).to.deep.equal(['max_lifetime']);
      expect(second.client.closeFrame, 'waiting for its slot').to.equal(null);
      let result: unknown = 'pending';
      void second.manager.receiveWithTimeout(300).then((m) => (result = m));
      await t.tickAsync(299);
      expect(result).to.equal('pending');
      await t.tickAsync(1);
      expect(result).to.equal(null);
      expect(second.client.closeFrame, 'still waiting for its slot').to.equal(null);
      await t.tickAsync(1_000);
      expect(second.client.closeFrame?.code).to.equal(4002);
      expect(timeouts).to.deep.equal(['max_lifetime']);
    });

    it('resolves null without waiting when the timeout is 0, and a queued message at once', async () => {
      const { client, manager } = setup();
      const polled = manager.receiveWithTimeout(0);
      await t.tickAsync(0);
      expect(await settles(t, polled, 'receive with no time')).to.equal(null);
      client.send('queued');
      await t.flush();
      expect(await settles(t, manager.receiveWithTimeout(0), 'receive of the queued message')).to.equal('queued');
    });

    it('gives strings for text frames and Buffers for binary frames', async () => {
      const { client, manager } = setup();
      client.send('text');
      client.send(Buffer.from([1, 2, 3]));
      await t.flush();
      expect(await settles(t, manager.receiveWithTimeout(10), 'first receive')).to.equal('text');
      const binary = await settles(t, manager.receiveWithTimeout(10), 'second receive');
      expect(Buffer.isBuffer(binary)).to.equal(true);
      expect([...(binary as Buffer)]).to.deep.equal([1, 2, 3]);
    });

    it('hands messages to concurrent receivers in arrival order', async () => {
      const { client, manager } = setup();
      const first = manager.receiveWithTimeout(1_000);
      const second = manager.receiveWithTimeout(1_000);
      client.send('a');
      client.send('b');
      expect(await settles(t, first, 'first receive')).to.equal('a');
      expect(await settles(t, second, 'second receive')).to.equal('b');
    });

    it('delivers messages queued before the close, then resolves null', async () => {
      const { client, manager } = setup();
      client.send('last words');
      client.close(1000);
      await t.flush();
      expect(await settles(t, manager.receiveWithTimeout(10), 'receive of the queued message')).to.equal('last words');
      expect(await settles(t, manager.receiveWithTimeout(10), 'receive after the close')).to.equal(null);
    });

    it('resolves a pending receive with null when the connection closes', async () => {
      const { client, manager } = setup();
      const pending = manager.receiveWithTimeout(60_000);
      client.close(1000);
      expect(await settles(t, pending, 'the pending receive')).to.equal(null);
    });

    it('pauses the socket when the queue is full, resumes it once drained to half, and loses nothing', async () => {
      const { client, server, manager } = setup({ maxQueuedMessages: 4 });
      for (let i = 0; i < 8; i++) client.send(`m${i}`);
      await t.flush();
      expect(server.isPaused).to.equal(true);
      expect(manager.queuedMessages).to.equal(4);
      const all = [];
      for (let i = 0; i < 8; i++) all.push(await settles(t, manager.receiveWithTimeout(10), `receive #${i}`));
      expect(all).to.deep.equal(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
      expect(server.isPaused).to.equal(false);
    });

    it('rejects a negative or NaN timeout with a RangeError naming it', () => {
      const { manager } = setup();
      expect(() => manager.receiveWithTimeout(-1)).to.throw(RangeError, /timeoutMs/);
      expect(() => manager.receiveWithTimeout(NaN)).to.throw(RangeError, /timeoutMs/);
    });

    it('is iterable with for await until the connection closes', async () => {
      const { client, manager } = setup();
      client.send('one');
      client.send('two');
      client.close(1000);
      const seen: unknown[] = [];
      await settles(t, (async () => {
        for await (const message of manager) seen.push(message);
      })(), 'for await over the manager');
      expect(seen).to.deep.equal(['one', 'two']);
    });
  });

  describe('#sendJsonWithTimeout()', () => {
    it('resolves true once the frame is flushed and the peer gets the JSON', async () => {
      const { client, manager } = setup();
      expect(await settles(t, manager.sendJsonWithTimeout({ type: 'response', data: 'processed' }), 'send')).to.equal(true);
      expect(client.receivedJson()).to.deep.equal([{ type: 'response', data: 'processed' }]);
    });

    it('resolves false for data that cannot be serialised, and logs it', async () => {
      const { manager } = setup();
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      expect(await settles(t, manager.sendJsonWithTimeout(circular), 'send of a circular object')).to.equal(false);
      expect(await settles(t, manager.sendJsonWithTimeout(undefined), 'send of undefined')).to.equal(false);
      expect(logs.find('WebSocket send failed: data is not serialisable to JSON')?.meta.connectionId).to.match(/^c\d+$/);
    });

    it('resolves false on a closed socket', async () => {
      const { client, manager } = setup();
      client.close(1000);
      await t.flush();
      expect(await settles(t, manager.sendJsonWithTimeout({ a: 1 }), 'send')).to.equal(false);
    });

    it('resolves false after messageTimeoutMs for a slow consumer and closes it with 4003', async () => {
      const reasons: string[] = [];
      const { client, manager } = setup({ onTimeout: (reason) => reasons.push(reason), config: { messageTimeoutMs: 1_000 } });
      client.stopReading();
      let result: unknown = 'pending';
      void manager.sendJsonWithTimeout({ big: 'x' }).then((r) => (result = r));
      await t.tickAsync(999);
      expect(result).to.equal('pending');
      await t.tickAsync(1);
      expect(result).to.equal(false);
      expect(reasons).to.deep.equal(['send_timeout']);
      client.startReading();
      await t.flush();
      expect(client.closeFrame).to.deep.equal({ code: 4003, reason: 'send_timeout' });
    });

    it("only refuses the send under the 'refuse' policy", async () => {
      const { client, manager } = setup({ slowConsumerPolicy: 'refuse', config: { messageTimeoutMs: 100 } });
      client.stopReading();
      const sent = manager.sendTextWithTimeout('x');
      await t.tickAsync(100);
      expect(await settles(t, sent, 'send')).to.equal(false);
      expect(manager.state).to.equal('open');
    });

    it('counts as activity', async () => {
      const { manager } = setup();
      await t.tickAsync(5_000);
      await settles(t, manager.sendTextWithTimeout('hi'), 'send');
      expect(manager.lastActivityAt).to.equal(t.now());
    });
  });

  describe('#isIdle()', () => {
    it('is true once idleTimeoutMs passes without an application message', async () => {
      const { manager } = setup({ config: { idleTimeoutMs: 60_000 } });
      await t.tickAsync(59_999);
      expect(manager.isIdle()).to.equal(false);
      await t.tickAsync(1);
      expect(manager.isIdle()).to.equal(true);
    });

    it('is reset by an inbound message but not by a pong', async () => {
      const { client, manager } = setup({ config: { idleTimeoutMs: 60_000 } });
      await t.tickAsync(50_000);
      client.pong();
      await t.tickAsync(10_000);
      expect(manager.isIdle()).to.equal(true);
      client.send('hello');
      await t.flush();
      expect(manager.isIdle()).to.equal(false);
    });

    it('is never true when idleTimeoutMs is 0', async () => {
      const { manager } = setup({ config: { idleTimeoutMs: 0 } });
      await t.tickAsync(10 * 60_000);
      expect(manager.isIdle()).to.equal(false);
    });
  });

  describe('#connectionAge() and #isConnectionTimeout()', () => {
    it('measures the age in ms and flags the lifetime limit', async () => {
      const { manager } = setup({ config: { connectionTimeoutMs: 300_000 } });
      await t.tickAsync(299_999);
      expect(manager.connectionAge()).to.equal(299_999);
      expect(manager.isConnectionTimeout()).to.equal(false);
      await t.tickAsync(1);
      expect(manager.isConnectionTimeout()).to.equal(true);
    });
  });

  describe('#handleHeartbeat()', () => {
    it('pings once pingIntervalMs has passed, and not before', async () => {
      const { client, manager } = setup({ config: { pingIntervalMs: 25_000 } });
      await t.tickAsync(24_999);
      expect(manager.shouldPing()).to.equal(false);
      expect(await manager.handleHeartbeat()).to.equal(true);
      expect(client.pings).to.equal(0);
      await t.tickAsync(1);
      expect(await manager.handleHeartbeat()).to.equal(true);
      expect(client.pings).to.equal(1);
    });

    it('records the round-trip time of each pong, last and smoothed', async () => {
      const { client, manager } = setup({ config: { pingIntervalMs: 1_000 } }, { autoPong: false });
      await t.tickAsync(1_000);
      await manager.handleHeartbeat();
      await t.tickAsync(80);
      client.pong();
      await t.flush();
      expect(manager.lastRttMs).to.equal(80);
      expect(manager.smoothedRttMs).to.equal(80);
      await t.tickAsync(1_000);
      await manager.handleHeartbeat();
      await t.tickAsync(160);
      client.pong();
      await t.flush();
      expect(manager.lastRttMs).to.equal(160);
      expect(manager.smoothedRttMs).to.equal(90);
    });

    it('resolves false and terminates once a ping is unanswered for pongTimeoutMs', async () => {
      const { client, manager } = setup({ config: { pingIntervalMs: 25_000, pongTimeoutMs: 60_000 } }, { autoPong: false });
      await t.tickAsync(25_000);
      expect(await manager.handleHeartbeat()).to.equal(true);
      await t.tickAsync(59_999);
      expect(manager.isPongTimeout()).to.equal(false);
      await t.tickAsync(1);
      expect(manager.isPongTimeout()).to.equal(true);
      expect(await manager.handleHeartbeat()).to.equal(false);
      await t.flush();
      expect(manager.state).to.equal('closed');
      expect(client.closeFrame).to.equal(null);
      expect(logs.find('WebSocket timeout')?.meta).to.include({ reason: 'pong_timeout', pongTimeoutMs: 60_000, userId: 'user-1' });
    });

    it("in 'application' mode pings with \"ping\" text and takes \"pong\" text as the answer", async () => {
      const { client, manager } = setup({ heartbeatMode: 'application', config: { pingIntervalMs: 1_000 } });
      await t.tickAsync(1_000);
      await manager.handleHeartbeat();
      expect(client.received).to.deep.equal(['ping']);
      expect(client.pings).to.equal(0);
      await t.tickAsync(30);
      client.send('pong');
      await t.flush();
      expect(manager.lastRttMs).to.equal(30);
      expect(manager.queuedMessages).to.equal(0);
    });

    it("in 'application' mode answers a peer's \"ping\" text with \"pong\"", async () => {
      const { client, manager } = setup({ heartbeatMode: 'application' });
      client.send('ping');
      await t.flush();
      expect(client.received).to.deep.equal(['pong']);
      expect(manager.queuedMessages).to.equal(0);
    });

    it('resolves false on a closed connection', async () => {
      const { client, manager } = setup();
      client.close(1000);
      await t.flush();
      expect(await manager.handleHeartbeat()).to.equal(false);
    });
  });

  describe('#start()', () => {
    it('sends the notice and closes with 4001 when the idle timeout elapses, within one resolution', async () => {
      const reasons: string[] = [];
      const { client, manager } = setup({ onTimeout: (reason) => reasons.push(reason), config: { idleTimeoutMs: 60_000, resolutionMs: 100 } });
      manager.start();
      await t.tickAsync(59_999);
      expect(client.closeFrame).to.equal(null);
      await t.tickAsync(101);
      expect(client.closeFrame).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      const [notice] = client.receivedJson() as Array<Record<string, unknown>>;
      expect(notice).to.deep.equal({
        type: 'connectionTimeout',
        reason: 'idle',
        message: 'Connection closed due to inactivity',
        idleSeconds: 60,
        timestamp: notice!.timestamp,
      });
      expect((client.receivedJson()[0] as { timestamp: number }).timestamp).to.be.within(t.now() - 101, t.now());
      expect(reasons).to.deep.equal(['idle']);
      expect(manager.state).to.equal('closed');
    });

    it('postpones the idle close while messages flow', async () => {
      const { client, manager } = setup({ config: { idleTimeoutMs: 10_000 } });
      manager.start();
      for (let i = 0; i < 5; i++) {
        await t.tickAsync(9_000);
        client.send('still here');
      }
      await t.flush();
      expect(client.closeFrame).to.equal(null);
      await t.tickAsync(10_100);
      expect(client.closeFrame?.code).to.equal(4001);
    });

    it('terminates a silent peer after ping interval + pong timeout, with no close frame', async () => {
      const { client, manager } = setup(
        { config: { idleTimeoutMs: 0, pingIntervalMs: 1_000, pongTimeoutMs: 2_000, resolutionMs: 100 } },
        { autoPong: false },
      );
      manager.start();
      await t.tickAsync(1_100);
      expect(client.pings).to.equal(1);
      await t.tickAsync(1_900);
      expect(manager.state).to.equal('open');
      await t.tickAsync(200);
      expect(manager.state).to.equal('closed');
      expect(client.closeFrame).to.equal(null);
    });

    it('keeps a peer that answers pings alive through many intervals', async () => {
      const { client, manager } = setup({ config: { idleTimeoutMs: 0, connectionTimeoutMs: 0, pingIntervalMs: 1_000, pongTimeoutMs: 2_000 } });
      manager.start();
      await t.tickAsync(30_000);
      expect(manager.state).to.equal('open');
      expect(client.pings).to.be.within(25, 30);
    });

    it('closes with 4002 and a lifetime notice at connectionTimeoutMs', async () => {
      const { client, manager } = setup({ config: { idleTimeoutMs: 0, connectionTimeoutMs: 120_000, pingIntervalMs: 30_000, pongTimeoutMs: 60_000 } });
      manager.start();
      await t.tickAsync(119_999);
      expect(client.closeFrame).to.equal(null);
      await t.tickAsync(101);
      expect(client.closeFrame).to.deep.equal({ code: 4002, reason: 'max_lifetime' });
      expect(client.receivedJson()[0]).to.include({ type: 'connectionTimeout', reason: 'max_lifetime', lifetimeSeconds: 120 });
    });

    it('takes up to lifetimeJitterMs off the lifetime, never adding to it', async () => {
      const { client, manager } = setup({
        config: { idleTimeoutMs: 0, connectionTimeoutMs: 7_200_000 },
        lifetimeJitterMs: 600_000,
        random: () => 0.5,
      });
      expect(manager.lifetimeMs).to.equal(6_900_000);
      manager.start();
      await t.tickAsync(6_899_900);
      expect(client.closeFrame).to.equal(null);
      await t.tickAsync(200);
      expect(client.closeFrame?.code).to.equal(4002);
    });

    it('advises the peer to reconnect reconnectNoticeMs before the lifetime close', async () => {
      const { client, manager } = setup({ config: { idleTimeoutMs: 0, connectionTimeoutMs: 60_000 }, reconnectNoticeMs: 10_000 });
      manager.start();
      await t.tickAsync(49_999);
      expect(client.receivedJson()).to.deep.equal([]);
      await t.tickAsync(101);
      expect(client.receivedJson()[0]).to.include({ type: 'reconnectAdvised', reason: 'max_lifetime' });
      expect((client.receivedJson()[0] as { closeInSeconds: number }).closeInSeconds).to.be.within(9.9, 10);
    });

    it("in 'application' mode closes an idle peer on time though \"ping\"/\"pong\" text flows both ways: heartbeats are not activity", async () => {
      const { client, manager } = setup(
        { heartbeatMode: 'application', config: { idleTimeoutMs: 1_000, pingIntervalMs: 200, pongTimeoutMs: 400, resolutionMs: 100 } },
        { autoPong: false },
      );
      client.on('message', (data: Buffer) => data.toString() === 'ping' && client.send('pong')); // answers our pings
      manager.start();
      for (let i = 0; i < 9; i++) {
        await t.tickAsync(100);
        client.send('ping'); // and sends its own, which we answer
      }
      await t.tickAsync(99);
      // 0.999 s: heartbeats went both ways, and nothing else did.
      expect(client.received.filter((m) => m === 'ping').length).to.be.at.least(4);
      expect(client.received.filter((m) => m === 'pong')).to.have.length(9);
      expect(manager.lastRttMs).to.be.at.least(0);
      expect(client.closeFrame).to.equal(null);
      await t.tickAsync(101);
      expect(client.closeFrame).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
    });

    describe('idle and lifetime verdicts at their own time, not at the next whole tick', () => {
      const config = { idleTimeoutMs: 2_500, connectionTimeoutMs: 0, pingIntervalMs: 60_000, pongTimeoutMs: 60_000, resolutionMs: 1_000 };

      it('closes an idle connection at its last message + idleTimeoutMs', async () => {
        const verdicts: number[] = [];
        const { client, manager } = setup({ config, onTimeout: () => verdicts.push(t.now()) });
        manager.start();
        await t.tickAsync(1_337);
        client.send('last words');
        await t.flush();
        const deadline = manager.lastActivityAt + config.idleTimeoutMs;
        await t.tickAsync(deadline - t.now() - 1);
        expect(manager.state, '1 ms before the deadline').to.equal('open');
        await t.tickAsync(1_000);
        // Up to the 1 ms fake-timers puts before an immediate; never before the deadline.
        expect(verdicts.map((at) => at - deadline)).to.have.length(1).and.satisfy(([ms]: number[]) => ms! >= 0 && ms! <= 1);
      });

      it('closes a connection at connectedAt + its lifetime', async () => {
        const verdicts: number[] = [];
        const { manager } = setup({ config: { ...config, idleTimeoutMs: 0, connectionTimeoutMs: 2_750, pingIntervalMs: 2_000 }, onTimeout: () => verdicts.push(t.now()) });
        manager.start();
        const deadline = manager.connectedAt + manager.lifetimeMs;
        await t.tickAsync(deadline - t.now() - 1);
        expect(manager.state, '1 ms before the deadline').to.equal('open');
        await t.tickAsync(1_000);
        expect(verdicts.map((at) => at - deadline)).to.have.length(1).and.satisfy(([ms]: number[]) => ms! >= 0 && ms! <= 1);
      });
    });

    describe('a pong verdict after a late tick, neither early nor late', () => {
      const config = { idleTimeoutMs: 0, connectionTimeoutMs: 0, pingIntervalMs: 1_000, pongTimeoutMs: 2_000, resolutionMs: 100 };

      it('runs the pong deadline from when a late tick actually sent the ping', async () => {
        const { client, manager } = setup({ config }, { autoPong: false });
        manager.start();
        // The ping is due at 1 s; the event loop is blocked until 1.5 s, so it goes out at 1.501 s.
        t.fake.jump(1_500);
        await t.tickAsync(1);
        expect(client.pings).to.equal(1);
        expect(manager.pingOutstandingSince).to.equal(t.now());
        // Its pong is due at 3.501 s, not at 3 s (2 s after the ping was due), and judged within one tick.
        await t.tickAsync(1_999);
        expect(manager.state, 'at 3.5 s').to.equal('open');
        await t.tickAsync(100);
        expect(manager.state, 'at 3.6 s').to.equal('closed');
        expect(logs.find('WebSocket timeout')?.meta).to.include({ reason: 'pong_timeout' });
      });

      // Pings go out late into their tick (a late timer, a long tick); the verdict must come at
      // ping + pongTimeoutMs, never earlier, and not almost a resolution later.
      for (const late of [1, 37, 98]) {
        it(`judges a ping sent ${late} ms into its tick at its own pong deadline, not at the next whole tick`, async () => {
          const verdicts: number[] = [];
          const { client, manager } = setup({ config, onTimeout: () => verdicts.push(t.now()) }, { autoPong: false });
          manager.start();
          // The ping is due 1 s after the start; the tick after that runs `late` ms into itself.
          const boundary = Math.ceil((t.now() + 1_000) / 100) * 100;
          t.fake.jump(boundary + late - 1 - t.now());
          await t.tickAsync(1);
          expect(client.pings).to.equal(1);
          const deadline = manager.pingOutstandingSince + config.pongTimeoutMs;
          await t.tickAsync(deadline - t.now() - 1);
          expect(manager.state, '1 ms before the deadline').to.equal('open');
          await t.tickAsync(200);
          expect(verdicts).to.have.length(1);
          // Up to the 1 ms fake-timers puts before an immediate; never before the deadline.
          expect(verdicts[0]! - deadline, 'ms after the deadline').to.be.within(0, 1);
        });
      }

      it('pings on time after a pong that came late: the pong moves the check from its deadline to the next ping', async () => {
        const { client, manager } = setup({ config }, { autoPong: false });
        manager.start();
        await t.tickAsync(1_001);
        expect(client.pings).to.equal(1);
        const next = manager.lastPingAt + config.pingIntervalMs;
        await t.tickAsync(next - t.now() + 200); // past the next ping time, with the pong still outstanding
        expect(client.pings).to.equal(1);
        client.pong();
        await t.tickAsync(101);
        expect(client.pings, 'on the next tick, not at the pong deadline').to.equal(2);
      });

      it('waits for pending input when the tick that judges it ran late, and no longer', async () => {
        const { manager } = setup({ config }, { autoPong: false });
        manager.start();
        await t.tickAsync(2_900); // the ping went out at 1.001 s; its pong is due at 3.001 s
        // The event loop is blocked from 2.9 s to 3.95 s: the tick due at 2.9 s runs at 3.95 s, stalled.
        t.fake.jump(1_050);
        await t.flush();
        expect(manager.state, 'in the stalled tick').to.equal('open'); // a pong read during the stall would count
        await t.tickAsync(3);
        expect(manager.state, 'a timer and an afterIo turn later, not at the next tick (4 s)').to.equal('closed');
        expect(logs.find('WebSocket timeout')?.meta).to.include({ reason: 'pong_timeout' });
      });
    });

    it('does not send the notice when timeoutNotice is false', async () => {
      const { client, manager } = setup({ config: { idleTimeoutMs: 1_000 }, timeoutNotice: false });
      manager.start();
      await t.tickAsync(1_100);
      expect(client.received).to.deep.equal([]);
      expect(client.closeFrame?.code).to.equal(4001);
    });

    it('defers a pong verdict after an event-loop stall until pending input has been read', async () => {
      const { client, manager, server } = setup({ config: { idleTimeoutMs: 0, pingIntervalMs: 1_000, pongTimeoutMs: 1_000 } }, { autoPong: false });
      manager.start();
      await t.tickAsync(1_100);
      expect(client.pings).to.equal(1);
      // 1.1 s: the event loop blocks for 5 s; the peer's pong arrives during the block but
      // is still unread when the first tick after it runs (marked stalled).
      t.fake.setSystemTime(t.now() + 5_000);
      manager.onDue(t.now(), true);
      expect(server.readyState).to.equal(1);
      client.pong();
      await t.flush();
      manager.onDue(t.now(), false);
      expect(server.readyState).to.equal(1);
      expect(manager.lastRttMs).to.be.at.least(5_000);
    });
  });

  describe('#gracefulClose()', () => {
    it("resolves 'closed' when the peer answers the close frame", async () => {
      const { client, manager } = setup();
      expect(await settles(t, manager.gracefulClose(), 'gracefulClose')).to.equal('closed');
      expect(client.closeFrame).to.deep.equal({ code: 1000, reason: 'normal_closure' });
    });

    it("terminates a peer that ignores the close frame after closeTimeoutMs and resolves 'terminated'", async () => {
      const { client, manager, server } = setup({ config: { closeTimeoutMs: 5_000 } }, { answerClose: false });
      let outcome: unknown = 'pending';
      void manager.gracefulClose(1000).then((o) => (outcome = o));
      await t.tickAsync(4_999);
      expect(outcome).to.equal('pending');
      expect(server.readyState).to.equal(2);
      await t.tickAsync(1);
      expect(outcome).to.equal('terminated');
      expect(server.readyState).to.equal(3);
      expect(client.closeFrame?.code).to.equal(1000);
    });

    it("resolves 'already_closed' for a peer that is already gone", async () => {
      const { client, manager } = setup();
      client.close(1001);
      await t.flush();
      expect(await settles(t, manager.gracefulClose(), 'gracefulClose')).to.equal('already_closed');
    });

    it('is idempotent: every call gets the same promise and one close frame is sent', async () => {
      const { manager } = setup();
      const first = manager.gracefulClose(4000, 'first');
      const second = manager.gracefulClose(1000, 'second');
      expect(second).to.equal(first);
      expect(await settles(t, first, 'gracefulClose')).to.equal('closed');
    });

    it('uses 1000 for a code that may not be sent, and says so in the log', async () => {
      const { client, manager } = setup();
      await settles(t, manager.gracefulClose(1006, 'bad'), 'gracefulClose');
      expect(client.closeFrame?.code).to.equal(1000);
      expect(logs.find('gracefulClose: invalid close code, using 1000')?.meta.code).to.equal(1006);
    });

    it('cuts the reason to 123 UTF-8 bytes', async () => {
      const { client, manager } = setup();
      await settles(t, manager.gracefulClose(1000, 'é'.repeat(100)), 'gracefulClose');
      expect(Buffer.byteLength(client.closeFrame!.reason)).to.equal(122);
    });

    it('removes every hook and timer the manager added', async () => {
      const { server, manager, scheduler } = setup({ config: { idleTimeoutMs: 1_000 } });
      manager.start();
      void manager.receiveWithTimeout(60_000);
      expect(Object.hasOwn(server, 'emit'), 'the manager hears the socket through its emit()').to.equal(true);
      await settles(t, manager.gracefulClose(), 'gracefulClose');
      for (const event of ['message', 'pong', 'close', 'error']) expect(server.listenerCount(event)).to.equal(0);
      expect(Object.hasOwn(server, 'close'), 'the socket is left with its own close()').to.equal(false);
      expect(Object.hasOwn(server, 'emit'), 'the socket is left with its own emit()').to.equal(false);
      expect(scheduler.size).to.equal(0);
      expect(t.fake.countTimers()).to.equal(0);
    });
  });

  describe("a close the peer starts", () => {
    /** The peer sends its close frame and then never reads our answer, so it never ends its side of the connection. */
    function peerClosesAndLingers(client: ReturnType<typeof createSocketPair>['client']): void {
      client.close(1000, 'bye');
      client.stopReading();
    }

    it('is terminated closeTimeoutMs after the close frame when the peer keeps the connection open, and is no timeout', async () => {
      const reasons: string[] = [];
      const { client, manager } = setup({ onTimeout: (reason) => reasons.push(reason), config: { idleTimeoutMs: 0, pingIntervalMs: 1_000, pongTimeoutMs: 2_000, closeTimeoutMs: 500 } });
      manager.start();
      peerClosesAndLingers(client);
      await t.flush();
      expect(manager.state).to.equal('closing');
      await t.tickAsync(499);
      expect(manager.state).to.equal('closing');
      await t.tickAsync(1);
      expect(manager.state).to.equal('closed');
      await t.tickAsync(5_000); // well past the ping and pong deadlines: nothing more happens
      expect(reasons).to.deep.equal([]);
      expect(logs.find('WebSocket timeout')).to.equal(undefined);
      expect(logs.find('WebSocket closed')?.meta).to.include({ code: 1000, reason: 'bye' });
      expect(logs.find('WebSocket close handshake did not finish in time, terminating')?.meta).to.include({ closeTimeoutMs: 500, userId: 'user-1' });
    });

    it('gives no pong or idle verdict while the close is pending, however long closeTimeoutMs is', async () => {
      const reasons: string[] = [];
      const { client, manager } = setup(
        { onTimeout: (reason) => reasons.push(reason), config: { idleTimeoutMs: 1_500, pingIntervalMs: 1_000, pongTimeoutMs: 200, closeTimeoutMs: 5_000, resolutionMs: 100 } },
        { autoPong: false },
      );
      manager.start();
      await t.tickAsync(1_100);
      expect(client.pings).to.equal(1); // its pong would be overdue at 1.3 s, and the idle close due at 1.5 s
      peerClosesAndLingers(client);
      await t.tickAsync(4_999);
      expect(manager.state).to.equal('closing');
      expect(reasons).to.deep.equal([]);
      await t.tickAsync(1);
      expect(manager.state).to.equal('closed');
      expect(reasons).to.deep.equal([]);
      expect(logs.find('WebSocket timeout')).to.equal(undefined);
    });

    it("keeps the peer's deadline when gracefulClose is called during its close, and resolves 'terminated'", async () => {
      const { client, manager } = setup({ config: { closeTimeoutMs: 500 } });
      peerClosesAndLingers(client);
      await t.tickAsync(300);
      let outcome: unknown = 'pending';
      void manager.gracefulClose().then((o) => (outcome = o));
      await t.tickAsync(199);
      expect(outcome).to.equal('pending');
      await t.tickAsync(1);
      expect(outcome).to.equal('terminated');
      expect(manager.state).to.equal('closed');
    });

    it('bounds a closing state it did not see start (readyState only) from its next scheduler check', async () => {
      const reasons: string[] = [];
      const { server, manager } = setup({ onTimeout: (reason) => reasons.push(reason), config: { idleTimeoutMs: 1_000, pingIntervalMs: 10_000, closeTimeoutMs: 500 } });
      manager.start();
      server.readyState = 2; // CLOSING, with no close() call the manager could see
      await t.tickAsync(1_100); // the idle check finds the socket closing: no verdict, the bound starts
      expect(reasons).to.deep.equal([]);
      expect(manager.state).to.equal('closing');
      await t.tickAsync(500);
      expect(manager.state).to.equal('closed');
      expect(reasons).to.deep.equal([]);
    });
  });

  describe('logging', () => {
    it('logs connect and close with connection id, user id and close code', async () => {
      const { manager } = setup({ userId: 'alice' });
      await settles(t, manager.gracefulClose(1000), 'gracefulClose');
      expect(logs.find('WebSocket connected')?.meta).to.include({ connectionId: manager.id, userId: 'alice' });
      expect(logs.find('WebSocket closed')?.meta).to.include({ connectionId: manager.id, userId: 'alice', code: 1000 });
    });
  });
  describe('sends over maxBufferedBytes (slow consumers)', () => {
    const LIMIT = 10;
    const message = (i: number): string => `msg${String(i).padStart(2, '0')}`; // 5 bytes

    function sendMany(manager: WebSocketTimeoutManager, count: number): { results: unknown[]; all: Promise<boolean[]> } {
      const results: unknown[] = Array(count).fill('pending');
      const sends = Array.from({ length: count }, (_, i) => manager.sendTextWithTimeout(message(i)).then((r) => (results[i] = r)));
      return { results, all: Promise.all(sends) };
    }

    it('lets a client that reads a burst over the limit within the deadline have every message, in order, and stay open', async () => {
      const { client, manager, server } = setup({ maxBufferedBytes: LIMIT, config: { messageTimeoutMs: 1_000 } });
      client.stopReading(); // its TCP buffers are full for a moment, as during any burst
      const { results, all } = sendMany(manager, 20);
      expect(server.bufferedAmount).to.be.at.most(LIMIT + 5);
      await t.tickAsync(999);
      expect(results.every((r) => r === 'pending')).to.equal(true);
      client.startReading();
      expect(await all).to.deep.equal(Array(20).fill(true));
      expect(client.received).to.deep.equal(Array.from({ length: 20 }, (_, i) => message(i)));
      expect(manager.state).to.equal('open');
      expect(logs.find('WebSocket slow consumer')).to.equal(undefined);
    });

    it('closes a client that stopped reading with 4003 at the deadline of its oldest send, holding at most the limit plus one message meanwhile', async () => {
      const reasons: string[] = [];
      const { client, manager, server } = setup({ onTimeout: (reason) => reasons.push(reason), maxBufferedBytes: LIMIT, config: { messageTimeoutMs: 1_000 } });
      client.stopReading();
      const { results, all } = sendMany(manager, 20);
      await t.tickAsync(500);
      const late = manager.sendTextWithTimeout(message(20)); // its own deadline is later; the close ends it first
      expect(server.bufferedAmount).to.be.at.most(LIMIT + 5);
      await t.tickAsync(499);
      expect(manager.state).to.equal('open');
      expect(results.every((r) => r === 'pending')).to.equal(true);
      await t.tickAsync(1);
      expect(await all).to.deep.equal(Array(20).fill(false));
      expect(await late).to.equal(false);
      expect(reasons).to.deep.equal(['send_timeout']);
      expect(logs.find('WebSocket slow consumer')?.meta).to.include({ cause: 'send_deadline', messageTimeoutMs: 1_000, maxBufferedBytes: LIMIT });
      client.startReading();
      expect(await client.waitForClose()).to.deep.equal({ code: 4003, reason: 'send_timeout' });
      expect(t.fake.countTimers()).to.equal(0);
    });

    it("under 'refuse', fails each waiting send at its own deadline and keeps the connection", async () => {
      const { client, manager } = setup({ maxBufferedBytes: LIMIT, slowConsumerPolicy: 'refuse', config: { messageTimeoutMs: 1_000 } });
      client.stopReading();
      const first = sendMany(manager, 4);
      await t.tickAsync(500);
      const later = manager.sendTextWithTimeout('later');
      await t.tickAsync(500);
      expect(await first.all).to.deep.equal([false, false, false, false]);
      expect(manager.state).to.equal('open');
      client.startReading(); // in time for the later send
      expect(await later).to.equal(true);
      // The first three had been handed to the socket (up to the limit) before their deadline; the fourth had not.
      expect(client.received).to.deep.equal([message(0), message(1), message(2), 'later']);
    });

    it('fails waiting sends as soon as the connection ends, not at their deadlines', async () => {
      const { client, manager } = setup({ maxBufferedBytes: LIMIT, config: { messageTimeoutMs: 60_000 } });
      client.stopReading();
      const { all } = sendMany(manager, 5);
      manager.terminate();
      await t.flush();
      expect(await all).to.deep.equal(Array(5).fill(false));
      expect(t.fake.countTimers()).to.equal(0);
    });
  });
});
