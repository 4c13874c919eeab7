/**
 * Closes connections at their {@link ReconnectBudget} slots: the client is told at once when
 * it will be closed (`reconnectAdvised` with `retryAfterMs`), and the close runs at the slot.
 * One pacer per budget, so lifetime expiries and a drain share one queue and one timer.
 *
 * The slots keep the budget on paper; the pacer keeps it in fact. A timer that fires late (an
 * event loop busy sending a thousand notices, a loaded machine, a stall) finds several slots
 * overdue: it makes as many of those closes as twice the pace allows since the last close (four
 * at most in one go), and never so many that the closes actually made in any 1-s window, or
 * in any window of the budget's (1 s + `jitterMs`), outnumber the slots planned there (one
 * window is one `spacing` for slower rates). A budget in full use has no room to catch up: a stall then delays the closes after it (never by more than the stall), and timers late by
 * δ every time delay them by δ per second.
 */
import type { TimerHandle } from './clock.js';
import type { WebSocketTimeoutManager } from './manager.js';
import type { ReconnectBudget } from './reconnect-budget.js';

/** Why a paced connection is closed: its lifetime ended, or its node is draining. */
export type PacedCloseReason = 'max_lifetime' | 'going_away';

/**
 * The notice a paced connection gets before its close. `retryAfterMs` is how long until the
 * server closes it: a client should reconnect after that, not before, so the fleet sees its
 * reconnects spread as the closes are.
 */
export interface ReconnectAdvice {
  type: 'reconnectAdvised';
  /** Its lifetime ended (`max_lifetime`), or its node is draining (`going_away`). */
  reason: 'max_lifetime' | 'going_away';
  retryAfterMs: number;
  /** When the notice was sent, ms since the epoch. */
  timestamp: number;
}

interface Entry {
  readonly manager: WebSocketTimeoutManager;
  readonly slot: number;
  /** Space to the previous slot when reserved: the budget's, or less for a drain that must meet a deadline. */
  readonly gapMs: number;
  /** Makes the close; told the time it is made. */
  readonly close: (at: number) => unknown;
  done: boolean;
}

export class ClosePacer {
  /** Pending closes by slot, earliest first. */
  private readonly queue: Entry[] = [];
  private readonly byManager = new Map<WebSocketTimeoutManager, Entry>();
  private timer: TimerHandle = undefined;
  private timerAt = Infinity;
  /** When the latest closes actually ran, oldest first: as many as one window may hold. */
  private readonly recent: number[] = [];

  constructor(readonly budget: ReconnectBudget) {}

  /** Connections waiting for their slot. */
  get size(): number {
    return this.byManager.size;
  }

