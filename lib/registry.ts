/**
 * `ConnectionRegistry`: many `WebSocketTimeoutManager`s on one shared scheduler.
 *
 * What a fleet of sockets needs: connect and disconnect with a live count, broadcast,
 * background expiry with start/stop hooks, the idle notice, a disconnect hook, per-role
 * counters, and batched cleanup of inactive sessions with metrics for a health endpoint.
 *
 * Every socket's idle, lifetime, ping and pong deadlines are driven by one coarse scheduler
 * tick (lib/scheduler.ts): no Node timer per socket, activity updates are a field write, and a
 * tick only visits the sockets that are due. The registry gives every manager the same frozen
 * config and the same options object, so adding a socket allocates only the manager itself.
 *
 * This class is the public facade; its parts live in lib/registry/: the live set (tracking,
 * counts, the connect/close log lines: the managers' one observer), broadcast, session cleanup
 * (runs, schedule, statistics), the `onDisconnect` hook, and reporting (metrics, snapshot).
 */
import { systemClock, type Clock } from './clock.js';
import { CloseCode, CloseReason } from './close-codes.js';
import { defaultTimeoutConfig, isTimeoutConfig, resolveTimeoutConfig, type TimeoutConfig } from './config.js';
import { withDefaults, type WithDefaults } from './defaults.js';
import { defaultLogger, type Logger } from './logger.js';
import { WebSocketTimeoutManager, type ManagerOptions } from './manager.js';
import type { TimeoutMetrics } from './metrics.js';
import { broadcast, type BroadcastOptions, type BroadcastResult } from './registry/broadcast.js';
import { checkMs, checkPositiveInteger, checkSessionCount } from './registry/checks.js';
import { SessionCleanup } from './registry/cleanup.js';
import { DisconnectHooks, type DisconnectInfo } from './registry/disconnect-hooks.js';
import { LiveSet } from './registry/live-set.js';
import { sessionMetrics, snapshotOf, type ConnectionSnapshot, type SessionMetrics } from './registry/reporting.js';
import { sharedScheduler, type Scheduler } from './scheduler.js';
import type { ManagedSocket } from './socket.js';

export type { BroadcastOptions, BroadcastResult } from './registry/broadcast.js';
export type { DisconnectInfo } from './registry/disconnect-hooks.js';
export { ESTIMATED_SESSION_BYTES, type ConnectionSnapshot, type SessionMetrics } from './registry/reporting.js';

export interface RegistryOptions {
  /**
   * The timeout config of every manager the registry creates: a config from `loadTimeoutConfig`
   * is used as is, `Partial<TimeoutConfig>` overrides (ms) apply on top of the `WS_*` environment.
   * Resolved once; every manager gets the same frozen object.
   * @default `managerOptions.config`, else the `WS_*` environment (`defaultTimeoutConfig()`)
   */
  config?: Partial<TimeoutConfig> | TimeoutConfig;
  /** The only source of time for the registry and its managers. @default systemClock */
  clock?: Clock;
  /** @default `managerOptions.logger`, else the shared JSON winston logger */
  logger?: Logger;
  /**
   * @internal the scheduler that drives every manager's deadlines (tests and benchmarks); default:
   * the one shared per clock and `config.resolutionMs` (a per-connection config with another
   * resolution gets the shared scheduler of that resolution)
   */
  scheduler?: Scheduler;
  /**
   * Defaults for every manager (heartbeat mode, jitter, reconnect notice, callbacks…), merged
   * once into one options object shared by all managers. The registry's `config`, `clock`,
   * `logger` and `scheduler` win over the same fields here. Your callbacks stay yours: the
   * registry keeps its books through its own observer, told before your callback runs.
   * @default { pingPhase: 'random' } // pings of sockets accepted together spread over the interval
   */
  managerOptions?: ManagerOptions;
  /** Where counters, gauges and histograms are recorded. @default none */
  metrics?: TimeoutMetrics;
  /** Sessions `cleanupInactiveSessions` handles before it yields to the event loop. @default 50 */
  batchSize?: number;
  /** `checkHealth()` and `healthHandler` report `degraded` at this many active sessions or more. @default 1000 */
  degradedThreshold?: number;
  /**
   * Inactivity (ms, no application message in or out) after which `cleanupInactiveSessions()`
   * closes a session when called without `maxAgeMs`; 0 means it closes nothing.
   * @default config.idleTimeoutMs
   */
  sessionTimeoutMs?: number;
  /** The connection label used as the `role` of metrics. @default 'role' */
  roleLabel?: string;
  /**
   * Runs after a tracked connection closed, whoever closed it: asynchronously, never blocking
   * the sweep or the close. A throw or rejection is logged (as a `SessionStoreError` with the
   * cause), counted in `getSessionMetrics().hookErrors`, and never propagates.
   */
  onDisconnect?: (manager: WebSocketTimeoutManager, info: DisconnectInfo) => void | Promise<void>;
  /** Runs when `start()` starts background expiry (a start-up hook); errors are logged. */
  onStart?: (registry: ConnectionRegistry) => void | Promise<void>;
  /** Runs at the end of `stop()` (a shutdown hook); awaited, errors are logged. */
  onStop?: (registry: ConnectionRegistry) => void | Promise<void>;
}

