/**
 * Health of a `ConnectionRegistry` for a `/health` endpoint: `healthy`, or `degraded`
 * above an active-session threshold (default 1000) or an estimated memory budget
 * (`SESSION_MAX_MEMORY_MB`), with the session metrics alongside.
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
  /** `degraded` above this many active sessions. @default the registry's `degradedThreshold` (1000) */
  degradedThreshold?: number;
  /** `degraded` above this estimated session memory, MiB. @default Infinity // no memory check */
  maxMemoryMb?: number;
  /** HTTP status of a `degraded` answer (a `healthy` one is always 200). @default 200 */
  degradedStatusCode?: number;
}

export interface HealthReport {
  status: HealthStatus;
  /** Why the status is `degraded` (empty when healthy), e.g. `"activeSessions 1200 > 1000"`. */
  reasons: string[];
  sessions: SessionMetrics;
}

/** The decision alone, from metrics already taken: no I/O. */
export function sessionHealth(
  sessions: SessionMetrics,
  limits: { degradedThreshold: number; maxMemoryMb?: number },
): { status: HealthStatus; reasons: string[] } {
  const reasons: string[] = [];
  if (sessions.activeSessions > limits.degradedThreshold) {
    reasons.push(`activeSessions ${sessions.activeSessions} > ${limits.degradedThreshold}`);
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
}

/** The registry's health now. */
export function checkHealth(registry: ConnectionRegistry, options: HealthOptions = {}): HealthReport {
  const sessions = registry.getSessionMetrics();
  const { status, reasons } = sessionHealth(sessions, {
    degradedThreshold: options.degradedThreshold ?? registry.degradedThreshold,
    maxMemoryMb: options.maxMemoryMb,
  });
  return { status, reasons, sessions };
}

/**
 * An Express handler answering `{ status, reasons, sessions }` as JSON (never cached):
 * `app.get('/health', healthHandler(registry))`. 200 when healthy; `degradedStatusCode` (200)
 * when degraded.
 * @throws {RangeError} At creation, for a bad option.
 */
export function healthHandler(registry: ConnectionRegistry, options: HealthOptions = {}): RequestHandler {
  if (typeof registry?.getSessionMetrics !== 'function') {
    throw new TypeError('healthHandler: expected a ConnectionRegistry');
  }
  checkOptions(options);
  const degradedStatusCode = options.degradedStatusCode ?? 200;
  return function health(_req, res) {
    const report = checkHealth(registry, options);
    res.set('Cache-Control', 'no-store');
    res.status(report.status === 'healthy' ? 200 : degradedStatusCode).json(report);
  };
}
