/**
 * `ConnectionCore`: the rules of one connection, with no I/O.
 *
 * A core is a connection's timestamps, its state and its ping phase; the functions here answer
 * every timeout question — what is due now, when to look again, how long is left — from a `now`
 * they are given. A core owns no socket, timer, logger or clock: `WebSocketTimeoutManager` binds
 * one to a `ws` socket and does the sending, closing and logging; the registry's snapshot and
 * cleanup ask it. Because of that, every rule is testable as a table of (state, event, time) → verdict.
 *
 * A core is a record and the rules are functions over it, rather than a class, so that the manager
 * can carry a core's fields itself ({@link initCore}): one object per connection instead of two
 * saves an object header and a pointer, about 40 B of the few hundred a connection costs.
 */
import type { TimeoutConfig } from './config.js';

/** The limits the rules read; a `TimeoutConfig` is one. */
export type CoreLimits = Pick<TimeoutConfig, 'idleTimeoutMs' | 'pingIntervalMs' | 'pongTimeoutMs'>;

/** What is due now, in order of precedence: a gone peer first, a ping last. */
export type Verdict = 'pong_timeout' | 'max_lifetime' | 'idle' | 'reconnect_notice' | 'ping';

/**
 * Where a connection is in its life. Closing covers every closing handshake, whoever started it:
 * it is bounded by `closeTimeoutMs` and gets no more verdicts.
 */
export const CoreState = Object.freeze({ Open: 0, Closing: 1, Closed: 2 } as const);
export type CoreStateValue = (typeof CoreState)[keyof typeof CoreState];

/** Time left before each deadline, ms (0 once passed); null when that deadline is off. */
export interface Remaining {
  /** Until the idle timeout; null when idle is disabled. */
  idleMs: number | null;
  /** Until the lifetime close (after jitter); null when the lifetime is unlimited. */
  lifetimeMs: number | null;
  /** Until the outstanding ping counts as unanswered; null when no ping is outstanding. */
  pongMs: number | null;
  /** Until the next ping is due; null while one is outstanding. */
  pingMs: number | null;
}

/**
 * Times are kept relative to the first `now` any core saw, so they stay small integers: V8 keeps
 * a small integer in the object itself, but boxes an epoch millisecond count (> 2^31) in a
 * separate 16-byte number per field per connection.
 */
let origin = Number.NaN;
/** -1 is "none" for durations and for the epoch times the getters return. */
const NONE = -1;
/**
 * "None" for a time kept relative to `origin`, where -1 is a real time (a test clock may start
 * before the origin); still a small integer.
 */
const UNSET = -(2 ** 30);
/**
 * `now` relative to `origin`. The difference of two epoch times comes out as a heap number even
 * when it is a small integer, and one heap number stored in a field makes V8 box that field in
 * every connection: `| 0` gives V8 the small integer (only when it is exact, so nothing wraps).
 */
function sinceOrigin(now: number): number {
  return small(now - origin);
}

function small(n: number): number {
  const int = n | 0;
  return int === n ? int : n;
}

/** Weight of a new sample in the smoothed RTT (TCP's SRTT uses 1/8). */
const RTT_SMOOTHING = 0.125;

/**
 * The state of one connection. Times are relative to `origin` (see `sinceOrigin`); read them with
 * the functions below, which answer in epoch ms.
 */
export interface ConnectionCore {
  /** The limits the rules read. */
  readonly config: CoreLimits;
  /** This connection's lifetime (the configured one minus its jitter), ms; 0 is unlimited. */
  lifetime: number;
  connected: number;
  lastActivity: number;
  /** When the last ping went out; before the first, `connected` minus the ping phase. */
  lastPing: number;
  pingOutstanding: number;
  lastPong: number;
  reconnectNotice: number;
  rttMs: number;
  /** Smoothed RTT in µs, rounded: an integer, so it stays unboxed (see `origin`). */
  smoothedRttUs: number;
  current: CoreStateValue;
}

/** The fields {@link initCore} writes: all but `config`, which the owner supplies. */
type CoreFields = Omit<ConnectionCore, 'config'>;

/**
 * Writes a core's fields onto `target`, which must already supply `config` (the manager's
 * `config` getter does). Always the same fields in the same order, so V8 gives every target one
 * hidden class.
 * @param now when the connection was accepted (ms since the epoch)
 * @param lifetimeMs the lifetime after jitter; 0 is unlimited
 * @param pingOffsetMs how far into the ping interval this connection's pings fall: the first
 *   ping is due `pingIntervalMs - pingOffsetMs` after `now`
 * @param reconnectNoticeMs advise a reconnect this long before the lifetime ends; 0 never
 */
