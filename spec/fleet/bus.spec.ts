// One behaviour table for both fleet buses: MemoryBus under fake time, RedisBus against a real
// redis-server of its own. What the fleet relies on from a bus holds for both, faults included.
import { expect } from 'chai';
import type { Context } from 'mocha';
import { BusUnavailableError, type BusStatus, type FleetBus } from '../../lib/fleet/bus.js';
import { MemoryBusNetwork, type MemoryBus } from '../../lib/fleet/memory-bus.js';
import { RedisBus } from '../../lib/fleet/redis-bus.js';
import { redactRedisUrl } from '../../lib/fleet/settings.js';
import { createTestClock, type TestClock } from '../../lib/testing/clock.js';
import { silentLogger } from '../../lib/logger.js';
import { RedisServer, requireRedisServer } from '../support/redis-server.js';

// The buses' command deadline; a stalled RedisBus also probes at this pace until Redis answers.
const DEADLINE_MS = 250;

interface Harness {
  /** A new bus on the shared backend (a node's connection to Redis), once it is ready. */
  bus(): Promise<FleetBus>;
  /** Lets `ms` of the harness's time pass (fake or real). */
  wait(ms: number): Promise<void>;
  /** Waits until `condition` holds, failing with `what` after a bound. */
  eventually(condition: () => boolean | Promise<boolean>, what: string): Promise<void>;
  takeDown(): Promise<void>;
  bringUp(): Promise<void>;
  stall(): void;
  resume(): void;
  deafen(bus: FleetBus): void;
  /** Proves the TTL: the key is there before it and gone after. */
  checkExpiry(bus: FleetBus, key: string): Promise<void>;
  cleanup(): Promise<void>;
}

function memoryHarness(): Harness {
  const t: TestClock = createTestClock();
  const network = new MemoryBusNetwork({ clock: t.clock, commandTimeoutMs: DEADLINE_MS, logger: silentLogger });
  const buses: MemoryBus[] = [];
  return {
    bus: async () => {
      const bus = network.bus();
      buses.push(bus);
      return bus;
    },
    wait: (ms) => t.tickAsync(ms),
    async eventually(condition, what) {
      for (let ms = 0; ms <= 5_000; ms += 10) {
        if (await condition()) return;
        await t.tickAsync(10);
      }
      throw new Error(`${what}: not within 5000 ms of fake time`);
    },
    takeDown: async () => network.takeDown(),
    bringUp: async () => network.bringUp({ empty: true }),
    stall: () => network.stall(),
    resume: () => network.bringUp(),
    deafen: (bus) => (bus as MemoryBus).deafen(),
    async checkExpiry(bus, key) {
      await bus.setWithTtl(key, 'v', 1_000);
      await t.tickAsync(999);
      expect(await bus.getMany([key])).to.deep.equal(['v']);
      await t.tickAsync(1);
      expect(await bus.getMany([key])).to.deep.equal([null]);
      expect(await bus.keys(key)).to.deep.equal([]);
    },
    cleanup: async () => {
      await Promise.all(buses.map((bus) => bus.close()));
    },
  };
}

function redisHarness(server: RedisServer): Harness {
  const buses: RedisBus[] = [];
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  return {
    async bus() {
      const bus = new RedisBus({ url: server.url, commandTimeoutMs: DEADLINE_MS, maxReconnectDelayMs: 100, logger: silentLogger });
      buses.push(bus);
      await this.eventually(() => bus.status === 'ready', 'the new bus is ready');
      return bus;
    },
    wait: sleep,
    async eventually(condition, what) {
      const end = Date.now() + 10_000;
      while (!(await condition())) {
        if (Date.now() > end) throw new Error(`${what}: not within 10 s`);
        await sleep(10);
      }
    },
    takeDown: () => server.stop(),
    bringUp: () => server.restart(),
    stall: () => server.pause(),
    resume: () => server.resume(),
    deafen: (bus) => (bus as RedisBus).deafen(),
    async checkExpiry(bus, key) {
      await bus.setWithTtl(`${key}:long`, 'kept', 60_000);
      await bus.setWithTtl(key, 'v', 50);
      await this.eventually(async () => (await bus.getMany([key]))[0] === null, 'the 50 ms key expired');
      expect(await bus.getMany([`${key}:long`])).to.deep.equal(['kept']);
      expect(await bus.keys(key)).to.deep.equal([`${key}:long`]);
    },
    cleanup: async () => {
      server.resume();
      if (!server.running) await server.restart();
      await Promise.all(buses.map((bus) => bus.close()));
    },
  };
}

