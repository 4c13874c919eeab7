import { expect } from 'chai';
import sinon from 'sinon';
import { ConnectionRegistry, ESTIMATED_SESSION_BYTES, type RegistryOptions } from '../lib/registry.js';
import { SessionCleanupError, SessionStoreError } from '../lib/errors.js';
import { TimeoutMetrics } from '../lib/metrics.js';
import type { ManagerOptions, WebSocketTimeoutManager } from '../lib/manager.js';
import { createSocketPair, type TestClient } from '../lib/testing/socket-pair.js';
import { createTestClock, type TestClock } from '../lib/testing/clock.js';
import { captureLogs } from '../lib/testing/log-capture.js';
import { settles } from './support/settles.js';
import type { TimeoutConfig } from '../lib/config.js';

// Every test runs on its own fake clock, injected: no global is touched, no real time passes.
// Deadlines are driven by the registry's scheduler on that clock (resolution 100 ms).
const BASE: Partial<TimeoutConfig> = {
  idleTimeoutMs: 60_000,
  connectionTimeoutMs: 0,
  pingIntervalMs: 25_000,
  pongTimeoutMs: 60_000,
  closeTimeoutMs: 5_000,
  messageTimeoutMs: 1_000,
  resolutionMs: 100,
};

describe('ConnectionRegistry', () => {
  let t: TestClock;
  let logs: ReturnType<typeof captureLogs>;

  beforeEach(() => {
    t = createTestClock();
    logs = captureLogs();
  });

  function createRegistry(options: RegistryOptions = {}, config: Partial<TimeoutConfig> = {}) {
    return new ConnectionRegistry({
      clock: t.clock,
      logger: logs.logger,
      ...options,
      config: { ...BASE, ...config },
    });
  }

  function connect(registry: ConnectionRegistry, options?: ManagerOptions, pairOptions = {}) {
    const { server, client } = createSocketPair(pairOptions);
    const manager = registry.add(server, options);
    return { server, client, manager };
  }

  function connectMany(registry: ConnectionRegistry, n: number, pairOptions = {}) {
    return Array.from({ length: n }, () => connect(registry, undefined, pairOptions));
  }

  describe('#add()', () => {
    it('tracks the connection and logs "WebSocket connected" with its id, user id and the connection count', () => {
      const registry = createRegistry();
      const { manager } = connect(registry, { userId: 'alice' });
      connect(registry);
      expect(registry.size).to.equal(2);
      expect([...registry.managers()][0]).to.equal(manager);
      const connected = logs.entries.filter((e) => e.message === 'WebSocket connected');
      expect(connected).to.have.length(2);
      expect(connected[0]?.meta).to.include({ connectionId: manager.id, userId: 'alice', totalConnections: 1 });
      expect(connected[1]?.meta).to.include({ totalConnections: 2 });
    });

    it("takes a string as the user id, as the manager does: registry.add(ws, 'alice')", () => {
      const registry = createRegistry();
      const { server } = createSocketPair();
      const manager = registry.add(server, 'alice');
      expect(manager.userId).to.equal('alice');
      expect(logs.find('WebSocket connected')?.meta).to.include({ userId: 'alice' });
    });

    it('refuses options that are neither an object nor a user id string, naming what to pass', () => {
      const registry = createRegistry();
      for (const bad of [42, true, ['alice']]) {
        const { server } = createSocketPair();
        expect(() => registry.add(server, bad as unknown as string)).to.throw(TypeError, /ConnectionRegistry#add: options must be a ManagerOptions object/);
      }
      expect(registry.size).to.equal(0);
    });

    it('gives every manager the same frozen config and the same options object', () => {
      const registry = createRegistry();
      const [a, b] = connectMany(registry, 2);
      expect(a!.manager.config).to.equal(registry.config);
      expect(b!.manager.config).to.equal(registry.config);
      expect(Object.isFrozen(registry.config)).to.equal(true);
      const options = (m: WebSocketTimeoutManager) => (m as unknown as { options: ManagerOptions }).options;
      expect(options(a!.manager)).to.equal(options(b!.manager));
    });

    it('runs no timer per socket: 200 sockets share the one scheduler timer', () => {
      const registry = createRegistry();
      connectMany(registry, 200);
      expect(registry.scheduler.size).to.equal(200);
      expect(t.fake.countTimers()).to.equal(1);
    });

    it('starts automatic enforcement: closes an idle socket with the notice and 4001, within one resolution', async () => {
      const registry = createRegistry();
      const { client } = connect(registry);
      await t.tickAsync(59_999);
      expect(client.closeFrame).to.equal(null);
      await t.tickAsync(101);
      expect(client.closeFrame).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      expect(client.receivedJson()[0]).to.include({ type: 'connectionTimeout', reason: 'idle', message: 'Connection closed due to inactivity', idleSeconds: 60 });
      expect(registry.size).to.equal(0);
      expect(registry.timeoutsByReason.idle).to.equal(1);
    });

    it('drops a connection once it closes and logs one "WebSocket closed" line with the close code and count', async () => {
      const registry = createRegistry();
      const { client, manager } = connect(registry, { userId: 'bob' });
      client.close(1000, 'bye');
      await t.flush();
      expect(registry.size).to.equal(0);
      expect(logs.entries.filter((e) => e.message === 'WebSocket closed')).to.have.length(1);
      expect(logs.find('WebSocket closed')?.meta).to.include({
        connectionId: manager.id,
        userId: 'bob',
        code: 1000,
        reason: 'bye',
        totalConnections: 0,
      });
    });

    it('drops a peer that sent its close frame and keeps the connection open after closeTimeoutMs, counting no timeout', async () => {
      const onDisconnect = sinon.spy();
      const registry = createRegistry({ onDisconnect }, { pingIntervalMs: 1_000, pongTimeoutMs: 1_000, idleTimeoutMs: 3_000 });
      const { client } = connect(registry, { pingPhase: 0 }, { autoPong: false });
      await t.tickAsync(1_500); // a ping is outstanding: its pong is due at 2 s, and the idle close at 3 s
      client.close(1000, 'bye');
      client.stopReading(); // never reads the answer, so never ends its side
      await t.tickAsync(4_999);
      expect(registry.size).to.equal(1);
      await t.tickAsync(1);
      expect(registry.size).to.equal(0);
      expect(registry.timeoutsByReason).to.deep.equal({ idle: 0, max_lifetime: 0, pong_timeout: 0, send_timeout: 0 });
      expect(onDisconnect.firstCall.args[1]).to.deep.equal({ code: 1000, reason: 'bye' });
    });

    it('applies per-connection options: labels, user id and a config resolved on top of the registry config', () => {
      const registry = createRegistry();
      const { manager } = connect(registry, { userId: 'carol', labels: { role: 'speaker' }, config: { idleTimeoutMs: 5_000 } });
      expect(manager.labels).to.deep.equal({ role: 'speaker' });
      expect(manager.config.idleTimeoutMs).to.equal(5_000);
      expect(manager.config.pingIntervalMs).to.equal(25_000);
    });

    it("runs the registry's callbacks and then the connection's own", async () => {
      const onClose = sinon.spy();
      const shared = sinon.spy();
      const registry = createRegistry({ managerOptions: { onClose: shared } });
      const { client } = connect(registry, { onClose });
      client.close(1000);
      await t.flush();
      expect(onClose.calledOnce).to.equal(true);
      expect(shared.called).to.equal(false);
      expect(registry.size).to.equal(0);
    });

    it("keeps its books before the user's callbacks run: onTimeout sees the timeout counted, onClose the connection gone", async () => {
      const seen: unknown[] = [];
      const registry = createRegistry({
        managerOptions: {
          onTimeout: (reason, manager) => seen.push(['timeout', reason, registry.timeoutsByReason[reason], registry.size, manager.id]),
          onClose: (code, _reason, manager) => seen.push(['close', code, registry.size, manager.id]),
        },
      });
      const { manager } = connect(registry);
      await t.tickAsync(60_000 + 100);
      await t.flush();
      expect(seen).to.deep.equal([
        ['timeout', 'idle', 1, 1, manager.id],
        ['close', 4001, 0, manager.id],
      ]);
    });

    it('writes one connect and one close line per connection, with totalConnections, whatever managerOptions.logConnections says', async () => {
      for (const logConnections of [true, false, undefined]) {
        logs = captureLogs();
        const registry = createRegistry({ managerOptions: { logConnections } });
        const { client } = connect(registry, { userId: 'dan' });
        connect(registry, { logConnections: true });
        client.close(1000);
        await t.flush();
        const lines = logs.entries.filter((e) => e.message === 'WebSocket connected' || e.message === 'WebSocket closed');
        expect(lines.map((e) => [e.message, e.meta?.totalConnections]), `logConnections: ${String(logConnections)}`).to.deep.equal([
          ['WebSocket connected', 1],
          ['WebSocket connected', 2],
          ['WebSocket closed', 1],
        ]);
      }
    });

    it("keeps the registry's managerOptions value for a per-connection option set to undefined", () => {
      const registry = createRegistry({ managerOptions: { labels: { role: 'listener' } } });
      const { manager } = connect(registry, { userId: 'erin', labels: undefined });
      expect(manager.labels).to.deep.equal({ role: 'listener' });
    });

    it('keeps enforcing a socket whose onCheck or onPong callback throws, and logs it', async () => {
      const boom = () => {
        throw new Error('metrics backend down');
      };
      const registry = createRegistry({ managerOptions: { onCheck: boom, onPong: boom, pingPhase: 0 } }, { pingIntervalMs: 1_000, idleTimeoutMs: 5_000 });
      const { client } = connect(registry);
      await t.tickAsync(5_101);
      expect(client.pings).to.be.at.least(4);
      expect(client.closeFrame?.code).to.equal(4001);
      expect(logs.find('onCheck callback threw')?.level).to.equal('error');
      expect(logs.find('onPong callback threw')?.level).to.equal('error');
    });

    it('does not track a socket that is already closed', () => {
      const registry = createRegistry();
      const { server } = createSocketPair();
      server.readyState = 3;
      const manager = registry.add(server);
      expect(manager.state).to.equal('closed');
      expect(registry.size).to.equal(0);
    });
  });

  describe('ping spreading', () => {
    /**
     * Pings sent per 100 ms scheduler tick. The first window is 1 ms long: a tick runs in the
     * check phase, which the fake clock places 1 ms after the tick's timer.
     */
    async function pingsPerTick(clients: TestClient[], windows: number): Promise<number[]> {
      const total = () => clients.reduce((sum, c) => sum + c.pings, 0);
      const counts: number[] = [];
      let before = total();
      for (let i = 0; i < windows; i++) {
        await t.tickAsync(i === 0 ? 1 : 100);
        const now = total();
        counts.push(now - before);
        before = now;
      }
      return counts;
    }

    /** The registry's 'random' phase, drawn from an even sequence so the spread is exact. */
    function evenDraws(n: number): () => number {
      let i = 0;
      return () => (i++ % n) / n;
    }

    it('spreads the first pings of sockets accepted together across the ping interval', async () => {
      const registry = createRegistry({ managerOptions: { random: evenDraws(200) } }, { pingIntervalMs: 1_000, idleTimeoutMs: 0 });
      const clients = connectMany(registry, 200).map((c) => c.client);
      const counts = (await pingsPerTick(clients, 11)).slice(1);
      expect(counts.reduce((a, b) => a + b, 0)).to.equal(200);
      expect(counts).to.deep.equal(Array(10).fill(20)); // all 200 in one tick without the phase
    });

    it('keeps pings spread after an event-loop stall, after one catch-up tick', async () => {
      const registry = createRegistry({ managerOptions: { random: evenDraws(200) } }, { pingIntervalMs: 1_000, pongTimeoutMs: 5_000, idleTimeoutMs: 0 });
      const clients = connectMany(registry, 200).map((c) => c.client);
      await t.tickAsync(1_000);
      // 1 s: the event loop blocks for 3 s; no timer runs, every socket's ping falls due.
      t.fake.setSystemTime(t.now() + 3_000);
      const counts = await pingsPerTick(clients, 11);
      expect(counts.slice(1).reduce((a, b) => a + b, 0)).to.equal(200);
      expect(counts[0]).to.equal(200); // the catch-up tick
      expect(counts.slice(1)).to.deep.equal(Array(10).fill(20));
    });

    it("draws each socket's phase at random by default", async () => {
      const registry = createRegistry({}, { pingIntervalMs: 1_000, idleTimeoutMs: 0 });
      const clients = connectMany(registry, 200).map((c) => c.client);
      const counts = (await pingsPerTick(clients, 11)).slice(1);
      expect(counts.reduce((a, b) => a + b, 0)).to.equal(200);
      expect(Math.max(...counts)).to.be.below(60); // ~20 a tick
    });

    it("leaves the phase to managerOptions.pingPhase when it is set", async () => {
      const registry = createRegistry({ managerOptions: { pingPhase: 0 } }, { pingIntervalMs: 1_000, idleTimeoutMs: 0 });
      const clients = connectMany(registry, 50).map((c) => c.client);
      const counts = await pingsPerTick(clients, 11);
      expect(counts[10]).to.equal(50);
    });
  });

  describe('#remove()', () => {
    it('stops tracking a connection without closing it', () => {
      const registry = createRegistry();
      const { manager } = connect(registry);
      expect(registry.remove(manager)).to.equal(true);
      expect(registry.remove(manager)).to.equal(false);
      expect(registry.size).to.equal(0);
      expect(manager.state).to.equal('open');
    });
  });

  describe('#broadcast()', () => {
    it('sends a string as text and anything else as JSON to every open connection', async () => {
      const registry = createRegistry();
      const pairs = connectMany(registry, 3);
      expect(await settles(t, registry.broadcast('hello'), 'broadcast')).to.deep.equal({ sent: 3, failed: 0 });
      expect(await settles(t, registry.broadcast({ type: 'scan', ticketId: 'T-1' }), 'broadcast')).to.deep.equal({ sent: 3, failed: 0 });
      for (const { client } of pairs) expect(client.received).to.deep.equal(['hello', '{"type":"scan","ticketId":"T-1"}']);
    });

    it('marks activity on every recipient, postponing its idle close', async () => {
      const registry = createRegistry();
      const { client } = connect(registry);
      await t.tickAsync(50_000);
      await settles(t, registry.broadcast('still there?'), 'broadcast');
      await t.tickAsync(50_000);
      expect(client.closeFrame).to.equal(null);
      await t.tickAsync(10_100);
      expect(client.closeFrame?.code).to.equal(4001);
    });

    it('only sends to the connections the filter accepts', async () => {
      const registry = createRegistry();
      const speaker = connect(registry, { labels: { role: 'speaker' } });
      const listener = connect(registry, { labels: { role: 'listener' } });
      const result = await settles(t, registry.broadcast('hi', { filter: (m) => m.labels?.role === 'listener' }), 'broadcast');
      expect(result).to.deep.equal({ sent: 1, failed: 0 });
      expect(listener.client.received).to.deep.equal(['hi']);
      expect(speaker.client.received).to.deep.equal([]);
    });

    it('closes, counts and drops a recipient whose send misses the deadline, and still delivers to the others', async () => {
      const registry = createRegistry({ managerOptions: { slowConsumerPolicy: 'refuse' } });
      const [slow, ok] = connectMany(registry, 2);
      slow!.client.stopReading();
      const result = registry.broadcast('news', { timeoutMs: 200 });
      await t.tickAsync(200);
      expect(await settles(t, result, 'broadcast')).to.deep.equal({ sent: 1, failed: 1 });
      expect(ok!.client.received).to.deep.equal(['news']);
      slow!.client.startReading();
      await t.flush();
      expect(slow!.client.closeFrame).to.deep.equal({ code: 4003, reason: 'send_timeout' });
      expect(registry.size).to.equal(1);
      expect(logs.find('Broadcast failed for 1 recipient(s)')?.meta).to.include({ sent: 1, failed: 1 });
    });

    it('counts a recipient whose socket errors on send as failed, and never rejects', async () => {
      const registry = createRegistry();
      const [dead, ok] = connectMany(registry, 2);
      dead!.server.send = (_data, cb) => queueMicrotask(() => cb?.(new Error('write EPIPE')));
      expect(await settles(t, registry.broadcast({ n: 1 }), 'broadcast')).to.deep.equal({ sent: 1, failed: 1 });
      expect(ok!.client.received).to.deep.equal(['{"n":1}']);
      expect(dead!.manager.state).to.not.equal('open');
    });

    it('skips connections that are closing', async () => {
      const registry = createRegistry();
      const [closing] = connectMany(registry, 2, { answerClose: false });
      void closing!.manager.gracefulClose();
      expect(await settles(t, registry.broadcast('x'), 'broadcast')).to.deep.equal({ sent: 1, failed: 0 });
    });

    it('resolves { sent: 0, failed: 0 } for data that cannot be serialised, and logs it', async () => {
      const registry = createRegistry();
      connect(registry);
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      expect(await settles(t, registry.broadcast(circular), 'broadcast')).to.deep.equal({ sent: 0, failed: 0 });
      expect(await settles(t, registry.broadcast(undefined), 'broadcast')).to.deep.equal({ sent: 0, failed: 0 });
      expect(logs.find('Broadcast failed: data is not serialisable to JSON')).to.not.equal(undefined);
    });

    it('skips a recipient whose filter throws, and logs it', async () => {
      const registry = createRegistry();
      connectMany(registry, 2);
      let calls = 0;
      const result = await registry.broadcast('x', {
        filter: () => {
          if (calls++ === 0) throw new Error('bad filter');
          return true;
        },
      });
      expect(result).to.deep.equal({ sent: 1, failed: 0 });
      expect(logs.find('Broadcast filter threw; skipping that recipient')).to.not.equal(undefined);
    });

    it('rejects a negative timeoutMs with a RangeError naming it', async () => {
      const registry = createRegistry();
      let error: unknown;
      await settles(t, registry.broadcast('x', { timeoutMs: -1 }), 'broadcast').catch((err) => (error = err));
      expect(error).to.be.instanceOf(RangeError);
      expect((error as Error).message).to.match(/timeoutMs.*-1/);
    });
  });

  describe('#start() and #stop()', () => {
    it('logs "Started session expiry with 30.0 minute timeout" and runs onStart once: start is idempotent', async () => {
      const onStart = sinon.spy();
      const registry = createRegistry({ onStart }, { idleTimeoutMs: 1_800_000 });
      registry.start();
      registry.start();
      await t.flush();
      expect(onStart.calledOnceWith(registry)).to.equal(true);
      const started = logs.entries.filter((e) => e.message === 'Started session expiry with 30.0 minute timeout');
      expect(started).to.have.length(1);
      expect(started[0]!.meta).to.include({ idleTimeoutMs: 1_800_000, resolutionMs: 100 });
    });

    it('stop() pauses enforcement of every socket and logs "Stopped session expiry"; start() resumes it', async () => {
      const onStop = sinon.spy();
      const registry = createRegistry({ onStop }, { idleTimeoutMs: 1_000 });
      registry.start();
      const { client } = connect(registry);
      await settles(t, registry.stop(), 'registry.stop()');
      expect(onStop.calledOnce).to.equal(true);
      expect(logs.find('Stopped session expiry')).to.not.equal(undefined);
      const late = connect(registry);
      await t.tickAsync(5_000);
      expect(client.closeFrame).to.equal(null);
      expect(late.client.closeFrame).to.equal(null);
      expect(registry.scheduler.size).to.equal(0);
      registry.start();
      await t.tickAsync(101);
      expect(client.closeFrame?.code).to.equal(4001);
      expect(late.client.closeFrame?.code).to.equal(4001);
    });

    it('stop() stops the cleanup scheduler and leaves connections open', async () => {
      const registry = createRegistry();
      connect(registry);
      registry.startCleanupScheduler(1_000);
      await settles(t, registry.stop(), 'registry.stop()');
      expect(registry.getSessionMetrics().cleanupSchedulerRunning).to.equal(false);
      expect(registry.size).to.equal(1);
      expect(t.fake.countTimers()).to.equal(0);
    });

    it('logs a throwing onStart or onStop hook and carries on', async () => {
      const registry = createRegistry({
        onStart: () => {
          throw new Error('boom');
        },
        onStop: () => Promise.reject(new Error('bang')),
      });
      registry.start();
      await t.flush();
      await settles(t, registry.stop(), 'registry.stop()');
      expect(logs.find('onStart hook failed')?.level).to.equal('error');
      expect(logs.find('onStop hook failed')?.level).to.equal('error');
    });

    it('waits for pending onDisconnect hooks, at most closeTimeoutMs', async () => {
      let finished = false;
      const registry = createRegistry({
        onDisconnect: async () => {
          await new Promise((resolve) => t.clock.setTimeout(() => resolve(undefined), 1_000));
          finished = true;
        },
      });
      const { client } = connect(registry);
      client.close(1000);
      await t.flush();
      let stopped = false;
      void registry.stop().then(() => (stopped = true));
      await t.tickAsync(999);
      expect(stopped).to.equal(false);
      await t.tickAsync(1);
      expect(finished).to.equal(true);
      expect(stopped).to.equal(true);
    });
  });

  describe('the idle handler pattern', () => {
    it('sends the notice, closes with 4001, then runs onDisconnect asynchronously with the timeout reason', async () => {
      const order: string[] = [];
      const registry = createRegistry({
        onDisconnect: (manager, info) => {
          order.push(`disconnect ${info.code} ${info.timeoutReason}`);
          expect(registry.size).to.equal(0);
        },
        managerOptions: { onClose: () => order.push('close') },
      });
      const { client } = connect(registry);
      await t.tickAsync(60_100);
      expect(client.receivedJson()[0]).to.deep.include({ type: 'connectionTimeout', message: 'Connection closed due to inactivity', idleSeconds: 60 });
      expect(order).to.deep.equal(['close', 'disconnect 4001 idle']);
    });

    it('counts a peer that is already gone as closed: it is terminated after closeTimeoutMs', async () => {
      const onDisconnect = sinon.spy();
      const registry = createRegistry({ onDisconnect });
      const { client } = connect(registry);
      client.vanish();
      await t.tickAsync(60_100 + 5_000);
      expect(registry.size).to.equal(0);
      expect(onDisconnect.firstCall.args[1]).to.deep.equal({ code: 1006, reason: '', timeoutReason: 'idle' });
    });

    it('logs an onDisconnect failure as a SessionStoreError with the cause, and other closes go on', async () => {
      let calls = 0;
      const registry = createRegistry({
        onDisconnect: async () => {
          if (calls++ === 0) throw new Error('store unavailable');
        },
      });
      const [a, b] = connectMany(registry, 2);
      a!.client.close(1000);
      b!.client.close(1000);
      await t.flush();
      expect(calls).to.equal(2);
      const failed = logs.find('onDisconnect hook failed');
      expect(failed?.meta.error).to.be.instanceOf(SessionStoreError);
      expect((failed?.meta.cause as Error).message).to.equal('store unavailable');
      expect(failed?.meta.connectionId).to.equal(a!.manager.id);
      expect(registry.getSessionMetrics().hookErrors).to.equal(1);
    });

    it('counts timeouts by role and reason, idle detected, and as connections closed only those closed for inactivity', async () => {
      const metrics = new TimeoutMetrics();
      const registry = createRegistry({ metrics }, { pingIntervalMs: 1_000, pongTimeoutMs: 2_000, idleTimeoutMs: 10_000 });
      connect(registry, { labels: { role: 'speaker' } });
      connect(registry, { labels: { role: 'listener' } });
      connect(registry, { labels: { role: 'listener' } }, { autoPong: false });
      await t.tickAsync(10_100);
      const timeouts = (await metrics.timeouts.get()).values.map((v) => [v.labels.reason, v.labels.role, v.value]);
      expect(timeouts).to.have.deep.members([
        ['idle', 'speaker', 1],
        ['idle', 'listener', 1],
        ['pong_timeout', 'listener', 1],
      ]);
      expect((await metrics.idleDetected.get()).values[0]!.value).to.equal(2);
      expect((await metrics.connectionsClosed.get()).values[0]!.value).to.equal(2); // not the pong timeout
      // Connections checked counts what sweeps (cleanup runs) examine, never scheduler visits: none ran.
      expect((await metrics.connectionsChecked.get()).values[0]!.value).to.equal(0);
      expect((await metrics.activeConnections.get()).values[0]!.value).to.equal(0);
      expect(registry.timeoutsByReason).to.deep.equal({ idle: 2, max_lifetime: 0, pong_timeout: 1, send_timeout: 0 });
    });
  });

  describe('lifetime jitter and reconnect notice (managerOptions)', () => {
    it('takes up to lifetimeJitterMs off each connection, so a fleet does not reconnect at once', async () => {
      const draws = [0, 0.5, 0.99];
      let i = 0;
      const registry = createRegistry(
        { managerOptions: { lifetimeJitterMs: 60_000, pingPhase: 0, random: () => draws[i++ % 3]! } },
        { idleTimeoutMs: 0, connectionTimeoutMs: 600_000 },
      );
      const pairs = connectMany(registry, 3);
      expect(pairs.map((p) => p.manager.lifetimeMs)).to.deep.equal([600_000, 570_000, 540_600]);
      await t.tickAsync(540_700);
      expect(pairs.map((p) => p.client.closeFrame?.code ?? null)).to.deep.equal([null, null, 4002]);
      await t.tickAsync(60_000);
      expect(pairs.map((p) => p.client.closeFrame?.code)).to.deep.equal([4002, 4002, 4002]);
      expect(registry.timeoutsByReason.max_lifetime).to.equal(3);
    });

    it('advises every connection to reconnect reconnectNoticeMs before its lifetime close', async () => {
      const registry = createRegistry({ managerOptions: { reconnectNoticeMs: 30_000 } }, { idleTimeoutMs: 0, connectionTimeoutMs: 120_000 });
      const { client } = connect(registry);
      await t.tickAsync(89_999);
      expect(client.receivedJson()).to.deep.equal([]);
      await t.tickAsync(101);
      expect(client.receivedJson()[0]).to.include({ type: 'reconnectAdvised', reason: 'max_lifetime' });
      await t.tickAsync(30_000);
      expect(client.closeFrame?.code).to.equal(4002);
    });
  });

  describe('#cleanupInactiveSessions()', () => {
    it('closes the sessions inactive for maxAgeMs with the notice and 4001, and resolves how many', async () => {
      const registry = createRegistry({}, { idleTimeoutMs: 0 });
      const [idle1, idle2, busy] = connectMany(registry, 3);
      await t.tickAsync(30_000);
      busy!.client.send('hello');
      await t.flush();
      expect(await settles(t, registry.cleanupInactiveSessions(20_000), 'the cleanup run')).to.equal(2);
      for (const pair of [idle1!, idle2!]) {
        expect(pair.client.closeFrame).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
        expect(pair.client.receivedJson()[0]).to.include({ type: 'connectionTimeout', reason: 'idle', idleSeconds: 20 });
      }
      expect(busy!.client.closeFrame).to.equal(null);
      expect(registry.size).to.equal(1);
      expect(registry.timeoutsByReason.idle).to.equal(2);
    });

    it("defaults maxAgeMs to sessionTimeoutMs, which defaults to the config's idle timeout", async () => {
      const registry = createRegistry({}, { idleTimeoutMs: 60_000 });
      expect(registry.sessionTimeoutMs).to.equal(60_000);
      registry.stop(); // no automatic enforcement: the cleanup alone expires sessions
      connectMany(registry, 2);
      await t.tickAsync(59_000);
      expect(await settles(t, registry.cleanupInactiveSessions(), 'the cleanup run')).to.equal(0);
      await t.tickAsync(1_000);
      expect(await settles(t, registry.cleanupInactiveSessions(), 'the cleanup run')).to.equal(2);
    });

    it('closes nothing when the session timeout is 0', async () => {
      const registry = createRegistry({ sessionTimeoutMs: 0 }, { idleTimeoutMs: 0 });
      connectMany(registry, 2);
      await t.tickAsync(600_000);
      expect(await settles(t, registry.cleanupInactiveSessions(), 'the cleanup run')).to.equal(0);
      expect(registry.size).to.equal(2);
    });

    it('works batchSize sessions at a time, yielding to the event loop between batches', async () => {
      const registry = createRegistry({ batchSize: 50 }, { idleTimeoutMs: 0 });
      const pairs = connectMany(registry, 120, { answerClose: false });
      await t.tickAsync(10_000);
      const closed = () => pairs.filter((p) => p.client.closeFrame !== null).length;
      const run = registry.cleanupInactiveSessions(5_000);
      await t.flush();
      expect(closed()).to.equal(50); // the yield waits for the check phase (a fake setImmediate here)
      await t.tickAsync(2);
      expect(closed()).to.equal(120);
      // The peers never answer the close frame: each is terminated after closeTimeoutMs.
      await t.tickAsync(5_000);
      expect(await settles(t, run, 'the cleanup run')).to.equal(120);
    });

    it('survives a session that fails to close: counts and logs a SessionCleanupError with the cause, and cleans the rest', async () => {
      const registry = createRegistry({}, { idleTimeoutMs: 0 });
      const [bad, ...good] = connectMany(registry, 4);
      sinon.stub(bad!.manager, 'gracefulClose').rejects(new Error('socket in a bad state'));
      await t.tickAsync(10_000);
      expect(await settles(t, registry.cleanupInactiveSessions(5_000), 'the cleanup run')).to.equal(3);
      for (const pair of good) expect(pair.client.closeFrame?.code).to.equal(4001);
      const failure = logs.entries.find((e) => e.meta.error instanceof SessionCleanupError);
      expect(failure?.meta).to.include({ connectionId: bad!.manager.id, errorCode: 'WS_TIMEOUTS_ERR_SESSION_CLEANUP' });
      expect((failure?.meta.cause as Error).message).to.equal('socket in a bad state');
      expect(registry.getSessionMetrics()).to.include({ cleanupErrors: 1, sessionsCleaned: 3, cleanupRuns: 1 });
    });

    it('is safe while sessions connect and disconnect during a run', async () => {
      const registry = createRegistry({ batchSize: 10 }, { idleTimeoutMs: 0 });
      const pairs = connectMany(registry, 40);
      await t.tickAsync(10_000);
      const run = registry.cleanupInactiveSessions(5_000);
      await t.flush();
      // Between batches: 10 of the not-yet-visited sessions leave, 10 new ones arrive.
      for (const pair of pairs.slice(30)) pair.client.close(1000);
      const newcomers = connectMany(registry, 10);
      expect(await settles(t, run, 'the cleanup run', 10_000)).to.equal(30);
      expect(registry.size).to.equal(10);
      for (const pair of newcomers) expect(pair.client.closeFrame).to.equal(null);
    });

    it('logs one structured line with the count, duration and errors, and no session data', async () => {
      const registry = createRegistry({}, { idleTimeoutMs: 0 });
      connect(registry, { userId: 'secret-user', labels: { token: 'abc' } });
      connect(registry);
      await t.tickAsync(10_000);
      await settles(t, registry.cleanupInactiveSessions(5_000), 'the cleanup run');
      const line = logs.find('Session cleanup completed');
      expect(line?.level).to.equal('info');
      expect(line?.meta).to.include({ cleanupCount: 2, errorsEncountered: 0, sessionsChecked: 2, maxAgeMs: 5_000 });
      expect(line?.meta.memoryFreedMb).to.equal(Math.round(((2 * ESTIMATED_SESSION_BYTES) / 1_048_576) * 1000) / 1000);
      expect(line?.meta.durationMs).to.be.a('number');
      expect(JSON.stringify(line?.meta)).to.not.match(/secret-user|abc/);
    });

    it('never overlaps runs: a call made during a run starts after it', async () => {
      const registry = createRegistry({ batchSize: 1 }, { idleTimeoutMs: 0 });
      connectMany(registry, 3);
      await t.tickAsync(10_000);
      const first = registry.cleanupInactiveSessions(5_000);
      const second = registry.cleanupInactiveSessions(5_000);
      expect(await settles(t, first, 'the first cleanup run', 10_000)).to.equal(3);
      expect(await settles(t, second, 'the second cleanup run', 10_000)).to.equal(0);
      expect(registry.getSessionMetrics().cleanupRuns).to.equal(2);
    });

    it('rejects a negative or NaN maxAgeMs with a RangeError naming it', () => {
      const registry = createRegistry();
      expect(() => registry.cleanupInactiveSessions(-5)).to.throw(RangeError, /maxAgeMs.*-5/);
      expect(() => registry.cleanupInactiveSessions(NaN)).to.throw(RangeError, /maxAgeMs.*NaN/);
    });
  });

  describe('#startCleanupScheduler() and #stopCleanupScheduler()', () => {
    it('runs a cleanup every intervalMs until stopped, with one timer for the whole registry', async () => {
      const registry = createRegistry({ sessionTimeoutMs: 1_500 }, { idleTimeoutMs: 0 });
      const [a] = connectMany(registry, 3);
      registry.startCleanupScheduler(1_000);
      expect(logs.find('Started session cleanup scheduler')?.meta).to.include({ intervalMs: 1_000, sessionTimeoutMs: 1_500 });
      await t.tickAsync(1_000);
      expect(registry.getSessionMetrics().cleanupRuns).to.equal(1);
      expect(a!.client.closeFrame).to.equal(null);
      await t.tickAsync(1_000);
      expect(registry.getSessionMetrics()).to.include({ cleanupRuns: 2, sessionsCleaned: 3 });
      expect(a!.client.closeFrame?.code).to.equal(4001);
      registry.stopCleanupScheduler();
      expect(logs.find('Stopped session cleanup scheduler')).to.not.equal(undefined);
      await t.tickAsync(5_000);
      expect(registry.getSessionMetrics().cleanupRuns).to.equal(2);
    });

    it('restarts with the new interval when called again', async () => {
      const registry = createRegistry();
      registry.startCleanupScheduler(1_000);
      registry.startCleanupScheduler(3_000);
      await t.tickAsync(2_999);
      expect(registry.getSessionMetrics().cleanupRuns).to.equal(0);
      await t.tickAsync(1);
      expect(registry.getSessionMetrics().cleanupRuns).to.equal(1);
      registry.stopCleanupScheduler();
    });

    it('rejects an intervalMs of 0 with a RangeError naming it', () => {
      const registry = createRegistry();
      expect(() => registry.startCleanupScheduler(0)).to.throw(RangeError, /intervalMs.*got 0/);
    });
  });

  describe('#getSessionMetrics()', () => {
    it('reports active and expired sessions, cleanup runs, average duration, memory and timeouts by reason', async () => {
      const registry = createRegistry({ sessionTimeoutMs: 10_000 }, { idleTimeoutMs: 0 });
      expect(registry.getSessionMetrics()).to.deep.include({ activeSessions: 0, lastCleanupTime: null, averageSessionDurationMs: 0, memoryUsageMb: 0 });
      const [a, b] = connectMany(registry, 3);
      await t.tickAsync(4_000);
      a!.client.close(1000);
      await t.tickAsync(4_000);
      b!.client.close(1000);
      await t.tickAsync(4_000);
      await settles(t, registry.cleanupInactiveSessions(60_000), 'the cleanup run');
      const metrics = registry.getSessionMetrics();
      expect(metrics).to.deep.include({
        activeSessions: 1,
        expiredSessions: 1, // inactive for 12 s > sessionTimeoutMs
        closedSessions: 2,
        cleanupRuns: 1,
        lastCleanupTime: t.now(),
        averageSessionDurationMs: 6_000,
        timeoutsByReason: { idle: 0, max_lifetime: 0, pong_timeout: 0, send_timeout: 0 },
      });
      expect(metrics.memoryUsageMb).to.be.closeTo(ESTIMATED_SESSION_BYTES / 1_048_576, 0.001);
    });
  });

  describe('#closeAll()', () => {
    it('closes every connection with 1001 going_away in parallel, each bounded by closeTimeoutMs', async () => {
      const registry = createRegistry();
      const pairs = connectMany(registry, 3);
      const stuck = connect(registry, undefined, { answerClose: false });
      let done = false;
      void registry.closeAll().then(() => (done = true));
      await t.flush();
      for (const pair of pairs) expect(pair.client.closeFrame).to.deep.equal({ code: 1001, reason: 'going_away' });
      expect(registry.size).to.equal(1);
      await t.tickAsync(4_999);
      expect(done).to.equal(false);
      await t.tickAsync(1);
      expect(done).to.equal(true);
      expect(stuck.manager.state).to.equal('closed');
      expect(registry.size).to.equal(0);
    });
  });

  describe('#snapshot()', () => {
    it('describes each connection: ages, idle time left (null when disabled) and round-trip times', async () => {
      const registry = createRegistry({}, { pingIntervalMs: 1_000, resolutionMs: 100 });
      const { manager } = connect(registry, { userId: 'dana', labels: { role: 'listener' } });
      connect(registry, { config: { idleTimeoutMs: 0 } });
      await t.tickAsync(5_000);
      const [first, second] = registry.snapshot();
      expect(first).to.deep.equal({
        id: manager.id,
        userId: 'dana',
        labels: { role: 'listener' },
        connectedAt: manager.connectedAt,
        ageMs: 5_000,
        idleMs: 5_000,
        idleRemainingMs: 55_000,
        lifetimeRemainingMs: null,
        lastRttMs: 0,
        smoothedRttMs: 0,
        state: 'open',
      });
      expect(second!.idleRemainingMs).to.equal(null);
      expect(second!.userId).to.equal(null);
    });
  });

  describe('options', () => {
    it('rejects a bad batchSize, degradedThreshold or sessionTimeoutMs, naming the option and value', () => {
      expect(() => createRegistry({ batchSize: 0 })).to.throw(RangeError, /batchSize must be a positive integer, got 0/);
      expect(() => createRegistry({ degradedThreshold: -1 })).to.throw(RangeError, /degradedThreshold.*-1/);
      expect(() => createRegistry({ sessionTimeoutMs: -1 })).to.throw(RangeError, /sessionTimeoutMs.*-1/);
    });

    it("rejects a pingPhase outside [0, 1) naming it", () => {
      const registry = createRegistry({ managerOptions: { pingPhase: 1 } });
      expect(() => connect(registry)).to.throw(RangeError, /pingPhase.*got 1/);
    });
  });
});
