/**
 * The registry's `onDisconnect` hook: run after each tracked connection closed, asynchronously,
 * never blocking the close or a cleanup run; its failures are counted and logged, never thrown.
 */
import type { TimeoutReason } from '../close-codes.js';
import { SessionStoreError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { WebSocketTimeoutManager } from '../manager.js';
import { connectionMeta } from './log-meta.js';

/** What `onDisconnect` is told about a closed connection. */
export interface DisconnectInfo {
  /** The close code (1006 for a socket that was terminated or dropped). */
  code: number;
  reason: string;
  /** Set when the connection was ended by a timeout (the registry's own cleanup counts as `'idle'`). */
  timeoutReason?: TimeoutReason;
}

export type DisconnectHook = (manager: WebSocketTimeoutManager, info: DisconnectInfo) => void | Promise<void>;

const noop = (): void => undefined;

export class DisconnectHooks {
  /** Hook calls that threw or rejected. */
  errors = 0;
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly hook: DisconnectHook,
    private readonly logger: Logger,
  ) {}

  run(manager: WebSocketTimeoutManager, info: DisconnectInfo): void {
    // Always asynchronous, so the hook runs after the close has been fully handled.
    const call: Promise<void> = Promise.resolve()
      .then(() => this.hook(manager, info))
      .then(noop, (cause: unknown) => {
        this.errors++;
        const error = new SessionStoreError(`onDisconnect hook failed for connection ${manager.id}`, { cause });
        this.logger.error('onDisconnect hook failed', connectionMeta(manager, { error, errorCode: error.code, cause }));
      })
      .finally(() => this.running.delete(call));
    this.running.add(call);
  }

  /** The hook calls still running. */
  pending(): Array<Promise<void>> {
    return [...this.running];
  }
}
