/**
 * One shared coarse tick that drives the idle, lifetime, ping and pong checks of every socket.
 *
 * A hashed timing wheel: `wheelSize` slots (a power of two), each a circular doubly linked list
 * threaded through the entries themselves (intrusive links), so `schedule()` and `cancel()` are
 * O(1) and allocate nothing, and a tick visits only the slots of the tick indices that elapsed.
 * A slot holds entries of every wheel round; those due in a later round stay where they are.
 *
 * Time is cut into ticks of `resolutionMs`: tick k covers `[k·R, (k+1)·R)`. A deadline T is due
 * at tick `ceil(T / R)` and that tick is processed at a time `>= ceil(T / R)·R`, so a deadline
 * never fires early and, while the event loop keeps up, fires at most one resolution late.
 *
 * A deadline that must not wait for the next whole tick (a pong deadline: a ping sent just after
 * a boundary would otherwise be judged almost a resolution late) goes through `scheduleExact()`:
 * the entry is called at the start of the tick that holds its time and, if that is still early,
 * once more at the time itself, by the same one timer. Inside a tick such entries wait in
 * `SOON_SLOTS` lists, one per equal part of the tick, each woken at the latest time it holds: an
 * entry is at most a part of a tick late, and stores no time of its own.
 *
 * One clock timer runs while entries exist and none when the wheel is empty, so a process with
 * no sockets can exit. The timer only queues the tick with `clock.afterIo()` (Node's check
 * phase): input that arrived during an event-loop stall, such as a pong, is read before any
 * deadline is judged.
 *
 * A timer-driven tick calls its due entries in slices of about `SLICE_MS` of work, queuing the
 * rest with `afterIo()` again: 9,000 sockets pinged in one tick cost the event loop about half a
 * millisecond at a time, not 150 ms at once (bench/: figure 4). `tick()` called directly runs
 * everything due before it returns.
 */
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { defaultLogger, type Logger } from './logger.js';

export interface SchedulerEntry {
  /**
   * Called once when due, with the tick's time and whether the tick ran more than one
   * resolution late (an event-loop stall). Reschedule from inside if more checks are needed.
   */
  onDue(now: number, stalled: boolean): void;
  /** Intrusive link, managed by the scheduler only. */
  schedulerNext: SchedulerEntry | null;
  /** Intrusive link, managed by the scheduler only. */
  schedulerPrev: SchedulerEntry | null;
  /** The tick the entry is due at (scheduler-internal numbering); -1 when not scheduled. */
  schedulerDueTick: number;
}

type SchedulerFields = Pick<SchedulerEntry, 'schedulerNext' | 'schedulerPrev' | 'schedulerDueTick'>;

/**
 * Gives an object the scheduler's intrusive fields, unscheduled. Call it in the constructor,
 * before other fields are set, so every instance keeps one hidden class.
 */
export function initSchedulerEntry<T extends object>(entry: T): T & SchedulerFields {
  const e = entry as T & SchedulerFields;
  e.schedulerNext = null;
  e.schedulerPrev = null;
  e.schedulerDueTick = -1;
  return e;
}

export interface SchedulerOptions {
  /** Length of one tick. Deadlines fire no later than deadline + resolution. @default 1000 // 1 second */
  resolutionMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Slots in the wheel, a power of two. A stall longer than `wheelSize` ticks visits each slot once. @default 1024 */
  wheelSize?: number;
  /** Where a throwing `onDue` is reported when no `onError` is given. @default defaultLogger() */
  logger?: Logger;
  /** Called with whatever an `onDue` threw; the tick carries on with the next entry. */
  onError?: (err: unknown, entry: SchedulerEntry) => void;
}

/** The longest the timer sleeps, in ticks, however far the next deadline is. */
const MAX_SLEEP_TICKS = 64;

/** The defaults, declared once. */
export const SCHEDULER_DEFAULTS = Object.freeze({ resolutionMs: 1000, wheelSize: 1024 });

/**
 * A timer-driven tick yields to pending I/O once its callbacks have run this long (ms). At 9,000
 * sockets pinged in one tick, 0.5 ms rather than 1 ms lowered the event-loop p99 by 0.6–1 ms in
 * 11 of 12 alternating runs, for no measurable CPU (BENCHMARKS.md, figure 4).
 */
