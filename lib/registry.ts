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
 */
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { CloseCode, CloseReason, type TimeoutReason } from './close-codes.js';
import { defaultTimeoutConfig, isTimeoutConfig, resolveTimeoutConfig, type TimeoutConfig } from './config.js';
import { withDefaults, type WithDefaults } from './defaults.js';
import { SessionCleanupError, SessionStoreError } from './errors.js';
import { defaultLogger, type Logger } from './logger.js';
import { WebSocketTimeoutManager, type ManagerOptions } from './manager.js';
import { NO_ROLE, type TimeoutMetrics } from './metrics.js';
import { sharedScheduler, type Scheduler } from './scheduler.js';
import type { ManagedSocket } from './socket.js';

/** What `onDisconnect` is told about a closed connection. */
export interface DisconnectInfo {
  /** The close code (1006 for a socket that was terminated or dropped). */
  code: number;
  reason: string;
  /** Set when the connection was ended by a timeout (the registry's own cleanup counts as `'idle'`). */
  timeoutReason?: TimeoutReason;
}

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
   * `logger` and `scheduler` win over the same fields here; its own callbacks run before yours.
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

/**
 * Estimated memory of one session, in bytes: the manager, its `ws` WebSocket with parser and
 * sender, the TCP socket and libuv handle. Measured on Node 20 with 3,000 idle server-side
 * connections: about 3 KiB of JS heap and 11 KiB of resident memory each. Unsent bytes
 * (`bufferedAmount`) are added per session on top; kernel socket buffers are not counted.
 */
export const ESTIMATED_SESSION_BYTES = 12 * 1024;

/** The estimated memory of `manager`'s session now, bytes. */
const estimatedBytes = (manager: WebSocketTimeoutManager): number => ESTIMATED_SESSION_BYTES + manager.ws.bufferedAmount;

/** Bytes as MiB to three decimals (about a KiB), as the health report shows them. */
const toMb = (bytes: number): number => Math.round((bytes / 1_048_576) * 1000) / 1000;

export interface SessionMetrics {
  /** Connections tracked now (open or closing). */
  activeSessions: number;
  /** Tracked sessions past the session timeout or closing: what a cleanup run would end or is ending. */
  expiredSessions: number;
  /** Tracked connections that have closed since the registry was created. */
  closedSessions: number;
  /** `cleanupInactiveSessions` runs completed. */
  cleanupRuns: number;
  /** Sessions closed by cleanup runs. */
  sessionsCleaned: number;
  /** Sessions cleanup runs failed to close. */
  cleanupErrors: number;
  /** `onDisconnect` calls that threw or rejected. */
  hookErrors: number;
  /** End of the last cleanup run, ms since the epoch; null before the first. */
  lastCleanupTime: number | null;
  /** Mean lifetime of the connections that closed, ms; 0 before the first. */
  averageSessionDurationMs: number;
  /** Estimated memory held by the tracked sessions, MiB (see {@link ESTIMATED_SESSION_BYTES}). */
  memoryUsageMb: number;
  /** Connections ended by each timeout reason. */
  timeoutsByReason: Record<TimeoutReason, number>;
  /**
   * Sessions are being expired in the background: the periodic cleanup of
   * `startCleanupScheduler` runs, or (until `stop()`) the scheduler closes idle sessions.
   */
  cleanupSchedulerRunning: boolean;
}

/** One connection, as the dashboard shows it. All times in ms. */
export interface ConnectionSnapshot {
  id: string;
  userId: string | null;
  labels: Record<string, string>;
  /** ms since the epoch. */
  connectedAt: number;
  ageMs: number;
  /** Since the last application message in or out. */
  idleMs: number;
  /** Until the idle close; null when idle expiry is disabled. */
  idleRemainingMs: number | null;
  /** Until the lifetime close; null when the lifetime is unlimited. */
  lifetimeRemainingMs: number | null;
  /** Round-trip time of the last answered ping; null before the first. */
  lastRttMs: number | null;
  /** Smoothed round-trip time; null before the first pong. */
  smoothedRttMs: number | null;
  state: 'open' | 'closing' | 'closed';
}

