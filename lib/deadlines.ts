/**
 * The deadline rules of one connection, with no I/O: each function takes the connection's
 * timestamps, its config and "now", and answers. The manager does the sending, closing and
 * terminating; these rules are what make every timeout testable under a fake clock.
 */
import type { TimeoutConfig } from './config.js';

/** The timestamps a connection's deadlines are judged from (all ms since the epoch). */
export interface DeadlineState {
  readonly connectedAt: number;
  /** Last inbound or outbound application message. Ping/pong never move it. */
  readonly lastActivityAt: number;
  /** When the last ping went out (before the first: `connectedAt` minus the connection's ping phase). */
  readonly lastPingAt: number;
  /** When the ping now awaiting its pong went out; -1 when none is outstanding. */
  readonly pingOutstandingSince: number;
  /** This connection's lifetime (the configured one minus its jitter); 0 disables. */
  readonly lifetimeMs: number;
  /** When to advise the peer to reconnect before the lifetime ends; -1 when not (or already) due. */
  readonly reconnectNoticeAt: number;
}

type Limits = Pick<TimeoutConfig, 'idleTimeoutMs' | 'pingIntervalMs' | 'pongTimeoutMs'>;

/** What is due now, in order of precedence: a gone peer first, a ping last. */
export type Decision = 'pong_timeout' | 'max_lifetime' | 'idle' | 'reconnect_notice' | 'ping';

export function isIdle(s: DeadlineState, c: Limits, now: number): boolean {
  return c.idleTimeoutMs > 0 && now - s.lastActivityAt >= c.idleTimeoutMs;
}

export function isLifetimeExceeded(s: DeadlineState, now: number): boolean {
  return s.lifetimeMs > 0 && now - s.connectedAt >= s.lifetimeMs;
}

/** A ping is due when none is outstanding and the interval has passed since the last one. */
export function shouldPing(s: DeadlineState, c: Limits, now: number): boolean {
  return s.pingOutstandingSince < 0 && now - s.lastPingAt >= c.pingIntervalMs;
}

/** The ping now outstanding has gone unanswered for the pong timeout. */
export function isPongOverdue(s: DeadlineState, c: Limits, now: number): boolean {
  return s.pingOutstandingSince >= 0 && now - s.pingOutstandingSince >= c.pongTimeoutMs;
}

export function decide(s: DeadlineState, c: Limits, now: number): Decision | null {
  if (isPongOverdue(s, c, now)) return 'pong_timeout';
  if (isLifetimeExceeded(s, now)) return 'max_lifetime';
  if (isIdle(s, c, now)) return 'idle';
  if (s.reconnectNoticeAt >= 0 && now >= s.reconnectNoticeAt) return 'reconnect_notice';
  if (shouldPing(s, c, now)) return 'ping';
  return null;
}

/** The earliest time at which `decide` can answer something other than null. */
export function nextCheckAt(s: DeadlineState, c: Limits): number {
  // The next ping time is included even while a pong is outstanding: the pong usually arrives
  // long before then, and an early check costs less than a reschedule on every pong.
  let at = s.lastPingAt + c.pingIntervalMs;
  if (s.pingOutstandingSince >= 0) at = Math.min(at, s.pingOutstandingSince + c.pongTimeoutMs);
  if (s.lifetimeMs > 0) at = Math.min(at, s.connectedAt + s.lifetimeMs);
  if (c.idleTimeoutMs > 0) at = Math.min(at, s.lastActivityAt + c.idleTimeoutMs);
  if (s.reconnectNoticeAt >= 0) at = Math.min(at, s.reconnectNoticeAt);
  return at;
}