export function initCore(target: object, now: number, lifetimeMs: number, pingOffsetMs = 0, reconnectNoticeMs = 0): void {
  if (origin !== origin) origin = now;
  const at = sinceOrigin(now);
  const c = target as CoreFields;
  c.lifetime = lifetimeMs;
  c.connected = at;
  c.lastActivity = at;
  c.lastPing = at - pingOffsetMs;
  c.pingOutstanding = UNSET;
  c.lastPong = UNSET;
  c.reconnectNotice = reconnectNoticeMs > 0 && lifetimeMs > reconnectNoticeMs ? at + lifetimeMs - reconnectNoticeMs : UNSET;
  c.rttMs = NONE;
  c.smoothedRttUs = NONE;
  c.current = CoreState.Open;
}

/** A core of its own (the manager carries its core's fields instead; see {@link initCore}). */
export function createCore(config: CoreLimits, now: number, lifetimeMs: number, pingOffsetMs = 0, reconnectNoticeMs = 0): ConnectionCore {
  const c = { config } as ConnectionCore;
  initCore(c, now, lifetimeMs, pingOffsetMs, reconnectNoticeMs);
  return c;
}

// ---------------------------------------------------------------- what it holds (epoch ms, -1 for none)

export function connectedAt(c: ConnectionCore): number {
  return c.connected + origin;
}
/** Last inbound or outbound application message. Ping/pong never move it. */
export function lastActivityAt(c: ConnectionCore): number {
  return c.lastActivity + origin;
}
export function lastPingAt(c: ConnectionCore): number {
  return c.lastPing + origin;
}
/** When the ping awaiting its pong went out; -1 when none is outstanding. */
export function pingOutstandingSince(c: ConnectionCore): number {
  return c.pingOutstanding === UNSET ? NONE : c.pingOutstanding + origin;
}
export function lastPongAt(c: ConnectionCore): number {
  return c.lastPong === UNSET ? NONE : c.lastPong + origin;
}
/** When to advise a reconnect; -1 when not configured or already sent. */
export function reconnectNoticeAt(c: ConnectionCore): number {
  return c.reconnectNotice === UNSET ? NONE : c.reconnectNotice + origin;
}
/** Exponentially smoothed round-trip time, ms (to the µs); -1 before the first. */
export function smoothedRttMs(c: ConnectionCore): number {
  return c.smoothedRttUs === NONE ? NONE : c.smoothedRttUs / 1000;
}

// ---------------------------------------------------------------- events

/** An application message went in or out. */
export function activity(c: ConnectionCore, now: number): void {
  c.lastActivity = sinceOrigin(now);
}

/**
 * A ping went out. With `keepPhase` (a ping the scheduler found due), the next one stays on
 * this connection's phase even when this one was late: after a stall every overdue socket
 * pings in the same tick, but their next pings spread out again.
 */
export function pingSent(c: ConnectionCore, now: number, keepPhase = false): void {
  const at = sinceOrigin(now);
  const late = at - c.lastPing - c.config.pingIntervalMs;
  c.pingOutstanding = at;
  c.lastPing = keepPhase && late > 0 ? at - (late % c.config.pingIntervalMs) : at;
}

/** A pong arrived. Returns the round-trip time of the ping it answers, or -1 when none was outstanding. */
export function pongReceived(c: ConnectionCore, now: number): number {
  const at = sinceOrigin(now);
  c.lastPong = at;
  if (c.pingOutstanding === UNSET) return NONE;
  const rtt = at - c.pingOutstanding;
  c.pingOutstanding = UNSET;
  c.rttMs = rtt;
  const us = small(Math.round(rtt * 1000));
  c.smoothedRttUs = small(c.smoothedRttUs === NONE ? us : Math.round(c.smoothedRttUs + RTT_SMOOTHING * (us - c.smoothedRttUs)));
  return rtt;
}

/** The reconnect notice went out (it is sent once). */
export function reconnectNoticeSent(c: ConnectionCore): void {
  c.reconnectNotice = UNSET;
}

/** A closing handshake started. Returns false when one had already started, or the connection closed. */
export function closing(c: ConnectionCore): boolean {
  if (c.current !== CoreState.Open) return false;
  c.current = CoreState.Closing;
  return true;
}

/** The connection closed. Returns false when it already had. */
export function closed(c: ConnectionCore): boolean {
  if (c.current === CoreState.Closed) return false;
  c.current = CoreState.Closed;
  return true;
}

