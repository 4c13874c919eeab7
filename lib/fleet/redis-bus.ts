/**
 * `RedisBus`: the fleet bus on Redis through ioredis (reconnects by itself; Sentinel and Cluster
 * options pass through). One connection for commands, one for subscriptions.
 *
 * Faults are answered, never hidden or queued:
 * - down (refused, dropped, reconnecting): `enableOfflineQueue: false` makes every call reject at
 *   once, and `maxRetriesPerRequest: 0` fails a command in flight when its connection drops
 *   instead of resending it later;
 * - stalled (connected, nothing answered, e.g. SIGSTOP): `commandTimeout` rejects a call at the
 *   op deadline; the bus is then `unavailable` and rejects at once until a probe (PING on both
 *   connections, once per deadline) is answered again.
 * When both connections are back the subscriptions are made again before the bus reports
 * `ready`, so `ready` means a message published now is heard.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { defaultLogger, type Logger } from '../logger.js';
import { BusUnavailableError, checkDeadline, StatusListeners, Subscriptions, type BusStatus, type BusWrite, type Fence, type FleetBus } from './bus.js';
import * as records from './redis-records.js';
import { redactRedisUrl } from './settings.js';

export interface RedisBusOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`). Logged with the password masked. */
  url: string;
  /** The op deadline: a call Redis does not answer within it rejects `BusUnavailableError`. @default 1000 */
  commandTimeoutMs?: number;
  /** Longest wait between reconnection attempts, ms (they start at 50 ms and grow). @default 1000 */
  maxReconnectDelayMs?: number;
  /** More ioredis options (TLS, Sentinel…); the fault-handling ones above always win. */
  redisOptions?: RedisOptions;
  /** The clock of the stall probe. @default systemClock */
  clock?: Clock;
  /** @default the shared JSON winston logger */
  logger?: Logger;
}

/** SCAN MATCH treats `*?[]\` as glob characters: escape them so a prefix is a plain prefix. */
const globEscape = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&');

export class RedisBus implements FleetBus {
  /** The URL with its password masked. */
  readonly redactedUrl: string;
  readonly commandTimeoutMs: number;
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly statusListeners: StatusListeners;
  private readonly subscriptions: Subscriptions;
  /** The subscriber connection is ready and has (re)made every subscription. */
  private subscribed = false;
  /** A call timed out: Redis is stalled until a probe is answered. */
  private stalled = false;
  private probeTimer: TimerHandle | null = null;
  private closed = false;
  private lastReason = 'connecting';

