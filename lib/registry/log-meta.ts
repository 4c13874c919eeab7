import type { WebSocketTimeoutManager } from '../manager.js';

/** What every registry log line says about a connection: its id, user id and labels. */
export function connectionMeta(manager: WebSocketTimeoutManager, extra?: Record<string, unknown>): Record<string, unknown> {
  return { connectionId: manager.id, userId: manager.userId, ...manager.labels, ...extra };
}
