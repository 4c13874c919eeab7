import { expect } from 'chai';
import { ReconnectBudget } from '../lib/reconnect-budget.js';
import { ConnectionRegistry } from '../lib/registry.js';
import type { TimeoutConfig } from '../lib/config.js';
import { createSocketPair, type TestClient } from '../lib/testing/socket-pair.js';
import { createTestClock, type TestClock } from '../lib/testing/clock.js';
import { captureLogs } from '../lib/testing/log-capture.js';
import { busiestWindow } from './support/busiest-window.js';


/** A repeatable sequence in [0, 1) (a linear congruential generator), so the arrivals are the same on every run. */
function sequence(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
}

describe('ReconnectBudget (lib/reconnect-budget)', () => {
  const T0 = 1_000_000;

  describe('slots', () => {
    it('hands out slots 1000/rate ms apart: slot k of a burst at start + k/rate s', () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 200 });
      const slots = Array.from({ length: 5 }, () => budget.reserve(T0));
      expect(slots).to.deep.equal([T0, T0 + 5, T0 + 10, T0 + 15, T0 + 20]);
    });

    it('never puts more than `rate` slots in any 1-s window, over thousands of slots and arrivals at random times', () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 200 });
      const random = sequence(7);
      const slots: number[] = [];
      let now = T0;
      for (let i = 0; i < 5_000; i++) {
        // Bursts (many requests in the same ms) and gaps of up to 40 ms.
        if (random() < 0.3) now += Math.floor(random() * 40);
        slots.push(budget.reserve(now));
      }
      expect(busiestWindow(slots)).to.equal(200); // reached, never exceeded
      for (let i = 1; i < slots.length; i++) expect(slots[i]! - slots[i - 1]!).to.be.at.least(5);
    });

    it('does not bank an idle period into a burst: after a quiet minute the next slots are spaced again', () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 200 });
      expect(budget.reserve(T0)).to.equal(T0);
      const later = T0 + 60_000;
      const slots = Array.from({ length: 400 }, () => budget.reserve(later));
      expect(slots[0]).to.equal(later);
      expect(slots[1]).to.equal(later + 5);
      expect(busiestWindow(slots)).to.equal(200);
      // A token bucket holding a second's worth would have released 200 at `later`.
      expect(slots.filter((s) => s === later)).to.have.length(1);
    });

    it('spaces slots more than a second apart for rates below 1/s', () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 0.5 });
      const slots = Array.from({ length: 4 }, () => budget.reserve(T0));
      expect(slots).to.deep.equal([T0, T0 + 2_000, T0 + 4_000, T0 + 6_000]);
      expect(busiestWindow(slots, 1000)).to.equal(1);
      expect(busiestWindow(slots, 2000)).to.equal(1);
    });

    it('reads the clock when reserve() is called without a time', () => {
      const t = createTestClock();
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 10, clock: t.clock });
      expect(budget.reserve()).to.equal(t.now());
      expect(budget.reserve()).to.equal(t.now() + 100);
    });

    it('closes faster than the budget only when told to (maxSpacingMs), still evenly', () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 1 });
      expect([budget.reserve(T0, 250), budget.reserve(T0, 250), budget.reserve(T0, 250)]).to.deep.equal([T0, T0 + 250, T0 + 500]);
      expect(budget.reserve(T0)).to.equal(T0 + 1_500); // a full spacing after the last one again
    });
  });

  describe('fleet share', () => {
    it('uses rate / nodes() per node, reading the node count at each reservation', () => {
      let nodes = 4;
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 200, nodes: () => nodes });
      expect(budget.nodeRate()).to.equal(50);
      expect([budget.reserve(T0), budget.reserve(T0)]).to.deep.equal([T0, T0 + 20]);
      nodes = 2;
      expect(budget.reserve(T0)).to.equal(T0 + 40);
      expect(budget.reserve(T0)).to.equal(T0 + 50);
    });

    it('keeps the sum over N nodes with a stable membership within N·⌈rate/N⌉ per second (the rate when N divides it)', () => {
      for (const [rate, n] of [
        [200, 4],
        [200, 3],
      ] as const) {
        const random = sequence(n);
        const fleet = Array.from({ length: n }, () => new ReconnectBudget({ jitterMs: 0, rate, nodes: () => n }));
        const slots: number[] = [];
        // Each node starts at its own phase and gets its own bursts.
        for (const budget of fleet) {
          let now = T0 + Math.floor(random() * 1000);
          for (let i = 0; i < 1_000; i++) {
            if (random() < 0.2) now += Math.floor(random() * 30);
            slots.push(budget.reserve(now));
          }
        }
        expect(busiestWindow(slots), `rate ${rate}, ${n} nodes`).to.be.at.most(n * Math.ceil(rate / n));
      }
    });

    it('counts a node count below 1 (no membership read yet) as one node', () => {
      expect(new ReconnectBudget({ jitterMs: 0, rate: 200, nodes: () => 0 }).nodeRate()).to.equal(200);
      expect(new ReconnectBudget({ jitterMs: 0, rate: 200, nodes: () => NaN }).nodeRate()).to.equal(200);
    });
  });

  describe('jitter allowance (jitterMs): the rate as the clients see it', () => {
    /**
     * When each client sees its close: the slot plus a delay that varies from close to close by up
     * to `spreadMs` (the close handshake, event loops, the network), on top of a fixed 20 ms.
     */
    function seenTimes(budget: ReconnectBudget, count: number, spreadMs: number): number[] {
      const random = sequence(11);
      return Array.from({ length: count }, () => budget.reserve(T0) + 20 + random() * spreadMs);
    }

    it('spaces slots (1000 + jitterMs) / rate ms apart, 250 ms by default: 6.25 ms at 200/s', () => {
      const budget = new ReconnectBudget({ rate: 200 });
      expect(budget.jitterMs).to.equal(250);
      expect([budget.reserve(T0), budget.reserve(T0), budget.reserve(T0)]).to.deep.equal([T0, T0 + 6.25, T0 + 12.5]);
      expect(new ReconnectBudget({ rate: 200, jitterMs: 100, nodes: () => 2 }).spacingMs()).to.equal(11);
    });

    it('keeps the clients at or under the rate in every 1-s window while delays vary by up to jitterMs', () => {
      for (const jitterMs of [50, 250, 1_000]) {
        const seen = seenTimes(new ReconnectBudget({ rate: 200, jitterMs }), 3_000, jitterMs);
        expect(busiestWindow(seen), `jitterMs ${jitterMs}`).to.be.at.most(200);
      }
    });

    it('without the allowance (jitterMs: 0) the same delays put more than the rate in one of the clients\' windows', () => {
      const seen = seenTimes(new ReconnectBudget({ rate: 200, jitterMs: 0 }), 3_000, 250);
      expect(busiestWindow(seen)).to.be.above(200);
    });

    for (const jitterMs of [-1, NaN, Infinity, 60_001, '250']) {
      it(`refuses jitterMs ${String(jitterMs)} with a RangeError naming the option, the value and the range`, () => {
        expect(() => new ReconnectBudget({ rate: 200, jitterMs: jitterMs as number })).to.throw(RangeError, new RegExp(`jitterMs must be a number of ms from 0 to 60000, got ${String(jitterMs)}`));
      });
    }
  });

  describe('cancel()', () => {
    it('gives the newest slot back to the next reservation', () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 200 });
      budget.reserve(T0);
      const second = budget.reserve(T0);
      budget.cancel(second);
      expect(budget.reserve(T0)).to.equal(second);
      expect(budget.reserve(T0)).to.equal(second + 5);
    });

    it('reuses a cancelled slot in the middle before new ones, and drops it once it is in the past', () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 200 });
      const slots = Array.from({ length: 4 }, () => budget.reserve(T0));
      budget.cancel(slots[1]!);
      expect(budget.reserve(T0 + 1)).to.equal(slots[1]);
      budget.cancel(slots[2]!);
      expect(budget.reserve(T0 + 11), 'slot T0+10 is past').to.equal(T0 + 20);
    });

    it('keeps the window property through cancels and reuses', () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 100 });
      const random = sequence(3);
      const held = new Set<number>();
      let now = T0;
      for (let i = 0; i < 3_000; i++) {
        if (random() < 0.3) now += Math.floor(random() * 30);
        held.add(budget.reserve(now));
        if (random() < 0.2) {
          const future = [...held].filter((s) => s > now);
          const slot = future[Math.floor(random() * future.length)];
          if (slot !== undefined) {
            held.delete(slot);
            budget.cancel(slot);
          }
        }
      }
      expect(busiestWindow([...held])).to.be.at.most(100);
    });
  });

  describe('validation', () => {
    for (const rate of [0, -1, NaN, Infinity, 2_000_000, '200']) {
      it(`refuses rate ${String(rate)} with a RangeError naming the option, the value and the range`, () => {
        expect(() => new ReconnectBudget({ jitterMs: 0, rate: rate as number })).to.throw(RangeError, new RegExp(`rate must be a number of closes per second greater than 0.*got ${String(rate)}`));
      });
    }

    it('refuses a nodes that is not a function', () => {
      expect(() => new ReconnectBudget({ jitterMs: 0, rate: 1, nodes: 3 as unknown as () => number })).to.throw(TypeError, /nodes must be a function/);
    });
  });

  describe('lifetime expiries under the budget (ManagerOptions.reconnectBudget)', () => {
    const CONFIG: Partial<TimeoutConfig> = {
      idleTimeoutMs: 0,
      connectionTimeoutMs: 10_000,
      pingIntervalMs: 5_000,
      pongTimeoutMs: 5_000,
      closeTimeoutMs: 1_000,
      messageTimeoutMs: 1_000,
      resolutionMs: 100,
    };
    let t: TestClock;

    beforeEach(() => {
      t = createTestClock();
    });

    function connectAll(budget: ReconnectBudget | undefined, n: number): TestClient[] {
      const registry = new ConnectionRegistry({ clock: t.clock, logger: captureLogs().logger, config: CONFIG, managerOptions: { reconnectBudget: budget } });
      return Array.from({ length: n }, () => {
        const { server, client } = createSocketPair({ clock: t.clock });
        registry.add(server);
        return client;
      });
    }

    /** Moves time to the scheduler tick on which the lifetime (10 s) is judged: no later than one resolution after it. */
    async function untilLifetimeEnds(client: TestClient): Promise<void> {
      await t.tickAsync(10_000);
      for (let waited = 0; client.received.length === 0 && client.closeFrame === null; waited++) {
        expect(waited, 'the lifetime verdict is late by more than the resolution').to.be.below(CONFIG.resolutionMs!);
        await t.tickAsync(1);
      }
    }

    const json = (client: TestClient) => client.received.map((m) => JSON.parse(String(m)) as Record<string, unknown>);

    it('tells each client its retryAfterMs when the lifetime ends and closes it with 4002 at its slot, not all at once', async () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 2, clock: t.clock }); // a slot every 500 ms
      const clients = connectAll(budget, 4);
      await untilLifetimeEnds(clients[0]!); // the same tick for all four
      const advised = clients.map((c) => json(c)[0]!);
      expect(advised.map((a) => a.retryAfterMs).sort((a, b) => Number(a) - Number(b))).to.deep.equal([0, 500, 1000, 1500]);
      expect(advised[0]).to.include({ type: 'reconnectAdvised', reason: 'max_lifetime' });
      const byslot = clients.slice().sort((a, b) => Number(json(a)[0]!.retryAfterMs) - Number(json(b)[0]!.retryAfterMs));
      expect(byslot[0]!.closeFrame).to.deep.equal({ code: 4002, reason: 'max_lifetime' });
      for (let k = 1; k < 4; k++) {
        await t.tickAsync(499);
        expect(byslot[k]!.closeFrame, `client ${k} 1 ms before its slot`).to.equal(null);
        await t.tickAsync(1);
        expect(byslot[k]!.closeFrame, `client ${k} at its slot`).to.deep.equal({ code: 4002, reason: 'max_lifetime' });
        // The lifetime notice still comes right before the close.
        expect(json(byslot[k]!).map((m) => m.type)).to.deep.equal(['reconnectAdvised', 'connectionTimeout']);
      }
    });

    it('without a budget, closes every expired lifetime at once (as before)', async () => {
      const clients = connectAll(undefined, 3);
      await untilLifetimeEnds(clients[0]!);
      expect(clients.map((c) => c.closeFrame?.code)).to.deep.equal([4002, 4002, 4002]);
      expect(clients.flatMap((c) => json(c).map((m) => m.type))).not.to.include('reconnectAdvised');
    });

    it('gives the slot of a client that left while waiting back to the budget', async () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 2, clock: t.clock });
      const clients = connectAll(budget, 3);
      await untilLifetimeEnds(clients[0]!);
      const last = clients.find((c) => json(c)[0]!.retryAfterMs === 1_000)!;
      const slotOfLast = t.now() + 1_000;
      last.close(1000);
      await t.flush();
      expect(budget.reserve(t.now())).to.equal(slotOfLast);
    });
  });
});