// ---------------------------------------------------------------- verdicts

/** No application message for `idleTimeoutMs` (never when idle is disabled). */
export function isIdle(c: ConnectionCore, now: number): boolean {
  return isIdleFor(c, now, c.config.idleTimeoutMs);
}

/** No application message for `maxAgeMs`; never when `maxAgeMs` is 0. */
export function isIdleFor(c: ConnectionCore, now: number, maxAgeMs: number): boolean {
  return maxAgeMs > 0 && idleFor(c, now) >= maxAgeMs;
}

/** Milliseconds since the last application message. */
export function idleFor(c: ConnectionCore, now: number): number {
  return now - origin - c.lastActivity;
}

/** Milliseconds since the connection was accepted. */
export function age(c: ConnectionCore, now: number): number {
  return now - origin - c.connected;
}

export function isLifetimeOver(c: ConnectionCore, now: number): boolean {
  return c.lifetime > 0 && age(c, now) >= c.lifetime;
}

/** A ping is due: none is outstanding and the interval has passed since the last one. */
export function shouldPing(c: ConnectionCore, now: number): boolean {
  return c.pingOutstanding === UNSET && now - origin - c.lastPing >= c.config.pingIntervalMs;
}

/** The outstanding ping has gone unanswered for `pongTimeoutMs`. */
export function isPongOverdue(c: ConnectionCore, now: number): boolean {
  return c.pingOutstanding !== UNSET && now - origin - c.pingOutstanding >= c.config.pongTimeoutMs;
}

/**
 * What is due now, or null; only an open connection gets verdicts. After an event-loop stall
 * (`stalled`) an overdue pong is not judged yet: a pong that arrived during the stall may be
 * waiting to be read, so pending input gets one more turn (`nextCheckAt()` is then already past).
 */
export function due(c: ConnectionCore, now: number, stalled = false): Verdict | null {
  if (c.current !== CoreState.Open) return null;
  if (isPongOverdue(c, now)) return stalled ? null : 'pong_timeout';
  if (isLifetimeOver(c, now)) return 'max_lifetime';
  if (isIdle(c, now)) return 'idle';
  if (c.reconnectNotice !== UNSET && now - origin >= c.reconnectNotice) return 'reconnect_notice';
  if (shouldPing(c, now)) return 'ping';
  return null;
}

/**
 * The earliest time (epoch ms) at which `due` can answer something other than null. While a
 * ping is outstanding no other ping can be due, so its pong deadline stands in for the next
 * ping time: the pong that answers it moves the next check to the ping time
 * (`pongReceived` then changes this answer).
 */
export function nextCheckAt(c: ConnectionCore): number {
  let at = c.pingOutstanding === UNSET ? nextPing(c) : pongDeadline(c);
  if (c.lifetime > 0) at = Math.min(at, c.connected + c.lifetime);
  if (c.config.idleTimeoutMs > 0) at = Math.min(at, c.lastActivity + c.config.idleTimeoutMs);
  if (c.reconnectNotice !== UNSET) at = Math.min(at, c.reconnectNotice);
  return at + origin;
}

/**
 * When the next ping is due (epoch ms); -1 while one is outstanding. The manager has every other
 * deadline checked at its own time, and pings on whole ticks, where they go out together.
 */
export function nextPingAt(c: ConnectionCore): number {
  return c.pingOutstanding === UNSET ? nextPing(c) + origin : NONE;
}

/** Time left before each deadline, for dashboards. */
export function remaining(c: ConnectionCore, now: number): Remaining {
  const at = now - origin;
  const left = (deadline: number): number => Math.max(0, deadline - at);
  const { idleTimeoutMs } = c.config;
  return {
    idleMs: idleTimeoutMs > 0 ? left(c.lastActivity + idleTimeoutMs) : null,
    lifetimeMs: c.lifetime > 0 ? left(c.connected + c.lifetime) : null,
    pongMs: c.pingOutstanding !== UNSET ? left(pongDeadline(c)) : null,
    pingMs: c.pingOutstanding === UNSET ? left(nextPing(c)) : null,
  };
}

/** When the outstanding ping counts as unanswered, relative ms (only while one is outstanding). */
function pongDeadline(c: ConnectionCore): number {
  return c.pingOutstanding + c.config.pongTimeoutMs;
}

/** When a ping is due once none is outstanding, relative ms. */
function nextPing(c: ConnectionCore): number {
  return c.lastPing + c.config.pingIntervalMs;
}
