/**
 * Close codes and reasons sent by ws-timeouts, one table for code, docs and tests.
 * Application codes live in 4000–4999 (RFC 6455 §7.4.2: private use).
 */
export const CloseCode = Object.freeze({
  /** A close the application asked for. */
  NormalClosure: 1000,
  /** The server is shutting down. */
  GoingAway: 1001,
  /** The peer sent a frame larger than `maxPayload` (sent by ws itself). */
  MessageTooBig: 1009,
  /** The server hit an unexpected error, e.g. a route's WebSocket handler threw. */
  InternalError: 1011,
  /** No application message for `idleTimeoutMs`. */
  IdleTimeout: 4001,
  /** The connection reached `connectionTimeoutMs`. */
  MaxLifetime: 4002,
  /** A send missed its deadline or the peer reads too slowly. */
  SendTimeout: 4003,
} as const);

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Why a connection ended, as logged, counted and reported to `onTimeout`. */
export type TimeoutReason = 'idle' | 'max_lifetime' | 'pong_timeout' | 'send_timeout';

export const CloseReason = Object.freeze({
  normal_closure: 'normal_closure',
  going_away: 'going_away',
  internal_error: 'internal_error',
  idle: 'idle_timeout',
  max_lifetime: 'max_lifetime',
  send_timeout: 'send_timeout',
} as const);

/** The close code each timeout closes with; `pong_timeout` gets no close frame (terminate). */
export const TIMEOUT_CLOSE_CODES: Readonly<Record<Exclude<TimeoutReason, 'pong_timeout'>, number>> =
  Object.freeze({
    idle: CloseCode.IdleTimeout,
    max_lifetime: CloseCode.MaxLifetime,
    send_timeout: CloseCode.SendTimeout,
  });

/** RFC 6455 allows 123 bytes of reason in a close frame (125 minus the 2-byte code). */
export const MAX_CLOSE_REASON_BYTES = 123;

/** Cuts `reason` to at most 123 UTF-8 bytes without splitting a character. */
export function truncateCloseReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = '';
  let bytes = 0;
  for (const char of reason) {
    const size = Buffer.byteLength(char);
    if (bytes + size > MAX_CLOSE_REASON_BYTES) break;
    out += char;
    bytes += size;
  }
  return out;
}

/** Codes an endpoint may send in a close frame (RFC 6455 §7.4; ws rejects the rest). */
export function isSendableCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999))
  );
}
