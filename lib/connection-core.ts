/**
 * `ConnectionCore`: the rules of one connection, with no I/O.
 *
 * It holds a connection's timestamps, its state and its ping phase, and answers every timeout
 * question — what is due now, when to look again, how long is left — from a `now` it is given.
 * It owns no socket, timer, logger or clock: `WebSocketTimeoutManager` binds it to a `ws`
 * socket and does the sending, closing and logging; the registry's snapshot and cleanup ask it.
 * Because of that, every rule is testable as a table of (state, event, time) → verdict.
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

export class ConnectionCore {
  readonly limits: CoreLimits;
  /** This connection's lifetime (the configured one minus its jitter), ms; 0 is unlimited. */
  readonly lifetimeMs: number;
  private readonly connected: number;
  private lastActivity: number;
  /** When the last ping went out; before the first, `connected` minus the ping phase. */
  private lastPing: number;
  private pingOutstanding = UNSET;
  private lastPong = UNSET;
  private reconnectNotice = UNSET;
  private rttMs = NONE;
  /** Smoothed RTT in µs, rounded: an integer, so it stays unboxed (see `origin`). */
  private smoothedRttUs = NONE;
  private current: CoreStateValue = CoreState.Open;

  /**
   * @param now when the connection was accepted (ms since the epoch)
   * @param lifetimeMs the lifetime after jitter; 0 is unlimited
   * @param pingOffsetMs how far into the ping interval this connection's pings fall: the first
   *   ping is due `pingIntervalMs - pingOffsetMs` after `now`
   * @param reconnectNoticeMs advise a reconnect this long before the lifetime ends; 0 never
   */
  constructor(limits: CoreLimits, now: number, lifetimeMs: number, pingOffsetMs = 0, reconnectNoticeMs = 0) {
    if (origin !== origin) origin = now;
    const at = sinceOrigin(now);
    this.limits = limits;
    this.lifetimeMs = lifetimeMs;
    this.connected = at;
    this.lastActivity = at;
    this.lastPing = at - pingOffsetMs;
    if (reconnectNoticeMs > 0 && lifetimeMs > reconnectNoticeMs) this.reconnectNotice = at + lifetimeMs - reconnectNoticeMs;
  }

  // ---------------------------------------------------------------- what it holds (epoch ms, -1 for none)

  get state(): CoreStateValue {
    return this.current;
  }
  get connectedAt(): number {
    return this.connected + origin;
  }
  /** Last inbound or outbound application message. Ping/pong never move it. */
  get lastActivityAt(): number {
    return this.lastActivity + origin;
  }
  get lastPingAt(): number {
    return this.lastPing + origin;
  }
  /** When the ping awaiting its pong went out; -1 when none is outstanding. */
  get pingOutstandingSince(): number {
    return this.pingOutstanding === UNSET ? NONE : this.pingOutstanding + origin;
  }
  get lastPongAt(): number {
    return this.lastPong === UNSET ? NONE : this.lastPong + origin;
  }
  /** When to advise a reconnect; -1 when not configured or already sent. */
  get reconnectNoticeAt(): number {
    return this.reconnectNotice === UNSET ? NONE : this.reconnectNotice + origin;
  }
  /** Round-trip time of the last answered ping, ms; -1 before the first. */
  get lastRttMs(): number {
    return this.rttMs;
  }
  /** Exponentially smoothed round-trip time, ms (to the µs); -1 before the first. */
  get smoothedRttMs(): number {
    return this.smoothedRttUs === NONE ? NONE : this.smoothedRttUs / 1000;
  }

  // ---------------------------------------------------------------- events

  /** An application message went in or out. */
  activity(now: number): void {
    this.lastActivity = sinceOrigin(now);
  }

  /**
   * A ping went out. With `keepPhase` (a ping the scheduler found due), the next one stays on
   * this connection's phase even when this one was late: after a stall every overdue socket
   * pings in the same tick, but their next pings spread out again.
   */
  pingSent(now: number, keepPhase = false): void {
    const at = sinceOrigin(now);
    const late = at - this.lastPing - this.limits.pingIntervalMs;
    this.pingOutstanding = at;
    this.lastPing = keepPhase && late > 0 ? at - (late % this.limits.pingIntervalMs) : at;
  }

  /** A pong arrived. Returns the round-trip time of the ping it answers, or -1 when none was outstanding. */
  pongReceived(now: number): number {
    const at = sinceOrigin(now);
    this.lastPong = at;
    if (this.pingOutstanding === UNSET) return NONE;
    const rtt = at - this.pingOutstanding;
    this.pingOutstanding = UNSET;
    this.rttMs = rtt;
    const us = small(Math.round(rtt * 1000));
    this.smoothedRttUs = small(this.smoothedRttUs === NONE ? us : Math.round(this.smoothedRttUs + RTT_SMOOTHING * (us - this.smoothedRttUs)));
    return rtt;
  }

  /** The reconnect notice went out (it is sent once). */
  reconnectNoticeSent(): void {
    this.reconnectNotice = UNSET;
  }

  /** A closing handshake started. Returns false when one had already started, or the connection closed. */
  closing(): boolean {
    if (this.current !== CoreState.Open) return false;
    this.current = CoreState.Closing;
    return true;
  }

  /** The connection closed. Returns false when it already had. */
  closed(): boolean {
    if (this.current === CoreState.Closed) return false;
    this.current = CoreState.Closed;
    return true;
  }

  // ---------------------------------------------------------------- verdicts

  /** No application message for `idleTimeoutMs` (never when idle is disabled). */
  isIdle(now: number): boolean {
    return this.isIdleFor(now, this.limits.idleTimeoutMs);
  }

  /** No application message for `maxAgeMs`; never when `maxAgeMs` is 0. */
  isIdleFor(now: number, maxAgeMs: number): boolean {
    return maxAgeMs > 0 && this.idleFor(now) >= maxAgeMs;
  }

  /** Milliseconds since the last application message. */
  idleFor(now: number): number {
    return now - origin - this.lastActivity;
  }

  /** Milliseconds since the connection was accepted. */
  age(now: number): number {
    return now - origin - this.connected;
  }

  isLifetimeOver(now: number): boolean {
    return this.lifetimeMs > 0 && this.age(now) >= this.lifetimeMs;
  }

  /** A ping is due: none is outstanding and the interval has passed since the last one. */
  shouldPing(now: number): boolean {
    return this.pingOutstanding === UNSET && now - origin - this.lastPing >= this.limits.pingIntervalMs;
  }

  /** The outstanding ping has gone unanswered for `pongTimeoutMs`. */
  isPongOverdue(now: number): boolean {
    return this.pingOutstanding !== UNSET && now - origin - this.pingOutstanding >= this.limits.pongTimeoutMs;
  }

  /**
   * What is due now, or null; only an open connection gets verdicts. After an event-loop stall
   * (`stalled`) an overdue pong is not judged yet: a pong that arrived during the stall may be
   * waiting to be read, so pending input gets one more turn (`nextCheckAt()` is then already past).
   */
  due(now: number, stalled = false): Verdict | null {
    if (this.current !== CoreState.Open) return null;
    if (this.isPongOverdue(now)) return stalled ? null : 'pong_timeout';
    if (this.isLifetimeOver(now)) return 'max_lifetime';
    if (this.isIdle(now)) return 'idle';
    if (this.reconnectNotice !== UNSET && now - origin >= this.reconnectNotice) return 'reconnect_notice';
    if (this.shouldPing(now)) return 'ping';
    return null;
  }

  /** The earliest time (epoch ms) at which `due` can answer something other than null. */
  nextCheckAt(): number {
    // The next ping time is included even while a pong is outstanding: the pong usually arrives
    // long before then, and an early check costs less than a reschedule on every pong.
    let at = this.lastPing + this.limits.pingIntervalMs;
    const pong = this.pongDeadline();
    if (pong < at) at = pong;
    if (this.lifetimeMs > 0) at = Math.min(at, this.connected + this.lifetimeMs);
    if (this.limits.idleTimeoutMs > 0) at = Math.min(at, this.lastActivity + this.limits.idleTimeoutMs);
    if (this.reconnectNotice !== UNSET) at = Math.min(at, this.reconnectNotice);
    return at + origin;
  }

  /**
   * When the outstanding ping counts as unanswered (epoch ms); -1 when none is outstanding.
   * The manager has this deadline checked exactly rather than on the next whole tick.
   */
  get pongDeadlineAt(): number {
    return this.pingOutstanding === UNSET ? NONE : this.pongDeadline() + origin;
  }

  /** Time left before each deadline, for dashboards. */
  remaining(now: number): Remaining {
    const at = now - origin;
    const left = (deadline: number): number => Math.max(0, deadline - at);
    const { idleTimeoutMs, pingIntervalMs } = this.limits;
    return {
      idleMs: idleTimeoutMs > 0 ? left(this.lastActivity + idleTimeoutMs) : null,
      lifetimeMs: this.lifetimeMs > 0 ? left(this.connected + this.lifetimeMs) : null,
      pongMs: this.pingOutstanding !== UNSET ? left(this.pongDeadline()) : null,
      pingMs: this.pingOutstanding === UNSET ? left(this.lastPing + pingIntervalMs) : null,
    };
  }

  /** Relative ms; Infinity when no ping is outstanding. */
  private pongDeadline(): number {
    return this.pingOutstanding === UNSET ? Infinity : this.pingOutstanding + this.limits.pongTimeoutMs;
  }
}
