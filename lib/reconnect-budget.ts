/**
 * `ReconnectBudget`: when a node may close its next connection so that the clients it sends
 * away do not all come back at once.
 *
 * Pure arithmetic on a clock: slots are handed out evenly spaced, `1000 × nodes() / rate` ms
 * apart, so a node never plans two closes closer than that. Any half-open window of W ms then
 * holds at most ⌈W / spacing⌉ slots: with one node and a whole-number rate, no 1-s window holds
 * more than `rate`. An idle budget saves nothing up: after a quiet minute the next slot is
 * "now" and the one after it a full spacing later, never a burst.
 *
 * Fleet-wide, every node divides the rate by the live member count (`nodes`), so while
 * membership is stable the fleet closes at most `rate` per second on average, and in any 1-s
 * window at most N·⌈rate/N⌉ (exactly `rate` when N divides it). When membership changes, a
 * node that has not yet seen the new count uses the old share until it does: for that while
 * the fleet may exceed the rate by up to one node's share. Nothing is written to Redis per close.
 */
import { systemClock, type Clock } from './clock.js';

export interface ReconnectBudgetOptions {
  /** Closes per second across the fleet (fractions allowed: 0.5 is one close every 2 s). Must be > 0. */
  rate: number;
  /**
   * Live nodes sharing the rate (read at each reservation); each node uses `rate / nodes()`.
   * A fleet passes its member count, e.g. `() => fleet.health().nodes`. Values below 1 count as 1.
   * @default () => 1
   */
  nodes?: () => number;
  /** The source of time for `reserve()` without an argument. @default systemClock */
  clock?: Clock;
}

/** The largest accepted rate: a close every microsecond is already no pacing at all. */
const MAX_RATE = 1_000_000;

/**
 * @throws {RangeError} When `rate` is not a number greater than 0 and at most 1,000,000.
 */
export function checkReconnectRate(rate: unknown, name = 'rate'): number {
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || rate > MAX_RATE) {
    throw new RangeError(
      `ReconnectBudget: ${name} must be a number of closes per second greater than 0 and at most ${MAX_RATE} ` +
        `(fractions allowed: 0.5 is one close every 2 s), got ${String(rate)}`,
    );
  }
  return rate;
}

export class ReconnectBudget {
  /** Closes per second across the fleet. */
  readonly rate: number;
  readonly clock: Clock;
  private readonly nodes: () => number;
  /** The earliest time the next new slot may take. */
  private next = -Infinity;
  /** The newest slot handed out from the grid, and the one before it (what `cancel` rolls back to). */
  private last = -Infinity;
  private previous = -Infinity;
  /** Cancelled slots still in the future, ascending: handed out again before new ones. */
  private readonly free: number[] = [];

  /** @throws {RangeError} When `rate` is out of range or `nodes` is not a function. */
  constructor(options: ReconnectBudgetOptions) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`ReconnectBudget: options must be an object such as { rate: 200 }, got ${String(options)}`);
    }
    this.rate = checkReconnectRate(options.rate);
    if (options.nodes !== undefined && typeof options.nodes !== 'function') {
      throw new TypeError(`ReconnectBudget: nodes must be a function returning the live node count, got ${typeof options.nodes}`);
    }
    this.nodes = options.nodes ?? (() => 1);
    this.clock = options.clock ?? systemClock;
  }

  /** Closes per second this node may make now: `rate / nodes()`. */
  nodeRate(): number {
    const n = this.nodes();
    return this.rate / (Number.isFinite(n) && n > 1 ? Math.floor(n) : 1);
  }

  /** Milliseconds between two of this node's slots now. */
  spacingMs(): number {
    return 1000 / this.nodeRate();
  }

  /**
   * Takes the next close slot at or after `now` and returns its time (ms, on the budget's clock).
   * New slots come out in increasing order; a cancelled slot still ahead of `now` is reused
   * first, so a reused one may be earlier than the last one handed out.
   *
   * @param maxSpacingMs Space this slot at most this far after the previous one: a drain that
   *   must finish before a deadline closes faster than the budget (and says so).
   */
  reserve(now: number = this.clock.now(), maxSpacingMs = Infinity): number {
    while (this.free.length > 0 && this.free[0]! < now) this.free.shift();
    const reused = this.free.shift();
    if (reused !== undefined) return reused;
    const earliest = maxSpacingMs < this.next - this.last ? this.last + maxSpacingMs : this.next;
    const slot = Math.max(now, earliest);
    this.previous = this.last;
    this.last = slot;
    this.next = slot + this.spacingMs();
    return slot;
  }

  /**
   * Gives back a slot that will not be used (its connection closed meanwhile): the next
   * `reserve()` at or before that time gets it, so the capacity is not lost.
   */
  cancel(slot: number): void {
    if (slot === this.last && !this.free.includes(slot)) {
      // The newest slot: roll the grid back instead of remembering it.
      this.next = slot;
      this.last = this.previous;
      this.previous = -Infinity;
      return;
    }
    const i = this.free.findIndex((s) => s >= slot);
    if (this.free[i] === slot) return;
    this.free.splice(i < 0 ? this.free.length : i, 0, slot);
  }
}
