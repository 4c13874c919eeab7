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
    it('fires a deadline on a tick boundary at the boundary, not a millisecond earlier', async () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, DEFAULT_START + 3000);
      await t.tickAsync(2999);
      expect(p.calls).to.have.length(0);
      await t.tickAsync(1);
      expect(p.calls).to.deep.equal([{ now: DEFAULT_START + 3000, stalled: false }]);
    });

    it('fires a deadline 1 ms past a boundary at the next boundary, one resolution late at most', async () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, DEFAULT_START + 3001);
      await t.tickAsync(3999);
      expect(p.calls).to.have.length(0);
      await t.tickAsync(1);
      expect(p.calls.map((c) => c.now)).to.deep.equal([DEFAULT_START + 4000]);
    });

    it('is never early and at most one resolution late, whatever the offsets', async () => {
      // Started off-boundary (250 ms into a tick), with deadlines around several boundaries.
      await t.tickAsync(250);
      const s = create({ resolutionMs: 100 });
      const offsets = [-1, 0, 1, 49, 50, 99, 100, 101, 149, 150, 151, 999, 1000, 1001, 12_345];
      const probes = offsets.map((o) => {
        const p = new Probe(String(o));
        s.schedule(p, t.now() + o);
        return { p, at: Math.max(t.now() + o, t.now()) };
      });
      await t.tickAsync(15_000);
      for (const { p, at } of probes) {
        expect(p.calls, p.name).to.have.length(1);
        expect(p.calls[0]!.now, p.name).to.be.at.least(at);
        expect(p.calls[0]!.now, p.name).to.be.at.most(at + 100);
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
      await t.tickAsync(100);
      expect(past.calls.map((c) => c.now)).to.deep.equal([DEFAULT_START + 100]);
      expect(now.calls.map((c) => c.now)).to.deep.equal([DEFAULT_START + 100]);
    });

    it('moves an already scheduled entry, later or earlier, and fires it once', async () => {
      const s = create();
      const later = new Probe('later');
      const earlier = new Probe('earlier');
      s.schedule(later, DEFAULT_START + 2000);
      s.schedule(later, DEFAULT_START + 5000);
      s.schedule(earlier, DEFAULT_START + 5000);
      s.schedule(earlier, DEFAULT_START + 1000);
      expect(s.size).to.equal(2);
      await t.tickAsync(10_000);
      expect(later.calls.map((c) => c.now)).to.deep.equal([DEFAULT_START + 5000]);
      expect(earlier.calls.map((c) => c.now)).to.deep.equal([DEFAULT_START + 1000]);
    });

    it('fires entries many wheel rounds away at their own tick, not at earlier visits of their slot', async () => {
      // 8 slots of 100 ms: one round is 800 ms. These four share slot 3 in different rounds.
      const s = create({ resolutionMs: 100, wheelSize: 8 });
      const ats = [300, 1100, 6700, 80_300];
      const probes = ats.map((at) => {
        const p = new Probe(String(at));
        s.schedule(p, DEFAULT_START + at);
        return p;
      });
      await t.tickAsync(90_000);
      probes.forEach((p, i) => expect(p.calls.map((c) => c.now), p.name).to.deep.equal([DEFAULT_START + ats[i]!]));
      expect(s.size).to.equal(0);
    });

    it('counts scheduled entries in size', () => {
      const s = create();
      const a = new Probe();
      const b = new Probe();
      s.schedule(a, DEFAULT_START + 1000);
      s.schedule(b, DEFAULT_START + 1000);
      s.schedule(a, DEFAULT_START + 9000);
      expect(s.size).to.equal(2);
    });

    it('rejects a time that is not a finite number', () => {
      const s = create();
      expect(() => s.schedule(new Probe(), Number.NaN)).to.throw(RangeError, /NaN/);
      expect(s.size).to.equal(0);
    });
  });

  describe('#cancel()', () => {
    it('keeps a cancelled entry from firing and removes it from size', async () => {
      const s = create();
      const kept = new Probe('kept');
      const cancelled = new Probe('cancelled');
      s.schedule(kept, DEFAULT_START + 1000);
      s.schedule(cancelled, DEFAULT_START + 1000);
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
      s.schedule(p, DEFAULT_START + 1000);
      s.cancel(p);
      s.cancel(p);
      expect(s.size).to.equal(0);
    });
  });

  describe('#isScheduled()', () => {
    it('is true from schedule() until the entry fires or is cancelled', async () => {
      const s = create();
      const fired = new Probe();
      const cancelled = new Probe();
      expect(s.isScheduled(fired)).to.equal(false);
      s.schedule(fired, DEFAULT_START + 1000);
      s.schedule(cancelled, DEFAULT_START + 1000);
      expect(s.isScheduled(fired)).to.equal(true);
      s.cancel(cancelled);
      expect(s.isScheduled(cancelled)).to.equal(false);
      fired.then = () => expect(s.isScheduled(fired)).to.equal(false);
      await t.tickAsync(1000);
      expect(fired.calls).to.have.length(1);
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
        s.schedule(initSchedulerEntry({ onDue: onFar }), DEFAULT_START + 2000 + ((i * 7919) % 10_240_000));
      }
      for (let i = 0; i < 1000; i++) s.schedule(initSchedulerEntry({ onDue }), DEFAULT_START + 1 + (i % 999));
      expect(s.size).to.equal(101_000);
      await t.tickAsync(1000);
      expect(dueCalls).to.equal(1000);
      expect(farCalls).to.equal(0);
      expect(s.size).to.equal(100_000);
    });

    it('returns the number of entries it called and calls nothing before their tick', () => {
      const s = create();
      for (let i = 0; i < 3; i++) s.schedule(new Probe(), DEFAULT_START + 1000);
      expect(s.tick()).to.equal(0);
      t.fake.setSystemTime(DEFAULT_START + 1000);
      expect(s.tick()).to.equal(3);
      expect(s.tick()).to.equal(0);
    });

    it('passes stalled = false to entries of a tick that ran on time', async () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, DEFAULT_START + 1500);
      await t.tickAsync(2000);
      expect(p.calls).to.deep.equal([{ now: DEFAULT_START + 2000, stalled: false }]);
    });

    it('catches up after a stall: every overdue entry fires once, with stalled = true', async () => {
      // 16 slots of 100 ms (a 1.6 s round); the stall lasts 30 s, so every slot is visited once.
      const s = create({ resolutionMs: 100, wheelSize: 16 });
      const order: string[] = [];
      const ats = [100, 250, 1_000, 1_650, 20_000, 29_900];
      const probes = ats.map((at) => {
        const p = new Probe(String(at), () => order.push(String(at)));
        s.schedule(p, DEFAULT_START + at);
        return p;
      });
      const notYet = new Probe('notYet');
      s.schedule(notYet, DEFAULT_START + 30_050);
      // 0 ms: the event loop blocks for 30 s; the tick planned at 100 ms runs at 30,000 ms.
      t.fake.jump(30_000);
      await t.flush();
      expect(order).to.have.members(ats.map(String));
      for (const p of probes) expect(p.calls, p.name).to.deep.equal([{ now: DEFAULT_START + 30_000, stalled: true }]);
      expect(notYet.calls).to.have.length(0);
      expect(s.lastLagMs).to.equal(29_900);
      // 30,100 ms: back on schedule.
      await t.tickAsync(100);
      expect(notYet.calls).to.deep.equal([{ now: DEFAULT_START + 30_100, stalled: false }]);
    });

    it('calls stalled only a tick more than one resolution late', async () => {
      const s = create({ resolutionMs: 100 });
      const a = new Probe('a');
      const b = new Probe('b');
      s.schedule(a, DEFAULT_START + 100);
      s.schedule(b, DEFAULT_START + 400);
      // The tick planned at 100 ms runs at 200 ms: exactly one resolution late.
      t.fake.jump(200);
      await t.flush();
      expect(a.calls).to.deep.equal([{ now: DEFAULT_START + 200, stalled: false }]);
      // The tick planned at 300 ms runs at 401 ms.
      t.fake.jump(201);
      await t.flush();
      expect(b.calls).to.deep.equal([{ now: DEFAULT_START + 401, stalled: true }]);
    });

    it('judges entries after pending I/O: the timer only queues the tick with afterIo', async () => {
      let inAfterIo = false;
      const clock: Clock = {
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
      };
      const s = new Scheduler({ clock, logger: logs.logger });
      const seen: boolean[] = [];
      s.schedule(new Probe('p', () => seen.push(inAfterIo)), DEFAULT_START + 1000);
      await t.tickAsync(1000);
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
      for (const p of [before, thrower, after]) s.schedule(p, DEFAULT_START + 1000);
      await t.tickAsync(1000);
      expect(before.calls).to.have.length(1);
      expect(after.calls).to.have.length(1);
      expect(errors).to.have.length(1);
      expect((errors[0]!.err as Error).message).to.equal('boom');
      expect(errors[0]!.entry).to.equal(thrower);
      // The timer lives on.
      const next = new Probe('next');
      s.schedule(next, DEFAULT_START + 2000);
      await t.tickAsync(1000);
      expect(next.calls).to.have.length(1);
    });

    it('logs a throwing callback through the logger when no onError is given', async () => {
      const s = create();
      const after = new Probe('after');
      s.schedule(new Probe('thrower', () => { throw new Error('boom'); }), DEFAULT_START + 1000);
      s.schedule(after, DEFAULT_START + 1000);
      await t.tickAsync(1000);
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
      s.schedule(p, DEFAULT_START + 2000);
      await t.tickAsync(20_000);
      expect(p.calls.map((c) => c.now - DEFAULT_START)).to.deep.equal([2000, 4000, 6000, 8000, 10_000]);
      expect(s.size).to.equal(0);
    });

    it('lets a callback cancel or move another due entry of the same tick', async () => {
      const s = create();
      const cancelled = new Probe('cancelled');
      const moved = new Probe('moved');
      const first = new Probe('first', (now) => {
        s.cancel(cancelled);
        s.schedule(moved, now + 3000);
      });
      for (const p of [first, cancelled, moved]) s.schedule(p, DEFAULT_START + 1000);
      await t.tickAsync(1000);
      expect(first.calls).to.have.length(1);
      expect(cancelled.calls).to.have.length(0);
      expect(moved.calls).to.have.length(0);
      expect(s.size).to.equal(1);
      await t.tickAsync(3000);
      expect(moved.calls.map((c) => c.now)).to.deep.equal([DEFAULT_START + 4000]);
    });

    it('defers an entry a callback schedules for now to the next tick instead of looping', async () => {
      const s = create();
      const p = new Probe('again', (now) => {
        if (p.calls.length < 3) s.schedule(p, now);
      });
      s.schedule(p, DEFAULT_START + 1000);
      await t.tickAsync(1000);
      expect(p.calls).to.have.length(1);
      await t.tickAsync(1000);
      expect(p.calls).to.have.length(2);
    });
  });

  describe('timer lifecycle', () => {
    it('runs one timer while entries exist and none once the last one fired', async () => {
      const s = create();
      for (let i = 0; i < 100; i++) s.schedule(new Probe(), DEFAULT_START + 1000 + i * 10);
      expect(t.fake.countTimers()).to.equal(1);
      await t.tickAsync(1000);
      expect(s.size).to.equal(0);
      expect(t.fake.countTimers()).to.equal(0);
    });

    it('stops the timer when the last entry is cancelled and restarts it on schedule()', async () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, DEFAULT_START + 5000);
      s.cancel(p);
      expect(t.fake.countTimers()).to.equal(0);
      s.schedule(p, DEFAULT_START + 5000);
      expect(t.fake.countTimers()).to.equal(1);
      await t.tickAsync(5000);
      expect(p.calls).to.have.length(1);
    });

    it('does not report a stall for the first tick after an idle period', async () => {
      const s = create();
      const p = new Probe();
      s.schedule(p, DEFAULT_START + 1000);
      await t.tickAsync(1000);
      // Idle for an hour, then a new entry.
      await t.tickAsync(3_600_000);
      s.schedule(p, t.now() + 1000);
      await t.tickAsync(1000);
      expect(p.calls[1]).to.deep.equal({ now: DEFAULT_START + 3_602_000, stalled: false });
    });

    it('#stop() cancels the timer but keeps entries; the next schedule() restarts and catches up', async () => {
      const s = create();
      const early = new Probe('early');
      const late = new Probe('late');
      s.schedule(early, DEFAULT_START + 1000);
      s.stop();
      expect(t.fake.countTimers()).to.equal(0);
      await t.tickAsync(5000);
      expect(early.calls).to.have.length(0);
      expect(s.size).to.equal(1);
      s.schedule(late, DEFAULT_START + 7000);
      await t.tickAsync(0);
      expect(early.calls).to.deep.equal([{ now: DEFAULT_START + 5000, stalled: true }]);
      await t.tickAsync(2000);
      expect(late.calls.map((c) => c.now)).to.deep.equal([DEFAULT_START + 7000]);
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
