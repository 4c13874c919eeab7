/**
 * Health of a `ConnectionRegistry`: `healthy`, or `degraded` from an active-session threshold on
 * (1000 by default: 1000 sessions are degraded) or above an estimated memory budget
 * (`SESSION_MAX_MEMORY_MB`), with the session metrics alongside.
 *
 * With `fleet` (a `FleetNode` of `ws-timeouts/fleet`, or anything with its `health()`), the report
 * carries the fleet's `{ status, nodes, connections }`, and a fleet whose bus is unavailable makes
 * the instance `degraded` (`redis unavailable: …`): it still serves its own connections.
 *
 * Status code: `degraded` still answers **200** by default. The instance is serving, only past
 * a soft limit; answering 503 would make a load balancer pull every busy instance out of
 * rotation at once, which turns high load into an outage. Set `degradedStatusCode: 503` when
 * you do want a degraded instance drained.
 */
import type { RequestHandler } from 'express';
import type { ConnectionRegistry, SessionMetrics } from './registry.js';

export type HealthStatus = 'healthy' | 'degraded';

export interface HealthOptions {
  /** `degraded` at this many active sessions or more. @default the registry's `degradedThreshold` (1000) */
  degradedThreshold?: number;
  /** `degraded` above this estimated session memory, MiB. @default Infinity // no memory check */
  maxMemoryMb?: number;
  /** HTTP status of a `degraded` answer (a `healthy` one is always 200). @default 200 */
  degradedStatusCode?: number;
  /**
   * Answer as one service of a larger health document, the shape existing probes read:
   * `{ status, services: { [service]: { status, reasons, metrics } } }` (`metrics` is
   * `getSessionMetrics()`), e.g. `service: 'session_manager'`.
   * @default undefined // `{ status, reasons, sessions }`
   */
  service?: string;
  /**
   * The fleet this instance is a node of (`await joinFleet(...)` from `ws-timeouts/fleet`): its
   * health is reported as `fleet`, and an `unavailable` fleet makes the status `degraded`.
   * Structural, so this module never loads the fleet or Redis. @default none
   */
  fleet?: { health(): FleetHealthReport };
}

/** The fleet part of a {@link HealthReport}. */
type FleetHealthReport = { status: 'ok' | 'unavailable'; nodes: number; connections: number; reason?: string };

export interface HealthReport {
  status: HealthStatus;
  /** Why the status is `degraded` (empty when healthy), e.g. `"activeSessions 1200 >= 1000"` or `"redis unavailable: …"`. */
  reasons: string[];
  sessions: SessionMetrics;
  /** With the `fleet` option: the fleet's status, its live nodes and their connections (at the node's last membership read). */
  fleet?: FleetHealthReport;
}

/** The decision alone, from metrics already taken: no I/O. */
export function sessionHealth(
  sessions: SessionMetrics,
  limits: { degradedThreshold: number; maxMemoryMb?: number },
): { status: HealthStatus; reasons: string[] } {
  const reasons: string[] = [];
  if (sessions.activeSessions >= limits.degradedThreshold) {
    reasons.push(`activeSessions ${sessions.activeSessions} >= ${limits.degradedThreshold}`);
  }
  const maxMemoryMb = limits.maxMemoryMb ?? Infinity;
  if (sessions.memoryUsageMb > maxMemoryMb) {
    reasons.push(`memoryUsageMb ${sessions.memoryUsageMb} > ${maxMemoryMb}`);
  }
  return { status: reasons.length > 0 ? 'degraded' : 'healthy', reasons };
}

function checkOptions(options: HealthOptions): void {
  for (const name of ['degradedThreshold', 'maxMemoryMb'] as const) {
    const value = options[name];
    if (value !== undefined && (typeof value !== 'number' || Number.isNaN(value) || value < 0)) {
      throw new RangeError(`healthHandler: ${name} must be a non-negative number, got ${String(value)}`);
    }
  }
  const code = options.degradedStatusCode;
  if (code !== undefined && !(Number.isInteger(code) && code >= 200 && code <= 599)) {
    throw new RangeError(`healthHandler: degradedStatusCode must be an HTTP status from 200 to 599 (e.g. 503), got ${String(code)}`);
  }
  if (options.fleet !== undefined && typeof options.fleet?.health !== 'function') {
    throw new TypeError('healthHandler: fleet must be a FleetNode (the result of joinFleet from ws-timeouts/fleet), with a health() method');
  }
  const service = options.service;
  if (service !== undefined && (typeof service !== 'string' || service === '')) {
    throw new TypeError(`healthHandler: service must be a non-empty name (e.g. 'session_manager'), got ${JSON.stringify(service)}`);
  }
}

/** The registry's health now. */
export function checkHealth(registry: ConnectionRegistry, options: HealthOptions = {}): HealthReport {
  const sessions = registry.getSessionMetrics();
  const { status, reasons } = sessionHealth(sessions, {
    degradedThreshold: options.degradedThreshold ?? registry.degradedThreshold,
    maxMemoryMb: options.maxMemoryMb,
  });
  if (options.fleet === undefined) return { status, reasons, sessions };
  const fleet = options.fleet.health();
  if (fleet.status !== 'ok') return { status: 'degraded', reasons: [...reasons, `redis unavailable: ${fleet.reason ?? 'no reason given'}`], sessions, fleet };
  return { status, reasons, sessions, fleet };
}

/**
 * An Express handler answering `{ status, reasons, sessions }` as JSON (never cached):
 * `app.get('/health', healthHandler(registry))`, or with `service` the
 * `{ status, services: { [service]: { status, reasons, metrics } } }` shape. 200 when healthy;
 * `degradedStatusCode` (200) when degraded.
 * @throws {RangeError} At creation, for a bad threshold or status code.
 * @throws {TypeError} At creation, for a `service` that is not a non-empty string.
 */
export function healthHandler(registry: ConnectionRegistry, options: HealthOptions = {}): RequestHandler {
  if (typeof registry?.getSessionMetrics !== 'function') {
    throw new TypeError('healthHandler: expected a ConnectionRegistry');
  }
  checkOptions(options);
  const degradedStatusCode = options.degradedStatusCode ?? 200;
  return function health(_req, res) {
    const { status, reasons, sessions, fleet } = checkHealth(registry, options);
    const body =
      options.service === undefined
        ? { status, reasons, sessions, fleet }
        : { status, services: { [options.service]: { status, reasons, metrics: sessions } }, fleet };
    res.set('Cache-Control', 'no-store');
    res.status(status === 'healthy' ? 200 : degradedStatusCode).json(body);
  };
}
