// The sweeper under fake time on the in-memory bus: reaps the sessions of nodes that left the
// fleet in batches, runs the disconnect hook once per session (twice only for hooks in flight
// when a sweeper died), never fails a run for one session, one sweeper at a time.
import { expect } from 'chai';
import sinon from 'sinon';
import type { BusWrite, FleetBus } from '../../lib/fleet/bus.js';
import { fleetConnectionId, nodeIdOf } from '../../lib/fleet/ids.js';
import { MemoryBusNetwork, type MemoryBus } from '../../lib/fleet/memory-bus.js';
import { sessionKeys, sessionMember, type SessionRecord } from '../../lib/fleet/sessions.js';
import { Sweeper, type ReapInfo, type RemoteClose, type SweeperOptions } from '../../lib/fleet/sweeper.js';
import { silentLogger } from '../../lib/logger.js';
import { TimeoutMetrics } from '../../lib/metrics.js';
import { createTestClock, type TestClock } from '../../lib/testing/clock.js';
import { captureLogs } from '../../lib/testing/log-capture.js';

const keys = sessionKeys('ws-timeouts');
const DEAD = 'node-dead@1000';
const LIVE = 'node-live@2000';
const TTL = 3_000;

describe('Sweeper (fake time, in-memory bus)', () => {
  let t: TestClock;
  let network: MemoryBusNetwork;
  let logs: ReturnType<typeof captureLogs>;
  let metrics: TimeoutMetrics;
  let live: Set<string>;
  let hooks: Array<{ session: SessionRecord; info: ReapInfo }>;
  const sweepers: Sweeper[] = [];

  beforeEach(() => {
    t = createTestClock();
    network = new MemoryBusNetwork({ clock: t.clock, logger: silentLogger });
    logs = captureLogs();
    metrics = new TimeoutMetrics();
    live = new Set([LIVE]);
    hooks = [];
  });
  afterEach(async () => {
    const stopped = Promise.all(sweepers.splice(0).map((s) => s.stop()));
    await t.tickAsync(10_000); // a sweep left in a hook that never settles ends at hookTimeoutMs
    await stopped;
  });

  function sweeperOf(nodeId: string, options: Partial<SweeperOptions> = {}, bus: FleetBus = network.bus()): Sweeper {
    const sweeper = new Sweeper({
      bus,
      nodeId,
      liveInstances: async () => live,
      onDisconnect: (session, info) => void hooks.push({ session, info }),
      batchSize: 10,
      intervalMs: 1_000,
      lockTtlMs: TTL,
      clock: t.clock,
      logger: logs.logger,
      metrics,
      ...options,
    });
    sweepers.push(sweeper);
    return sweeper;
  }

  function record(instance: string, i: number, lastActivityAt = t.now()): SessionRecord {
    const nodeId = nodeIdOf(instance)!;
    return {
      fleetId: fleetConnectionId(instance, `c${i}`),
      nodeId,
      instance,
      connectionId: `c${i}`,
      userId: `user-${i}`,
      labels: { role: i % 2 === 0 ? 'speaker' : 'listener' },
      openedAt: t.now() - 60_000,
      lastActivityAt,
    };
  }

  async function seed(instance: string, count: number, lastActivityAt?: number): Promise<SessionRecord[]> {
    const records = Array.from({ length: count }, (_, i) => record(instance, i, lastActivityAt));
    await network.bus().write([
      { op: 'sadd', key: keys.instances, member: instance },
      ...records.flatMap((r): BusWrite[] => [
        { op: 'hset', key: keys.records(instance), field: r.connectionId, value: JSON.stringify(r) },
        { op: 'zadd', key: keys.activity, member: sessionMember(instance, r.connectionId), score: r.lastActivityAt },
      ]),
    ]);
    return records;
  }

  const left = async (instance: string) => (await network.bus().hashSample(keys.records(instance), 1_000)).length;
  const runsOf = (fleetId: string) => hooks.filter((h) => h.session.fleetId === fleetId);
  const counter = async (name: string) => (await metrics.register.getSingleMetricAsString(`ws_timeouts_${name}`)).split('\n').filter((l) => !l.startsWith('#'));

  it('reaps every record of a node that left the fleet, batchSize at a time, running the hook once per session with its record', async () => {
    const dead = await seed(DEAD, 25);
    await seed(LIVE, 5);
    const bus = network.bus();
    const sample = sinon.spy(bus, 'hashSample');
    const write = sinon.spy(bus, 'write');
    const result = await sweeperOf('node-a', {}, bus).sweep();
    expect(result).to.deep.include({ fencingToken: 1, checked: 25, reaped: 25, errors: 0, repeated: 0, lockLost: false });
    expect(sample.args.map(([, count]) => count)).to.deep.equal([10, 10, 10, 10]);
    expect(write.args.map(([writes]) => writes.length), 'claim writes of 10, 10, 5, each followed by its delete write, then the instance unlisted').to.deep.equal([10, 30, 10, 30, 5, 15, 1]);
    expect(write.args.every(([, fence]) => fence?.value.startsWith('1/node-a#')), 'every write fenced').to.equal(true);
    for (const r of dead) {
      expect(runsOf(r.fleetId), r.fleetId).to.have.length(1);
      expect(runsOf(r.fleetId)[0]).to.deep.equal({ session: r, info: { code: 1006, reason: 'node_gone', fencingToken: 1, repeated: false } });
    }
    expect(hooks).to.have.length(25);
    expect(await left(DEAD)).to.equal(0);
    expect(await left(LIVE), 'a live node keeps its records').to.equal(5);
    expect(await network.bus().rangeByScore(keys.activity, Infinity, 0, 100)).to.have.length(5);
    expect(await network.bus().keys(keys.claims)).to.deep.equal([]);
    expect(await network.bus().setMembers(keys.instances)).to.deep.equal([LIVE]);
  });

  it('logs and counts each reaped session as a local close, and the run as a cleanup run', async () => {
    await seed(DEAD, 3);
    await sweeperOf('node-a').sweep();
    const closed = logs.entries.filter((e) => e.message === 'WebSocket closed');
    expect(closed).to.have.length(3);
    expect(closed[0]!.meta).to.include({ connectionId: 'node-dead@1000:c0', userId: 'user-0', role: 'speaker', code: 1006, reason: 'node_gone', source: 'sweeper', fencingToken: 1 });
    expect(logs.entries.find((e) => e.message === 'Session sweep completed')?.meta).to.include({ cleanupCount: 3, sessionsChecked: 3, errorsEncountered: 0 });
    expect(await counter('connections_checked_total')).to.deep.equal(['ws_timeouts_connections_checked_total 3']);
    expect(await counter('cleanup_runs_total')).to.deep.equal(['ws_timeouts_cleanup_runs_total 1']);
  });

  it('a hook that throws, rejects or hangs is logged and counted; every other hook runs and every record is deleted', async () => {
    const dead = await seed(DEAD, 12);
    const sweeper = sweeperOf('node-a', {
      hookTimeoutMs: 5_000,
      onDisconnect: (session) => {
        if (session.connectionId === 'c1') throw new Error('store down');
        if (session.connectionId === 'c2') return Promise.reject(new Error('store refused'));
        if (session.connectionId === 'c3') return new Promise<void>(() => undefined);
        hooks.push({ session, info: {} as ReapInfo });
      },
    });
    const sweep = sweeper.sweep();
    await t.tickAsync(5_000);
    expect(await sweep).to.deep.include({ reaped: 12, errors: 3 });
    expect(hooks.map((h) => h.session.connectionId).sort()).to.deep.equal(dead.map((r) => r.connectionId).filter((id) => !['c1', 'c2', 'c3'].includes(id)).sort());
    const failed = logs.entries.filter((e) => e.message === 'onDisconnect hook failed');
    expect(failed.map((e) => e.meta.connectionId).sort()).to.deep.equal(['node-dead@1000:c1', 'node-dead@1000:c2', 'node-dead@1000:c3']);
    expect(failed.every((e) => e.meta.errorCode === 'WS_TIMEOUTS_ERR_SESSION_STORE')).to.equal(true);
    expect(await counter('cleanup_errors_total')).to.deep.equal(['ws_timeouts_cleanup_errors_total 3']);
    expect(await left(DEAD)).to.equal(0);
  });

  it('only the lock holder sweeps; another node never sweeps while it lives', async () => {
    const a = sweeperOf('node-a');
    const b = sweeperOf('node-b');
    const sweepsA = sinon.spy(a, 'sweep');
    const sweepsB = sinon.spy(b, 'sweep');
    a.start();
    await t.flush();
    b.start();
    for (let round = 0; round < 20; round++) {
      await seed(`node-gone-${round}@1`, 3);
      await t.tickAsync(1_000);
    }
    const results = async (spy: sinon.SinonSpy) => (await Promise.all(spy.returnValues)).filter((r) => r !== null);
    expect((await results(sweepsA)).length).to.be.at.least(20);
    expect(await results(sweepsB)).to.deep.equal([]);
    expect(hooks).to.have.length(60);
    expect(new Set(hooks.map((h) => h.session.fleetId)).size).to.equal(60);
  });

  it('a sweeper that dies mid-hook is replaced within the lock TTL; its in-flight sessions run again (repeated, counted), all others once', async () => {
    const dead = await seed(DEAD, 25);
    const busA = network.bus();
    const inFlight = new Set<string>();
    const a = sweeperOf('node-a', {
        onDisconnect: (s) => {
          inFlight.add(s.fleetId);
          return new Promise<void>(() => undefined); // never settles: the process dies first
        },
      }, busA);
    void a.sweep();
    await t.flush();
    expect(inFlight.size, 'the first batch is in its hooks').to.equal(10);
    await busA.close(); // the process dies: no renewal, no more writes
    const diedAt = t.now();
    const b = sweeperOf('node-b');
    b.start();
    while (hooks.length < 25 && t.now() - diedAt <= TTL) await t.tickAsync(100);
    expect(t.now() - diedAt, 'replaced within the TTL').to.be.at.most(TTL);
    expect(await left(DEAD)).to.equal(0);
    for (const r of dead) {
      const runs = runsOf(r.fleetId);
      expect(runs, r.fleetId).to.have.length(1);
      expect(runs[0]!.info.repeated, r.fleetId).to.equal(inFlight.has(r.fleetId));
      expect(runs[0]!.info.fencingToken).to.equal(2);
    }
    expect(logs.entries.find((e) => e.message === 'Session sweep completed' && e.meta.fencingToken === 2)?.meta).to.include({ repeatedHooks: 10, cleanupCount: 25 });
  });

  it('a stale sweeper (its lock taken during a stall) runs no hook: its claim is refused and the run stops', async () => {
    await seed(DEAD, 5);
    const a = sweeperOf('node-a');
    const held = (await a.lock.acquire())!;
    const other = network.bus();
    await other.del(held.fence.key); // expired while node-a was stalled
    expect(await other.acquireLock(held.fence.key, 'ws-timeouts:sweeper:token', 'node-b', TTL)).to.equal(2);
    const result = await a.sweep();
    expect(result).to.deep.include({ fencingToken: 1, reaped: 0, lockLost: true });
    expect(hooks).to.deep.equal([]);
    expect(await left(DEAD)).to.equal(5);
    expect(logs.entries.some((e) => e.message === 'Session sweep stopped: the sweeper lock was lost')).to.equal(true);
  });

  it('never reaps when the membership cannot be read', async () => {
    await seed(DEAD, 5);
    const result = await sweeperOf('node-a', { liveInstances: () => Promise.reject(new Error('bus unavailable')) }).sweep();
    expect(result).to.deep.include({ reaped: 0 });
    expect(hooks).to.deep.equal([]);
    expect(await left(DEAD)).to.equal(5);
    expect(logs.entries.find((e) => e.message === 'Session sweep failed; the next sweep retries')).to.not.equal(undefined);
  });

  describe('sessions past the session timeout', () => {
    const TIMEOUT = 60_000;

    it('asks the live node that holds one to close it (notice, 4001), and counts it as an idle close by role', async () => {
      await seed(LIVE, 2, t.now() - TIMEOUT);
      const close = sinon.stub<Parameters<RemoteClose>, ReturnType<RemoteClose>>().resolves('closed');
      const result = await sweeperOf('node-a', { sessionTimeoutMs: TIMEOUT, close }).sweep();
      expect(close.args.map(([id, opts]) => [id, opts.code, opts.reason])).to.deep.equal([
        ['node-live@2000:c0', 4001, 'idle_timeout'],
        ['node-live@2000:c1', 4001, 'idle_timeout'],
      ]);
      expect(close.firstCall.args[1].notice).to.deep.include({ type: 'connectionTimeout', reason: 'idle' });
      expect(result).to.deep.include({ closedRemotely: 2, reaped: 0 });
      expect(hooks, 'the node that closes it runs its own hook').to.deep.equal([]);
      expect(await counter('timeouts_total')).to.deep.equal([
        'ws_timeouts_timeouts_total{reason="idle",role="speaker"} 1',
        'ws_timeouts_timeouts_total{reason="idle",role="listener"} 1',
      ]);
    });

    it('reaps one its live node no longer holds (answered gone in two sweeps), with the idle hook', async () => {
      const [r] = await seed(LIVE, 1, t.now() - TIMEOUT);
      const close = sinon.stub<Parameters<RemoteClose>, ReturnType<RemoteClose>>().resolves('gone');
      const sweeper = sweeperOf('node-a', { sessionTimeoutMs: TIMEOUT, close });
      await sweeper.sweep();
      expect(hooks, 'a close may be on its way: not yet').to.deep.equal([]);
      await t.tickAsync(1_000);
      await sweeper.sweep();
      expect(hooks).to.deep.equal([{ session: r, info: { code: 4001, reason: 'idle_timeout', timeoutReason: 'idle', fencingToken: 1, repeated: false } }]);
      expect(await left(LIVE)).to.equal(0);
    });

    it('leaves recent sessions alone', async () => {
      await seed(LIVE, 3, t.now() - TIMEOUT + 1);
      const close = sinon.stub<Parameters<RemoteClose>, ReturnType<RemoteClose>>().resolves('closed');
      await sweeperOf('node-a', { sessionTimeoutMs: TIMEOUT, close }).sweep();
      expect(close.callCount).to.equal(0);
    });
  });

  it('rejects bad options, naming the option and the value', () => {
    expect(() => sweeperOf('a', { batchSize: 0 })).to.throw(RangeError, 'batchSize must be a whole number of sessions from 1 to 2147483647, got 0');
    expect(() => sweeperOf('a', { intervalMs: -1 })).to.throw(RangeError, 'intervalMs must be a whole number of milliseconds from 1 to 2147483647, got -1');
    expect(() => sweeperOf('a', { onDisconnect: 'x' as never })).to.throw(TypeError, 'onDisconnect must be a function, got string');
  });
});
