// The sweeper lock. Its bus commands (acquire with a fencing token, compare-and-renew,
// compare-and-release, fenced writes) behave the same on the in-memory bus and on a real
// redis-server (the Lua scripts); the SweeperLock's expiry and renewal run under fake time.
import { expect } from 'chai';
import { BusUnavailableError, type FleetBus } from '../../lib/fleet/bus.js';
import { MemoryBusNetwork, type MemoryBus } from '../../lib/fleet/memory-bus.js';
import { RedisBus } from '../../lib/fleet/redis-bus.js';
import { SweeperLock } from '../../lib/fleet/sweeper-lock.js';
import { silentLogger } from '../../lib/logger.js';
import { createTestClock, type TestClock } from '../../lib/testing/clock.js';
import { captureLogs } from '../../lib/testing/log-capture.js';
import { RedisServer, requireRedisServer } from '../support/redis-server.js';

interface Backend {
  bus(): Promise<FleetBus>;
  /** Resolves once `key` (set with a short TTL) has expired. */
  expired(bus: FleetBus, key: string): Promise<void>;
  /** The TTL left on `key`, ms. */
  ttlOf(key: string): Promise<number>;
  takeDown(): Promise<void>;
  cleanup(): Promise<void>;
}

function commandTable(name: string, setUp: () => Promise<Backend>, shortTtlMs: number): void {
  describe(`${name}: the sweeper lock's bus commands`, () => {
    let b: Backend;
    let bus: FleetBus;
    let n = 0;
    let lock: string;
    let counter: string;
    beforeEach(async () => {
      b = await setUp();
      bus = await b.bus();
      n++;
      lock = `${name}:lock:${n}`;
      counter = `${name}:token:${n}`;
    });
    afterEach(async () => b.cleanup());

    it('acquireLock: the first caller gets the next fencing token, the key holds "<token>/<owner>", others get null', async () => {
      const other = await b.bus();
      expect(await bus.acquireLock(lock, counter, 'node-a', 60_000)).to.equal(1);
      expect(await other.acquireLock(lock, counter, 'node-b', 60_000)).to.equal(null);
      expect(await bus.getMany([lock])).to.deep.equal(['1/node-a']);
    });

    it('a lock that expired is taken by the next caller with a larger token', async () => {
      expect(await bus.acquireLock(lock, counter, 'node-a', shortTtlMs)).to.equal(1);
      await b.expired(bus, lock);
      expect(await bus.acquireLock(lock, counter, 'node-b', 60_000)).to.equal(2);
    });

    it('renewLock extends the TTL only while the key holds the fence value', async () => {
      await bus.acquireLock(lock, counter, 'node-a', 1_000);
      expect(await bus.renewLock({ key: lock, value: '1/node-b' }, 60_000)).to.equal(false);
      expect(await b.ttlOf(lock)).to.be.at.most(1_000);
      expect(await bus.renewLock({ key: lock, value: '1/node-a' }, 60_000)).to.equal(true);
      expect(await b.ttlOf(lock)).to.be.above(1_000);
    });

    it('releaseLock deletes the key only for its holder', async () => {
      await bus.acquireLock(lock, counter, 'node-a', 60_000);
      expect(await bus.releaseLock({ key: lock, value: '1/node-b' })).to.equal(false);
      expect(await bus.getMany([lock])).to.deep.equal(['1/node-a']);
      expect(await bus.releaseLock({ key: lock, value: '1/node-a' })).to.equal(true);
      expect(await bus.getMany([lock])).to.deep.equal([null]);
    });

    it('a fenced write is applied while the fence holds, and refused whole (nothing written) once another node holds the lock', async () => {
      await bus.acquireLock(lock, counter, 'node-a', 60_000);
      const fence = { key: lock, value: '1/node-a' };
      const hash = `${name}:hash:${n}`;
      const zset = `${name}:zset:${n}`;
      const set = `${name}:set:${n}`;
      expect(
        await bus.write([{ op: 'sadd', key: set, member: 's1' }, { op: 'hset', key: hash, field: 'f1', value: 'v1' }, { op: 'zadd', key: zset, member: 'm1', score: 5 }], fence),
      ).to.equal(true);
      await bus.releaseLock(fence);
      await bus.acquireLock(lock, counter, 'node-b', 60_000);
      expect(
        await bus.write([{ op: 'hset', key: hash, field: 'f2', value: 'v2' }, { op: 'hdel', key: hash, field: 'f1' }, { op: 'zrem', key: zset, member: 'm1' }, { op: 'srem', key: set, member: 's1' }], fence),
      ).to.equal(false);
      expect(await bus.setMembers(set)).to.deep.equal(['s1']);
      expect(await bus.write([{ op: 'srem', key: set, member: 's1' }])).to.equal(true);
      expect(await bus.setMembers(set)).to.deep.equal([]);
      expect(await bus.hashGet(hash, ['f1', 'f2'])).to.deep.equal(['v1', null]);
      expect(await bus.rangeByScore(zset, Infinity, 0, 10)).to.deep.equal(['m1']);
    });

    it('hashSample gives distinct pairs up to count; rangeByScore reads lowest first with offset and count', async () => {
      const hash = `${name}:hash:${n}`;
      const zset = `${name}:zset:${n}`;
      await bus.write([
        ...['a', 'b', 'c'].map((f) => ({ op: 'hset' as const, key: hash, field: f, value: f.toUpperCase() })),
        ...[['m3', 30], ['m1', 10], ['m2', 20], ['m4', 40]].map(([member, score]) => ({ op: 'zadd' as const, key: zset, member: String(member), score: Number(score) })),
      ]);
      const two = await bus.hashSample(hash, 2);
      expect(two).to.have.length(2);
      expect(new Set(two.map(([f]) => f)).size).to.equal(2);
      expect((await bus.hashSample(hash, 10)).sort()).to.deep.equal([['a', 'A'], ['b', 'B'], ['c', 'C']]);
      expect(await bus.hashSample(`${hash}:none`, 10)).to.deep.equal([]);
      expect(await bus.rangeByScore(zset, 30, 0, 10)).to.deep.equal(['m1', 'm2', 'm3']);
      expect(await bus.rangeByScore(zset, 30, 1, 1)).to.deep.equal(['m2']);
      expect(await bus.keys(hash)).to.deep.equal([hash]);
    });

    it('every command rejects BusUnavailableError while Redis is down', async () => {
      await b.takeDown();
      const fence = { key: lock, value: '1/x' };
      for (const call of [
        () => bus.acquireLock(lock, counter, 'a', 1000),
        () => bus.renewLock(fence, 1000),
        () => bus.releaseLock(fence),
        () => bus.write([], fence),
        () => bus.hashGet('h', ['f']),
        () => bus.hashSample('h', 1),
        () => bus.rangeByScore('z', 1, 0, 1),
      ]) {
        const error = await call().then(() => null, (e: unknown) => e);
        expect(error).to.be.instanceOf(BusUnavailableError);
      }
    });
  });
}

