/**
 * The part of a `ws` WebSocket the manager uses. A `ws` 8 server socket satisfies it, and so
 * does the in-memory double of `ws-timeouts/testing`.
 */
export const ReadyState = Object.freeze({ CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const);

export interface ManagedSocket {
  readonly readyState: number;
  /** Bytes queued by `send()` and not yet handed to the OS. */
  readonly bufferedAmount: number;
  send(data: string | Buffer, cb?: (err?: Error) => void): void;
  ping(data?: unknown, mask?: boolean, cb?: (err: Error) => void): void;
  close(code?: number, reason?: string | Buffer): void;
  terminate(): void;
  /** Stops reading from the peer (ws ≥ 8.11); used for receive-queue backpressure. */
  pause?(): void;
  resume?(): void;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

/** Inbound message: a string for text frames, a Buffer for binary ones. */
export type Message = string | Buffer;
