/**
 * An in-memory connected pair: a server-side socket that behaves like a `ws` 8 server socket
 * (the manager cannot tell them apart) and a client handle the test drives. No port, no
 * network, no real time: frames travel on microtasks, so the pair runs under fake timers whose
 * `toFake` list leaves `queueMicrotask` alone (`SAFE_TO_FAKE`; ./fake-timers-safety.ts refuses others).
 *
 * Each direction is an ordered queue of frames (data, ping, pong, close), as on a TCP
 * connection: a side that stops reading sees nothing more — not even pings or the close frame —
 * until it reads again. `spec/testing/socket-conformance.spec.ts` runs the same behaviour table
 * against this pair and against real `ws` sockets, so the two cannot drift apart.
 *
 * Known, deliberate differences from a real socket:
 * - `bufferedAmount` counts payload bytes; `ws` also counts the 2–10 byte frame headers.
 * - A client that calls `stopReading()` has full TCP buffers at once: every later send stays in
 *   `bufferedAmount` (a real peer first absorbs a few MB in kernel buffers).
 * - `pause()` takes effect at once; `ws` still emits the rest of a chunk it already read, so a
 *   real receive queue can overshoot `maxQueuedMessages` by one read's worth of messages.
 * - Messages are never fragmented and never compressed; there is no `'error'` event.
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { ReadyState, type ManagedSocket, type Message } from '../socket.js';
import { refuseUnsafeFakeTimers } from './fake-timers-safety.js';

/** The code and reason of a close frame, or of a connection's end (`1006` when no close frame came). */
export interface CloseFrame {
  code: number;
  reason: string;
}

export interface SocketPairOptions {
  /** The client answers ping frames by itself, as browsers and `ws` do. @default true */
  autoPong?: boolean;
  /** The client answers a close frame with its own. @default true */
  answerClose?: boolean;
  /**
   * How long the server socket waits for the client's close frame after sending its own before
   * it destroys the connection (`ws`'s own `closeTimeout`). The manager's `closeTimeoutMs` is
   * normally shorter and terminates first.
   * @default 30_000 // 30 seconds, as in ws
   */
  closeTimeoutMs?: number;
  /**
   * Runs the pair's only timer (the close timeout above). Pass the test clock you give the
   * manager, or leave the default, which reads the global timers at call time.
   * @default systemClock
   */
  clock?: Clock | { readonly clock: Clock };
}

/** Options of {@link TestClient.send}, as in `ws`. */
export interface ClientSendOptions {
  /** Send as a binary frame. @default true for Buffers and typed arrays, false for strings */
  binary?: boolean;
}

/** What {@link TestClient.vanish} takes. */
export interface VanishOptions {
  /**
   * Bytes the vanished peer's TCP buffers still accept (each send succeeds) before sends start
   * piling up in `bufferedAmount`, as on a half-open connection the kernel has not noticed yet.
   * @default 1_048_576 // 1 MiB
   */
  bufferBytes?: number;
}

/** ws calls it with `null` once the frame is written, or with the error. */
type SendCallback = (err?: Error) => void;
type Data = string | Buffer | ArrayBuffer | ArrayBufferView | number;

interface DataFrame {
  kind: 'data';
  data: Buffer;
  isBinary: boolean;
  /** Counted in the server's `bufferedAmount` (not yet taken by the peer's TCP stack). */
  counted: boolean;
  cb: ((err: Error) => void) | undefined;
}
interface ControlFrame {
  kind: 'ping' | 'pong';
  data: Buffer;
}
interface CloseControlFrame {
  kind: 'close';
  /** 1005 for a close frame without a code. */
  code: number;
  reason: Buffer;
}
type Frame = DataFrame | ControlFrame | CloseControlFrame;

const EMPTY = Buffer.alloc(0);
const STATE_NAMES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'] as const;
/** @default ws's `CLOSE_TIMEOUT` */
const WS_CLOSE_TIMEOUT_MS = 30_000;
const DEFAULT_VANISHED_BUFFER_BYTES = 1_048_576;

function toBuffer(data: Data): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (typeof data === 'number') return Buffer.from(String(data));
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

function byteLength(data: Data | undefined): number {
  if (data === undefined) return 0;
  return typeof data === 'string' ? Buffer.byteLength(data) : toBuffer(data).length;
}