commandTable(
  'MemoryBus',
  async () => {
    const t = createTestClock();
    const network = new MemoryBusNetwork({ clock: t.clock, logger: silentLogger });
    return {
      bus: async () => network.bus(),
      expired: async () => t.tickAsync(60),
      ttlOf: async (key) => ttlLeft(network, key, t),
      takeDown: async () => network.takeDown(),
      cleanup: async () => undefined,
    };
  },
  50,
);

/** The TTL left on a key of the in-memory network (its expiry time is internal state). */
function ttlLeft(network: MemoryBusNetwork, key: string, t: TestClock): number {
  const entry = (network as unknown as { values: Map<string, { expiresAt: number }> }).values.get(key);
  return entry ? entry.expiresAt - t.now() : -2;
}

describe('RedisBus (real redis-server): the sweeper lock scripts', function () {
  let server: RedisServer;
  before(async function () {
    requireRedisServer(this);
    server = await RedisServer.start();
  });
  after(async () => server?.stop());

  commandTable(
    'RedisBus',
    async () => {
      const buses: RedisBus[] = [];
      const ready = async (bus: RedisBus) => {
        for (let i = 0; bus.status !== 'ready'; i++) {
          if (i > 1000) throw new Error('the RedisBus is not ready after 10 s');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        return bus;
      };
      return {
        async bus() {
          const bus = new RedisBus({ url: server.url, commandTimeoutMs: 1000, maxReconnectDelayMs: 100, logger: silentLogger });
          buses.push(bus);
          return ready(bus);
        },
        async expired(bus, key) {
          for (let i = 0; (await bus.getMany([key]))[0] !== null; i++) {
            if (i > 1000) throw new Error(`${key} did not expire within 10 s`);
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        },
        async ttlOf(key) {
          const { Redis } = await import('ioredis');
          const redis = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: true });
          try {
            return await redis.pttl(key);
          } finally {
            redis.disconnect();
          }
        },
        takeDown: () => server.stop(),
        async cleanup() {
          if (!server.running) await server.restart();
          await Promise.all(buses.map((bus) => bus.close()));
        },
      };
    },
    50,
  );
});