const SLICE_MS = 0.5;
/** How many callbacks run between two clock reads of the slice check: a slice may overrun by this many. */
const CALLS_PER_CLOCK_READ = 8;

/** The parts a tick is cut into for `scheduleExact()`: an exact deadline is at most resolution / SOON_SLOTS late. */
const SOON_SLOTS = 16;

/** The largest wheel: slot indices are computed with 32-bit `&`. */
const MAX_WHEEL_SIZE = 2 ** 30;

/** A slot's list head: a circular list is empty when the sentinel links to itself. */
function createSentinel(): SchedulerEntry {
  const s: SchedulerEntry = { onDue: () => undefined, schedulerNext: null, schedulerPrev: null, schedulerDueTick: -1 };
  s.schedulerNext = s;
  s.schedulerPrev = s;
  return s;
}

function linkLast(list: SchedulerEntry, entry: SchedulerEntry): void {
  const last = list.schedulerPrev!;
  entry.schedulerPrev = last;
  entry.schedulerNext = list;
  last.schedulerNext = entry;
  list.schedulerPrev = entry;
}

/** Works on whichever list holds the entry (a slot or the due list): that is what the sentinels buy. */
function unlink(entry: SchedulerEntry): void {
  entry.schedulerPrev!.schedulerNext = entry.schedulerNext;
  entry.schedulerNext!.schedulerPrev = entry.schedulerPrev;
  entry.schedulerNext = null;
  entry.schedulerPrev = null;
}

