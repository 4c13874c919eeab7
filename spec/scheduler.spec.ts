import { expect } from 'chai';
import type { Clock } from '../lib/clock.js';
import { Scheduler, initSchedulerEntry, sharedScheduler, type SchedulerEntry } from '../lib/scheduler.js';
import { createTestClock, DEFAULT_START, type TestClock } from '../lib/testing/clock.js';
import { captureLogs } from '../lib/testing/log-capture.js';

interface Call {
  now: number;
  stalled: boolean;
}

/** A test entry that records every call; `then` runs inside onDue (to reschedule, cancel, throw). */
class Probe implements SchedulerEntry {
  declare schedulerNext: SchedulerEntry | null;
  declare schedulerPrev: SchedulerEntry | null;
  declare schedulerDueTick: number;
  readonly calls: Call[] = [];

  constructor(
    readonly name = 'probe',
    public then: ((now: number, stalled: boolean) => void) | null = null,
  ) {
    initSchedulerEntry(this);
  }

  onDue(now: number, stalled: boolean): void {
    this.calls.push({ now, stalled });
    this.then?.(now, stalled);
  }
}

// DEFAULT_START is a whole number of seconds, so with resolution 1000 tick boundaries fall on
// DEFAULT_START + k·1000. Every test runs on its own injected fake clock; no real time passes.
//
// The scheduler's timer fires at a boundary and queues the tick with `afterIo` (setImmediate).
// fake-timers runs an immediate queued by a timer callback 1 ms later (a guard against
// zero-delay loops), so a tick planned for boundary B calls its entries with now = B + 1.
// `queuedAt` records when each tick was queued: exactly B.
const B = DEFAULT_START;