/** ws's `isValidStatusCode`: the codes that may be sent in a close frame. */
function isValidStatusCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** Validates `close(code, reason)` exactly as `ws` does, and returns the frame's code and reason. */
function closePayload(code: unknown, reason: unknown): { code: number; reason: Buffer } {
  if (code === undefined) return { code: 1005, reason: EMPTY };
  if (typeof code !== 'number' || !isValidStatusCode(code)) throw new TypeError('First argument must be a valid error code number');
  if (reason === undefined || (reason as { length?: number }).length === 0) return { code, reason: EMPTY };
  if (typeof reason !== 'string' && !(reason instanceof Uint8Array)) throw new TypeError('Second argument must be a string or a Uint8Array');
  const bytes = toBuffer(reason);
  if (bytes.length > 123) throw new RangeError('The message must not be greater than 123 bytes');
  return { code, reason: bytes };
}

function notOpenError(state: number): Error {
  return new Error(`WebSocket is not open: readyState ${state} (${STATE_NAMES[state]})`);
}

function connectionError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

function later(cb: ((err: Error) => void) | undefined, err: Error | null): void {
  // ws passes null, not undefined, on success.
  if (cb) queueMicrotask(() => cb(err as Error));
}

function resolveClock(clock: SocketPairOptions['clock']): Clock {
  if (clock === undefined) return systemClock;
  return 'clock' in clock ? clock.clock : clock;
}

/**
 * The server side: what a route handler or `WebSocketTimeoutManager` is given. It follows the
 * `ws` 8 `WebSocket` API a server socket uses: `readyState`, `bufferedAmount`, `isPaused`,
 * `send(data, [options], [cb])`, `ping`, `pong`, `close`, `terminate`, `pause`, `resume`, and
 * the `'message'` (`data: Buffer, isBinary`), `'ping'`, `'pong'` and `'close'` (`code, reason: Buffer`) events.
 */
export class InMemoryServerSocket extends EventEmitter implements ManagedSocket {
  static readonly CONNECTING = ReadyState.CONNECTING;
  static readonly OPEN = ReadyState.OPEN;
  static readonly CLOSING = ReadyState.CLOSING;
  static readonly CLOSED = ReadyState.CLOSED;
  readonly CONNECTING = ReadyState.CONNECTING;
  readonly OPEN = ReadyState.OPEN;
  readonly CLOSING = ReadyState.CLOSING;
  readonly CLOSED = ReadyState.CLOSED;
  /** The negotiated subprotocol: none. */
  readonly protocol = '';
  /** The negotiated extensions: none (no permessage-deflate). */
  readonly extensions = '';
  binaryType: 'nodebuffer' | 'arraybuffer' | 'fragments' = 'nodebuffer';

  /** @internal the other end */
  peer!: TestClient;
  /** @internal */ closeFrameSent = false;
  /** @internal */ closeFrameReceived = false;

  private state: number = ReadyState.OPEN;
  private buffered = 0;
  private paused = false;
  private readonly inbound: Frame[] = [];
  private pumpQueued = false;
  private closeCode = 1006;
  private closeMessage: Buffer = EMPTY;
  private closeTimer: TimerHandle = undefined;
  private readonly clock: Clock;
  private readonly closeTimeoutMs: number;

  constructor(options: SocketPairOptions = {}) {
    super();
    this.clock = resolveClock(options.clock);
    this.closeTimeoutMs = options.closeTimeoutMs ?? WS_CLOSE_TIMEOUT_MS;
  }

  /** `0` CONNECTING, `1` OPEN, `2` CLOSING, `3` CLOSED, as in `ws`. */
  get readyState(): number {
    return this.state;
  }

  /** Forces a state without any event or frame, for testing code that only reads `readyState`. */
  set readyState(state: number) {
    this.state = state;
  }

  /**
   * Payload bytes sent but not yet taken by the client (it stopped reading, or vanished and its
   * buffers are full). Like `ws`, it also grows with data passed to `send()` after the close.
   */
  get bufferedAmount(): number {
    return this.buffered;
  }

  /** `pause()` was called and `resume()` not yet. */
  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Sends a data frame: text for strings, binary for Buffers and typed arrays. `cb(null)` once
   * the client took it; on a socket that is not open, `cb` gets
   * `WebSocket is not open: readyState 2 (CLOSING)` and nothing throws. At run time it also
   * takes `ws`'s `send(data, { binary }, cb)` form, for handlers written against `ws` itself.
   */
  send(data: Data, cb?: SendCallback): void {
    let options: { binary?: boolean } | undefined;
    if (cb !== undefined && typeof cb !== 'function') {
      options = cb as { binary?: boolean };
      cb = arguments[2] as SendCallback | undefined;
    }
    if (this.state === ReadyState.CONNECTING) throw new Error('WebSocket is not open: readyState 0 (CONNECTING)');
    if (this.state !== ReadyState.OPEN) return this.sendAfterClose(data, cb);
    const isBinary = options?.binary ?? (typeof data !== 'string' && typeof data !== 'number');
    this.peer.accept({ kind: 'data', data: toBuffer(data), isBinary, counted: false, cb });
  }

