/**
 * `ReconnectBudget`: when a node may close its next connection so that the clients it sends
 * away do not all come back at once.
 *
 * Pure arithmetic on a clock: slots are handed out evenly spaced, `(1000 + jitterMs) × nodes() /
 * rate` ms apart, so a node never plans two closes closer than that. Any half-open window of W ms
 * then holds at most ⌈W / spacing⌉ slots: with one node and a whole-number rate, no window of
 * 1 s + `jitterMs` holds more than `rate`. An idle budget saves nothing up: after a quiet minute
 * the next slot is "now" and the one after it a full spacing later, never a burst.
 *
 * Why `jitterMs`: the rate is what the clients see, and they see each close some time after the
 * node makes it (the close handshake, both event loops, the network). When that delay varies by
 * at most `jitterMs` between closes, a 1-s window at the clients holds closes the node made within
 * 1 s + `jitterMs`, so the clients see at most `rate` in any 1-s window too. Delays that vary by
 * more than that (a stalled client or node) can put more in one of the clients' windows.
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
  /**
   * How much the delay between a close and its client seeing it may vary, ms: the node spaces its
   * closes so that any window of 1 s + `jitterMs` holds at most its share of `rate`, so the
   * clients still see at most `rate` in any 1-s window. 0 bounds the node's own closes only.
   * @default 250
   */
  jitterMs?: number;
  /** The source of time for `reserve()` without an argument. @default systemClock */
  clock?: Clock;
}

/** The defaults of {@link ReconnectBudgetOptions}, declared once. */
export const RECONNECT_BUDGET_DEFAULTS = Object.freeze({
  /** Delivery delays on a loaded 2-core machine varied by up to about 250 ms between closes. */
  jitterMs: 250,
});

/** The accepted range of the options, declared once (the environment variables read the same). */
export const RECONNECT_BUDGET_LIMITS = Object.freeze({
  /** The largest rate, closes per second: a close every microsecond is already no pacing at all. */
  maxRate: 1_000_000,
  /** The largest jitter allowance, ms: a minute is far past any delivery delay. */
  maxJitterMs: 60_000,
});

const { maxRate: MAX_RATE, maxJitterMs: MAX_JITTER_MS } = RECONNECT_BUDGET_LIMITS;

/**
 * @throws {RangeError} When `jitterMs` is not a number from 0 to 60,000.
 */
function checkJitterMs(jitterMs: unknown, name = 'jitterMs'): number {
  if (typeof jitterMs !== 'number' || !Number.isFinite(jitterMs) || jitterMs < 0 || jitterMs > MAX_JITTER_MS) {
    throw new RangeError(`ReconnectBudget: ${name} must be a number of ms from 0 to ${MAX_JITTER_MS}, got ${String(jitterMs)}`);
  }
  return jitterMs;
}

/**
 * @throws {RangeError} When `rate` is not a number greater than 0 and at most 1,000,000.
 */
function checkReconnectRate(rate: unknown, name = 'rate'): number {
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
  /** How much delivery delays may vary, ms (see {@link ReconnectBudgetOptions.jitterMs}). */
  readonly jitterMs: number;
  readonly clock: Clock;
  private readonly nodes: () => number;
  /** The earliest time the next new slot may take. */
  private next = -Infinity;
  /** The newest slot handed out from the grid, and the one before it (what `cancel` rolls back to). */
  private last = -Infinity;
  private previous = -Infinity;
  /** Cancelled slots still in the future, ascending: handed out again before new ones. */
  private readonly free: number[] = [];

  /** @throws {RangeError} When `rate` or `jitterMs` is out of range or `nodes` is not a function. */
  constructor(options: ReconnectBudgetOptions) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`ReconnectBudget: options must be an object such as { rate: 200 }, got ${String(options)}`);
    }
    this.rate = checkReconnectRate(options.rate);
    this.jitterMs = checkJitterMs(options.jitterMs ?? RECONNECT_BUDGET_DEFAULTS.jitterMs);
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

  /** The window the node holds to its share of `rate`: 1 s + `jitterMs`. */
  windowMs(): number {
    return 1000 + this.jitterMs;
  }

  /** Milliseconds between two of this node's slots now: its share of `rate` per {@link windowMs}. */
  spacingMs(): number {
    return this.windowMs() / this.nodeRate();
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
