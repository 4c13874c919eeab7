/**
 * The ticket-scan service's WebSocket route and broadcast, in a module that starts nothing on
 * import, so `spec/examples/ticket-scans.handlers.spec.ts` can run them with
 * `ws-timeouts/testing` (fake time, no port).
 */
import type { BroadcastResult, ConnectionRegistry, WebSocketHandler } from '../../lib/index.js';

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
