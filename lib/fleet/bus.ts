/**
 * The `FleetBus`: the only thing in the fleet that talks to Redis (or to the in-memory network
 * that stands in for it in tests). Small on purpose: pub/sub, keys with a TTL, and the reads
 * membership needs.
 *
 * Every call either resolves, or rejects with {@link BusUnavailableError} within the bus's
 * operation deadline: while the bus is `unavailable` it rejects at once, it never waits for the
 * bus to come back and never queues commands.
 */

/** `ready`: commands are answered. `unavailable`: the bus is down, or stalled past the deadline. */
export type BusStatus = 'ready' | 'unavailable';

export interface FleetBus {
  readonly status: BusStatus;
  /** Calls `listener` on every change of `status`; returns the function that stops it. */
  onStatus(listener: (status: BusStatus) => void): () => void;
  /** Publishes `message` on `channel` to every subscriber (this bus's own included): at most once. */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Calls `handler` for every message published on `channel` from now on, and again after the
   * bus came back from a fault (the subscription is restored by itself). Resolves to the
   * function that unsubscribes.
   */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;
  /** Sets `key` to `value`, expiring `ttlMs` after this call. */
  setWithTtl(key: string, value: string, ttlMs: number): Promise<void>;
  /** The values of `keys`, in order; null for a key that does not exist (or expired). */
  getMany(keys: string[]): Promise<Array<string | null>>;
  /**
   * Every live key that starts with `prefix` (a plain prefix: no glob characters). In Redis a
   * SCAN of the whole keyspace: never on a hot path (membership uses a set instead).
   */
  keys(prefix: string): Promise<string[]>;
  del(key: string): Promise<void>;
  /** Adds `member` to the set at `key` (no TTL). */
  setAdd(key: string, member: string): Promise<void>;
  /** The members of the set at `key` (empty when there is none), in no particular order. */
  setMembers(key: string): Promise<string[]>;
  /** Removes `member` from the set at `key`. */
  setRemove(key: string, member: string): Promise<void>;
  /** Closes the bus for good; later calls reject. Never rejects. */
  close(): Promise<void>;

  // Session records and the sweeper lock (./sessions.ts, ./sweeper-lock.ts, ./sweeper.ts).
  /**
   * Applies `writes` in order, all or nothing; with `fence`, only while `fence.key` holds
   * `fence.value` (resolves false, nothing written, when it does not).
   */
  write(writes: readonly BusWrite[], fence?: Fence): Promise<boolean>;
  /** The values of `fields` of hash `key`, in order; null for a missing one. */
  hashGet(key: string, fields: readonly string[]): Promise<Array<string | null>>;
  /** Up to `count` distinct [field, value] pairs of hash `key`, any of them. */
  hashSample(key: string, count: number): Promise<Array<[string, string]>>;
  /** Members of sorted set `key` with a score up to `maxScore`, lowest first, from `offset`, at most `count`. */
  rangeByScore(key: string, maxScore: number, offset: number, count: number): Promise<string[]>;
  /**
   * Sets `key` to `<token>/<owner>` for `ttlMs` if it does not exist, `token` being the next
   * value of the counter `counterKey` (INCR); resolves the token, or null when `key` exists.
   */
  acquireLock(key: string, counterKey: string, owner: string, ttlMs: number): Promise<number | null>;
  /** Sets the TTL of `fence.key` to `ttlMs` if it still holds `fence.value`; false when it does not. */
  renewLock(fence: Fence, ttlMs: number): Promise<boolean>;
  /** Deletes `fence.key` if it still holds `fence.value`; false when it does not. */
  releaseLock(fence: Fence): Promise<boolean>;
}

/** One change of {@link FleetBus.write}: Redis HSET, HDEL, ZADD, ZREM, SADD or SREM. */
export type BusWrite =
  | { op: 'sadd'; key: string; member: string }
  | { op: 'srem'; key: string; member: string }
  | { op: 'hset'; key: string; field: string; value: string }
  | { op: 'hdel'; key: string; field: string }
  | { op: 'zadd'; key: string; member: string; score: number }
  | { op: 'zrem'; key: string; member: string };

/** A write is fenced by a lock: done only while `key` holds `value` (the holder's lock value). */
export interface Fence {
  key: string;
  value: string;
}

/** A bus call that could not be done: the bus is down, stalled, or closed. */
export class BusUnavailableError extends Error {
  readonly code = 'WS_TIMEOUTS_ERR_BUS_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BusUnavailableError';
  }
}

/** Validates an op deadline option (ms) for a bus or a node. */
export function checkDeadline(owner: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
    throw new RangeError(`${owner}: ${name} must be a whole number of milliseconds from 1 to 2147483647, got ${String(value)}`);
  }
  return value;
}

/** Listeners of a bus's status, called on changes only. */
export class StatusListeners {
  private readonly listeners = new Set<(status: BusStatus) => void>();
  status: BusStatus;

  constructor(
    initial: BusStatus,
    private readonly onListenerError: (error: unknown) => void,
  ) {
    this.status = initial;
  }

  add(listener: (status: BusStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(status: BusStatus): void {
    if (status === this.status) return;
    this.status = status;
    for (const listener of [...this.listeners]) {
      try {
        listener(status);
      } catch (error) {
        this.onListenerError(error); // a listener's bug must not stop the others or the bus
      }
    }
  }
}

interface Subscription {
  readonly channel: string;
  readonly handler: (message: string) => void;
  /** Set by `deafen()`: still subscribed as far as the bus knows, but hears nothing. */
  deaf: boolean;
}

/** @internal A bus's subscriptions: handlers by channel, and the fault "deaf". Both buses use it. */
export class Subscriptions {
  private readonly all = new Set<Subscription>();

  constructor(private readonly onHandlerError: (channel: string, error: unknown) => void) {}

  /** Adds a handler; returns its removal (true when it was the channel's last handler). */
  add(channel: string, handler: (message: string) => void): () => boolean {
    const subscription: Subscription = { channel, handler, deaf: false };
    this.all.add(subscription);
    return () => this.all.delete(subscription) && !this.has(channel);
  }

  has(channel: string): boolean {
    for (const subscription of this.all) if (subscription.channel === channel) return true;
    return false;
  }

  channels(): string[] {
    return [...new Set([...this.all].map((s) => s.channel))];
  }

  /** Current subscriptions hear nothing from now on; later ones (a resubscribe) hear again. */
  deafen(): void {
    for (const subscription of this.all) subscription.deaf = true;
  }

  dispatch(channel: string, message: string): void {
    for (const subscription of [...this.all]) {
      if (subscription.channel !== channel || subscription.deaf) continue;
      try {
        subscription.handler(message);
      } catch (error) {
        this.onHandlerError(channel, error);
      }
    }
  }

  clear(): void {
    this.all.clear();
  }
}