export interface BroadcastOptions {
  /** Only managers for which this returns true get the message; a throwing filter skips that one (logged). */
  filter?: (manager: WebSocketTimeoutManager) => boolean;
  /** Send deadline per recipient, ms. @default config.messageTimeoutMs */
  timeoutMs?: number;
}

export interface BroadcastResult {
  /** Recipients whose frame was flushed within the deadline. */
  sent: number;
  /** Recipients whose send failed or missed the deadline; each is being closed with 4003. */
  failed: number;
}

type Lifecycle = 'new' | 'running' | 'stopped';

const noop = (): void => undefined;

function checkPositiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`ConnectionRegistry: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function checkMs(name: string, value: unknown, { allowZero }: { allowZero: boolean }): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0) || value > 2 ** 31 - 1) {
    const range = allowZero ? 'from 0 to 2147483647' : 'from 1 to 2147483647';
    throw new RangeError(`ConnectionRegistry: ${name} must be a number of milliseconds ${range}, got ${String(value)}`);
  }
  return value;
}

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
  private readonly explicitScheduler: boolean;
  private readonly roleLabel: string;
  private readonly userCallbacks: Pick<ManagerOptions, 'onClose' | 'onTimeout' | 'onPong' | 'onCheck'>;
  /** The one options object every manager shares (unless `add()` gets its own options). */
  private readonly shared: Readonly<ManagerOptions>;
  private readonly connections = new Set<WebSocketTimeoutManager>();
  /** Why a tracked connection is ending, from the timeout until its close. */
  private readonly endingReasons = new Map<WebSocketTimeoutManager, TimeoutReason>();
  private readonly reasonCounts: Record<TimeoutReason, number> = { idle: 0, max_lifetime: 0, pong_timeout: 0, send_timeout: 0 };
  private readonly pendingHooks = new Set<Promise<void>>();
  private lifecycle: Lifecycle = 'new';
  private cleanupChain: Promise<unknown> = Promise.resolve();
  private cleanupTimer: TimerHandle | null = null;
  private cleanupGeneration = 0;
  private cleanupIntervalMs = 0;
  private stats = {
    closedSessions: 0,
    totalDurationMs: 0,
    cleanupRuns: 0,
    sessionsCleaned: 0,
    cleanupErrors: 0,
    hookErrors: 0,
    lastCleanupTime: null as number | null,
  };

  constructor(options: RegistryOptions = {}) {
    this.options = withDefaults(REGISTRY_DEFAULTS, options);
    const managerOptions = options.managerOptions ?? {};
    const config = options.config ?? managerOptions.config;
    this.config = isTimeoutConfig(config) ? config : resolveTimeoutConfig(defaultTimeoutConfig(), config);
    this.clock = options.clock ?? managerOptions.clock ?? systemClock;
    this.logger = options.logger ?? managerOptions.logger ?? defaultLogger();
    this.explicitScheduler = options.scheduler !== undefined;
    this.scheduler = options.scheduler ?? sharedScheduler(this.clock, this.config.resolutionMs);
    this.metrics = options.metrics;
    this.batchSize = checkPositiveInteger('batchSize', this.options.batchSize);
    const threshold = this.options.degradedThreshold;
    if (typeof threshold !== 'number' || Number.isNaN(threshold) || threshold < 0) {
      throw new RangeError(`ConnectionRegistry: degradedThreshold must be a non-negative number of sessions, got ${String(threshold)}`);
    }
    this.degradedThreshold = threshold;
    this.sessionTimeoutMs = checkMs('sessionTimeoutMs', options.sessionTimeoutMs ?? this.config.idleTimeoutMs, { allowZero: true });
    this.roleLabel = this.options.roleLabel;
    if (options.onDisconnect !== undefined && typeof options.onDisconnect !== 'function') {
      throw new TypeError(`ConnectionRegistry: onDisconnect must be a function, got ${typeof options.onDisconnect}`);
    }
    this.userCallbacks = managerOptions;
    this.shared = Object.freeze({
      pingPhase: 'random',
      logConnections: false, // the registry logs connect and disconnect itself, with the count
      ...managerOptions,
      config: this.config,
      clock: this.clock,
      logger: this.logger,
      scheduler: this.scheduler,
      ...this.callbacks(managerOptions),
    });
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
    this.connections.add(manager);
    this.metrics?.connectionOpened();
    const total = this.connections.size;
    this.logger.info('WebSocket connected', this.meta(manager, { totalConnections: total }));
    if (this.lifecycle !== 'stopped') manager.start();
    return manager;
  }

  /**
   * Stops tracking `manager` (it stays open and keeps its own enforcement); its close is then
   * no longer counted and `onDisconnect` does not run for it. False if it was not tracked.
   */
  remove(manager: WebSocketTimeoutManager): boolean {
    if (!this.connections.delete(manager)) return false;
    this.endingReasons.delete(manager);
    this.metrics?.activeConnections.dec();
    return true;
  }

  /** Connections tracked now (open or closing). */
  get size(): number {
    return this.connections.size;
  }

  /** The tracked managers, live (safe to iterate while connections come and go). */
  managers(): IterableIterator<WebSocketTimeoutManager> {
    return this.connections.values();
  }

  /** Connections ended by each timeout reason since the registry was created (live, read-only). */
  get timeoutsByReason(): Readonly<Record<string, number>> {
    return this.reasonCounts;
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
    const timeoutMs = options.timeoutMs ?? this.config.messageTimeoutMs;
    if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
      throw new RangeError(`ConnectionRegistry.broadcast: timeoutMs must be a non-negative number of milliseconds, got ${String(timeoutMs)}`);
    }
    let text: string | undefined;
    try {
      text = typeof data === 'string' ? data : JSON.stringify(data);
    } catch (err) {
      this.logger.error('Broadcast failed: data is not serialisable to JSON', { error: err });
      return { sent: 0, failed: 0 };
    }
    if (text === undefined) {
      this.logger.error('Broadcast failed: data is not serialisable to JSON', { dataType: typeof data });
      return { sent: 0, failed: 0 };
    }

    const recipients: WebSocketTimeoutManager[] = [];
    let filterErrors = 0;
    for (const manager of this.connections) {
      if (manager.state !== 'open') continue;
      if (options.filter) {
        try {
          if (!options.filter(manager)) continue;
        } catch (err) {
          if (filterErrors++ === 0) this.logger.error('Broadcast filter threw; skipping that recipient', this.meta(manager, { error: err }));
          continue;
        }
      }
      recipients.push(manager);
    }
    const results = await Promise.all(recipients.map((manager) => manager.sendTextWithTimeout(text, timeoutMs)));
    let sent = 0;
    let failed = 0;
    for (let i = 0; i < results.length; i++) {
      if (results[i]) {
        sent++;
        continue;
      }
      failed++;
      // Already closing when the manager's own slow-consumer policy closed it; idempotent otherwise.
      void recipients[i]!.gracefulClose(CloseCode.SendTimeout, CloseReason.send_timeout);
    }
    if (failed > 0 || filterErrors > 0) {
      this.logger.warn(`Broadcast failed for ${failed} recipient(s)`, { sent, failed, filterErrors, timeoutMs });
    } else {
      this.logger.debug('Broadcast sent', { sent });
    }
    return { sent, failed };
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
    for (const manager of this.connections) manager.start();
    const idle = this.config.idleTimeoutMs;
    const minutes = idle / 60_000;
    const shown = minutes >= 1 ? minutes.toFixed(1) : String(Number(minutes.toFixed(4))); // 30.0, or 0.0167 for 1 s
    const message = idle > 0 ? `Started session expiry with ${shown} minute timeout` : 'Started session expiry (idle timeout disabled)';
    this.logger.info(message, {
      idleTimeoutMs: idle,
      connectionTimeoutMs: this.config.connectionTimeoutMs,
      resolutionMs: this.scheduler.resolutionMs,
      activeSessions: this.connections.size,
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
    for (const manager of this.connections) manager.stop();
    this.stopCleanupScheduler();
    await this.settle([this.cleanupChain, ...this.pendingHooks], this.config.closeTimeoutMs);
    if (wasStopped) return;
    this.logger.info('Stopped session expiry', { activeSessions: this.connections.size });
    await this.runLifecycleHook('onStop');
  }

  /**
   * Graceful shutdown: every tracked connection is closed with `code` in parallel
   * (`gracefulClose`, so each waits at most `closeTimeoutMs` for its peer). Never rejects.
   * @param code @default 1001
   * @param reason @default 'going_away'
   */
  async closeAll(code: number = CloseCode.GoingAway, reason: string = CloseReason.going_away): Promise<void> {
    const all = Array.from(this.connections);
    if (all.length > 0) this.logger.info(`Closing ${all.length} connection(s)`, { code, reason, totalConnections: all.length });
    await Promise.allSettled(all.map((manager) => manager.gracefulClose(code, reason)));
  }

  /** Drops every tracked connection at once, without a close frame: a shutdown past its deadline. */
  terminateAll(): void {
    for (const manager of this.connections) manager.terminate();
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
    const run = this.cleanupChain.then(() => this.runCleanup(limit));
    this.cleanupChain = run.catch(noop);
    return run;
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
    this.cancelCleanupTimer();
    const generation = ++this.cleanupGeneration;
    this.cleanupIntervalMs = intervalMs;
    const loop = (): void => {
      this.cleanupTimer = null;
      // A run never rejects; the catch is there so that not even a throwing logger can stop the schedule.
      void this.cleanupInactiveSessions()
        .catch(noop)
        .finally(() => {
          if (this.cleanupGeneration === generation) this.cleanupTimer = this.clock.setTimeout(loop, intervalMs);
        });
    };
    this.cleanupTimer = this.clock.setTimeout(loop, intervalMs);
    this.logger.info('Started session cleanup scheduler', { intervalMs, sessionTimeoutMs: this.sessionTimeoutMs, batchSize: this.batchSize });
  }

  /** Stops the periodic cleanup; a run in progress finishes. No-op when not running. */
  stopCleanupScheduler(): void {
    if (this.cleanupIntervalMs === 0) return;
    this.cancelCleanupTimer();
    this.cleanupGeneration++;
    this.cleanupIntervalMs = 0;
    this.logger.info('Stopped session cleanup scheduler', {});
  }

  // ---------------------------------------------------------------- reporting

  /** Session metrics. O(n) in the tracked sessions (for health checks, not hot paths). */
  getSessionMetrics(): SessionMetrics {
    const now = this.clock.now();
    const timeout = this.sessionTimeoutMs;
    let expired = 0;
    let bytes = 0;
    for (const manager of this.connections) {
      if (manager.state !== 'open' || (timeout > 0 && now - manager.lastActivityAt >= timeout)) expired++;
      bytes += estimatedBytes(manager);
    }
    const s = this.stats;
    return {
      activeSessions: this.connections.size,
      expiredSessions: expired,
      closedSessions: s.closedSessions,
      cleanupRuns: s.cleanupRuns,
      sessionsCleaned: s.sessionsCleaned,
      cleanupErrors: s.cleanupErrors,
      hookErrors: s.hookErrors,
      lastCleanupTime: s.lastCleanupTime,
      averageSessionDurationMs: s.closedSessions === 0 ? 0 : Math.round(s.totalDurationMs / s.closedSessions),
      memoryUsageMb: toMb(bytes),
      timeoutsByReason: { ...this.reasonCounts },
      // Sessions expire in the background: periodic cleanup runs, or idle closes on the scheduler.
      cleanupSchedulerRunning: this.cleanupIntervalMs > 0 || (this.lifecycle !== 'stopped' && this.config.idleTimeoutMs > 0),
    };
  }

  /** Every tracked connection, for a dashboard. O(n). */
  snapshot(): ConnectionSnapshot[] {
    const now = this.clock.now();
    return Array.from(this.connections, (m) => {
      const idle = m.config.idleTimeoutMs;
      return {
        id: m.id,
        userId: m.userId ?? null,
        labels: { ...m.labels },
        connectedAt: m.connectedAt,
        ageMs: now - m.connectedAt,
        idleMs: now - m.lastActivityAt,
        idleRemainingMs: idle > 0 ? Math.max(0, m.lastActivityAt + idle - now) : null,
        lifetimeRemainingMs: m.lifetimeMs > 0 ? Math.max(0, m.connectedAt + m.lifetimeMs - now) : null,
        lastRttMs: m.lastRttMs < 0 ? null : m.lastRttMs,
        smoothedRttMs: m.smoothedRttMs < 0 ? null : Math.round(m.smoothedRttMs * 10) / 10,
        state: m.state,
      };
    });
  }

  // ---------------------------------------------------------------- internals

  /** The registry's callbacks, each followed by the user's (which the manager guards with try/catch). */
  private callbacks(user: Pick<ManagerOptions, 'onClose' | 'onTimeout' | 'onPong' | 'onCheck'>): ManagerOptions {
    const out: ManagerOptions = {
      onClose: (code, reason, manager) => {
        this.handleClosed(manager, code, reason);
        user.onClose?.(code, reason, manager);
      },
      onTimeout: (reason, manager) => {
        this.recordTimeout(manager, reason);
        user.onTimeout?.(reason, manager);
      },
    };
    // Called on every pong: only installed when someone listens.
    if (this.metrics || user.onPong) {
      out.onPong = (rttMs, manager) => {
        this.metrics?.roundTrip(rttMs);
        user.onPong?.(rttMs, manager);
      };
    }
    return out;
  }

  /** Options for one connection that brought its own: merged onto the shared ones. */
  private connectionOptions(options: ManagerOptions): ManagerOptions {
    const config =
      options.config === undefined ? this.config : isTimeoutConfig(options.config) ? options.config : resolveTimeoutConfig(this.config, options.config);
    const scheduler =
      this.explicitScheduler || config.resolutionMs === this.scheduler.resolutionMs ? this.scheduler : sharedScheduler(this.clock, config.resolutionMs);
    const hasCallbacks = options.onClose || options.onTimeout || options.onPong || options.onCheck;
    return {
      ...this.shared,
      ...options,
      config,
      clock: this.clock,
      scheduler,
      logger: options.logger ?? this.logger,
      ...(hasCallbacks
        ? this.callbacks({
            onClose: options.onClose ?? this.userCallbacks.onClose,
            onTimeout: options.onTimeout ?? this.userCallbacks.onTimeout,
            onPong: options.onPong ?? this.userCallbacks.onPong,
            onCheck: options.onCheck ?? this.userCallbacks.onCheck,
          })
        : {
            onClose: this.shared.onClose,
            onTimeout: this.shared.onTimeout,
            onPong: this.shared.onPong,
            onCheck: this.shared.onCheck,
          }),
    };
  }

  private recordTimeout(manager: WebSocketTimeoutManager, reason: TimeoutReason): void {
    if (!this.connections.has(manager) || this.endingReasons.has(manager)) return;
    this.endingReasons.set(manager, reason);
    this.reasonCounts[reason]++;
    this.metrics?.timeout(reason, manager.labels?.[this.roleLabel] ?? NO_ROLE);
  }

  private handleClosed(manager: WebSocketTimeoutManager, code: number, reason: string): void {
    const timeoutReason = this.endingReasons.get(manager);
    this.endingReasons.delete(manager);
    if (!this.connections.delete(manager)) return;
    const durationMs = this.clock.now() - manager.connectedAt;
    this.stats.closedSessions++;
    this.stats.totalDurationMs += durationMs;
    this.metrics?.connectionClosed(durationMs, timeoutReason);
    const total = this.connections.size;
    this.logger.info(
      'WebSocket closed',
      this.meta(manager, { code, reason, timeoutReason, durationMs, totalConnections: total }),
    );
    const hook = this.options.onDisconnect;
    if (hook) this.runDisconnectHook(hook, manager, timeoutReason ? { code, reason, timeoutReason } : { code, reason });
  }

  private runDisconnectHook(hook: NonNullable<RegistryOptions['onDisconnect']>, manager: WebSocketTimeoutManager, info: DisconnectInfo): void {
    // Always asynchronous, so the hook runs after the close has been fully handled.
    const pending: Promise<void> = Promise.resolve()
      .then(() => hook(manager, info))
      .then(noop, (cause: unknown) => {
        this.stats.hookErrors++;
        const error = new SessionStoreError(`onDisconnect hook failed for connection ${manager.id}`, { cause });
        this.logger.error('onDisconnect hook failed', this.meta(manager, { error, errorCode: error.code, cause }));
      })
      .finally(() => this.pendingHooks.delete(pending));
    this.pendingHooks.add(pending);
  }

  private async runCleanup(maxAgeMs: number): Promise<number> {
    const startedAt = this.clock.now();
    const startedHr = performance.now();
    let checked = 0;
    let cleaned = 0;
    let freedBytes = 0;
    let errors = 0;
    let firstError: SessionCleanupError | undefined;
    const fail = (manager: WebSocketTimeoutManager | null, cause: unknown): void => {
      errors++;
      const error = new SessionCleanupError(manager ? `Could not clean up session ${manager.id}` : 'Session cleanup run failed', { cause });
      firstError ??= error;
      this.logger.error(error.message, { ...(manager ? this.meta(manager) : {}), error, errorCode: error.code, cause });
    };
    try {
      if (maxAgeMs > 0) {
        const sessions = Array.from(this.connections);
        const closes: Array<Promise<void>> = [];
        for (let start = 0; start < sessions.length; start += this.batchSize) {
          // Between batches, let I/O and other work run: a large registry never blocks the loop.
          if (start > 0) await new Promise<void>((resolve) => this.clock.afterIo(resolve));
          const now = this.clock.now();
          const end = Math.min(start + this.batchSize, sessions.length);
          for (let i = start; i < end; i++) {
            const manager = sessions[i]!;
            // Closed, closing or removed since the snapshot: someone else handles it.
            if (manager.state !== 'open' || !this.connections.has(manager)) continue;
            checked++;
            if (now - manager.lastActivityAt < maxAgeMs) continue;
            const bytes = estimatedBytes(manager);
            closes.push(
              this.expireInactive(manager, now, maxAgeMs).then(
                () => {
                  cleaned++;
                  freedBytes += bytes;
                },
                (cause: unknown) => fail(manager, cause),
              ),
            );
          }
        }
        await Promise.all(closes);
      }
    } catch (cause) {
      fail(null, cause);
    }
    const s = this.stats;
    s.cleanupRuns++;
    s.sessionsCleaned += cleaned;
    s.cleanupErrors += errors;
    s.lastCleanupTime = this.clock.now();
    this.metrics?.checked(checked);
    this.metrics?.cleanupRun(errors);
    // The message existing alerts match on.
    this.logger.info('Session cleanup completed', {
      cleanupCount: cleaned,
      sessionsChecked: checked,
      errorsEncountered: errors,
      durationMs: Math.round((performance.now() - startedHr) * 1000) / 1000,
      memoryFreedMb: toMb(freedBytes),
      maxAgeMs,
      activeSessions: this.connections.size,
      startedAt,
      ...(firstError ? { errorCode: firstError.code } : {}),
    });
    return cleaned;
  }

  /** The idle close: the notice (best effort, bounded by the send deadline), then 4001. */
  private async expireInactive(manager: WebSocketTimeoutManager, now: number, maxAgeMs: number): Promise<void> {
    this.recordTimeout(manager, 'idle');
    this.logger.warn('WebSocket timeout', this.meta(manager, { reason: 'idle', source: 'cleanup', maxAgeMs, idleMs: now - manager.lastActivityAt }));
    if (this.shared.timeoutNotice !== false) {
      // Not awaited: the close frame queues behind the notice, and gracefulClose bounds both.
      void manager.sendJsonWithTimeout({
        type: 'connectionTimeout',
        reason: 'idle',
        message: 'Connection closed due to inactivity',
        idleSeconds: maxAgeMs / 1000,
        timestamp: now,
      });
    }
    await manager.gracefulClose(CloseCode.IdleTimeout, CloseReason.idle);
  }

  private cancelCleanupTimer(): void {
    if (this.cleanupTimer !== null) {
      this.clock.clearTimeout(this.cleanupTimer);
      this.cleanupTimer = null;
    }
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

  private meta(manager: WebSocketTimeoutManager, extra?: Record<string, unknown>): Record<string, unknown> {
    return { connectionId: manager.id, userId: manager.userId, ...manager.labels, ...extra };
  }
}
