/**
 * Prometheus metrics for many connections (connection and session metrics), through
 * prom-client. `ConnectionRegistry` records into a {@link TimeoutMetrics};
 * {@link metricsHandler} serves them as Prometheus text.
 *
 * The metrics live in their own prom-client `Registry` unless you pass yours (`register`), so
 * the library never writes to prom-client's global registry behind your back.
 */
import type { RequestHandler } from 'express';
import * as prom from 'prom-client';
import type { TimeoutReason } from './close-codes.js';

export interface TimeoutMetricsOptions {
  /**
   * The prom-client registry to register the metrics in, e.g. the one your app already serves,
   * or `prom.register` (the global one) if that is what you want.
   * @default a new `prom.Registry()`
   */
  register?: prom.Registry;
  /** Prefix of every metric name; must match `[a-zA-Z_:][a-zA-Z0-9_:]*`. @default 'ws_timeouts_' */
  prefix?: string;
  /**
   * Buckets of the round-trip-time histogram, in seconds.
   * @default [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
   */
  rttBuckets?: number[];
  /**
   * Buckets of the session-duration histogram, in seconds.
   * @default [1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400]
   */
  sessionDurationBuckets?: number[];
}

/** The defaults, declared once. */
export const METRICS_DEFAULTS = Object.freeze({
  prefix: 'ws_timeouts_',
  rttBuckets: Object.freeze([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  sessionDurationBuckets: Object.freeze([1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400]),
});

/** The `role` label value of a connection without a role label. */
export const NO_ROLE = 'none';

const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * The metrics of one or more `ConnectionRegistry`s (several registries may share one instance).
 *
 * | metric (after the prefix) | type | labels | meaning |
 * | --- | --- | --- | --- |
 * | `timeouts_total` | counter | `reason`, `role` | connections ended by a timeout (`idle`, `max_lifetime`, `pong_timeout`, `send_timeout`) |
 * | `connections_checked_total` | counter | | sessions examined by sweeps: each cleanup run adds every open session it looked at |
 * | `idle_detected_total` | counter | | connections found idle (by the scheduler or a cleanup run) |
 * | `connections_closed_total` | counter | | connections the sweep closed: found idle and closed (a peer already gone counts), not ordinary disconnects |
 * | `cleanup_runs_total` | counter | | `cleanupInactiveSessions` runs |
 * | `cleanup_errors_total` | counter | | sessions a cleanup run failed to close |
 * | `active_connections` | gauge | | connections tracked now |
 * | `rtt_seconds` | histogram | | round-trip time of each answered ping |
 * | `session_duration_seconds` | histogram | | how long each closed connection lived |
 */
export class TimeoutMetrics {
  /** The prom-client registry holding these metrics (serve it with {@link metricsHandler}). */
  readonly register: prom.Registry;
  readonly prefix: string;
  readonly timeouts: prom.Counter<'reason' | 'role'>;
  readonly connectionsChecked: prom.Counter;
  readonly idleDetected: prom.Counter;
  readonly connectionsClosed: prom.Counter;
  readonly cleanupRuns: prom.Counter;
  readonly cleanupErrors: prom.Counter;
  readonly activeConnections: prom.Gauge;
  readonly rtt: prom.Histogram;
  readonly sessionDuration: prom.Histogram;

  constructor(options: TimeoutMetricsOptions = {}) {
    const prefix = options.prefix ?? METRICS_DEFAULTS.prefix;
    if (typeof prefix !== 'string' || !METRIC_PREFIX.test(prefix)) {
      throw new TypeError(`TimeoutMetrics: prefix must match [a-zA-Z_:][a-zA-Z0-9_:]* (e.g. 'ws_timeouts_'), got ${JSON.stringify(prefix)}`);
    }
    if (options.register !== undefined && typeof options.register?.registerMetric !== 'function') {
      throw new TypeError('TimeoutMetrics: register must be a prom-client Registry');
    }
    this.prefix = prefix;
    this.register = options.register ?? new prom.Registry();
    const existing = this.register.getSingleMetric(`${prefix}timeouts_total`);
    if (existing) {
      throw new Error(
        `TimeoutMetrics: the metrics with prefix '${prefix}' are already registered in this prom-client Registry; ` +
          'share the existing TimeoutMetrics between registries, or pass another prefix',
      );
    }
    const registers = [this.register];
    this.timeouts = new prom.Counter({
      name: `${prefix}timeouts_total`,
      help: 'WebSocket connections ended by a timeout, by reason (idle, max_lifetime, pong_timeout, send_timeout) and role label',
      labelNames: ['reason', 'role'] as const,
      registers,
    });
    this.connectionsChecked = new prom.Counter({
      name: `${prefix}connections_checked_total`,
      help: 'WebSocket sessions examined by sweeps (cleanup runs), each once per run',
      registers,
    });
    this.idleDetected = new prom.Counter({
      name: `${prefix}idle_detected_total`,
      help: 'WebSocket connections found idle',
      registers,
    });
    this.connectionsClosed = new prom.Counter({
      name: `${prefix}connections_closed_total`,
      help: 'WebSocket connections closed for inactivity (found idle by the scheduler or a cleanup run); ordinary disconnects are not counted',
      registers,
    });
    this.cleanupRuns = new prom.Counter({
      name: `${prefix}cleanup_runs_total`,
      help: 'Runs of cleanupInactiveSessions',
      registers,
    });
    this.cleanupErrors = new prom.Counter({
      name: `${prefix}cleanup_errors_total`,
      help: 'Sessions a cleanup run failed to close',
      registers,
    });
    this.activeConnections = new prom.Gauge({
      name: `${prefix}active_connections`,
      help: 'WebSocket connections tracked now',
      registers,
    });
    this.rtt = new prom.Histogram({
      name: `${prefix}rtt_seconds`,
      help: 'Round-trip time of answered pings, in seconds',
      buckets: [...(options.rttBuckets ?? METRICS_DEFAULTS.rttBuckets)],
      registers,
    });
    this.sessionDuration = new prom.Histogram({
      name: `${prefix}session_duration_seconds`,
      help: 'How long closed WebSocket connections lived, in seconds',
      buckets: [...(options.sessionDurationBuckets ?? METRICS_DEFAULTS.sessionDurationBuckets)],
      registers,
    });
  }

  /** A connection is now tracked. */
  connectionOpened(): void {
    this.activeConnections.inc();
  }

  /** A tracked connection closed after `durationMs`; `timeoutReason` when a timeout ended it. */
  connectionClosed(durationMs: number, timeoutReason?: TimeoutReason): void {
    this.activeConnections.dec();
    if (timeoutReason === 'idle') this.connectionsClosed.inc();
    this.sessionDuration.observe(Math.max(0, durationMs) / 1000);
  }

  /** A connection is being ended by a timeout; `role` is its role label, if any. */
  timeout(reason: TimeoutReason, role: string | undefined): void {
    this.timeouts.inc({ reason, role: role ?? NO_ROLE });
    if (reason === 'idle') this.idleDetected.inc();
  }

  /** A sweep examined `count` sessions. */
  checked(count: number): void {
    this.connectionsChecked.inc(count);
  }

  /** A ping was answered after `rttMs`. */
  roundTrip(rttMs: number): void {
    this.rtt.observe(Math.max(0, rttMs) / 1000);
  }

  /** A cleanup run ended with `errors` sessions it failed to close. */
  cleanupRun(errors: number): void {
    this.cleanupRuns.inc();
    if (errors > 0) this.cleanupErrors.inc(errors);
  }
}

/**
 * An Express handler that serves the registry of `metrics` as Prometheus text with the
 * registry's content type: `app.get('/metrics', metricsHandler(metrics))`. To add Node's
 * process metrics, call `prom.collectDefaultMetrics({ register: metrics.register })` once.
 */
export function metricsHandler(metrics: TimeoutMetrics): RequestHandler {
  if (!(metrics instanceof TimeoutMetrics)) {
    throw new TypeError(`metricsHandler: expected a TimeoutMetrics, got ${metrics === null ? 'null' : typeof metrics}`);
  }
  return async function prometheusMetrics(_req, res, next) {
    try {
      const body = await metrics.register.metrics();
      res.set('Content-Type', metrics.register.contentType);
      res.set('Cache-Control', 'no-store');
      res.send(body);
    } catch (err) {
      next(err);
    }
  };
}