function checkResolution(value: unknown): number {
  if (typeof value !== 'number') {
    throw new TypeError(`Scheduler: resolutionMs must be a number of milliseconds, got ${typeof value} ${String(value)}`);
  }
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Scheduler: resolutionMs must be a finite number > 0 (milliseconds), got ${value}`);
  }
  return value;
}

function checkWheelSize(value: unknown): number {
  if (typeof value !== 'number') {
    throw new TypeError(`Scheduler: wheelSize must be a number, got ${typeof value} ${String(value)}`);
  }
  if (!Number.isInteger(value) || value < 2 || value > MAX_WHEEL_SIZE || (value & (value - 1)) !== 0) {
    throw new RangeError(`Scheduler: wheelSize must be a power of two from 2 to 2^30 (e.g. 1024), got ${value}`);
  }
  return value;
}

export class Scheduler {
  readonly resolutionMs: number;
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly onError: ((err: unknown, entry: SchedulerEntry) => void) | undefined;
  private readonly slots: SchedulerEntry[];
  private readonly mask: number;
  /** Entries taken off the wheel by the running tick and not yet called. */
  private readonly due: SchedulerEntry = createSentinel();
  /**
   * Entries of `scheduleExact()` whose time falls in the tick already processed (the one before
   * `nextTick`), one list per part of that tick. The next tick processed finds every part's time
   * come, so the lists never hold entries of an older tick.
   */
  private readonly soon: SchedulerEntry[] = Array.from({ length: SOON_SLOTS }, createSentinel);
  /** The latest time each part of `soon` holds (ms), -1 when none: the part is called then, so none of its entries early. */
  private readonly soonLatest = new Float64Array(SOON_SLOTS).fill(-1);
  /** The first part of `soon` with a time; SOON_SLOTS when there is none. */
  private soonFirst = SOON_SLOTS;
  /**
   * Ticks are counted from the tick the scheduler was created in, not from the epoch: at
   * 1-second resolution epoch tick numbers pass 2^30 and would stop being small integers in V8.
   */
  private readonly originTick: number;
  /**
   * The first tick not yet processed; every scheduled entry is due at or after it. It goes back
   * only while the wheel is empty (a clock set back, or a fresh fake clock in the next test).
   */
  private nextTick: number;
  /** The tick the timer is armed for (-1 when not armed). */
  private armedTick = -1;
  /** When the armed timer fires (ms). */
  private armedAt = -1;
  private count = 0;
  private timer: TimerHandle | null = null;
  /** The timer fired and the tick waits in `afterIo`. */
  private tickQueued = false;
  private running = false;
  private lagMs = 0;
  /** Whether the entries waiting on the due list were taken off the wheel by a stalled tick. */
  private dueStalled = false;

  constructor(options: SchedulerOptions = {}) {
    this.resolutionMs = checkResolution(options.resolutionMs ?? SCHEDULER_DEFAULTS.resolutionMs);
    const wheelSize = checkWheelSize(options.wheelSize ?? SCHEDULER_DEFAULTS.wheelSize);
    const clock = options.clock ?? systemClock;
    if (typeof clock.now !== 'function' || typeof clock.setTimeout !== 'function' || typeof clock.afterIo !== 'function') {
      throw new TypeError('Scheduler: clock must implement the Clock interface (now, setTimeout, clearTimeout, afterIo)');
    }
    if (options.logger !== undefined && typeof options.logger.error !== 'function') {
      throw new TypeError('Scheduler: logger must have an error(message, meta) method');
    }
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new TypeError(`Scheduler: onError must be a function, got ${typeof options.onError}`);
    }
    this.clock = clock;
    this.logger = options.logger;
    this.onError = options.onError;
    this.mask = wheelSize - 1;
    this.slots = Array.from({ length: wheelSize }, createSentinel);
    this.originTick = Math.floor(clock.now() / this.resolutionMs);
    this.nextTick = 1;
  }

  /** Entries scheduled, including those the running tick has yet to call. */
  get size(): number {
    return this.count;
  }

  /** How late the last tick that processed anything ran, in ms (event-loop lag, for metrics). */
  get lastLagMs(): number {
    return this.lagMs;
  }

  /**
   * Makes `entry` due at `atMs` (epoch ms), moving it if it was already scheduled. A time in
   * the past or now is due on the next tick, never during the current one. An entry belongs to
   * one scheduler at a time.
   */
  schedule(entry: SchedulerEntry, atMs: number): void {
    if (!Number.isFinite(atMs)) {
      throw new RangeError(`Scheduler: schedule() needs a finite time in ms, got ${atMs}`);
    }
    this.restartIfIdle();
    let dueTick = Math.ceil(atMs / this.resolutionMs) - this.originTick;
    if (dueTick < this.nextTick) dueTick = this.nextTick;
    this.put(entry, dueTick);
  }

  /**
   * Makes `entry` due at `atMs` itself rather than on the tick after it: it is called at the
   * start of the tick that holds `atMs` (early, so it must check and call this again) and, when
   * that tick is already under way, at `atMs` — never earlier, and later by at most
   * `resolutionMs / 16` (the latest time scheduled exactly in the same part of the tick). A time
   * already passed is due once pending input has been read, never in the run that scheduled it.
   */
  scheduleExact(entry: SchedulerEntry, atMs: number): void {
    if (!Number.isFinite(atMs)) {
      throw new RangeError(`Scheduler: scheduleExact() needs a finite time in ms, got ${atMs}`);
    }
    this.restartIfIdle();
    const holding = Math.floor(atMs / this.resolutionMs) - this.originTick;
    if (holding >= this.nextTick) return this.put(entry, holding);
    if (entry.schedulerDueTick >= 0) unlink(entry);
    else this.count++;
    // Below nextTick, like the entries on the due list: schedule() and cancel() work on it as on them.
    entry.schedulerDueTick = this.nextTick - 1;
    // Clamped: a clock set back can give a time before the tick.
    const part = Math.max(0, Math.min(SOON_SLOTS - 1, Math.floor(((atMs - this.startOf(this.nextTick - 1)) * SOON_SLOTS) / this.resolutionMs)));
    linkLast(this.soon[part]!, entry);
    if (atMs > this.soonLatest[part]!) this.soonLatest[part] = atMs;
    if (part < this.soonFirst) this.soonFirst = part;
    if (!this.tickQueued && !this.running) this.armForSoon();
  }

  /** When the first part of `soon` is due (ms); -1 when `soon` is empty. */
  private get soonAt(): number {
    return this.soonFirst === SOON_SLOTS ? -1 : this.soonLatest[this.soonFirst]!;
  }

  /** Arms the timer, or arms it earlier, so that it fires by `soonAt`. */
  private armForSoon(): void {
    if (this.timer === null) this.arm();
    else if (this.soonAt >= 0 && this.soonAt < this.armedAt) {
      this.clock.clearTimeout(this.timer);
      this.arm();
    }
  }

  private restartIfIdle(): void {
    if (this.count === 0 && !this.running) {
      // Nothing is on the wheel, so the ticks that passed while idle need no visit; skipping
      // them also keeps the first tick from looking like a stall. Assigned, not maxed: after a
      // clock went back, keeping the old timeline would delay every new deadline by the step.
      this.nextTick = this.tickAt(this.clock.now()) + 1;
      // Parts whose entries were all cancelled may still hold a time of the old tick.
      this.soonLatest.fill(-1);
      this.soonFirst = SOON_SLOTS;
    }
  }

  private put(entry: SchedulerEntry, dueTick: number): void {
    const current = entry.schedulerDueTick;
    if (current >= 0) {
      // Entries on the due and soon lists have current < nextTick <= dueTick, so equality means "on the wheel, same slot".
      if (current === dueTick) return;
      unlink(entry);
    } else {
      this.count++;
    }
    entry.schedulerDueTick = dueTick;
    linkLast(this.slots[dueTick & this.mask]!, entry);
    if (this.tickQueued || this.running) return;
    if (this.timer === null) this.arm();
    else if (dueTick < this.armedTick) {
      // Due before the tick the timer waits for: wake earlier.
      this.clock.clearTimeout(this.timer);
      this.arm();
    }
  }

  /** Unschedules `entry`; a no-op if it is not scheduled. Stops the timer when nothing is left. */
  cancel(entry: SchedulerEntry): void {
    if (!(entry.schedulerDueTick >= 0)) return;
    unlink(entry);
    entry.schedulerDueTick = -1;
    if (--this.count === 0) this.disarm();
  }

  isScheduled(entry: SchedulerEntry): boolean {
    return entry.schedulerDueTick >= 0;
  }

  /**
   * Runs due entries now (used by tests and by the timer). Visits the slots of every tick that
   * elapsed since the last one, at most once each. Returns the number of entries called.
   */
  tick(): number {
    return this.run(Infinity);
  }

  private run(sliceMs: number): number {
    if (this.running) return 0;
    this.running = true;
    let fired: number;
    try {
      fired = this.process(sliceMs);
    } finally {
      this.running = false;
    }
    if (this.due.schedulerNext !== this.due) {
      // The slice ran out: the rest of the tick runs after pending I/O has been read.
      if (!this.tickQueued) {
        this.tickQueued = true;
        this.clock.afterIo(this.onAfterIo);
      }
    } else if (this.count === 0) this.disarm();
    else if (!this.tickQueued) this.armForSoon();
    return fired;
  }

  /** Cancels the timer. Entries stay scheduled; the next `schedule()` restarts the timer. */
  stop(): void {
    this.disarm();
  }

  private tickAt(timeMs: number): number {
    return Math.floor(timeMs / this.resolutionMs) - this.originTick;
  }

  /** The earliest time at which tick `t` may be processed. */
  private startOf(t: number): number {
    return (t + this.originTick) * this.resolutionMs;
  }

  private process(sliceMs: number): number {
    const now = this.clock.now();
    const target = this.tickAt(now);
    const first = this.nextTick;
    const due = this.due;
    if (target >= first) this.detachDue(now, target, first);
    if (this.soonAt >= 0 && now >= this.soonAt) this.detachSoon(now);
    if (due.schedulerNext === due) return 0;
    const stalled = this.dueStalled;

    let fired = 0;
    for (let entry = due.schedulerNext!; entry !== due; entry = due.schedulerNext!) {
      // Reading the clock only every few calls keeps the check cheap; a fake clock never runs out.
      if (fired % CALLS_PER_CLOCK_READ === CALLS_PER_CLOCK_READ - 1 && sliceMs !== Infinity && this.clock.now() - now >= sliceMs) break;
      unlink(entry);
      entry.schedulerDueTick = -1;
      this.count--;
      fired++;
      try {
        entry.onDue(now, stalled);
      } catch (err) {
        this.report(err, entry);
      }
    }
    if (due.schedulerNext === due) this.dueStalled = false;
    return fired;
  }

  /** Moves every entry due by tick `target` to the due list, and judges the tick's lateness. */
  private detachDue(now: number, target: number, first: number): void {
    // Detach everything due before calling anyone: callbacks may then schedule or cancel any
    // entry, this one included, and nothing they schedule can be due in this tick.
    const due = this.due;
    const visits = Math.min(target - first + 1, this.slots.length);
    let earliest = target;
    for (let i = 0; i < visits; i++) {
      const slot = this.slots[(first + i) & this.mask]!;
      let entry = slot.schedulerNext!;
      while (entry !== slot) {
        const next = entry.schedulerNext!;
        if (entry.schedulerDueTick <= target) {
          if (entry.schedulerDueTick < earliest) earliest = entry.schedulerDueTick;
          unlink(entry);
          linkLast(due, entry);
        }
        entry = next;
      }
    }
    this.nextTick = target + 1;
    // Lateness is judged from the earliest entry this tick calls: the timer sleeps over empty
    // ticks, so the first unvisited tick says nothing about the event loop.
    const lagMs = now - this.startOf(Math.max(first, earliest));
    this.lagMs = lagMs;
    // Entries still waiting from an earlier, stalled slice keep their verdict.
    if (lagMs > this.resolutionMs) this.dueStalled = true;
  }

  /** Moves the entries of `scheduleExact()` in every part of the processed tick whose time has come to the due list. */
  private detachSoon(now: number): void {
    let part = this.soonFirst;
    for (; part < SOON_SLOTS; part++) {
      const latest = this.soonLatest[part]!;
      if (latest < 0) continue;
      // Parts are in time order: every time in a later part is later than this one's latest.
      if (latest > now) break;
      const list = this.soon[part]!;
      for (let entry = list.schedulerNext!; entry !== list; entry = list.schedulerNext!) {
        unlink(entry);
        linkLast(this.due, entry);
      }
      this.soonLatest[part] = -1;
    }
    this.soonFirst = part;
  }

  private report(err: unknown, entry: SchedulerEntry): void {
    if (this.onError) {
      try {
        this.onError(err, entry);
        return;
      } catch (onErrorErr) {
        err = onErrorErr;
      }
    }
    (this.logger ?? defaultLogger()).error('Scheduler: a due callback threw', {
      error: err,
      entry: entry.constructor?.name,
    });
  }

  private arm(): void {
    // Sleep until the first non-empty slot rather than waking every tick: a few sockets with
    // long timeouts (or hours of fake time in a test) cost one wake per deadline, not per tick.
    // The wait is capped so a wall clock stepped forward is noticed within MAX_SLEEP_TICKS.
    const limit = Math.min(this.slots.length, MAX_SLEEP_TICKS);
    let tick = this.nextTick;
    // Entries left on the due list by a stop() mid-tick are due now.
    if (this.due.schedulerNext !== this.due) tick = this.nextTick - 1;
    else while (tick < this.nextTick + limit && this.slots[tick & this.mask]!.schedulerNext === this.slots[tick & this.mask]) tick++;
    this.armedTick = tick;
    const now = this.clock.now();
    let at = this.startOf(tick);
    if (this.soonAt >= 0 && this.soonAt < at) at = this.soonAt;
    const delay = Math.max(0, at - now);
    this.armedAt = now + delay;
    this.timer = this.clock.setTimeout(this.onTimer, delay);
  }

  private disarm(): void {
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
    this.armedTick = -1;
    this.armedAt = -1;
    // An already queued afterIo callback cannot be withdrawn: it finds the flag down and returns.
    this.tickQueued = false;
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.armedTick = -1;
    this.armedAt = -1;
    this.tickQueued = true;
    this.clock.afterIo(this.onAfterIo);
  };

  private readonly onAfterIo = (): void => {
    if (!this.tickQueued) return;
    this.tickQueued = false;
    this.run(SLICE_MS);
  };
}

const shared = new WeakMap<Clock, Map<number, Scheduler>>();

/** The scheduler shared by everything on `clock` at `resolutionMs`, created on first use. */
export function sharedScheduler(clock: Clock, resolutionMs: number): Scheduler {
  let byResolution = shared.get(clock);
  if (!byResolution) {
    byResolution = new Map();
    shared.set(clock, byResolution);
  }
  let scheduler = byResolution.get(resolutionMs);
  if (!scheduler) {
    scheduler = new Scheduler({ clock, resolutionMs });
    byResolution.set(resolutionMs, scheduler);
  }
  return scheduler;
}
