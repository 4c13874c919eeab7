/**
 * The JSON route of the bad-input case, written the way the README's "Reliability" section
 * recommends for any route that speaks JSON:
 *
 * - a text message that is not JSON gets `{"type":"error","error":"invalid_json","message":…}`
 *   and the connection stays open (one bad message is the client's bug, not a reason to drop
 *   its session); the log line says how many bytes, never what they were;
 * - a binary message closes the connection with `1003 unsupported_data` (RFC 6455 §7.4.1: "a
 *   type of data it cannot accept").
 *
 * Invalid UTF-8 (`1007`) and frames over `maxPayload` (`1009`) never reach a handler: `ws`
 * closes those connections itself.
 */
import type { Logger } from '../../lib/logger.js';
import type { WebSocketHandler } from '../../lib/express/index.js';

export const UNSUPPORTED_DATA = 1003;

export function jsonRoute(logger: Logger, onValue: (value: unknown) => void = () => undefined): WebSocketHandler {
  return async (manager) => {
    for await (const message of manager) {
      if (typeof message !== 'string') {
        logger.warn('Binary message on a JSON route, closing', { connectionId: manager.id, userId: manager.userId, bytes: message.length });
        await manager.gracefulClose(UNSUPPORTED_DATA, 'unsupported_data: send JSON text frames');
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(message);
      } catch {
        logger.warn('Invalid JSON message', { connectionId: manager.id, userId: manager.userId, bytes: Buffer.byteLength(message) });
        await manager.sendJsonWithTimeout({ type: 'error', error: 'invalid_json', message: 'Message is not valid JSON; nothing was done' });
        continue;
      }
      onValue(value);
      await manager.sendJsonWithTimeout({ type: 'ack' });
    }
  };
}
