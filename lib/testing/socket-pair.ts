/**
 * An in-memory connected pair: a server-side socket that behaves like a `ws` 8 server socket
 * (the manager cannot tell them apart) and a client handle the test drives. No port, no
 * network, no real time: everything is delivered on microtasks, so it runs under fake timers
 * whose `toFake` list leaves `queueMicrotask`/`nextTick` alone.
 */
import { EventEmitter } from 'node:events';
import { ReadyState, type ManagedSocket, type Message } from '../socket.js';

export interface CloseFrame {
  code: number;
  reason: string;
}

export interface SocketPairOptions {
  /** The client answers ping frames by itself, as browsers and ws do. @default true */
  autoPong?: boolean;
  /** The client answers a close frame with its own. @default true */
  answerClose?: boolean;
}

const EMPTY = Buffer.alloc(0);

function toPayload(data: Message): { data: Buffer; isBinary: boolean } {
  return typeof data === 'string' ? { data: Buffer.from(data), isBinary: false } : { data, isBinary: true };
}

/** The server side: what a route handler or `WebSocketTimeoutManager` is given. */
export class InMemoryServerSocket extends EventEmitter implements ManagedSocket {
  readyState: number = ReadyState.OPEN;
  bufferedAmount = 0;
  isPaused = false;
  /** @internal */ peer!: TestClient;
  private inbound: Array<{ data: Buffer; isBinary: boolean }> = [];

  send(data: string | Buffer, cb?: (err?: Error) => void): void {
    if (this.readyState === ReadyState.CONNECTING) throw new Error('WebSocket is not open: readyState 0 (CONNECTING)');
    if (this.readyState !== ReadyState.OPEN) {
      const err = new Error(`WebSocket is not open: readyState ${this.readyState}`);
      if (cb) queueMicrotask(() => cb(err));
      return;
    }
    this.peer.deliver(data, cb);
  }

  ping(_data?: unknown, _mask?: boolean, cb?: (err: Error) => void): void {
    if (this.readyState !== ReadyState.OPEN) {
      if (this.readyState === ReadyState.CONNECTING) throw new Error('WebSocket is not open: readyState 0 (CONNECTING)');
      if (cb) queueMicrotask(() => cb(new Error(`WebSocket is not open: readyState ${this.readyState}`)));
      return;
    }
    this.peer.receivePing();
  }

  close(code = 1005, reason: string | Buffer = ''): void {
    if (this.readyState === ReadyState.CLOSED) return;
    if (this.readyState === ReadyState.CONNECTING) throw new Error('WebSocket was closed before the connection was established');
    if (this.readyState === ReadyState.CLOSING) return;
    this.readyState = ReadyState.CLOSING;
    this.peer.receiveClose({ code, reason: reason.toString() });
  }

  terminate(): void {
    if (this.readyState === ReadyState.CLOSED) return;
    this.readyState = ReadyState.CLOSING;
    this.peer.gone = true;
    queueMicrotask(() => this.finish(1006, EMPTY));
  }

  pause(): void {
    this.isPaused = true;
  }

  resume(): void {
    this.isPaused = false;
    while (!this.isPaused && this.inbound.length > 0) {
      const { data, isBinary } = this.inbound.shift()!;
      this.emit('message', data, isBinary);
    }
  }

  /** @internal a frame from the client */
  receive(message: Message): void {
    if (this.readyState !== ReadyState.OPEN) return; // ws drops data frames after a close frame
    const frame = toPayload(message);
    if (this.isPaused) this.inbound.push(frame);
    else this.emit('message', frame.data, frame.isBinary);
  }

  /** @internal */
  finish(code: number, reason: Buffer): void {
    if (this.readyState === ReadyState.CLOSED) return;
    this.readyState = ReadyState.CLOSED;
    this.bufferedAmount = 0;
    this.peer.failPending();
    this.emit('close', code, reason);
  }
}

