/**
 * The session service's WebSocket route and its session store, in a module that starts nothing
 * on import, so `spec/examples/session-cleanup.handlers.spec.ts` can run them with
 * `ws-timeouts/testing` (fake time, no port).
 */
import { randomUUID } from 'node:crypto';
import type { WebSocketHandler, WebSocketTimeoutManager } from '../../lib/index.js';

// ------------------------------------------------------------------ the session store (stands in for Redis)

interface Session {
  createdAt: number;
  data: Record<string, unknown>;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  get size(): number {
    return this.sessions.size;
  }

  has(id: string): boolean {
    return this.sessions.has(id);
  }

  create(): string {
    const id = randomUUID();
    this.sessions.set(id, { createdAt: Date.now(), data: {} });
    return id;
  }

  /** Asynchronous, as a real store is; a rejection here is what the registry logs as a SessionStoreError. */
  async delete(id: string): Promise<void> {
    this.sessions.delete(id);
  }
}

// ------------------------------------------------------------------ one session per connection

export interface SessionRoute {
  /** `/ws/session`: creates the connection's session, sends `{"type":"session","sessionId":…}`, acks every message. */
  handler: WebSocketHandler;
  /** The registry's `onDisconnect`: the stored session goes once its connection has closed, however it closed. */
  onDisconnect: (manager: WebSocketTimeoutManager) => Promise<void>;
}

/** The `/ws/session` route and the hook that deletes each connection's session from `store`. */
export function sessionRoute(store: SessionStore): SessionRoute {
  const sessionOf = new WeakMap<object, string>();
  return {
    handler: async (manager) => {
      const sessionId = store.create();
      sessionOf.set(manager, sessionId);
      void manager.sendJsonWithTimeout({ type: 'session', sessionId });
      for await (const _message of manager) void manager.sendJsonWithTimeout({ type: 'ack' });
    },
    onDisconnect: async (manager) => {
      const id = sessionOf.get(manager);
      if (id !== undefined) await store.delete(id);
    },
  };
}