  /** Sends a ping frame; the client answers it with a pong carrying the same data unless it ignores pings. */
  ping(data?: unknown, mask?: unknown, cb?: (err: Error) => void): void {
    this.control('ping', data, mask, cb);
  }

  /** Sends an unsolicited pong frame. */
  pong(data?: unknown, mask?: unknown, cb?: (err: Error) => void): void {
    this.control('pong', data, mask, cb);
  }

  /**
   * Starts the closing handshake: `readyState` is CLOSING at once; `'close'` follows once the
   * client answers (with the client's code), or after `closeTimeoutMs` with 1006. Throws like
   * `ws` for a code that may not be sent (`TypeError`) or a reason over 123 bytes (`RangeError`).
   */
  close(code?: number, reason?: string | Buffer): void {
    if (this.state === ReadyState.CLOSED || this.state === ReadyState.CLOSING) return;
    const frame = closePayload(code, reason);
    this.state = ReadyState.CLOSING;
    this.closeFrameSent = true;
    this.peer.accept({ kind: 'close', ...frame });
    this.closeTimer = this.clock.setTimeout(() => this.destroy('close_timeout'), this.closeTimeoutMs);
    this.endIfHandshakeDone();
  }

  /** Drops the connection without a close frame: CLOSING at once, then `'close'` with 1006. */
  terminate(): void {
    if (this.state === ReadyState.CLOSED) return;
    this.state = ReadyState.CLOSING;
    queueMicrotask(() => this.destroy('terminated'));
  }

  /** Stops reading from the client: no `'message'`, `'ping'`, `'pong'` or close frame until `resume()`. */
  pause(): void {
    if (this.state === ReadyState.CONNECTING || this.state === ReadyState.CLOSED) return;
    this.paused = true;
  }

  /** Reads again: frames that arrived meanwhile are delivered in order. */
  resume(): void {
    if (this.state === ReadyState.CONNECTING || this.state === ReadyState.CLOSED) return;
    this.paused = false;
    this.schedulePump();
  }

  /** @internal a frame from the client */
  accept(frame: Frame): void {
    if (this.state === ReadyState.CLOSED || this.closeFrameReceived) return;
    this.inbound.push(frame);
    this.schedulePump();
  }

  /** @internal ends the connection, both sides; `cause` only picks the error pending sends get */
  destroy(cause: 'terminated' | 'close_timeout' | 'handshake_done' | 'peer_reset'): void {
    if (this.state === ReadyState.CLOSED) return;
    this.state = ReadyState.CLOSED;
    this.clock.clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    this.buffered = 0;
    this.inbound.length = 0;
    this.paused = false;
    const error =
      cause === 'peer_reset'
        ? connectionError('read ECONNRESET', 'ECONNRESET')
        : connectionError('Cannot call write after a stream was destroyed', 'ERR_STREAM_DESTROYED');
    this.peer.connectionEnded(error);
    this.emit('close', this.closeCode, this.closeMessage);
  }

  /** @internal the client took `bytes` that were counted in `bufferedAmount` */
  drained(bytes: number): void {
    this.buffered -= bytes;
  }

  /** @internal a send the client cannot take yet */
  counted(bytes: number): void {
    this.buffered += bytes;
  }

  /** @internal */
  endIfHandshakeDone(): void {
    // ws ends the TCP connection once it has both sent and received a close frame; the
    // client does the same, and the connection is over when both have.
    if (this.closeFrameSent && this.closeFrameReceived && this.peer.closeHandshakeDone) {
      queueMicrotask(() => this.destroy('handshake_done'));
    }
  }

  private control(kind: 'ping' | 'pong', data: unknown, mask: unknown, cb: ((err: Error) => void) | undefined): void {
    if (this.state === ReadyState.CONNECTING) throw new Error('WebSocket is not open: readyState 0 (CONNECTING)');
    if (typeof data === 'function') {
      cb = data as (err: Error) => void;
      data = undefined;
    } else if (typeof mask === 'function') {
      cb = mask as (err: Error) => void;
    }
    if (this.state !== ReadyState.OPEN) return this.sendAfterClose(data as Data | undefined, cb);
    this.peer.accept({ kind, data: data === undefined || data === null ? EMPTY : toBuffer(data as Data) });
    later(cb, null);
  }