/** The client side, driven by the test. Records everything the server sent. */
export class TestClient {
  /** Every data frame the server sent, in order (strings for text, Buffers for binary). */
  readonly received: Message[] = [];
  /** The close frame the server sent, if any. */
  closeFrame: CloseFrame | null = null;
  /** Ping frames (or `"ping"` text is in `received`) the server sent. */
  pings = 0;
  /** The peer vanished (or was terminated): it answers nothing any more. */
  gone = false;
  autoPong: boolean;
  answerClose: boolean;
  private reading = true;
  private pendingClose: CloseFrame | null = null;
  private unread: Array<{ data: string | Buffer; cb?: (err?: Error) => void }> = [];
  private waiting: Array<() => void> = [];

  constructor(
    readonly server: InMemoryServerSocket,
    options: SocketPairOptions,
  ) {
    this.autoPong = options.autoPong ?? true;
    this.answerClose = options.answerClose ?? true;
  }

  /** Sends a text (string) or binary (Buffer) frame to the server. */
  send(message: Message): void {
    if (this.gone) throw new Error('TestClient: the client has vanished or was terminated');
    queueMicrotask(() => this.server.receive(message));
  }

  /** Sends a pong frame (unsolicited, or to answer a ping when `autoPong` is off). */
  pong(): void {
    if (!this.gone) queueMicrotask(() => this.server.readyState === ReadyState.OPEN && this.server.emit('pong', EMPTY));
  }

  /** Client-initiated close: the server answers and both sides end with `code`. */
  close(code = 1000, reason = ''): void {
    if (this.gone) return;
    queueMicrotask(() => {
      if (this.server.readyState === ReadyState.OPEN) this.server.readyState = ReadyState.CLOSING;
      this.closeFrame ??= { code, reason };
      this.server.finish(code, Buffer.from(reason));
    });
  }

  /** Stops reading, as a slow consumer does: server sends stay in `bufferedAmount`. */
  stopReading(): void {
    this.reading = false;
  }

  /** Reads again: everything buffered is delivered and its send callbacks run. */
  startReading(): void {
    this.reading = true;
    const unread = this.unread;
    this.unread = [];
    for (const { data, cb } of unread) this.deliver(data, cb, true);
    const frame = this.pendingClose;
    this.pendingClose = null;
    if (frame) this.receiveClose(frame);
  }

  /** The peer disappears without a close (a half-open TCP connection): nothing is answered. */
  vanish(): void {
    this.gone = true;
    this.reading = false;
  }

  /** Parsed JSON of every text frame received. */
  receivedJson(): unknown[] {
    return this.received.filter((m): m is string => typeof m === 'string').map((m) => JSON.parse(m));
  }

  /** Resolves with the next frame the server sends (or one already received after `afterIndex`). */
  nextMessage(afterIndex = this.received.length): Promise<Message> {
    if (this.received.length > afterIndex) return Promise.resolve(this.received[afterIndex]!);
    return new Promise((resolve) => this.waiting.push(() => resolve(this.received[afterIndex]!)));
  }

  /** @internal */
  deliver(data: string | Buffer, cb: ((err?: Error) => void) | undefined, draining = false): void {
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    if (!this.reading) {
      this.server.bufferedAmount += size;
      this.unread.push({ data, cb });
      return;
    }
    if (draining) this.server.bufferedAmount -= size;
    this.received.push(data);
    const waiting = this.waiting;
    this.waiting = [];
    for (const wake of waiting) wake();
    if (cb) queueMicrotask(() => cb());
  }

  /** @internal */
  receivePing(): void {
    this.pings++;
    if (this.autoPong && !this.gone) this.pong();
  }

  /** @internal */
  receiveClose(frame: CloseFrame): void {
    if (this.gone) return; // never seen: the peer is gone
    if (!this.reading) {
      this.pendingClose = frame; // queued behind the unread data, as on a real socket
      return;
    }
    this.closeFrame = frame;
    if (this.answerClose) queueMicrotask(() => this.server.finish(frame.code, Buffer.from(frame.reason)));
  }

  /** @internal the connection ended: pending send callbacks fail, as they do in ws */
  failPending(): void {
    const unread = this.unread;
    this.unread = [];
    for (const { cb } of unread) if (cb) queueMicrotask(() => cb(new Error('The socket was closed')));
  }
}

/** A connected in-memory pair. */
export function createSocketPair(options: SocketPairOptions = {}): { server: InMemoryServerSocket; client: TestClient } {
  const server = new InMemoryServerSocket();
  const client = new TestClient(server, options);
  server.peer = client;
  return { server, client };
}
