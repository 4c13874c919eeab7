/**
 * `MemoryBus`: the fleet bus in one process, on a `Clock`, for tests under fake time. Several
 * buses (one per simulated node) share one {@link MemoryBusNetwork}, which plays Redis: keys
 * expire on the clock, messages reach every subscriber of the network, and the network can be
 * taken down, stalled, or one bus's subscriptions made deaf, as Redis faults do.
 *
 * It keeps the promises of the Redis bus: messages are delivered asynchronously and at most
 * once; a call while the network is down rejects at once; a call while it is stalled rejects at
 * the op deadline, after which the bus is `unavailable` and rejects at once until the network
 * answers again; subscriptions come back by themselves. A message published into a stalled
 * network is still delivered when it thaws (its call rejected, yet it reached "Redis"), as a
 * PUBLISH sent to a frozen Redis is run after SIGCONT.
 */
import { systemClock, type Clock } from '../clock.js';
import { defaultLogger, type Logger } from '../logger.js';
import { BusUnavailableError, checkDeadline, StatusListeners, Subscriptions, type BusStatus, type BusWrite, type Fence, type FleetBus } from './bus.js';
import { MemoryRecords } from './memory-records.js';

export interface MemoryBusNetworkOptions {
  /** The clock keys expire on and deadlines run on. @default systemClock */
  clock?: Clock;
  /** Deadline of a call while the network is stalled, ms (the Redis bus's `commandTimeoutMs`). @default 1000 */
  commandTimeoutMs?: number;
  /** Where a throwing subscriber or status listener is reported. @default the shared JSON winston logger */
  logger?: Logger;
}

type NetworkState = 'up' | 'down' | 'stalled';

/** One in-process "Redis" shared by the buses of simulated nodes. */
export class MemoryBusNetwork {
  readonly clock: Clock;
  readonly commandTimeoutMs: number;
  readonly logger: Logger;
  private readonly values = new Map<string, { value: string; expiresAt: number }>();
  private readonly sets = new Map<string, Set<string>>();
  private readonly buses = new Set<MemoryBus>();
  private state: NetworkState = 'up';
  /** @internal hashes, sorted sets and locks of the session records and the sweeper */
  readonly records = new MemoryRecords(this);
  /** Publishes that reached the network while it was stalled: run when it thaws, lost when it goes down. */
  private frozen: Array<() => void> = [];

  constructor(options: MemoryBusNetworkOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.commandTimeoutMs = checkDeadline('MemoryBusNetwork', 'commandTimeoutMs', options.commandTimeoutMs ?? 1000);
    this.logger = options.logger ?? defaultLogger();
  }

  /** A new bus on this network (a node's connection to "Redis"). */
  bus(): MemoryBus {
    const bus = new MemoryBus(this);
    this.buses.add(bus);
    return bus;
  }

  /** Like a killed Redis: every call of every bus rejects at once, every bus turns `unavailable`. */
  takeDown(): void {
    this.state = 'down';
    this.frozen = [];
    for (const bus of this.buses) bus.networkChanged();
  }

  /** Like a frozen Redis (SIGSTOP): calls get no answer and reject at the op deadline; publishes are delivered when it thaws. */
  stall(): void {
    this.state = 'stalled';
  }

  /**
   * Like a Redis that is back (restarted empty, or thawed): buses turn `ready` and their
   * subscriptions hear again. Keys are kept unless `{ empty: true }` (a restart without persistence).
   */
  bringUp({ empty = false }: { empty?: boolean } = {}): void {
    if (empty) {
      this.values.clear();
      this.sets.clear();
      this.records.clear();
    }
    const thawed = empty ? [] : this.frozen;
    this.frozen = [];
    this.state = 'up';
    for (const run of thawed) run();
    for (const bus of this.buses) bus.networkChanged();
  }

  /** @internal */
  get current(): NetworkState {
    return this.state;
  }

  /** @internal a publish that reached the stalled network */
  freeze(run: () => void): void {
    this.frozen.push(run);
  }

  /** @internal */
  detach(bus: MemoryBus): void {
    this.buses.delete(bus);
  }

  /** @internal the commands, run only while the network is up */
  deliver(channel: string, message: string): void {
    for (const bus of this.buses) bus.receive(channel, message);
  }

  /** @internal */
  set(key: string, value: string, ttlMs: number): void {
    this.values.set(key, { value, expiresAt: this.clock.now() + ttlMs });
  }

  /** @internal */
  get(key: string): string | null {
    const entry = this.values.get(key);
    if (entry === undefined) return null;
    if (this.clock.now() >= entry.expiresAt) {
      this.values.delete(key);
      return null;
    }
    return entry.value;
  }

  /** @internal */
  keys(prefix: string): string[] {
    const live = [...this.values.keys()].filter((key) => key.startsWith(prefix) && this.get(key) !== null);
    return [...live, ...[...this.sets.keys()].filter((key) => key.startsWith(prefix)), ...this.records.keys(prefix)];
  }

  /** @internal */
  del(key: string): void {
    this.values.delete(key);
    this.sets.delete(key);
  }

  /** @internal */
  setAdd(key: string, member: string): void {
    let set = this.sets.get(key);
    if (set === undefined) this.sets.set(key, (set = new Set()));
    set.add(member);
  }

