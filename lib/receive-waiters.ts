/**
 * The callers of `receiveWithTimeout` still waiting for a message, oldest first, with their
 * deadlines on ONE lazily re-armed clock timer.
 *
 * A receive loop asks for the next message thousands of times per second and nearly always gets
 * it long before its deadline. So a delivered message leaves the timer alone: when it fires it
 * resolves whoever is overdue and re-arms for the earliest deadline left. A busy connection then
 * costs one timer per timeout period, not a set and a clear per message (bench/, figure 1).
 */
import type { Clock, TimerHandle } from './clock.js';
import type { Message } from './socket.js';

interface Waiter {
  resolve: (message: Message | null) => void;
  /** Clock time at which the waiter gets `null`; Infinity waits for a message or the close. */
  deadline: number;
}

export class ReceiveWaiters {
  private readonly waiting: Waiter[] = [];
  private timer: TimerHandle = undefined;
  /** When the armed timer fires; Infinity when none is armed. */
  private timerAt = Infinity;

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return this.waiting.length;
  }

  /** Adds a waiter that gets `null` once `timeoutMs` has passed without a message for it. */
  add(resolve: Waiter['resolve'], timeoutMs: number): void {
    const deadline = timeoutMs === Infinity ? Infinity : this.clock.now() + timeoutMs;
    this.waiting.push({ resolve, deadline });
    if (deadline < this.timerAt) this.arm(deadline);
  }

  /** Gives `message` to the oldest waiter; false when nobody is waiting. */
  deliver(message: Message): boolean {
    const waiter = this.waiting.shift();
    if (!waiter) return false;
    waiter.resolve(message);
    return true;
  }

  /** The connection closed: every waiter gets `null` and no timer is left behind. */
  close(): void {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    for (const waiter of this.waiting.splice(0)) waiter.resolve(null);
  }

  private arm(at: number): void {
    this.clock.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimeout(this.onTimer, Math.max(0, at - this.clock.now()));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock.now();
    let next = Infinity;
    const overdue: Waiter[] = [];
    for (let i = 0; i < this.waiting.length; ) {
      const waiter = this.waiting[i]!;
      if (waiter.deadline <= now) {
        this.waiting.splice(i, 1);
        overdue.push(waiter);
      } else {
        if (waiter.deadline < next) next = waiter.deadline;
        i++;
      }
    }
    if (next !== Infinity) this.arm(next);
    for (const waiter of overdue) waiter.resolve(null);
  };
}