/** The registry defaults, declared once. */
export const REGISTRY_DEFAULTS = Object.freeze({
  batchSize: 50,
  /** `startCleanupScheduler()`'s interval: 15 minutes. */
  cleanupIntervalMs: 15 * 60_000,
  degradedThreshold: 1000,
  roleLabel: 'role',
});

type Lifecycle = 'new' | 'running' | 'stopped';

const noop = (): void => undefined;

export class ConnectionRegistry {
  /** The frozen config every manager gets unless `add()` is given another. */
  readonly config: TimeoutConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  /** @internal the scheduler driving the managers created with the registry's config */
  readonly scheduler: Scheduler;
  readonly metrics: TimeoutMetrics | undefined;
  readonly batchSize: number;
  readonly degradedThreshold: number;
  /** Default inactivity limit of `cleanupInactiveSessions()`, ms; 0 closes nothing. */
  readonly sessionTimeoutMs: number;

  private readonly options: WithDefaults<RegistryOptions, typeof REGISTRY_DEFAULTS>;
  /** The tracked managers and their books; the one observer of every manager the registry creates. */
  private readonly live: LiveSet;
  private readonly hooks: DisconnectHooks | undefined;
  private readonly cleanup: SessionCleanup;
  /** The one options object every manager shares (unless `add()` gets its own options). */
  private readonly shared: Readonly<ManagerOptions>;
  private lifecycle: Lifecycle = 'new';

  constructor(options: RegistryOptions = {}) {
    this.options = withDefaults(REGISTRY_DEFAULTS, options);
    const managerOptions = options.managerOptions ?? {};
    const config = options.config ?? managerOptions.config;
    this.config = isTimeoutConfig(config) ? config : resolveTimeoutConfig(defaultTimeoutConfig(), config);
    this.clock = options.clock ?? managerOptions.clock ?? systemClock;
    this.logger = options.logger ?? managerOptions.logger ?? defaultLogger();
    this.scheduler = this.schedulerFor(this.config);
    this.metrics = options.metrics;
    this.batchSize = checkPositiveInteger('batchSize', this.options.batchSize);
    this.degradedThreshold = checkSessionCount('degradedThreshold', this.options.degradedThreshold);
    this.sessionTimeoutMs = checkMs('sessionTimeoutMs', options.sessionTimeoutMs ?? this.config.idleTimeoutMs, { allowZero: true });
    const onDisconnect = options.onDisconnect;
    if (onDisconnect !== undefined && typeof onDisconnect !== 'function') {
      throw new TypeError(`ConnectionRegistry: onDisconnect must be a function, got ${typeof onDisconnect}`);
    }
    this.hooks = onDisconnect ? new DisconnectHooks(onDisconnect, this.logger) : undefined;
    const { clock, logger, metrics } = this;
    this.live = new LiveSet({ clock, logger, metrics, roleLabel: this.options.roleLabel, hooks: this.hooks });
    this.shared = Object.freeze({
      pingPhase: 'random',
      ...managerOptions,
      config: this.config,
      clock,
      logger,
      scheduler: this.scheduler,
      observer: this.live,
    });
    const timeoutNotice = this.shared.timeoutNotice !== false;
    this.cleanup = new SessionCleanup({ live: this.live, clock, logger, metrics, batchSize: this.batchSize, timeoutNotice });
  }

