/**
 * Closes connections at their {@link ReconnectBudget} slots: the client is told at once when
 * it will be closed (`reconnectAdvised` with `retryAfterMs`), and the close runs at the slot.
 * One pacer per budget, so lifetime expiries and a drain share one queue and one timer.
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
  reason: PacedCloseReason;
  retryAfterMs: number;
  /** When the notice was sent, ms since the epoch. */
  timestamp: number;
}

interface Entry {
  readonly manager: WebSocketTimeoutManager;
  readonly slot: number;
  readonly close: () => unknown;
  done: boolean;
}

export class ClosePacer {
  /** Pending closes by slot, earliest first. */
  private readonly queue: Entry[] = [];
  private readonly byManager = new Map<WebSocketTimeoutManager, Entry>();
  private timer: TimerHandle = undefined;
  private timerAt = Infinity;

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
   */
  schedule(manager: WebSocketTimeoutManager, reason: PacedCloseReason, close: () => unknown, maxSpacingMs?: number): number {
    const waiting = this.byManager.get(manager);
    if (waiting) return waiting.slot;
    const now = this.budget.clock.now();
    const slot = this.budget.reserve(now, maxSpacingMs);
    const entry: Entry = { manager, slot, close, done: false };
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

  private arm(): void {
    while (this.queue.length > 0 && this.queue[0]!.done) this.queue.shift();
    const head = this.queue[0];
    if (!head || head.slot >= this.timerAt) return;
    this.budget.clock.clearTimeout(this.timer);
    this.timerAt = head.slot;
    this.timer = this.budget.clock.setTimeout(() => this.fire(), Math.max(0, head.slot - this.budget.clock.now()));
  }

  private fire(): void {
    this.timerAt = Infinity;
    const now = this.budget.clock.now();
    while (this.queue.length > 0 && this.queue[0]!.slot <= now) {
      const entry = this.queue.shift()!;
      if (entry.done) continue;
      entry.done = true;
      this.byManager.delete(entry.manager);
      entry.close();
    }
    this.arm();
  }
}

const pacers = new WeakMap<ReconnectBudget, ClosePacer>();

/** The one pacer of `budget`. */
export function pacerOf(budget: ReconnectBudget): ClosePacer {
  let pacer = pacers.get(budget);
  if (!pacer) pacers.set(budget, (pacer = new ClosePacer(budget)));
  return pacer;
}
