/**
 * The two harnesses the socket conformance spec runs against: the kit's in-memory pair, and a
 * real `ws` server with a real `ws` client on 127.0.0.1. Both yield a server socket and a client
 * driver with the same API (the in-memory `TestClient`'s), so one behaviour table runs on both.
 *
 * No fake timers here: the real harness needs real time, and the in-memory one runs the same
 * code with the same short real timeouts.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import type { ManagedSocket, Message } from '../../lib/index.js';
import { createSocketPair, type CloseFrame } from '../../lib/testing/index.js';

/** The server-side API both harnesses give: what `ws` 8 server sockets and the double share. */
export interface ServerSocket extends ManagedSocket {
  readonly isPaused: boolean;
  readonly protocol: string;
  readonly extensions: string;
  readonly OPEN: number;
  readonly CLOSING: number;
  readonly CLOSED: number;
  pong(data?: unknown, mask?: boolean, cb?: (err: Error) => void): void;
  once(event: string, listener: (...args: any[]) => void): unknown;
  emit(event: string, ...args: unknown[]): boolean;
}

/** The client-side API both harnesses give (a subset of `TestClient`). */
export interface ClientDriver {
  readonly received: Message[];
  readonly closeFrame: CloseFrame | null;
  readonly closeEvent: CloseFrame | null;
  readonly pings: number;
  readonly pongs: number;
  readonly readyState: number;
  send(message: Message, options?: { binary?: boolean }): void;
  ping(data?: string | Buffer): void;
  pong(data?: string | Buffer): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  stopReading(): void;
  startReading(): void;
  vanish(): void;
  receivedJson(): unknown[];
  nextMessage(index?: number): Promise<Message>;
  waitForClose(): Promise<CloseFrame>;
}

export interface ConnectOptions {
  /** @default true */
  autoPong?: boolean;
  /** @default true */
  answerClose?: boolean;
}

export interface Harness {
  readonly name: string;
  /** How long "nothing happens" is watched for. */
  readonly quietMs: number;
  connect(options?: ConnectOptions): Promise<{ server: ServerSocket; client: ClientDriver }>;
  teardown(): Promise<void>;
}

const noop = (): void => undefined;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `predicate()` holds, polling; fails naming `what` after `timeoutMs`. */
export async function until(predicate: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(1);
  }
}

export function inMemoryHarness(): Harness {
  return {
    name: 'the in-memory pair',
    quietMs: 10,
    async connect(options = {}) {
      const { server, client } = createSocketPair(options);
      server.on('error', noop);
      return { server, client };
    },
    async teardown() {},
  };
}

/**
 * A `ws` client driven like `TestClient`. Two hooks reach into `ws`: its receiver answers a close
 * frame by calling the socket's own `close()`, so that method is wrapped on the instance to record
 * the frame (and, for a peer that ignores close frames, not to answer); the driver's own
 * `close()` calls the prototype's.
 */
class WsClientDriver implements ClientDriver {
  readonly received: Message[] = [];
  closeFrame: CloseFrame | null = null;
  closeEvent: CloseFrame | null = null;
  pings = 0;
  pongs = 0;
  private vanished = false;

  constructor(
    readonly ws: WebSocket,
    answerClose: boolean,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => void this.received.push(isBinary ? data : data.toString()));
    ws.on('ping', () => void this.pings++);
    ws.on('pong', () => void this.pongs++);
    ws.on('close', (code: number, reason: Buffer) => void (this.closeEvent = { code, reason: reason.toString() }));
    ws.on('error', noop);
    ws.close = (code?: number, reason?: string | Buffer) => {
      this.closeFrame ??= { code: code ?? 1005, reason: reason?.toString() ?? '' };
      if (answerClose) WebSocket.prototype.close.call(ws, code, reason);
    };
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  send(message: Message, options: { binary?: boolean } = {}): void {
    if (!this.vanished) this.ws.send(message, { binary: options.binary ?? typeof message !== 'string' });
  }

  ping(data?: string | Buffer): void {
    if (!this.vanished) this.ws.ping(data);
  }

  pong(data?: string | Buffer): void {
    if (!this.vanished) this.ws.pong(data);
  }

  close(code?: number, reason?: string): void {
    if (!this.vanished) WebSocket.prototype.close.call(this.ws, code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }

  stopReading(): void {
    this.ws.pause();
  }

  startReading(): void {
    this.ws.resume();
  }

  vanish(): void {
    this.vanished = true;
    this.ws.pause();
  }

  receivedJson(): unknown[] {
    return this.received.filter((m): m is string => typeof m === 'string').map((m) => JSON.parse(m) as unknown);
  }

  /** The index of the message `nextMessage()` reads next, as in `TestClient`. */
  private readCursor = 0;

  async nextMessage(index: number = this.readCursor): Promise<Message> {
    this.readCursor = index + 1;
    await until(() => this.received.length > index || this.closeEvent !== null, `message #${index}`);
    if (this.received.length > index) return this.received[index]!;
    throw new Error(`the connection closed (${this.closeEvent?.code}) before message #${index} arrived`);
  }

  async waitForClose(): Promise<CloseFrame> {
    await until(() => this.closeEvent !== null, 'the client to close');
    return this.closeEvent!;
  }
}

export function realWsHarness(): Harness {
  let wss: WebSocketServer | undefined;
  const clients: WebSocket[] = [];
  return {
    name: 'real ws sockets on 127.0.0.1',
    quietMs: 60,
    async connect(options = {}) {
      if (!wss) {
        wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
        await once(wss, 'listening');
      }
      const { port } = wss.address() as AddressInfo;
      const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
      const ws = new WebSocket(`ws://127.0.0.1:${port}`, { autoPong: options.autoPong ?? true });
      clients.push(ws);
      const client = new WsClientDriver(ws, options.answerClose ?? true);
      const [[server]] = await Promise.all([accepted, once(ws, 'open')]);
      server.on('error', noop);
      return { server: server as unknown as ServerSocket, client };
    },
    async teardown() {
      for (const ws of clients.splice(0)) ws.terminate();
      if (!wss) return;
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss!.close(() => resolve()));
      wss = undefined;
    },
  };
}
