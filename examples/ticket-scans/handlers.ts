/**
 * The ticket-scan service's WebSocket route and broadcast, in a module that starts nothing on
 * import, so `spec/examples/ticket-scans.handlers.spec.ts` can run them with
 * `ws-timeouts/testing` (fake time, no port).
 */
import type { BroadcastResult, ConnectionRegistry, TimerHandle, WebSocketHandler } from '../../lib/index.js';

/** `/ws/scans`: scanners only listen; what they send is activity, read and dropped (no unread queue builds up). */
export const scanHandler: WebSocketHandler = async (manager) => {
  for await (const _message of manager);
};

/**
 * `POST /scans`: one `{"type":"scan","scan":{...},"timestamp":ms}` frame per scanner of
 * `registry`, each with its own send deadline; a dead scanner is closed and dropped.
 */
export function broadcastScan(registry: ConnectionRegistry, scan: object): Promise<BroadcastResult> {
  return registry.broadcast({ type: 'scan', scan, timestamp: registry.clock.now() });
}

/**
 * The cleanup statistics: every `intervalMs`, one `Cleaned up N inactive session(s)` line (also
 * for 0), N being the scanners expired for inactivity since the last line. The registry closes
 * each on time; this only reports, on the registry's clock and logger. Returns what stops it.
 */
export function startCleanupStatistics(registry: ConnectionRegistry, intervalMs: number): () => void {
  let reported = registry.timeoutsByReason.idle ?? 0;
  let timer: TimerHandle;
  const report = (): void => {
    const expired = registry.timeoutsByReason.idle ?? 0;
    registry.logger.info(`Cleaned up ${expired - reported} inactive session(s)`, { cleanupCount: expired - reported, activeSessions: registry.size, intervalMs });
    reported = expired;
    timer = registry.clock.setTimeout(report, intervalMs);
  };
  timer = registry.clock.setTimeout(report, intervalMs);
  return () => registry.clock.clearTimeout(timer);
}