/** Every call of the bus, each of which must reject `BusUnavailableError` while the bus is down. */
const EVERY_CALL: Record<string, (bus: FleetBus) => Promise<unknown>> = {
  publish: (bus) => bus.publish('c', 'm'),
  subscribe: (bus) => bus.subscribe('c', () => undefined),
  setWithTtl: (bus) => bus.setWithTtl('k', 'v', 1000),
  getMany: (bus) => bus.getMany(['k']),
  keys: (bus) => bus.keys('k'),
  del: (bus) => bus.del('k'),
  setAdd: (bus) => bus.setAdd('s', 'm'),
  setMembers: (bus) => bus.setMembers('s'),
  setRemove: (bus) => bus.setRemove('s', 'm'),
};

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('resolved, expected a BusUnavailableError'),
    (error: unknown) => error,
  );
}

function behaviourTable(name: string, setUp: (context: Context) => Promise<Harness>): void {
  describe(`${name}: the FleetBus behaviour table`, function () {
    let h: Harness;
    let n = 0;
    /** A key or channel name no other test uses (the Redis server lives for the whole suite). */
    const unique = (what: string) => `${name}:${what}:${++n}`;
    /** Messages `bus` hears on `channel`, in order. */
    async function listen(bus: FleetBus, channel: string) {
      const heard: string[] = [];
      const unsubscribe = await bus.subscribe(channel, (message) => heard.push(message));
      return { heard, unsubscribe };
    }

    beforeEach(async function () {
      h = await setUp(this);
    });
    afterEach(async () => h?.cleanup());

    it('publish reaches every subscriber of the channel once, the publisher included, and no other channel', async () => {
      const [a, b] = [await h.bus(), await h.bus()];
      const channel = unique('ch');
      const onA = await listen(a, channel);
      const onB = await listen(b, channel);
      const other = await listen(b, unique('other'));
      await a.publish(channel, 'one');
      await a.publish(channel, 'two');
      await h.eventually(() => onA.heard.length === 2 && onB.heard.length === 2, 'both heard two messages');
      await h.wait(50);
      expect(onA.heard).to.deep.equal(['one', 'two']);
      expect(onB.heard).to.deep.equal(['one', 'two']);
      expect(other.heard).to.deep.equal([]);
    });

    it('unsubscribe stops delivery to that handler only', async () => {
      const [a, b] = [await h.bus(), await h.bus()];
      const channel = unique('ch');
      const first = await listen(b, channel);
      const second = await listen(b, channel);
      await first.unsubscribe();
      await a.publish(channel, 'after');
      await h.eventually(() => second.heard.length === 1, 'the remaining handler heard it');
      await h.wait(50);
      expect(first.heard).to.deep.equal([]);
    });

    it('setWithTtl, getMany in order with null for a missing key, del', async () => {
      const bus = await h.bus();
      const [k1, k2, missing] = [unique('k'), unique('k'), unique('k')];
      await bus.setWithTtl(k1, 'v1', 60_000);
      await bus.setWithTtl(k2, 'v2', 60_000);
      expect(await bus.getMany([k2, missing, k1])).to.deep.equal(['v2', null, 'v1']);
      expect(await bus.getMany([])).to.deep.equal([]);
      await bus.del(k1);
      await bus.del(missing);
      expect(await bus.getMany([k1, k2])).to.deep.equal([null, 'v2']);
    });

    it('setAdd, setMembers, setRemove: a set of distinct members, empty when missing, gone with del', async () => {
      const bus = await h.bus();
      const set = unique('set');
      expect(await bus.setMembers(set)).to.deep.equal([]);
      await bus.setAdd(set, 'a');
      await bus.setAdd(set, 'b');
      await bus.setAdd(set, 'a');
      expect((await bus.setMembers(set)).sort()).to.deep.equal(['a', 'b']);
      await bus.setRemove(set, 'a');
      await bus.setRemove(set, 'not there');
      expect(await bus.setMembers(set)).to.deep.equal(['b']);
      await bus.del(set);
      expect(await bus.setMembers(set)).to.deep.equal([]);
    });

    it('a key expires at its TTL', async () => {
      await h.checkExpiry(await h.bus(), unique('ttl'));
    });

    it('keys(prefix) lists the live keys with that plain prefix (glob characters are literal)', async () => {
      const bus = await h.bus();
      const prefix = unique('p*[x]?');
      await bus.setWithTtl(`${prefix}a`, '1', 60_000);
      await bus.setWithTtl(`${prefix}b`, '2', 60_000);
      await bus.setWithTtl(`${prefix.replace('*', 'Z')}c`, 'not mine', 60_000);
      expect((await bus.keys(prefix)).sort()).to.deep.equal([`${prefix}a`, `${prefix}b`]);
    });

    it('down: status turns unavailable and every call rejects BusUnavailableError at once; back up: ready, subscriptions restored', async () => {
      const [a, b] = [await h.bus(), await h.bus()];
      await h.eventually(() => a.status === 'ready' && b.status === 'ready', 'both buses ready');
      const seen: BusStatus[] = [];
      b.onStatus((status) => seen.push(status));
      const channel = unique('ch');
      const onB = await listen(b, channel);

      await h.takeDown();
      await h.eventually(() => a.status === 'unavailable' && b.status === 'unavailable', 'both buses unavailable');
      expect(seen).to.deep.equal(['unavailable']);
      for (const [op, call] of Object.entries(EVERY_CALL)) {
        const startedAt = Date.now();
        const error = await rejection(call(a));
        expect(error, op).to.be.instanceOf(BusUnavailableError);
        expect((error as BusUnavailableError).code).to.equal('WS_TIMEOUTS_ERR_BUS_UNAVAILABLE');
        expect(Date.now() - startedAt, `${op} waited for the deadline`).to.be.below(DEADLINE_MS);
      }

      await h.bringUp();
      await h.eventually(() => a.status === 'ready' && b.status === 'ready', 'both buses ready again');
      expect(seen).to.deep.equal(['unavailable', 'ready']);
      await a.publish(channel, 'after the fault');
      await h.eventually(() => onB.heard.length === 1, 'the old subscription heard a message published after recovery');
      expect(onB.heard).to.deep.equal(['after the fault']);
    });

    it('stalled: a call rejects BusUnavailableError at the deadline, then every call at once; resumed: ready, subscriptions work', async () => {
      const [a, b] = [await h.bus(), await h.bus()];
      await h.eventually(() => a.status === 'ready' && b.status === 'ready', 'both buses ready');
      const channel = unique('ch');
      const onB = await listen(b, channel);

      h.stall();
      const pending = rejection(a.setWithTtl(unique('k'), 'v', 1000));
      await h.wait(DEADLINE_MS);
      expect(await pending).to.be.instanceOf(BusUnavailableError);
      expect(a.status).to.equal('unavailable');
      const startedAt = Date.now();
      expect(await rejection(a.publish(channel, 'lost'))).to.be.instanceOf(BusUnavailableError);
      expect(Date.now() - startedAt, 'waited for the deadline again').to.be.below(DEADLINE_MS);

      h.resume();
      await h.eventually(() => a.status === 'ready', 'the stalled bus is ready again');
      await h.eventually(async () => {
        await a.publish(channel, 'after the stall').catch(() => undefined);
        await h.wait(20);
        return onB.heard.includes('after the stall');
      }, 'the subscription heard a message published after the stall');
      expect(onB.heard).to.not.include('lost');
    });

    it('stalled: a publish that got no answer by its deadline is still delivered after the stall (it reached Redis)', async () => {
      const [a, b] = [await h.bus(), await h.bus()];
      const channel = unique('ch');
      const onB = await listen(b, channel);
      h.stall();
      const pending = rejection(a.publish(channel, 'frozen'));
      await h.wait(DEADLINE_MS);
      expect(await pending).to.be.instanceOf(BusUnavailableError);
      expect(onB.heard).to.deep.equal([]);
      h.resume();
      await h.eventually(() => onB.heard.includes('frozen'), 'the frozen publish delivered after the stall');
    });

    it('a deaf subscription hears nothing; subscribing again hears', async () => {
      const [a, b] = [await h.bus(), await h.bus()];
      const channel = unique('ch');
      const deaf = await listen(b, channel);
      h.deafen(b);
      const again = await listen(b, channel);
      await a.publish(channel, 'm');
      await h.eventually(() => again.heard.length === 1, 'the new subscription heard it');
      await h.wait(50);
      expect(deaf.heard).to.deep.equal([]);
    });

    it('after close() every call rejects BusUnavailableError', async () => {
      const bus = await h.bus();
      await bus.close();
      for (const [op, call] of Object.entries(EVERY_CALL)) expect(await rejection(call(bus)), op).to.be.instanceOf(BusUnavailableError);
      await bus.close();
    });
  });
}

