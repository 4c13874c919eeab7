/**
 * The WebSocket route handlers of the example server (`examples/server.ts`), in a module that
 * starts nothing on import, so `spec/examples/server.handlers.spec.ts` can run them with
 * `ws-timeouts/testing` (fake time, no port).
 */
import type { WebSocketHandler, WebSocketTimeoutManager } from '../lib/index.js';

/** `/ws/echo`: every text message is sent back unchanged. */
export const echoHandler: WebSocketHandler = async (manager) => {
  for await (const message of manager) {
    if (typeof message !== 'string') continue; // text only; binary frames still count as activity
    if (!(await manager.sendTextWithTimeout(message))) break; // deadline missed: the manager closes with 4003
  }
};

/** The open `/ws/scans` sockets: a posted scan goes to these, not to echo clients. */
export type Scanners = Set<WebSocketTimeoutManager>;

/** `/ws/scans`: a scanner dashboard joins `scanners` while open and only listens; what it sends is read and dropped. */
export function scansHandler(scanners: Scanners): WebSocketHandler {
  return async (manager) => {
    scanners.add(manager);
    void manager.whenClosed().then(() => scanners.delete(manager));
    for await (const _message of manager); // keeps the receive queue empty
  };
}

/**
 * Sends `scan` to every open scanner. Each send has its own deadline (messageTimeoutMs): one slow
 * scanner never holds up the others. Resolves how many scanners there were and how many got it.
 */
export async function sendToScanners(scanners: Scanners, scan: object): Promise<{ scanners: number; delivered: number }> {
  const results = await Promise.all([...scanners].map((scanner) => scanner.sendJsonWithTimeout(scan)));
  return { scanners: results.length, delivered: results.filter(Boolean).length };
}