  private sendAfterClose(data: Data | undefined, cb: ((err: Error) => void) | undefined): void {
    // ws counts data passed to send() after the close in bufferedAmount, and reports the state.
    if (data) this.buffered += byteLength(data);
    later(cb, notOpenError(this.state));
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    while (!this.paused && this.inbound.length > 0 && this.state !== ReadyState.CLOSED && !this.closeFrameReceived) {
      const frame = this.inbound.shift()!;
      switch (frame.kind) {
        case 'data':
          // Like ws, data that arrives while our own close frame waits for an answer is still delivered.
          this.emit('message', frame.data, frame.isBinary);
          break;
        case 'ping':
          if (this.state === ReadyState.OPEN) this.peer.accept({ kind: 'pong', data: frame.data });
          this.emit('ping', frame.data);
          break;
        case 'pong':
          this.emit('pong', frame.data);
          break;
        case 'close':
          this.closeFrameReceived = true;
          this.closeCode = frame.code;
          this.closeMessage = frame.reason;
          if (this.state === ReadyState.OPEN) {
            // ws answers with the same code (an empty close frame for 1005).
            if (frame.code === 1005) this.close();
            else this.close(frame.code, frame.reason);
          } else {
            this.endIfHandshakeDone();
          }
          break;
      }
    }
  }
}

/**
 * The client side, driven by the test. Records everything the server sent; emits `ws`-client
 * style events (`'message'` with `data: Buffer, isBinary`, `'ping'`, `'pong'`, `'close'` with
 * `code, reason: Buffer`) for tests that prefer listening.
 */
export class TestClient extends EventEmitter {
  /** Every data frame the server sent, in order: strings for text, Buffers for binary. */
  readonly received: Message[] = [];
  /** The close frame the server sent (or its answer to ours), once the client read it. */
  closeFrame: CloseFrame | null = null;
  /**
   * How the connection ended for the client, as a `ws` client's `'close'` event reports it: the
   * code of the close frame it read, or 1006 when none came (terminated). `null` while open.
   */
  closeEvent: CloseFrame | null = null;
  /** Ping frames the client read. */
  pings = 0;
  /** Pong frames the client read (answers to {@link ping}, or unsolicited). */
  pongs = 0;
  /** Answer ping frames with a pong, as browsers and `ws` do. */
  autoPong: boolean;
  /** Answer a close frame with our own. `false` simulates a peer that ignores it. */
  answerClose: boolean;

  private state: number = ReadyState.OPEN;
  private reading = true;
  private vanished = false;
  private absorbBudget = 0;
  private readonly inbox: Frame[] = [];
  private pumpQueued = false;
  private closeFrameSent = false;
  private closeFrameReceived = false;
  /** The connection is over; the client learns it once it has read what is left. */
  private ended = false;
  /** The index in `received` of the message `nextMessage()` returns next. */
  private readCursor = 0;
  private messageWaiters: Array<() => void> = [];
  private closeWaiters: Array<(frame: CloseFrame) => void> = [];

  constructor(
    readonly server: InMemoryServerSocket,
    options: SocketPairOptions = {},
  ) {
    super();
    this.autoPong = options.autoPong ?? true;
    this.answerClose = options.answerClose ?? true;
  }

  /** `1` OPEN, `2` CLOSING (a close frame was sent or read), `3` CLOSED. */
  get readyState(): number {
    return this.state;
  }

  /** The client vanished: it reads nothing and answers nothing any more. */
  get gone(): boolean {
    return this.vanished;
  }

  /** @internal both close frames went both ways, as far as the client is concerned */
  get closeHandshakeDone(): boolean {
    return this.closeFrameSent && this.closeFrameReceived;
  }

  /**
   * Sends a text (string) or binary (Buffer, typed array) frame to the server. Like a `ws`
   * client, sending on a closing, closed or vanished connection does nothing and does not throw.
   */
  send(message: Message | ArrayBuffer | ArrayBufferView, options: ClientSendOptions = {}): void {
    if (this.state !== ReadyState.OPEN || this.vanished) return;
    const isBinary = options.binary ?? typeof message !== 'string';
    this.server.accept({ kind: 'data', data: toBuffer(message), isBinary, counted: false, cb: undefined });
  }