behaviourTable('MemoryBus', async () => memoryHarness());

describe('RedisBus (real redis-server)', function () {
  let server: RedisServer;
  before(async function () {
    requireRedisServer(this);
    server = await RedisServer.start();
  });
  after(async () => server?.stop());

  behaviourTable('RedisBus', async () => {
    const h = redisHarness(server);
    return h;
  });

  it('masks the password of the URL in what it logs and in its errors', async () => {
    const bus = new RedisBus({ url: `redis://app:s3cret@127.0.0.1:${server.port}`, logger: silentLogger });
    try {
      expect(bus.redactedUrl).to.equal(`redis://app:***@127.0.0.1:${server.port}`);
    } finally {
      await bus.close();
    }
    const error = await rejection(bus.publish('c', 'm'));
    expect(String((error as Error).message)).to.not.include('s3cret');
    expect(redactRedisUrl('redis://:s3cret@redis.internal:6380/2')).to.equal('redis://:***@redis.internal:6380/2');
    expect(redactRedisUrl('redis://redis.internal:6380')).to.equal('redis://redis.internal:6380');
  });

  it('refuses a URL that is not redis:// or rediss://, naming the option', () => {
    expect(() => new RedisBus({ url: 'http://x' })).to.throw(TypeError, /RedisBus: url must be a redis:\/\/ or rediss:\/\/ URL/);
  });
});