  /**
   * Reserves `manager`'s slot, sends it the {@link ReconnectAdvice} now and runs `close` at the
   * slot, unless the connection has closed by then (its slot is then given back to the budget).
   * A connection already waiting keeps its slot. Returns the slot time.
   * @param maxSpacingMs see {@link ReconnectBudget.reserve}
   * @param notBefore No slot earlier than this (ms, on the budget's clock).
   */
  schedule(manager: WebSocketTimeoutManager, reason: PacedCloseReason, close: (at: number) => unknown, maxSpacingMs?: number, notBefore = -Infinity): number {
    const waiting = this.byManager.get(manager);
    if (waiting) return waiting.slot;
    const now = this.budget.clock.now();
    const slot = this.budget.reserve(Math.max(now, notBefore), maxSpacingMs);
    const entry: Entry = { manager, slot, gapMs: Math.min(this.budget.spacingMs(), maxSpacingMs ?? Infinity), close, done: false };
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1]!.slot > slot) i--;
    this.queue.splice(i, 0, entry);
    this.byManager.set(manager, entry);
    const advice: ReconnectAdvice = { type: 'reconnectAdvised', reason, retryAfterMs: slot - now, timestamp: now };
    void manager.sendJsonWithTimeout(advice);
    void manager.whenClosed().then(() => this.forget(entry));
    // A slot that is due now closes now, as an unpaced close would.
    if (slot <= now) this.fire();
    else this.arm();
    return slot;
  }

  /** The connection closed before its slot: give the slot back. */
  private forget(entry: Entry): void {
    if (entry.done) return;
    entry.done = true;
    this.byManager.delete(entry.manager);
    this.budget.cancel(entry.slot);
  }

  /** The earliest time `entry` may close: its slot, half a gap after the last close, and room in the window. */
  private dueAt(entry: Entry): number {
    const last = this.recent[this.recent.length - 1];
    return Math.max(entry.slot, last === undefined ? -Infinity : last + entry.gapMs / 2, this.windowFreeAt(entry));
  }

  /**
   * When there is room for one more close in both windows: the budget's (1 s + `jitterMs`), and
   * 1 s at the planned pace, so catching up never takes the room kept for delivery jitter.
   */
  private windowFreeAt(entry: Entry): number {
    const spacing = this.budget.spacingMs();
    // A drain closing faster than the budget to meet its deadline is not held to the budget's windows.
    if (entry.gapMs < spacing) return -Infinity;
    let free = -Infinity;
    for (const windowMs of [1000, this.budget.windowMs()]) {
      // For rates below one per window, the window is one spacing.
      const span = Math.max(windowMs, spacing);
      const allowed = slotsIn(span, spacing);
      if (this.recent.length >= allowed) free = Math.max(free, this.recent[this.recent.length - allowed]! + span);
    }
    return free;
  }

  /** Close times to remember: as many as the larger window allows. */
  private windowSlots(): number {
    const spacing = this.budget.spacingMs();
    return slotsIn(Math.max(this.budget.windowMs(), spacing), spacing);
  }

  private arm(): void {
    while (this.queue.length > 0 && this.queue[0]!.done) this.queue.shift();
    const head = this.queue[0];
    if (!head) return;
    const due = this.dueAt(head);
    if (due >= this.timerAt) return;
    this.budget.clock.clearTimeout(this.timer);
    this.timerAt = due;
    this.timer = this.budget.clock.setTimeout(() => this.fire(), Math.max(0, due - this.budget.clock.now()));
  }

  private fire(): void {
    this.timerAt = Infinity;
    const now = this.budget.clock.now();
    const last = this.recent[this.recent.length - 1];
    // Closes this wakeup may make: twice the pace since the last close, a few at most. A timer can
    // fire late on a loaded machine every time; one close per wakeup would then fall behind for good.
    let credit = Infinity;
    for (let head = this.queue[0]; head !== undefined; head = this.queue[0]) {
      if (!head.done) {
        if (head.slot > now || this.windowFreeAt(head) > now) break;
        if (credit === Infinity && last !== undefined) credit = Math.min(MAX_PER_WAKEUP, Math.floor((now - last) / (head.gapMs / 2)));
        if (credit-- <= 0) break;
      }
      this.queue.shift();
      if (head.done) continue;
      head.done = true;
      this.byManager.delete(head.manager);
      // Closed or closing meanwhile (the drain's last call, the app): nothing to do, no close to count.
      if (head.manager.state !== 'open') continue;
      const at = this.budget.clock.now();
      this.recent.push(at);
      if (this.recent.length > this.windowSlots()) this.recent.shift();
      head.close(at);
    }
    this.arm();
  }
}

/** Closes one late wakeup may make together: enough to keep a 200/s pace with timers 20 ms late. */
const MAX_PER_WAKEUP = 4;

/** The slots `spacing` apart that a window of `span` ms holds. */
function slotsIn(span: number, spacing: number): number {
  return Math.min(MAX_RECENT, Math.ceil(span / spacing - 1e-9));
}

/** At most this many close times are remembered: the window is enforced for node rates up to 10,000/s. */
const MAX_RECENT = 10_000;

const pacers = new WeakMap<ReconnectBudget, ClosePacer>();

/** The one pacer of `budget`. */
export function pacerOf(budget: ReconnectBudget): ClosePacer {
  let pacer = pacers.get(budget);
  if (!pacer) pacers.set(budget, (pacer = new ClosePacer(budget)));
  return pacer;
}