describe('Scheduler', () => {
  let t: TestClock;
  let logs: ReturnType<typeof captureLogs>;
  let queuedAt: number[];
  let clock: Clock;

  beforeEach(() => {
    t = createTestClock();
    logs = captureLogs();
    queuedAt = [];
    clock = {
      ...t.clock,
      afterIo: (fn) => {
        queuedAt.push(t.now());
        t.clock.afterIo(fn);
      },
    };
  });

  function create(options: ConstructorParameters<typeof Scheduler>[0] = {}): Scheduler {
    return new Scheduler({ clock, logger: logs.logger, ...options });
  }

  describe('constructor', () => {
    it('ticks once a second by default', () => {
      expect(create().resolutionMs).to.equal(1000);
    });

    it('rejects a resolutionMs that is not a finite number above 0, naming the option and value', () => {
      for (const bad of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => create({ resolutionMs: bad }), String(bad)).to.throw(RangeError, new RegExp(`resolutionMs.*${bad}`));
      }
      expect(() => create({ resolutionMs: '100' as unknown as number })).to.throw(TypeError, /resolutionMs.*100/);
    });

    it('rejects a wheelSize that is not a power of two of at least 2', () => {
      for (const bad of [0, 1, 3, 1000, 2.5, -2]) {
        expect(() => create({ wheelSize: bad }), String(bad)).to.throw(RangeError, new RegExp(`wheelSize.*${bad}`));
      }
      expect(() => create({ wheelSize: 2 })).not.to.throw();
    });

    it('starts no timer', () => {
      create();
      expect(t.fake.countTimers()).to.equal(0);
    });
  });

  describe('#schedule()', () => {
    it('makes a deadline on a boundary due at that boundary, not a millisecond earlier', () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, B + 3000);
      t.fake.setSystemTime(B + 2999);
      expect(s.tick()).to.equal(0);
      t.fake.setSystemTime(B + 3000);
      expect(s.tick()).to.equal(1);
      expect(p.calls).to.deep.equal([{ now: B + 3000, stalled: false }]);
    });

    it('makes a deadline 1 ms past a boundary due at the next boundary, one resolution later', () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, B + 3001);
      t.fake.setSystemTime(B + 3000);
      expect(s.tick()).to.equal(0);
      t.fake.setSystemTime(B + 3999);
      expect(s.tick()).to.equal(0);
      t.fake.setSystemTime(B + 4000);
      expect(s.tick()).to.equal(1);
    });

    it('queues the tick with its timer exactly at the boundary the deadline is due at', async () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, B + 3000);
      // 0 ms: the timer sleeps over the empty ticks until the boundary the entry is due at.
      await t.tickAsync(2999);
      expect(p.calls).to.have.length(0);
      expect(queuedAt).to.deep.equal([]);
      // 3,000 ms: the tick is queued; 3,001 ms: fake-timers runs the immediate.
      await t.tickAsync(2);
      expect(queuedAt.map((q) => q - B)).to.deep.equal([3000]);
      expect(p.calls).to.deep.equal([{ now: B + 3001, stalled: false }]);
    });

    it('is never early and at most one resolution late, whatever the offsets', async () => {
      // Started off-boundary (250 ms into a tick), with deadlines around several boundaries.
      await t.tickAsync(250);
      const s = create({ resolutionMs: 100 });
      const start = t.now();
      const offsets = [-1_000, -1, 0, 1, 49, 50, 51, 99, 100, 101, 149, 150, 151, 999, 1000, 1001, 12_345];
      const probes = offsets.map((o) => {
        const p = new Probe(String(o));
        s.schedule(p, start + o);
        return { p, at: Math.max(start + o, start) };
      });
      await t.tickAsync(15_000);
      for (const { p, at } of probes) {
        expect(p.calls, p.name).to.have.length(1);
        expect(p.calls[0]!.now, p.name).to.be.within(at, at + 100);
      }
    });

    it('makes a time in the past or now due on the next tick, never synchronously', async () => {
      const s = create({ resolutionMs: 100 });
      const past = new Probe('past');
      const now = new Probe('now');
      s.schedule(past, t.now() - 10_000);
      s.schedule(now, t.now());
      expect(past.calls).to.have.length(0);
      expect(now.calls).to.have.length(0);
      await t.tickAsync(101);
      expect(past.calls.map((c) => c.now)).to.deep.equal([B + 101]);
      expect(now.calls.map((c) => c.now)).to.deep.equal([B + 101]);
    });

    it('moves an already scheduled entry, later or earlier, and fires it once', async () => {
      const s = create();
      const later = new Probe('later');
      const earlier = new Probe('earlier');
      s.schedule(later, B + 2000);
      s.schedule(later, B + 5000);
      s.schedule(earlier, B + 5000);
      s.schedule(earlier, B + 1000);
      expect(s.size).to.equal(2);
      await t.tickAsync(10_000);
      expect(later.calls.map((c) => c.now)).to.deep.equal([B + 5001]);
      expect(earlier.calls.map((c) => c.now)).to.deep.equal([B + 1001]);
    });

    it('fires entries many wheel rounds away at their own tick, not at earlier visits of their slot', async () => {
      // 8 slots of 100 ms: one round is 800 ms. These four share slot 3 in different rounds.
      const s = create({ resolutionMs: 100, wheelSize: 8 });
      const ats = [300, 1100, 6700, 80_300];
      const probes = ats.map((at) => {
        const p = new Probe(String(at));
        s.schedule(p, B + at);
        return p;
      });
      await t.tickAsync(90_000);
      probes.forEach((p, i) => expect(p.calls.map((c) => c.now), p.name).to.deep.equal([B + ats[i]! + 1]));
      expect(s.size).to.equal(0);
    });

    it('counts scheduled entries in size', () => {
      const s = create();
      const a = new Probe();
      const b = new Probe();
      s.schedule(a, B + 1000);
      s.schedule(b, B + 1000);
      s.schedule(a, B + 9000);
      expect(s.size).to.equal(2);
    });

    it('rejects a time that is not a finite number', () => {
      const s = create();
      expect(() => s.schedule(new Probe(), Number.NaN)).to.throw(RangeError, /NaN/);
      expect(s.size).to.equal(0);
    });
  });

  describe('#scheduleExact()', () => {
    /** A probe that, like the manager, asks again for `at` until it is reached: the calls it got, and when it was satisfied. */
    function exact(s: Scheduler, at: number): Probe & { doneAt: number } {
      const p = Object.assign(new Probe(`exact ${at - B}`), { doneAt: -1 });
      p.then = (now) => (now >= at ? (p.doneAt = now) : s.scheduleExact(p, at));
      s.scheduleExact(p, at);
      return p;
    }

    it('calls an entry at its own time inside a tick, not at the next boundary', async () => {
      const s = create({ resolutionMs: 100 });
      const p = exact(s, B + 3_037);
      await t.tickAsync(3_036);
      expect(p.doneAt).to.equal(-1);
      await t.tickAsync(2);
      // Visited once at the start of the tick that holds 3,037 (3,000 + 1 for the immediate), then at 3,037 + 1.
      expect(p.calls.map((c) => c.now - B)).to.deep.equal([3_001, 3_038]);
      expect(p.doneAt - B).to.equal(3_038);
    });

    it('is never early, and no later than the latest exact time in the same sixteenth of its tick', async () => {
      await t.tickAsync(250);
      const s = create({ resolutionMs: 160 });
      const start = t.now();
      const offsets = [1, 13, 14, 19, 49, 50, 99, 100, 101, 159, 1_037, 1_099];
      const probes = offsets.map((o) => exact(s, start + o));
      await t.tickAsync(1_200);
      const part = (at: number): number => Math.floor(at / 10); // 160 ms / 16
      for (const [i, p] of probes.entries()) {
        const at = start + offsets[i]!;
        expect(p.doneAt, `offset ${offsets[i]}`).to.be.at.least(at);
        const latestInItsPart = Math.max(...offsets.map((o) => start + o).filter((o) => part(o) === part(at)));
        expect(p.doneAt, `offset ${offsets[i]}`).to.be.at.most(latestInItsPart + 1);
      }
    });

    it('does not hold an early deadline back for a later one in the same tick', async () => {
      const s = create({ resolutionMs: 1_000 });
      const late = exact(s, B + 1_900);
      const early = exact(s, B + 1_100);
      await t.tickAsync(2_000);
      expect(early.doneAt - B).to.equal(1_101);
      expect(late.doneAt - B).to.equal(1_901);
    });

    it('calls an entry whose time already passed once pending input is read, not in the run that scheduled it nor a tick later', async () => {
      const s = create({ resolutionMs: 100 });
      const [a, b] = [new Probe('a'), new Probe('b')];
      a.then = () => s.scheduleExact(b, B + 990);
      s.schedule(a, B + 1_000);
      await t.tickAsync(1_001);
      expect([a.calls.length, b.calls.length]).to.deep.equal([1, 0]);
      await t.tickAsync(9);
      // A timer and an afterIo turn later, where schedule() would wait for the tick at 1,100.
      expect(b.calls.map((c) => c.now - B)).to.deep.equal([1_003]);
    });

    it('can be cancelled or moved to the wheel while waiting inside a tick, and stops the timer with the last entry', async () => {
      const s = create({ resolutionMs: 100 });
      const [a, b] = [new Probe('a'), new Probe('b')];
      a.then = () => {
        s.scheduleExact(a, B + 1_050);
        s.scheduleExact(b, B + 1_060);
      };
      s.schedule(a, B + 1_000);
      await t.tickAsync(1_001);
      expect(s.size).to.equal(2);
      s.cancel(a);
      s.schedule(b, B + 5_000);
      await t.tickAsync(100);
      expect([a.calls.length, b.calls.length]).to.deep.equal([1, 0]);
      s.cancel(b);
      expect(s.size).to.equal(0);
      expect(t.fake.countTimers()).to.equal(0);
    });

    it('forgets the times of cancelled entries: a clock set back then gets its deadlines on time', async () => {
      const s = create({ resolutionMs: 100 });
      const a = new Probe('a');
      a.then = () => s.scheduleExact(a, B + 1_005);
      s.schedule(a, B + 1_000);
      await t.tickAsync(1_001);
      s.cancel(a);
      t.fake.setSystemTime(B + 500);
      const p = exact(s, B + 590);
      await t.tickAsync(100);
      expect(p.doneAt - B).to.equal(591);
    });

    it('rejects a time that is not finite', () => {
      expect(() => create().scheduleExact(new Probe(), Number.NaN)).to.throw(RangeError, /scheduleExact\(\) needs a finite time in ms, got NaN/);
    });
  });

  describe('#cancel()', () => {
    it('keeps a cancelled entry from firing and removes it from size', async () => {
      const s = create();
      const kept = new Probe('kept');
      const cancelled = new Probe('cancelled');
      s.schedule(kept, B + 1000);
      s.schedule(cancelled, B + 1000);
      s.cancel(cancelled);
      expect(s.size).to.equal(1);
      await t.tickAsync(5000);
      expect(kept.calls).to.have.length(1);
      expect(cancelled.calls).to.have.length(0);
    });

    it('is a no-op for an entry that is not scheduled, or cancelled twice', () => {
      const s = create();
      const p = new Probe();
      s.cancel(p);
      s.schedule(p, B + 1000);
      s.cancel(p);
      s.cancel(p);
      expect(s.size).to.equal(0);
    });
  });

  describe('#isScheduled()', () => {
    it('is true from schedule() until the entry is called or cancelled', async () => {
      const s = create();
      const fired = new Probe();
      const cancelled = new Probe();
      expect(s.isScheduled(fired)).to.equal(false);
      s.schedule(fired, B + 1000);
      s.schedule(cancelled, B + 1000);
      expect(s.isScheduled(fired)).to.equal(true);
      s.cancel(cancelled);
      expect(s.isScheduled(cancelled)).to.equal(false);
      const inside: boolean[] = [];
      fired.then = () => inside.push(s.isScheduled(fired));
      await t.tickAsync(1001);
      expect(inside).to.deep.equal([false]);
      expect(s.isScheduled(fired)).to.equal(false);
    });
  });

  describe('#tick()', () => {
    it('calls only the due entries: 1,000 of 100,000, one call each', async () => {
      const s = create();
      let dueCalls = 0;
      let farCalls = 0;
      const onDue = () => dueCalls++;
      const onFar = () => farCalls++;
      // 100,000 entries spread over the next 10 wheel rounds (about 3 hours), none in the first tick.
      for (let i = 0; i < 100_000; i++) {
        s.schedule(initSchedulerEntry({ onDue: onFar }), B + 2000 + ((i * 7919) % 10_240_000));
      }
      for (let i = 0; i < 1000; i++) s.schedule(initSchedulerEntry({ onDue }), B + 1 + (i % 999));
      expect(s.size).to.equal(101_000);
      t.fake.setSystemTime(B + 1000);
      expect(s.tick()).to.equal(1000);
      expect(dueCalls).to.equal(1000);
      expect(farCalls).to.equal(0);
      expect(s.size).to.equal(100_000);
    });

    it('returns the number of entries it called and calls nothing before their tick', () => {
      const s = create();
      for (let i = 0; i < 3; i++) s.schedule(new Probe(), B + 1000);
      expect(s.tick()).to.equal(0);
      t.fake.setSystemTime(B + 1000);
      expect(s.tick()).to.equal(3);
      expect(s.tick()).to.equal(0);
    });

    it('passes stalled = false to entries of a tick that ran on time', async () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, B + 1500);
      await t.tickAsync(2001);
      expect(p.calls).to.deep.equal([{ now: B + 2001, stalled: false }]);
    });

    it('catches up after a stall: every overdue entry fires once, with stalled = true', async () => {
      // 16 slots of 100 ms (a 1.6 s round); the stall lasts 30 s, so every slot is visited once.
      const s = create({ resolutionMs: 100, wheelSize: 16 });
      const ats = [100, 250, 1_000, 1_650, 20_000, 29_900];
      const probes = ats.map((at) => {
        const p = new Probe(String(at));
        s.schedule(p, B + at);
        return p;
      });
      // Due at 30,100 ms, in a slot the catch-up visits: it stays for its own round.
      const notYet = new Probe('notYet');
      s.schedule(notYet, B + 30_050);
      // 0 ms: the event loop blocks; the timer planned for 100 ms fires at 30,000 ms, the tick runs at 30,001 ms.
      t.fake.jump(30_000);
      await t.tickAsync(1);
      for (const p of probes) expect(p.calls, p.name).to.deep.equal([{ now: B + 30_001, stalled: true }]);
      expect(notYet.calls).to.have.length(0);
      expect(s.lastLagMs).to.equal(29_901);
      // 30,100 ms: back on schedule.
      await t.tickAsync(100);
      expect(notYet.calls).to.deep.equal([{ now: B + 30_101, stalled: false }]);
    });

    it('calls overdue entries in due order when the stall is shorter than one wheel round', async () => {
      const s = create({ resolutionMs: 100 });
      const order: number[] = [];
      for (const at of [900, 100, 500, 300]) s.schedule(new Probe(String(at), () => order.push(at)), B + at);
      t.fake.jump(1000);
      await t.tickAsync(1);
      expect(order).to.deep.equal([100, 300, 500, 900]);
    });

    it('reports stalled only for a tick more than one resolution late', async () => {
      const s = create({ resolutionMs: 100 });
      const a = new Probe('a');
      const b = new Probe('b');
      s.schedule(a, B + 100);
      s.schedule(b, B + 400);
      // The tick planned for 100 ms runs at 200 ms (timer at 199 ms): exactly one resolution late.
      t.fake.jump(199);
      await t.tickAsync(1);
      expect(a.calls).to.deep.equal([{ now: B + 200, stalled: false }]);
      // The timer now sleeps until b's tick at 400 ms; the loop is blocked until 500 ms, so the
      // tick runs at 501 ms: more than one resolution late.
      t.fake.jump(300);
      await t.tickAsync(1);
      expect(b.calls).to.deep.equal([{ now: B + 501, stalled: true }]);
    });

    it('judges entries after pending I/O: the timer only queues the tick with afterIo', async () => {
      let inAfterIo = false;
      const s = new Scheduler({
        clock: {
          ...t.clock,
          afterIo: (fn) =>
            t.clock.afterIo(() => {
              inAfterIo = true;
              try {
                fn();
              } finally {
                inAfterIo = false;
              }
            }),
        },
        logger: logs.logger,
      });
      const seen: boolean[] = [];
      s.schedule(new Probe('p', () => seen.push(inAfterIo)), B + 1000);
      await t.tickAsync(1001);
      expect(seen).to.deep.equal([true]);
    });

    it('keeps calling the others when a callback throws, and reports it to onError', async () => {
      const errors: Array<{ err: unknown; entry: SchedulerEntry }> = [];
      const s = create({ onError: (err, entry) => errors.push({ err, entry }) });
      const before = new Probe('before');
      const thrower = new Probe('thrower', () => {
        throw new Error('boom');
      });
      const after = new Probe('after');
      for (const p of [before, thrower, after]) s.schedule(p, B + 1000);
      await t.tickAsync(1001);
      expect(before.calls).to.have.length(1);
      expect(after.calls).to.have.length(1);
      expect(errors).to.have.length(1);
      expect((errors[0]!.err as Error).message).to.equal('boom');
      expect(errors[0]!.entry).to.equal(thrower);
      // The timer lives on.
      const next = new Probe('next');
      s.schedule(next, B + 2000);
      await t.tickAsync(1000);
      expect(next.calls).to.have.length(1);
    });

    it('logs a throwing callback through the logger when no onError is given', async () => {
      const s = create();
      const after = new Probe('after');
      const thrower = new Probe('thrower', () => {
        throw new Error('boom');
      });
      s.schedule(thrower, B + 1000);
      s.schedule(after, B + 1000);
      await t.tickAsync(1001);
      expect(after.calls).to.have.length(1);
      const entry = logs.find('Scheduler: a due callback threw');
      expect(entry?.level).to.equal('error');
      expect((entry?.meta.error as Error).message).to.equal('boom');
      expect(entry?.meta.entry).to.equal('Probe');
    });

    it('lets a callback reschedule itself as a periodic check', async () => {
      const s = create();
      const p = new Probe('periodic', (now) => {
        if (p.calls.length < 5) s.schedule(p, now + 2000);
      });
      s.schedule(p, B + 2000);
      await t.tickAsync(20_000);
      // Each call is at boundary + 1 (the fake immediate), so now + 2000 is 1 ms past a boundary.
      expect(p.calls.map((c) => c.now - B)).to.deep.equal([2001, 5001, 8001, 11_001, 14_001]);
      expect(s.size).to.equal(0);
    });

    it('lets a callback cancel or move another due entry of the same tick', async () => {
      const s = create();
      const cancelled = new Probe('cancelled');
      const moved = new Probe('moved');
      const first = new Probe('first', () => {
        s.cancel(cancelled);
        s.schedule(moved, B + 4000);
      });
      for (const p of [first, cancelled, moved]) s.schedule(p, B + 1000);
      await t.tickAsync(1001);
      expect(first.calls).to.have.length(1);
      expect(cancelled.calls).to.have.length(0);
      expect(moved.calls).to.have.length(0);
      expect(s.size).to.equal(1);
      await t.tickAsync(3000);
      expect(moved.calls.map((c) => c.now)).to.deep.equal([B + 4001]);
    });

    it('defers an entry a callback schedules for now to the next tick instead of looping', async () => {
      const s = create();
      const p = new Probe('again', (now) => {
        if (p.calls.length < 3) s.schedule(p, now);
      });
      s.schedule(p, B + 1000);
      await t.tickAsync(1001);
      expect(p.calls).to.have.length(1);
      await t.tickAsync(1000);
      expect(p.calls.map((c) => c.now - B)).to.deep.equal([1001, 2001]);
    });

    it('yields to pending I/O once a timer-driven tick has run its callbacks for its 0.5 ms slice, and finishes it next turn', () => {
      // A hand-driven clock: each callback takes 0.125 ms, the timer and afterIo run when told.
      let time = B;
      let timer: (() => void) | null = null;
      const turns: Array<() => void> = [];
      const s = new Scheduler({
        clock: {
          now: () => time,
          setTimeout: (fn) => ((timer = fn), 1),
          clearTimeout: () => undefined,
          afterIo: (fn) => void turns.push(fn),
        },
        logger: logs.logger,
      });
      const order: number[] = [];
      const probes = Array.from({ length: 100 }, (_, i) => new Probe(`p${i}`, () => ((time += 0.125), order.push(i))));
      for (const p of probes) s.schedule(p, B + 1000);
      time = B + 1000;
      timer!();
      // 0 ms: the tick runs after pending I/O; it first reads the clock after 7 calls (0.875 ms,
      // past the 0.5 ms slice), then yields and queues the rest.
      turns.shift()!();
      expect(order).to.have.length(7);
      expect(s.size).to.equal(93);
      expect(turns).to.have.length(1);
      // Later turns call the rest, in order, each once, with the time of their own turn.
      while (turns.length > 0) turns.shift()!();
      expect(order).to.deep.equal(probes.map((_, i) => i));
      expect(probes.every((p) => p.calls.length === 1)).to.equal(true);
      expect(probes[7]!.calls[0]!.now).to.equal(B + 1000.875);
      expect(s.size).to.equal(0);
    });

    it('runs everything due when tick() is called directly, however long the callbacks take', () => {
      let time = B;
      const s = new Scheduler({
        clock: { now: () => time, setTimeout: () => 1, clearTimeout: () => undefined, afterIo: () => undefined },
        logger: logs.logger,
      });
      const probes = Array.from({ length: 100 }, () => new Probe('slow', () => void (time += 1)));
      for (const p of probes) s.schedule(p, B + 1000);
      time = B + 1000;
      expect(s.tick()).to.equal(100);
    });
  });

  describe('timer lifecycle', () => {
    it('follows a clock set back while the wheel is empty (a fresh fake clock in the next test)', async () => {
      const s = create();
      const first = new Probe('first');
      s.schedule(first, B + 90_000);
      await t.tickAsync(91_000);
      expect(first.calls).to.have.length(1);
      // The wheel is empty; the clock goes back 91 s, as when the next test installs its own.
      t.fake.setSystemTime(B);
      const second = new Probe('second');
      s.schedule(second, B + 1_000);
      await t.tickAsync(1_001);
      expect(second.calls).to.have.length(1);
    });

    it('sleeps over empty ticks: a deadline an hour away costs one wake-up per 64 ticks, not 3,600', async () => {
      const s = create();
      s.schedule(new Probe(), B + 3_600_000);
      await t.tickAsync(3_600_001);
      expect(queuedAt.length).to.be.within(56, 60);
    });

    it('runs one timer while entries exist and none once the last one fired', async () => {
      const s = create();
      for (let i = 0; i < 100; i++) s.schedule(new Probe(), B + 1000 + i * 10);
      expect(t.fake.countTimers()).to.equal(1);
      await t.tickAsync(2001);
      expect(s.size).to.equal(0);
      expect(t.fake.countTimers()).to.equal(0);
    });

    it('stops the timer when the last entry is cancelled and restarts it on schedule()', async () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, B + 5000);
      s.cancel(p);
      expect(t.fake.countTimers()).to.equal(0);
      s.schedule(p, B + 5000);
      expect(t.fake.countTimers()).to.equal(1);
      await t.tickAsync(5001);
      expect(p.calls).to.have.length(1);
      expect(t.fake.countTimers()).to.equal(0);
    });

    it('does not report a stall for the first tick after an idle period', async () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, B + 1000);
      await t.tickAsync(1001);
      // Idle for an hour, then a new entry at 3,601,000 ms.
      await t.tickAsync(3_599_999);
      expect(t.fake.countTimers()).to.equal(0);
      s.schedule(p, t.now() + 1000);
      await t.tickAsync(1001);
      expect(p.calls[1]).to.deep.equal({ now: B + 3_602_001, stalled: false });
    });

    it('#stop() cancels the timer but keeps entries; the next schedule() restarts and catches up', async () => {
      const s = create();
      const early = new Probe('early');
      const late = new Probe('late');
      s.schedule(early, B + 1000);
      s.stop();
      expect(t.fake.countTimers()).to.equal(0);
      await t.tickAsync(5000);
      expect(early.calls).to.have.length(0);
      expect(s.size).to.equal(1);
      // 5,000 ms: restarted with an overdue entry, the timer fires at once.
      s.schedule(late, B + 7000);
      await t.tickAsync(1);
      expect(early.calls).to.deep.equal([{ now: B + 5001, stalled: true }]);
      await t.tickAsync(2000);
      expect(late.calls.map((c) => c.now)).to.deep.equal([B + 7001]);
      expect(t.fake.countTimers()).to.equal(0);
    });
  });

  describe('sharedScheduler()', () => {
    it('returns one instance per clock and resolution', () => {
      const other = createTestClock();
      const a = sharedScheduler(t.clock, 1000);
      expect(sharedScheduler(t.clock, 1000)).to.equal(a);
      expect(a.resolutionMs).to.equal(1000);
      expect(sharedScheduler(t.clock, 500)).not.to.equal(a);
      expect(sharedScheduler(other.clock, 1000)).not.to.equal(a);
    });
  });
});