  /** @internal */
  setMembers(key: string): string[] {
    return [...(this.sets.get(key) ?? [])];
  }

  /** @internal */
  setRemove(key: string, member: string): void {
    const set = this.sets.get(key);
    set?.delete(member);
    if (set?.size === 0) this.sets.delete(key);
  }
}

/** One node's bus on a {@link MemoryBusNetwork}. Create it with `network.bus()`. */
export class MemoryBus implements FleetBus {
  private readonly statusListeners: StatusListeners;
  private readonly subscriptions: Subscriptions;
  private closed = false;

  /** @internal use `network.bus()` */
  constructor(private readonly network: MemoryBusNetwork) {
    this.statusListeners = new StatusListeners('ready', (error) => network.logger.error('Fleet bus status listener threw', { error }));
    this.subscriptions = new Subscriptions((channel, error) => network.logger.error('Fleet bus subscriber threw', { channel, error }));
  }

  get status(): BusStatus {
    return this.statusListeners.status;
  }

  onStatus(listener: (status: BusStatus) => void): () => void {
    return this.statusListeners.add(listener);
  }

  /**
   * Like a subscriber connection that went deaf while it looks healthy (a known failure of
   * pub/sub clients after reconnects): this bus's current subscriptions hear nothing from now
   * on; a subscription made afterwards (a resubscribe) hears again.
   */
  deafen(): void {
    this.subscriptions.deafen();
  }

  publish(channel: string, message: string): Promise<void> {
    // Delivered after the caller's turn, as a message from Redis arrives in a later I/O callback.
    const run = (): void => queueMicrotask(() => this.network.deliver(channel, message));
    return this.command('publish', run, { runsWhenThawed: true });
  }

  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    return this.command('subscribe', () => {
      const remove = this.subscriptions.add(channel, handler);
      return async () => {
        remove();
      };
    });
  }

  setWithTtl(key: string, value: string, ttlMs: number): Promise<void> {
    return this.command('setWithTtl', () => this.network.set(key, value, ttlMs));
  }

  getMany(keys: string[]): Promise<Array<string | null>> {
    return this.command('getMany', () => keys.map((key) => this.network.get(key)));
  }

  keys(prefix: string): Promise<string[]> {
    return this.command('keys', () => this.network.keys(prefix));
  }

  del(key: string): Promise<void> {
    return this.command('del', () => this.network.del(key));
  }

  write(writes: readonly BusWrite[], fence?: Fence): Promise<boolean> {
    return this.command('write', () => this.network.records.write(writes, fence));
  }

  hashGet(key: string, fields: readonly string[]): Promise<Array<string | null>> {
    return this.command('hashGet', () => this.network.records.hashGet(key, fields));
  }

  hashSample(key: string, count: number): Promise<Array<[string, string]>> {
    return this.command('hashSample', () => this.network.records.hashSample(key, count));
  }

  rangeByScore(key: string, maxScore: number, offset: number, count: number): Promise<string[]> {
    return this.command('rangeByScore', () => this.network.records.rangeByScore(key, maxScore, offset, count));
  }

  acquireLock(key: string, counterKey: string, owner: string, ttlMs: number): Promise<number | null> {
    return this.command('acquireLock', () => this.network.records.acquireLock(key, counterKey, owner, ttlMs));
  }

  renewLock(fence: Fence, ttlMs: number): Promise<boolean> {
    return this.command('renewLock', () => this.network.records.renewLock(fence, ttlMs));
  }

  releaseLock(fence: Fence): Promise<boolean> {
    return this.command('releaseLock', () => this.network.records.releaseLock(fence));
  }

  setAdd(key: string, member: string): Promise<void> {
    return this.command('setAdd', () => this.network.setAdd(key, member));
  }

  setMembers(key: string): Promise<string[]> {
    return this.command('setMembers', () => this.network.setMembers(key));
  }

  setRemove(key: string, member: string): Promise<void> {
    return this.command('setRemove', () => this.network.setRemove(key, member));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subscriptions.clear();
    this.network.detach(this);
  }

  /** @internal */
  networkChanged(): void {
    this.statusListeners.set(this.network.current === 'down' ? 'unavailable' : 'ready');
  }

  /** @internal */
  receive(channel: string, message: string): void {
    if (!this.closed) this.subscriptions.dispatch(channel, message);
  }

  /** Runs `run` as Redis would answer it now: at once, never (stalled: the deadline), or refused. */
  private command<T>(op: string, run: () => T, { runsWhenThawed = false } = {}): Promise<T> {
    if (this.closed) return Promise.reject(new BusUnavailableError(`MemoryBus: ${op} after close()`));
    if (this.status === 'unavailable' || this.network.current === 'down') {
      return Promise.reject(new BusUnavailableError(`MemoryBus: ${op} refused, the bus is unavailable`));
    }
    if (this.network.current === 'stalled') {
      if (runsWhenThawed) this.network.freeze(run);
      const timeoutMs = this.network.commandTimeoutMs;
      return new Promise((_resolve, reject) => {
        this.network.clock.setTimeout(() => {
          this.statusListeners.set('unavailable');
          reject(new BusUnavailableError(`MemoryBus: ${op} got no answer within ${timeoutMs} ms (commandTimeoutMs)`));
        }, timeoutMs);
      });
    }
    return Promise.resolve().then(run);
  }
}
