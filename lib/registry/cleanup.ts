/**
 * Session cleanup: closes the sessions with no application message for a given time, in
 * batches that yield to the event loop, one run at a time; optionally on a schedule (one timer
 * for the whole registry, each run timed from the end of the last). Keeps the run statistics
 * `getSessionMetrics()` reports.
 */
import * as connection from '../connection-core.js';
import type { Clock, TimerHandle } from '../clock.js';
import { CloseCode, CloseReason } from '../close-codes.js';
import { SessionCleanupError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { WebSocketTimeoutManager } from '../manager.js';
import type { TimeoutMetrics } from '../metrics.js';
import type { LiveSet } from './live-set.js';
import { connectionMeta } from './log-meta.js';
import { estimatedBytes, toMb } from './reporting.js';

export interface SessionCleanupOptions {
  live: LiveSet;
  clock: Clock;
  logger: Logger;
  metrics: TimeoutMetrics | undefined;
  /** Sessions handled before yielding to the event loop. */
  batchSize: number;
  /** Send the JSON idle notice before the close (the registry's `managerOptions.timeoutNotice`). */
  timeoutNotice: boolean;
}

const noop = (): void => undefined;

export class SessionCleanup {
  /** Runs completed. */
  runs = 0;
  /** Sessions closed by the runs. */
  cleaned = 0;
  /** Sessions the runs failed to close. */
  errors = 0;
  /** End of the last run, ms since the epoch; null before the first. */
  lastRunAt: number | null = null;

  /** The last run queued; a new run starts after it. */
  private chain: Promise<unknown> = Promise.resolve();
  private timer: TimerHandle | null = null;
  /** Bumped by each start and stop of the schedule, so a run of an older schedule arms no timer. */
  private generation = 0;
  /** The schedule's interval; 0 while not scheduled. */
  private intervalMs = 0;

  constructor(private readonly options: SessionCleanupOptions) {}

  /** The periodic cleanup is scheduled. */
  get scheduled(): boolean {
    return this.intervalMs > 0;
  }

  /** Settles once the run in progress and those queued behind it have finished. */
  idle(): Promise<unknown> {
    return this.chain;
  }

  /** Queues one run with `maxAgeMs` (0 closes nothing); resolves the number of sessions it closed. */
  run(maxAgeMs: number): Promise<number> {
    const run = this.chain.then(() => this.runNow(maxAgeMs));
    this.chain = run.catch(noop);
    return run;
  }

  /** Runs `run(maxAgeMs)` every `intervalMs`, timed from the end of the last run; restarts a running schedule. */
  schedule(intervalMs: number, maxAgeMs: number): void {
    this.cancelTimer();
    const generation = ++this.generation;
    this.intervalMs = intervalMs;
    const { clock } = this.options;
    const loop = (): void => {
      this.timer = null;
      // A run never rejects; the catch is there so that not even a throwing logger can stop the schedule.
      void this.run(maxAgeMs)
        .catch(noop)
        .finally(() => {
          if (this.generation === generation) this.timer = clock.setTimeout(loop, intervalMs);
        });
    };
    this.timer = clock.setTimeout(loop, intervalMs);
  }

  /** Stops the schedule (a run in progress finishes); false when it was not scheduled. */
  unschedule(): boolean {
    if (this.intervalMs === 0) return false;
    this.cancelTimer();
    this.generation++;
    this.intervalMs = 0;
    return true;
  }

  private cancelTimer(): void {
    if (this.timer !== null) {
      this.options.clock.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private async runNow(maxAgeMs: number): Promise<number> {
    const { live, clock, logger, metrics, batchSize } = this.options;
    const startedAt = clock.now();
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
      logger.error(error.message, { ...(manager ? connectionMeta(manager) : {}), error, errorCode: error.code, cause });
    };
    try {
      if (maxAgeMs > 0) {
        const sessions = Array.from(live.managers);
        const closes: Array<Promise<void>> = [];
        for (let start = 0; start < sessions.length; start += batchSize) {
          // Between batches, let I/O and other work run: a large registry never blocks the loop.
          if (start > 0) await new Promise<void>((resolve) => clock.afterIo(resolve));
          const now = clock.now();
          const end = Math.min(start + batchSize, sessions.length);
          for (let i = start; i < end; i++) {
            const manager = sessions[i]!;
            // Closed, closing or removed since the snapshot: someone else handles it.
            if (manager.state !== 'open' || !live.has(manager)) continue;
            checked++;
            if (!connection.isIdleFor(manager.core, now, maxAgeMs)) continue;
            const bytes = estimatedBytes(manager);
            closes.push(
              this.expire(manager, now, maxAgeMs).then(
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
    this.runs++;
    this.cleaned += cleaned;
    this.errors += errors;
    this.lastRunAt = clock.now();
    metrics?.checked(checked);
    metrics?.cleanupRun(errors);
    // The message existing alerts match on.
    logger.info('Session cleanup completed', {
      cleanupCount: cleaned,
      sessionsChecked: checked,
      errorsEncountered: errors,
      durationMs: Math.round((performance.now() - startedHr) * 1000) / 1000,
      memoryFreedMb: toMb(freedBytes),
      maxAgeMs,
      activeSessions: live.size,
      startedAt,
      ...(firstError ? { errorCode: firstError.code } : {}),
    });
    return cleaned;
  }

  /** The idle close: the notice (best effort, bounded by the send deadline), then 4001. */
  private async expire(manager: WebSocketTimeoutManager, now: number, maxAgeMs: number): Promise<void> {
    this.options.live.timedOut(manager, 'idle');
    this.options.logger.warn('WebSocket timeout', connectionMeta(manager, { reason: 'idle', source: 'cleanup', maxAgeMs, idleMs: connection.idleFor(manager.core, now) }));
    if (this.options.timeoutNotice) {
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
}
