/**
 * The live-translation service's WebSocket routes, one per role, in a module that starts nothing
 * on import, so `spec/examples/idle-handler.handlers.spec.ts` can run them with
 * `ws-timeouts/testing` (fake time, no port).
 */
import type { ConnectionRegistry, ManagerOptions, WebSocketHandler, WebSocketTimeoutManager } from '../../lib/index.js';

/** The route options of each role (`websocket(handler, options)`): the `role` label is what metrics count timeouts by. */
export const speakerRoute = { labels: { role: 'speaker' } } as const satisfies ManagerOptions;
export const listenerRoute = { labels: { role: 'listener' } } as const satisfies ManagerOptions;

export const isListener = (manager: WebSocketTimeoutManager): boolean => manager.labels?.role === listenerRoute.labels.role;

/** A speaker: each text message is relayed to every listener of `registry` (activity for both). */
export function speakerHandler(registry: ConnectionRegistry): WebSocketHandler {
  return async (manager) => {
    for await (const message of manager) if (typeof message === 'string') void registry.broadcast(message, { filter: isListener });
  };
}

/** A listener only hears: what it sends is activity, read and dropped. */
export const listenerHandler: WebSocketHandler = async (manager) => {
  for await (const _message of manager);
};