  /** Sends a ping frame; the server answers it with a pong (counted in {@link pongs}) and emits `'ping'`. */
  ping(data?: string | Buffer): void {
    if (this.state !== ReadyState.OPEN || this.vanished) return;
    this.server.accept({ kind: 'ping', data: data === undefined ? EMPTY : toBuffer(data) });
  }

  /** Sends a pong frame (unsolicited, or to answer a ping when `autoPong` is off). */
  pong(data?: string | Buffer): void {
    if (this.state !== ReadyState.OPEN || this.vanished) return;
    this.server.accept({ kind: 'pong', data: data === undefined ? EMPTY : toBuffer(data) });
  }

  /**
   * Client-initiated close: the server answers with the same code and both sides end with it.
   * Without a code the frame is empty and both sides see 1005, as with `ws`. Throws like `ws`
   * for a code that may not be sent or a reason over 123 bytes.
   */
  close(code?: number, reason?: string): void {
    if (this.state !== ReadyState.OPEN || this.vanished) return;
    const frame = closePayload(code, reason);
    this.state = ReadyState.CLOSING;
    this.closeFrameSent = true;
    this.server.accept({ kind: 'close', ...frame });
  }

  /** Drops the connection without a close frame (a killed browser tab): the server sees 1006. */
  terminate(): void {
    if (this.state === ReadyState.CLOSED) return;
    this.state = ReadyState.CLOSING;
    queueMicrotask(() => this.server.destroy('peer_reset'));
  }

  /**
   * Stops reading, as a slow consumer does: the client's TCP buffers are taken to be full, so
   * every later server send stays in `bufferedAmount` with its callback pending; pings and the
   * close frame queue behind them, unread. Even the end of the connection goes unnoticed (no
   * `closeEvent`) until it reads again.
   */
  stopReading(): void {
    this.reading = false;
  }

  /** Reads again: everything queued is read in order and the pending send callbacks run. */
  startReading(): void {
    this.reading = true;
    this.schedulePump();
  }

  /**
   * The peer disappears without a close (a half-open TCP connection): it reads nothing,
   * answers no ping and no close frame, and sends nothing. Its TCP buffers still take
   * `bufferBytes` of sends (which succeed) before the rest piles up in `bufferedAmount`.
   * It never learns that the connection ended either: watch the server side
   * (`manager.whenClosed()`, the socket's `'close'`), not `waitForClose()`.
   */
  vanish(options: VanishOptions = {}): void {
    this.vanished = true;
    this.reading = false;
    this.absorbBudget = options.bufferBytes ?? DEFAULT_VANISHED_BUFFER_BYTES;
  }

  /**
   * Parsed JSON of every text frame received, typed as `T[]`: an unchecked cast, nothing
   * verifies that the frames have that shape.
   */
  receivedJson<T = unknown>(): T[] {
    return this.received.filter((m): m is string => typeof m === 'string').map((m) => JSON.parse(m) as T);
  }

  /**
   * Reads the next message: the first one in {@link received} that no `nextMessage()` or
   * `nextJson()` call has returned yet. The client keeps a read cursor, which starts at 0 and
   * moves one message on with each call, so a message that arrived before the call (during a
   * `tickAsync()` or `flush()`) is returned at once, and each message is returned once. Calls
   * made before their message arrives claim successive messages, in call order.
   *
   * With `index`, reads `received[index]` instead and moves the cursor just past it.
   *
   * Resolves as soon as that message has arrived; rejects if the connection has closed (as the
   * client sees it, {@link closeEvent}) without it.
   */
  nextMessage(index: number = this.readCursor): Promise<Message> {
    return new Promise((resolve, reject) => {
      refuseUnsafeFakeTimers('TestClient.nextMessage()');
      if (!Number.isInteger(index) || index < 0) {
        throw new RangeError(`TestClient.nextMessage(index): index must be an integer >= 0, got ${String(index)}`);
      }
      this.readCursor = index + 1;
      const check = (): void => {
        if (this.received.length > index) resolve(this.received[index]!);
        else if (this.state === ReadyState.CLOSED) {
          reject(new Error(`TestClient: the connection closed (${this.closeEvent?.code}) before message #${index} arrived`));
        } else this.messageWaiters.push(check);
      };
      check();
    });
  }

