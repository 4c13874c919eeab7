/**
 * `ConnectionObserver`: what a manager tells the one object that keeps the books of many
 * connections (a `ConnectionRegistry`), so that object never wraps the user's callbacks.
 *
 * One observer serves every manager of a registry: it sits in the options object the managers
 * share, so it costs nothing per connection. The manager tells it about an event just before
 * the user's callback of the same event (`onTimeout`, `onPong`, `onClose`), which stay the
 * user's own.
 */
import type { TimeoutReason } from './close-codes.js';
import type { WebSocketTimeoutManager } from './manager.js';

/** @internal the registry's view of its managers; not part of the public API */
export interface ConnectionObserver {
  /** The manager is ending the connection for `reason`, before the close starts. */
  timedOut(manager: WebSocketTimeoutManager, reason: TimeoutReason): void;
  /** A ping was answered after `rttMs`. Leave it out when nothing is recorded: pongs are frequent. */
  pong?(manager: WebSocketTimeoutManager, rttMs: number): void;
  /** The socket has closed, whoever closed it. */
  closed(manager: WebSocketTimeoutManager, code: number, reason: string): void;
}

/**
 * Who writes a connection's `WebSocket connected` / `WebSocket closed` lines: a manager with an
 * observer writes none, the observer does (the registry's lines carry `totalConnections`);
 * a manager on its own writes them unless `logConnections` is false.
 */
export function managerLogsConnections(options: { readonly logConnections: boolean; readonly observer?: ConnectionObserver }): boolean {
  return options.logConnections && options.observer === undefined;
}
