/**
 * The sweeper lock: at most one node of the fleet sweeps at a time.
 *
 * A key with a TTL, set only when free (SET NX PX), whose value carries a fencing token from a
 * counter that only grows (INCR): `<token>/<owner>`. The holder renews it every `ttlMs / 3` by
 * compare-and-set (the TTL is extended only while the key still holds its value), so a holder
 * that dies or stalls loses it within `ttlMs`, and another node takes it. Every write the
 * sweeper makes is fenced with the same value (`FleetBus.write(writes, fence)`): a stale holder
 * — one that stalled past the TTL and woke up believing it still sweeps — is refused.
 */
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { defaultLogger, type Logger } from '../logger.js';
import type { Fence, FleetBus } from './bus.js';

export interface SweeperLockOptions {
  bus: FleetBus;
  /** @default 'ws-timeouts' */
  prefix?: string;
  /** Who holds it, for logs and the key's value (the node id). */
  owner: string;
  /** How long the lock outlives its holder's last renewal, ms. @default 15000 */
  ttlMs?: number;
  clock?: Clock;
  logger?: Logger;
}

/** The defaults, declared once. */
export const SWEEPER_LOCK_DEFAULTS = Object.freeze({ prefix: 'ws-timeouts', ttlMs: 15_000 });

/** A lock the caller holds: the fence its writes carry, and its fencing token. */
export interface HeldLock {
  readonly fence: Fence;
  /** Grows with every acquisition across the fleet: a later holder has a larger token. */
  readonly token: number;
}

export class SweeperLock {
  readonly ttlMs: number;
  readonly owner: string;
  private readonly bus: FleetBus;
  private readonly key: string;
  private readonly counterKey: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private held: HeldLock | null = null;
  /** Until when (local clock) the lock is surely ours: the TTL from the start of the last successful acquire or renewal. */
  private validUntil = 0;
  private renewTimer: TimerHandle | null = null;

  constructor(options: SweeperLockOptions) {
    const ttl = options.ttlMs ?? SWEEPER_LOCK_DEFAULTS.ttlMs;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 3 || ttl > 2 ** 31 - 1) {
      throw new RangeError(`SweeperLock: ttlMs must be a whole number of milliseconds from 3 to 2147483647, got ${String(ttl)}`);
    }
    this.ttlMs = ttl;
    this.bus = options.bus;
    // A random part: two processes started with the same node id never share a lock value.
    this.owner = `${options.owner}#${randomBytes(4).toString('hex')}`;
    const prefix = options.prefix ?? SWEEPER_LOCK_DEFAULTS.prefix;
    this.key = `${prefix}:sweeper:lock`;
    this.counterKey = `${prefix}:sweeper:token`;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? defaultLogger();
  }

  /** The lock, while this process holds it (as far as it can know: renewed within the TTL). */
  get current(): HeldLock | null {
    if (this.held && this.clock.now() >= this.validUntil) this.lost('not renewed within the TTL');
    return this.held;
  }

  /**
   * Takes the lock if it is free (and keeps renewing it until `release()` or until it is lost);
   * resolves the held lock, or null when another node holds it or the bus is unavailable.
   * Never rejects.
   */
  async acquire(): Promise<HeldLock | null> {
    if (this.current) return this.held;
    const startedAt = this.clock.now();
    let token: number | null;
    try {
      token = await this.bus.acquireLock(this.key, this.counterKey, this.owner, this.ttlMs);
    } catch {
      return null; // the bus is unavailable: nobody can sweep, and the next attempt will tell
    }
    if (token === null) return null;
    this.held = { token, fence: { key: this.key, value: `${token}/${this.owner}` } };
    this.validUntil = startedAt + this.ttlMs;
    this.logger.info('Sweeper lock acquired', { owner: this.owner, fencingToken: token, ttlMs: this.ttlMs });
    this.scheduleRenewal();
    return this.held;
  }

  /** Gives the lock up (if held), so another node can take it at once. Never rejects. */
  async release(): Promise<void> {
    const held = this.held;
    this.stopRenewal();
    this.held = null;
    if (!held) return;
    await this.bus.releaseLock(held.fence).catch(() => false);
  }

  private scheduleRenewal(): void {
    this.stopRenewal();
    this.renewTimer = this.clock.setTimeout(() => {
      this.renewTimer = null;
      void this.renew();
    }, Math.floor(this.ttlMs / 3));
  }

  private async renew(): Promise<void> {
    const held = this.held;
    if (!held) return;
    const startedAt = this.clock.now();
    let renewed: boolean | null;
    try {
      renewed = await this.bus.renewLock(held.fence, this.ttlMs);
    } catch {
      renewed = null; // unknown: keep trying until the TTL says it is gone
    }
    if (this.held !== held) return;
    if (renewed === false) return this.lost('taken by another node');
    if (renewed) this.validUntil = startedAt + this.ttlMs;
    if (this.current) this.scheduleRenewal();
  }

  private lost(why: string): void {
    const held = this.held;
    this.stopRenewal();
    this.held = null;
    if (held) this.logger.warn('Sweeper lock lost', { owner: this.owner, fencingToken: held.token, why });
  }

  private stopRenewal(): void {
    if (this.renewTimer !== null) this.clock.clearTimeout(this.renewTimer);
    this.renewTimer = null;
  }
}