  // ---------------------------------------------------------------- tracking

  /**
   * Wraps `ws` in a manager with the registry's options (plus `options` for this connection:
   * `userId`, `labels`, a per-route `config` such as `req.wsTimeouts`…), tracks it until it
   * closes, and starts its automatic enforcement (unless `stop()` was called). A socket that is
   * already closed is not tracked. Logs one `WebSocket connected` line (and, at the close, one
   * `WebSocket closed`) with `totalConnections`. A string in place of `options` is the user id,
   * as for the manager (`registry.add(ws, 'user-1')`).
   */
  add(ws: ManagedSocket, options?: ManagerOptions | string): WebSocketTimeoutManager {
    if (typeof options === 'string') options = { userId: options };
    else if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
      throw new TypeError(`ConnectionRegistry#add: options must be a ManagerOptions object (e.g. { userId, labels }) or a user id string, got ${JSON.stringify(options) ?? typeof options}`);
    }
    const manager = new WebSocketTimeoutManager(ws, options ? this.connectionOptions(options) : this.shared);
    if (manager.state === 'closed') return manager;
    this.live.track(manager);
    if (this.lifecycle !== 'stopped') manager.start();
    return manager;
  }

  /**
   * Stops tracking `manager` (it stays open and keeps its own enforcement); its close is then
   * no longer counted and `onDisconnect` does not run for it. False if it was not tracked.
   */
  remove(manager: WebSocketTimeoutManager): boolean {
    return this.live.untrack(manager);
  }

  /** Connections tracked now (open or closing). */
  get size(): number {
    return this.live.size;
  }

  /** The tracked managers, live (safe to iterate while connections come and go). */
  managers(): IterableIterator<WebSocketTimeoutManager> {
    return this.live.managers.values();
  }

  /** Connections ended by each timeout reason since the registry was created (live, read-only). */
  get timeoutsByReason(): Readonly<Record<string, number>> {
    return this.live.reasonCounts;
  }

  // ---------------------------------------------------------------- broadcast

  /**
   * Sends `data` to every open tracked connection (or those `filter` accepts): strings as text,
   * anything else as JSON, serialised once. Each send has its own deadline and counts as
   * activity. A recipient whose send fails or misses the deadline is closed with 4003 and leaves
   * the registry once closed. Never rejects for a recipient; resolves `{ sent: 0, failed: 0 }`
   * for data that cannot be serialised (logged).
   * @throws {RangeError} When `timeoutMs` is negative or not a number.
   */
  async broadcast(data: unknown, options: BroadcastOptions = {}): Promise<BroadcastResult> {
    return broadcast(this.live.managers, data, options, { timeoutMs: this.config.messageTimeoutMs, logger: this.logger });
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Starts background expiry: every tracked connection's deadlines
   * are enforced on the shared scheduler, and so are those of connections added later. Logs
   * `Started session expiry with 30.0 minute timeout` and runs `onStart`. Idempotent.
   *
   * A new registry already enforces the deadlines of the connections it adds; `start()` is the
   * place for the start-up hook, and resumes enforcement after `stop()`.
   */
  start(): void {
    if (this.lifecycle === 'running') return;
    this.lifecycle = 'running';
    for (const manager of this.live.managers) manager.start();
    const idle = this.config.idleTimeoutMs;
    const minutes = idle / 60_000;
    const shown = minutes >= 1 ? minutes.toFixed(1) : String(Number(minutes.toFixed(4))); // 30.0, or 0.0167 for 1 s
    const message = idle > 0 ? `Started session expiry with ${shown} minute timeout` : 'Started session expiry (idle timeout disabled)';
    this.logger.info(message, {
      idleTimeoutMs: idle,
      connectionTimeoutMs: this.config.connectionTimeoutMs,
      resolutionMs: this.scheduler.resolutionMs,
      activeSessions: this.live.size,
    });
    void this.runLifecycleHook('onStart');
  }

  /**
   * Stops background expiry: enforcement of every tracked
   * connection and the cleanup scheduler stop, then waits (at most `closeTimeoutMs`) for a
   * running cleanup and pending `onDisconnect` hooks, logs `Stopped session expiry` and awaits
   * `onStop`. Connections stay open: call `closeAll()` to close them. Never rejects.
   */
  async stop(): Promise<void> {
    const wasStopped = this.lifecycle === 'stopped';
    this.lifecycle = 'stopped';
    for (const manager of this.live.managers) manager.stop();
    this.stopCleanupScheduler();
    await this.settle([this.cleanup.idle(), ...(this.hooks?.pending() ?? [])], this.config.closeTimeoutMs);
    if (wasStopped) return;
    this.logger.info('Stopped session expiry', { activeSessions: this.live.size });
    await this.runLifecycleHook('onStop');
  }

  /**
   * Graceful shutdown: every tracked connection is closed with `code` in parallel
   * (`gracefulClose`, so each waits at most `closeTimeoutMs` for its peer). Never rejects.
   * @param code @default 1001
   * @param reason @default 'going_away'
   */
  async closeAll(code: number = CloseCode.GoingAway, reason: string = CloseReason.going_away): Promise<void> {
    const all = Array.from(this.live.managers);
    if (all.length > 0) this.logger.info(`Closing ${all.length} connection(s)`, { code, reason, totalConnections: all.length });
    await Promise.allSettled(all.map((manager) => manager.gracefulClose(code, reason)));
  }

  /** Drops every tracked connection at once, without a close frame: a shutdown past its deadline. */
  terminateAll(): void {
    for (const manager of this.live.managers) manager.terminate();
  }

  // ---------------------------------------------------------------- cleanup

  /**
   * Closes every open session with no application message for `maxAgeMs` (the JSON idle notice,
   * then 4001 `idle_timeout`), and resolves the number closed once they have (each close waits
   * at most `closeTimeoutMs`; a peer already gone counts as closed).
   *
   * Works on a snapshot of the sessions, `batchSize` at a time, yielding to the event loop
   * between batches, so sessions may connect and disconnect meanwhile. A session that fails to
   * close is counted and logged (`SessionCleanupError` with the cause), never thrown; the run
   * logs one structured line, `Session cleanup completed` (`cleanupCount`, `durationMs`,
   * `memoryFreedMb` (estimated), `errorsEncountered`, `sessionsChecked`; never session data). Runs never overlap:
   * a call made during a run starts after it.
   *
   * @param maxAgeMs Inactivity limit, ms. @default the registry's `sessionTimeoutMs` (0: closes nothing)
   * @throws {RangeError} When `maxAgeMs` is not a number of milliseconds from 0 to 2^31-1.
   */
  cleanupInactiveSessions(maxAgeMs?: number): Promise<number> {
    const limit = maxAgeMs === undefined ? this.sessionTimeoutMs : checkMs('cleanupInactiveSessions: maxAgeMs', maxAgeMs, { allowZero: true });
    return this.cleanup.run(limit);
  }

  /**
   * Runs `cleanupInactiveSessions()` every `intervalMs` (one timer for the whole registry; the
   * next run is timed from the end of the last, so runs never pile up). Calling it again
   * restarts it with the new interval.
   * @param intervalMs @default 900000 // 15 minutes
   * @throws {RangeError} When `intervalMs` is not a number of milliseconds from 1 to 2^31-1.
   */
  startCleanupScheduler(intervalMs: number = REGISTRY_DEFAULTS.cleanupIntervalMs): void {
    checkMs('startCleanupScheduler: intervalMs', intervalMs, { allowZero: false });
    this.cleanup.schedule(intervalMs, this.sessionTimeoutMs);
    this.logger.info('Started session cleanup scheduler', { intervalMs, sessionTimeoutMs: this.sessionTimeoutMs, batchSize: this.batchSize });
  }

  /** Stops the periodic cleanup; a run in progress finishes. No-op when not running. */
  stopCleanupScheduler(): void {
    if (!this.cleanup.unschedule()) return;
    this.logger.info('Stopped session cleanup scheduler', {});
  }

  // ---------------------------------------------------------------- reporting

  /** Session metrics. O(n) in the tracked sessions (for health checks, not hot paths). */
  getSessionMetrics(): SessionMetrics {
    return sessionMetrics({
      managers: this.live.managers,
      active: this.live.size,
      now: this.clock.now(),
      sessionTimeoutMs: this.sessionTimeoutMs,
      closedCount: this.live.closedCount,
      closedDurationMs: this.live.closedDurationMs,
      cleanup: this.cleanup,
      hookErrors: this.hooks?.errors ?? 0,
      reasonCounts: this.live.reasonCounts,
      // Sessions expire in the background: periodic cleanup runs, or idle closes on the scheduler.
      expiringInBackground: this.cleanup.scheduled || (this.lifecycle !== 'stopped' && this.config.idleTimeoutMs > 0),
    });
  }

  /** Every tracked connection, for a dashboard. O(n). */
  snapshot(): ConnectionSnapshot[] {
    const now = this.clock.now();
    return Array.from(this.live.managers, (manager) => snapshotOf(manager, now));
  }

  // ---------------------------------------------------------------- internals

  /**
   * The one place the scheduler of a connection is chosen: the registry's `scheduler` option
   * when given (tests, benchmarks), else the scheduler shared per clock and resolution, so a
   * per-connection config with another `resolutionMs` gets ticks of its own resolution.
   */
  private schedulerFor(config: TimeoutConfig): Scheduler {
    return this.options.scheduler ?? sharedScheduler(this.clock, config.resolutionMs);
  }

  /**
   * Options for one connection that brought its own: on top of the shared ones (a key set to
   * `undefined` keeps the shared value); the registry's clock and observer always apply.
   */
  private connectionOptions(options: ManagerOptions): ManagerOptions {
    const config =
      options.config === undefined ? this.config : isTimeoutConfig(options.config) ? options.config : resolveTimeoutConfig(this.config, options.config);
    return { ...withDefaults(this.shared, options), config, clock: this.clock, scheduler: this.schedulerFor(config), observer: this.live };
  }

  private runLifecycleHook(name: 'onStart' | 'onStop'): Promise<void> {
    const hook = this.options[name];
    if (!hook) return Promise.resolve();
    return Promise.resolve()
      .then(() => hook(this))
      .then(noop, (err: unknown) => {
        this.logger.error(`${name} hook failed`, { error: err });
      });
  }

  /** Waits for `promises` to settle, at most `ms`. */
  private settle(promises: Array<Promise<unknown>>, ms: number): Promise<void> {
    if (promises.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(resolve, ms);
      void Promise.allSettled(promises).then(() => {
        this.clock.clearTimeout(timer);
        resolve();
      });
    });
  }
}
