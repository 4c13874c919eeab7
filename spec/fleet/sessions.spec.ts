// Session records under fake time on the in-memory bus: one record per open connection, written
// within one flush interval of the open, removed after the close, activity flushed in batches.
import { expect } from 'chai';
import sinon from 'sinon';
import type { TimeoutConfig } from '../../lib/config.js';
import { MemoryBusNetwork, type MemoryBus } from '../../lib/fleet/memory-bus.js';
import { sessionKeys, SessionTracker, type SessionRecord } from '../../lib/fleet/sessions.js';
import { silentLogger } from '../../lib/logger.js';
import { ConnectionRegistry } from '../../lib/registry.js';
import { createTestClock, type TestClock } from '../../lib/testing/clock.js';
import { captureLogs } from '../../lib/testing/log-capture.js';
import { createSocketPair } from '../../lib/testing/socket-pair.js';

const CONFIG: Partial<TimeoutConfig> = { idleTimeoutMs: 0, connectionTimeoutMs: 0, pingIntervalMs: 25_000, pongTimeoutMs: 60_000, resolutionMs: 100 };
const FLUSH_MS = 2_000;
const STARTED_AT = 1_699_000_000_000;
const keys = sessionKeys('ws-timeouts');
const RECORDS = keys.records(`node-a@${STARTED_AT}`);

describe('SessionTracker (session records)', () => {
  let t: TestClock;
  let network: MemoryBusNetwork;
  let bus: MemoryBus;
  let registry: ConnectionRegistry;
  let tracker: SessionTracker;
  let logs: ReturnType<typeof captureLogs>;

  beforeEach(() => {
    t = createTestClock();
    logs = captureLogs();
    network = new MemoryBusNetwork({ clock: t.clock, logger: silentLogger });
    bus = network.bus();
    registry = new ConnectionRegistry({ clock: t.clock, logger: silentLogger, config: CONFIG });
    tracker = new SessionTracker({ bus, registry, nodeId: 'node-a', startedAt: STARTED_AT, flushIntervalMs: FLUSH_MS, logger: logs.logger });
  });
  afterEach(async () => {
    await tracker.stop();
    await registry.stop();
  });

  function connect(userId: string, role = 'listener') {
    const { server, client } = createSocketPair({ clock: t.clock });
    const manager = registry.add(server, { userId, labels: { role } });
    return { manager, client };
  }

  async function recordsInRedis(): Promise<Record<string, SessionRecord>> {
    const entries = await bus.hashSample(RECORDS, 10_000);
    return Object.fromEntries(entries.map(([field, value]) => [field, JSON.parse(value) as SessionRecord]));
  }

  it('writes a record per open connection within one flush interval: node, fleet id, user, labels, opened, last activity', async () => {
    tracker.start();
    await t.flush();
    const { manager } = connect('alice', 'speaker');
    expect(await recordsInRedis()).to.deep.equal({});
    await t.tickAsync(FLUSH_MS);
    expect(await recordsInRedis()).to.deep.equal({
      [manager.id]: {
        fleetId: `node-a@${STARTED_AT}:${manager.id}`,
        nodeId: 'node-a',
        instance: `node-a@${STARTED_AT}`,
        connectionId: manager.id,
        userId: 'alice',
        labels: { role: 'speaker' },
        openedAt: manager.connectedAt,
        lastActivityAt: manager.connectedAt,
      },
    });
    expect(await bus.rangeByScore(keys.activity, Infinity, 0, 10)).to.deep.equal([`node-a@${STARTED_AT}/${manager.id}`]);
    expect(await bus.setMembers(keys.instances), 'the instances the sweeper looks at').to.deep.equal([`node-a@${STARTED_AT}`]);
  });

  it('removes the record within one flush interval of the close', async () => {
    tracker.start();
    const { client } = connect('alice');
    const { manager: bob } = connect('bob');
    await t.tickAsync(FLUSH_MS);
    client.close();
    await t.tickAsync(FLUSH_MS);
    expect(Object.keys(await recordsInRedis())).to.deep.equal([bob.id]);
    expect(await bus.rangeByScore(keys.activity, Infinity, 0, 10)).to.deep.equal([`node-a@${STARTED_AT}/${bob.id}`]);
  });

  it('flushes last activity in one write per interval, never per message, only for sessions that had activity', async () => {
    tracker.start();
    const a = connect('alice');
    connect('bob');
    await t.tickAsync(FLUSH_MS);
    const write = sinon.spy(bus, 'write');
    for (let i = 0; i < 100; i++) {
      a.client.send(`message ${i}`);
      await t.tickAsync(10);
    }
    expect(write.callCount, 'writes during 1 s of messages').to.equal(0);
    await t.tickAsync(FLUSH_MS);
    expect(write.callCount).to.equal(1);
    const writes = write.firstCall.args[0];
    expect(writes.map((w) => w.op), 'the instance listed, its record and activity').to.deep.equal(['sadd', 'hset', 'zadd']);
    expect((await recordsInRedis())[a.manager.id]!.lastActivityAt).to.equal(a.manager.lastActivityAt);
    await t.tickAsync(FLUSH_MS * 5);
    expect(write.callCount, 'no activity, nothing written').to.equal(1);
  });

  it('writes what a failed flush missed at the next one, after the bus is back (logged once)', async () => {
    tracker.start();
    await t.flush();
    network.takeDown();
    const { manager } = connect('alice');
    await t.tickAsync(FLUSH_MS * 3);
    expect(logs.entries.filter((e) => e.message === 'Session records not written; retrying every flush')).to.have.length(1);
    network.bringUp();
    await t.tickAsync(FLUSH_MS);
    expect(Object.keys(await recordsInRedis())).to.deep.equal([manager.id]);
  });

  it('stop() writes the removals of connections closed just before it', async () => {
    tracker.start();
    const { client } = connect('alice');
    await t.tickAsync(FLUSH_MS);
    client.close();
    await t.flush();
    await tracker.stop();
    expect(await recordsInRedis()).to.deep.equal({});
  });

  it('rejects a flush interval that is not a whole number of ms, naming the option and the value', () => {
    expect(() => new SessionTracker({ bus, registry, nodeId: 'n', startedAt: 1, flushIntervalMs: 0.5 })).to.throw(
      RangeError,
      'flushIntervalMs must be a whole number of milliseconds from 1 to 2147483647, got 0.5',
    );
  });
});