  constructor(options: RedisBusOptions) {
    if (typeof options?.url !== 'string' || !/^rediss?:\/\//.test(options.url)) {
      throw new TypeError(`RedisBus: url must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379), got ${JSON.stringify(options?.url === undefined ? undefined : redactRedisUrl(String(options.url)))}`);
    }
    this.redactedUrl = redactRedisUrl(options.url);
    this.commandTimeoutMs = checkDeadline('RedisBus', 'commandTimeoutMs', options.commandTimeoutMs ?? 1000);
    const maxDelay = checkDeadline('RedisBus', 'maxReconnectDelayMs', options.maxReconnectDelayMs ?? 1000);
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? defaultLogger();
    this.statusListeners = new StatusListeners('unavailable', (error) => this.logger.error('Fleet bus status listener threw', { error }));
    this.subscriptions = new Subscriptions((channel, error) => this.logger.error('Fleet bus subscriber threw', { channel, error }));
    const redisOptions: RedisOptions = {
      ...options.redisOptions,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.commandTimeoutMs,
      connectTimeout: Math.max(this.commandTimeoutMs, 1000),
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), maxDelay),
      autoResubscribe: false, // done here, so that `ready` waits for it
      lazyConnect: false,
    };
    this.commands = new Redis(options.url, redisOptions);
    this.subscriber = new Redis(options.url, redisOptions);
    for (const [name, connection] of [['commands', this.commands], ['subscriber', this.subscriber]] as const) {
      connection.on('error', (error: Error) => this.connectionLost(`${name} connection: ${error.message}`));
      connection.on('close', () => this.connectionLost(`${name} connection closed`));
      connection.on('ready', () => this.connectionReady());
    }
    this.subscriber.on('message', (channel: string, message: string) => this.subscriptions.dispatch(channel, message));
  }

  get status(): BusStatus {
    return this.statusListeners.status;
  }

  onStatus(listener: (status: BusStatus) => void): () => void {
    return this.statusListeners.add(listener);
  }

  /** @internal fault injection for tests: this bus's current subscriptions hear nothing from now on (a deaf subscriber). */
  deafen(): void {
    this.subscriptions.deafen();
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.call('publish', () => this.commands.publish(channel, message));
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    await this.call('subscribe', async () => {
      if (!this.subscriptions.has(channel)) await this.subscriber.subscribe(channel);
    });
    const remove = this.subscriptions.add(channel, handler);
    return async () => {
      if (!remove() || this.subscriber.status !== 'ready') return;
      // Best effort: a connection that drops forgets its subscriptions anyway.
      await this.subscriber.unsubscribe(channel).catch(() => undefined);
    };
  }

  async setWithTtl(key: string, value: string, ttlMs: number): Promise<void> {
    await this.call('setWithTtl', () => this.commands.set(key, value, 'PX', ttlMs));
  }

  async getMany(keys: string[]): Promise<Array<string | null>> {
    if (keys.length === 0) return [];
    return this.call('getMany', () => this.commands.mget(keys));
  }

  async keys(prefix: string): Promise<string[]> {
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await this.call('keys', () => this.commands.scan(cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', 100));
      for (const key of batch) found.add(key);
      cursor = next;
    } while (cursor !== '0');
    return [...found];
  }

  async del(key: string): Promise<void> {
    await this.call('del', () => this.commands.del(key));
  }

  write(writes: readonly BusWrite[], fence?: Fence): Promise<boolean> {
    return this.call('write', () => records.write(this.commands, writes, fence));
  }

  hashGet(key: string, fields: readonly string[]): Promise<Array<string | null>> {
    return this.call('hashGet', () => records.hashGet(this.commands, key, fields));
  }

  hashSample(key: string, count: number): Promise<Array<[string, string]>> {
    return this.call('hashSample', () => records.hashSample(this.commands, key, count));
  }

  rangeByScore(key: string, maxScore: number, offset: number, count: number): Promise<string[]> {
    return this.call('rangeByScore', () => records.rangeByScore(this.commands, key, maxScore, offset, count));
  }

  acquireLock(key: string, counterKey: string, owner: string, ttlMs: number): Promise<number | null> {
    return this.call('acquireLock', () => records.acquireLock(this.commands, key, counterKey, owner, ttlMs));
  }

  renewLock(fence: Fence, ttlMs: number): Promise<boolean> {
    return this.call('renewLock', () => records.renewLock(this.commands, fence, ttlMs));
  }

  releaseLock(fence: Fence): Promise<boolean> {
    return this.call('releaseLock', () => records.releaseLock(this.commands, fence));
  }

  async setAdd(key: string, member: string): Promise<void> {
    await this.call('setAdd', () => this.commands.sadd(key, member));
  }

  async setMembers(key: string): Promise<string[]> {
    return this.call('setMembers', () => this.commands.smembers(key));
  }

  async setRemove(key: string, member: string): Promise<void> {
    await this.call('setRemove', () => this.commands.srem(key, member));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopProbe();
    this.subscriptions.clear();
    this.commands.disconnect();
    this.subscriber.disconnect();
    this.statusListeners.set('unavailable');
  }

  /** One command: refused at once while unavailable, rejected as `BusUnavailableError` on any connection fault. */
  private async call<T>(op: string, run: () => Promise<T>): Promise<T> {
    if (this.closed) throw new BusUnavailableError(`RedisBus: ${op} after close()`);
    if (this.status !== 'ready') throw new BusUnavailableError(`RedisBus: ${op} refused, Redis at ${this.redactedUrl} is unavailable (${this.lastReason})`);
    try {
      return await run();
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      if (/timed out/i.test(message)) {
        this.stalled = true;
        this.update(`no answer within ${this.commandTimeoutMs} ms (commandTimeoutMs)`);
      }
      throw new BusUnavailableError(`RedisBus: ${op} failed on Redis at ${this.redactedUrl}: ${message}`, { cause });
    }
  }

  private connectionLost(reason: string): void {
    if (this.closed) return;
    this.subscribed = false;
    this.update(reason);
  }

  private connectionReady(): void {
    if (this.closed || this.commands.status !== 'ready' || this.subscriber.status !== 'ready') return;
    void this.resubscribe();
  }

  /** Makes every subscription again on the (new) subscriber connection; `ready` only after it. */
  private async resubscribe(): Promise<void> {
    const channels = this.subscriptions.channels();
    try {
      if (channels.length > 0) await this.subscriber.subscribe(...channels);
      this.subscribed = true;
      this.update('resubscribe');
    } catch (error) {
      this.update(`resubscribe failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private update(reason: string): void {
    const connected = this.commands.status === 'ready' && this.subscriber.status === 'ready' && this.subscribed;
    const status: BusStatus = connected && !this.stalled ? 'ready' : 'unavailable';
    if (this.stalled && connected) this.startProbe();
    if (status === 'unavailable') this.lastReason = reason;
    if (status === this.status) return;
    if (status === 'ready') this.logger.info('Fleet bus ready', { redisUrl: this.redactedUrl });
    else this.logger.warn('Fleet bus unavailable', { redisUrl: this.redactedUrl, reason });
    this.statusListeners.set(status);
  }

  /** While stalled: PING both connections once per deadline until both answer. */
  private startProbe(): void {
    if (this.probeTimer !== null || this.closed) return;
    this.probeTimer = this.clock.setTimeout(() => {
      this.probeTimer = null;
      void Promise.all([this.commands.ping(), this.subscriber.ping()]).then(
        () => {
          this.stalled = false;
          this.update('probe answered');
        },
        () => {
          if (this.stalled) this.startProbe();
        },
      );
    }, this.commandTimeoutMs);
  }

  private stopProbe(): void {
    if (this.probeTimer !== null) this.clock.clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }
}
