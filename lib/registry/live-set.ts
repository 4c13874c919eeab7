/**
 * The registry's live set: the managers it tracks, why each one is ending, and the counts over
 * those that closed.
 *
 * It is also the registry's one `ConnectionObserver`: every manager the registry creates tells it
 * its timeouts, pongs and closes (before the user's own callbacks), so all of the registry's
 * bookkeeping happens here, and so do the `WebSocket connected` / `WebSocket closed` lines, with
 * `totalConnections` (the managers write none of their own: see `managerLogsConnections`).
 */
import * as connection from '../connection-core.js';
import type { Clock } from '../clock.js';
import type { TimeoutReason } from '../close-codes.js';
import type { ConnectionObserver } from '../connection-observer.js';
import type { Logger } from '../logger.js';
import type { WebSocketTimeoutManager } from '../manager.js';
import { NO_ROLE, type TimeoutMetrics } from '../metrics.js';
import type { DisconnectHooks, DisconnectInfo } from './disconnect-hooks.js';
import { connectionMeta } from './log-meta.js';

export interface LiveSetOptions {
  clock: Clock;
  logger: Logger;
  metrics: TimeoutMetrics | undefined;
  /** The connection label counted as the metrics' `role`. */
  roleLabel: string;
  /** Told of every tracked connection that closed (`onDisconnect`). */
  hooks: DisconnectHooks | undefined;
}

export class LiveSet implements ConnectionObserver {
  /** Tracked connections, open or closing, in the order they were added. */
  readonly managers = new Set<WebSocketTimeoutManager>();
  /** Connections ended by each timeout reason (the registry's own cleanup counts as `'idle'`). */
  readonly reasonCounts: Record<TimeoutReason, number> = { idle: 0, max_lifetime: 0, pong_timeout: 0, send_timeout: 0 };
  /** Tracked connections that have closed. */
  closedCount = 0;
  /** Sum of the lifetimes of those, ms. */
  closedDurationMs = 0;

  /** Why a tracked connection is ending, from its timeout until its close. */
  private readonly endingReasons = new Map<WebSocketTimeoutManager, TimeoutReason>();
  /** Pongs are frequent: only observed when there is somewhere to record them. */
  readonly pong: ConnectionObserver['pong'];

  constructor(private readonly options: LiveSetOptions) {
    const metrics = options.metrics;
    this.pong = metrics ? (_manager, rttMs) => metrics.roundTrip(rttMs) : undefined;
  }

  get size(): number {
    return this.managers.size;
  }

  has(manager: WebSocketTimeoutManager): boolean {
    return this.managers.has(manager);
  }

  /** Tracks `manager` until it closes. */
  track(manager: WebSocketTimeoutManager): void {
    this.managers.add(manager);
    this.options.metrics?.connectionOpened();
    this.options.logger.info('WebSocket connected', connectionMeta(manager, { totalConnections: this.managers.size }));
  }

  /** Stops tracking `manager` without counting a close; false if it was not tracked. */
  untrack(manager: WebSocketTimeoutManager): boolean {
    if (!this.managers.delete(manager)) return false;
    this.endingReasons.delete(manager);
    this.options.metrics?.activeConnections.dec();
    return true;
  }

  /** Counts the first timeout of a tracked connection (a later one while it closes is the same ending). */
  timedOut(manager: WebSocketTimeoutManager, reason: TimeoutReason): void {
    if (!this.managers.has(manager) || this.endingReasons.has(manager)) return;
    this.endingReasons.set(manager, reason);
    this.reasonCounts[reason]++;
    this.options.metrics?.timeout(reason, manager.labels?.[this.options.roleLabel] ?? NO_ROLE);
  }

  closed(manager: WebSocketTimeoutManager, code: number, reason: string): void {
    const timeoutReason = this.endingReasons.get(manager);
    this.endingReasons.delete(manager);
    if (!this.managers.delete(manager)) return;
    const { clock, logger, metrics, hooks } = this.options;
    const durationMs = connection.age(manager.core, clock.now());
    this.closedCount++;
    this.closedDurationMs += durationMs;
    metrics?.connectionClosed(durationMs, timeoutReason);
    logger.info('WebSocket closed', connectionMeta(manager, { code, reason, timeoutReason, durationMs, totalConnections: this.managers.size }));
    const info: DisconnectInfo = timeoutReason ? { code, reason, timeoutReason } : { code, reason };
    hooks?.run(manager, info);
  }
}