  /**
   * {@link nextMessage}, parsed as JSON (the frame must be text), typed as `T`: an unchecked
   * cast, nothing verifies that the message has that shape.
   */
  async nextJson<T = unknown>(index?: number): Promise<T> {
    const message = await this.nextMessage(index);
    if (typeof message !== 'string') throw new TypeError('TestClient.nextJson: the server sent a binary frame, not JSON text');
    return JSON.parse(message) as T;
  }

  /**
   * Resolves with {@link closeEvent} once the client has seen the connection end (at once if it
   * has). A client that is not reading sees it only after `startReading()`.
   */
  waitForClose(): Promise<CloseFrame> {
    return new Promise((resolve) => {
      refuseUnsafeFakeTimers('TestClient.waitForClose()');
      if (this.closeEvent) resolve(this.closeEvent);
      else this.closeWaiters.push(resolve);
    });
  }

  /** @internal a frame from the server */
  accept(frame: Frame): void {
    if (this.state === ReadyState.CLOSED) return;
    if (frame.kind === 'data') {
      const size = frame.data.length;
      if (this.vanished && this.absorbBudget >= size) {
        // Taken by the TCP stack of a peer that is no longer there: the send succeeds.
        this.absorbBudget -= size;
        later(frame.cb, null);
        return;
      }
      if (this.reading) {
        later(frame.cb, null);
      } else {
        frame.counted = true;
        this.server.counted(size);
      }
    }
    if (this.vanished) {
      if (frame.kind === 'data') this.inbox.push(frame); // held until the connection ends, its callback pending
      return;
    }
    this.inbox.push(frame);
    this.schedulePump();
  }

  /**
   * @internal the connection is over. Sends the server still held fail, as they do in ws; what
   * the client's TCP stack already took stays readable, and the client sees the end after it,
   * once it reads (a client that stopped reading or vanished does not notice).
   */
  connectionEnded(error: Error): void {
    if (this.ended || this.state === ReadyState.CLOSED) return;
    this.ended = true;
    for (let i = this.inbox.length - 1; i >= 0; i--) {
      const frame = this.inbox[i]!;
      if (frame.kind === 'data' && frame.counted) {
        this.inbox.splice(i, 1);
        later(frame.cb, error);
      }
    }
    this.schedulePump();
  }

  private finish(): void {
    this.state = ReadyState.CLOSED;
    this.closeEvent = this.closeFrameReceived && this.closeFrame ? { ...this.closeFrame } : { code: 1006, reason: '' };
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const resolve of waiters) resolve(this.closeEvent);
    this.wakeMessageWaiters();
    this.emit('close', this.closeEvent.code, Buffer.from(this.closeEvent.reason));
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.reading && !this.vanished && this.state !== ReadyState.CLOSED) {
      const frame = this.inbox.shift();
      if (frame === undefined) {
        if (this.ended) this.finish();
        return;
      }
      switch (frame.kind) {
        case 'data': {
          if (frame.counted) {
            this.server.drained(frame.data.length);
            later(frame.cb, null);
          }
          this.received.push(frame.isBinary ? frame.data : frame.data.toString());
          this.wakeMessageWaiters();
          this.emit('message', frame.data, frame.isBinary);
          break;
        }
        case 'ping':
          this.pings++;
          if (this.autoPong && this.state === ReadyState.OPEN && !this.ended) this.server.accept({ kind: 'pong', data: frame.data });
          this.emit('ping', frame.data);
          break;
        case 'pong':
          this.pongs++;
          this.emit('pong', frame.data);
          break;
        case 'close':
          this.readClose(frame);
          break;
      }
    }
  }

  private readClose(frame: CloseControlFrame): void {
    if (this.closeFrameReceived) return;
    this.closeFrameReceived = true;
    this.closeFrame = { code: frame.code, reason: frame.reason.toString() };
    if (!this.closeFrameSent && this.answerClose) {
      this.state = ReadyState.CLOSING;
      this.closeFrameSent = true;
      this.server.accept(frame.code === 1005 ? { kind: 'close', code: 1005, reason: EMPTY } : { ...frame });
    }
    this.server.endIfHandshakeDone();
  }

  private wakeMessageWaiters(): void {
    const waiters = this.messageWaiters;
    this.messageWaiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * A connected in-memory pair: give `server` to a `WebSocketTimeoutManager` (or to your
 * handler), drive `client` from the test.
 */
export function createSocketPair(options: SocketPairOptions = {}): { server: InMemoryServerSocket; client: TestClient } {
  refuseUnsafeFakeTimers('createSocketPair()');
  const server = new InMemoryServerSocket(options);
  const client = new TestClient(server, options);
  server.peer = client;
  return { server, client };
}