describe('SweeperLock (fake time, in-memory bus)', () => {
  const TTL = 3_000;
  let t: TestClock;
  let network: MemoryBusNetwork;
  let logs: ReturnType<typeof captureLogs>;
  const locks: SweeperLock[] = [];
  beforeEach(() => {
    t = createTestClock();
    logs = captureLogs();
    network = new MemoryBusNetwork({ clock: t.clock, logger: silentLogger });
  });
  afterEach(async () => {
    await Promise.all(locks.splice(0).map((lock) => lock.release()));
  });

  function lockOf(owner: string, bus: MemoryBus = network.bus()): SweeperLock {
    const lock = new SweeperLock({ bus, owner, ttlMs: TTL, clock: t.clock, logger: logs.logger });
    locks.push(lock);
    return lock;
  }

  it('one node holds it; the holder renews it, so another never gets it while the holder lives', async () => {
    const a = lockOf('node-a');
    const b = lockOf('node-b');
    const held = await a.acquire();
    expect(held?.token).to.equal(1);
    for (let i = 0; i < 10; i++) {
      await t.tickAsync(TTL);
      expect(await b.acquire(), `after ${i + 1} TTLs`).to.equal(null);
      expect(a.current).to.equal(held);
    }
  });

  it('a holder that dies is replaced within the TTL, by a larger token, and its fenced writes are refused', async () => {
    const busA = network.bus();
    const a = lockOf('node-a', busA);
    const b = lockOf('node-b');
    const held = (await a.acquire())!;
    const diedAt = t.now();
    await busA.close(); // no more renewals: the process is gone
    let taken = null;
    while (!taken && t.now() - diedAt <= TTL) {
      await t.tickAsync(100);
      taken = await b.acquire();
    }
    expect(taken, 'taken within the TTL').to.not.equal(null);
    expect(taken!.token).to.be.above(held.token);
    const stale = network.bus();
    expect(await stale.write([{ op: 'hset', key: 'h', field: 'f', value: 'v' }], held.fence)).to.equal(false);
    expect(await stale.write([{ op: 'hset', key: 'h', field: 'f', value: 'v' }], taken!.fence)).to.equal(true);
  });

  it('a holder that cannot renew (Redis down) stops believing it holds the lock after the TTL, and logs it', async () => {
    const a = lockOf('node-a');
    expect(await a.acquire()).to.not.equal(null);
    await t.tickAsync(TTL); // renewed every TTL / 3, the last one now
    network.takeDown();
    await t.tickAsync(TTL - 1);
    expect(a.current, 'still within the TTL').to.not.equal(null);
    await t.tickAsync(1);
    expect(a.current).to.equal(null);
    expect(logs.entries.find((e) => e.message === 'Sweeper lock lost')?.meta).to.include({ why: 'not renewed within the TTL', fencingToken: 1 });
  });

  it('a holder whose lock was taken learns it at the next renewal', async () => {
    const a = lockOf('node-a');
    const held = (await a.acquire())!;
    const bus = network.bus();
    await bus.del(held.fence.key); // as if it had expired during a stall
    expect(await lockOf('node-b', bus).acquire()).to.not.equal(null);
    await t.tickAsync(TTL / 3);
    expect(a.current).to.equal(null);
    expect(logs.entries.find((e) => e.message === 'Sweeper lock lost')?.meta).to.include({ why: 'taken by another node' });
  });

  it('release() lets another node take it at once', async () => {
    const a = lockOf('node-a');
    await a.acquire();
    await a.release();
    expect((await lockOf('node-b').acquire())?.token).to.equal(2);
  });

  it('acquire() resolves null, never rejects, while the bus is unavailable', async () => {
    network.takeDown();
    expect(await lockOf('node-a').acquire()).to.equal(null);
  });

  it('rejects a TTL that is not a whole number of ms, naming the option and the value', () => {
    expect(() => new SweeperLock({ bus: network.bus(), owner: 'a', ttlMs: 1.5 })).to.throw(RangeError, 'ttlMs must be a whole number of milliseconds from 3 to 2147483647, got 1.5');
  });
});
