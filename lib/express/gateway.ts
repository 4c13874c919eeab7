/**
 * The upgrade gateway: runs every WebSocket upgrade request through the Express app **before**
 * the socket is accepted.
 *
 * On the HTTP server's `'upgrade'` event the gateway builds a real `http.ServerResponse` bound to
 * the raw socket and calls the app with it, as Node does for a plain request. Whatever the
 * middleware chain answers (401 from auth, 403, 429, Express's 404, a 500 from an error) is
 * written to the client as a real HTTP response, and the socket is then closed: it is never
 * accepted. Only when the chain reaches `websocket(handler)` is the socket handed to the one
 * `WebSocketServer` (`noServer` mode) of this HTTP server, and the handler gets a ready
 * `WebSocketTimeoutManager`, made by the accept functions the testing kit shares (./accept.ts).
 *
 * This is what express-ws gets wrong (express-ws #47: the upgrade completes before any
 * middleware runs, so auth can only close an already-open socket).
 */
import { STATUS_CODES, ServerResponse, type IncomingMessage, type OutgoingHttpHeaders, type Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Application, Request, Response } from 'express';
import type { ParamsDictionary, Query } from 'express-serve-static-core';
import { WebSocketServer, type ServerOptions, type VerifyClientCallbackAsync, type VerifyClientCallbackSync, type WebSocket } from 'ws';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { CloseCode, CloseReason } from '../close-codes.js';
import { withDefaults, type WithDefaults } from '../defaults.js';
import { defaultLogger, type Logger } from '../logger.js';
import type { ManagerOptions, WebSocketTimeoutManager } from '../manager.js';
import { accept, acceptOptions, pathOf, type AnyHandler, type AnyRequest, type ManagerSink } from './accept.js';

export type { ManagerSink } from './accept.js';

/**
 * What a route handler gets: a ready manager (enforcing its timeouts) and the Express request.
 * Generic as Express's `RequestHandler` is: `WebSocketHandler<{ room: string }>` for a handler
 * declared apart from its route; written inline in `app.get(path, websocket(...))`, `req.params`
 * is typed from the path.
 */
export type WebSocketHandler<
  P = ParamsDictionary,
  ResBody = any,
  ReqBody = any,
  ReqQuery = Query,
  LocalsObj extends Record<string, any> = Record<string, any>,
> = (manager: WebSocketTimeoutManager, req: Request<P, ResBody, ReqBody, ReqQuery, LocalsObj>) => void | Promise<void>;

export interface AttachWebSocketsOptions {
  /**
   * When given, managers are created with `registry.add(ws, options)` (which tracks them and
   * starts automatic enforcement); otherwise with `new WebSocketTimeoutManager(ws, options).start()`.
   * A `ConnectionRegistry` fits, so `/health`, `/metrics` and the dashboard see every connection.
   */
  registry?: ManagerSink;
  /** Options for the one `WebSocketServer` (e.g. `maxPayload`, `perMessageDeflate`, `handleProtocols`). */
  wss?: Omit<ServerOptions, 'noServer' | 'server' | 'port' | 'host' | 'path'>;
  /**
   * Open WebSockets plus upgrade requests still in the middleware chain. An upgrade request over
   * the limit gets `503` before any middleware runs. @default Infinity
   */
  maxConnections?: number;
  /**
   * Open WebSockets per client address. Checked when the request reaches `websocket()`, with
   * `req.ip`, so Express's `trust proxy` setting applies; over the limit the client gets `503`.
   * @default Infinity
   */
  maxConnectionsPerIp?: number;
  /**
   * How long the middleware chain may take to either answer or reach `websocket()`; after that
   * the client gets `503` and the socket is closed. @default 10_000 // 10 seconds
   */
  handshakeTimeoutMs?: number;
  /** Gateway log lines (refused upgrades, handler errors); also the managers' logger unless a route sets one. @default defaultLogger() */
  logger?: Logger;
  /**
   * The gateway's source of time (the handshake timeout), and the clock of the managers it
   * creates unless their route sets one; a registry's managers keep the registry's clock.
   * Inject a fake clock (`createTestClock().clock`) to test handshake timeouts in fake time.
   * @default systemClock
   */
  clock?: Clock;
}

/**
 * The defaults of {@link AttachWebSocketsOptions}, declared once. The logger is not among them:
 * unset, a registry's own logger stays in place for the managers.
 */
const GATEWAY_DEFAULTS = Object.freeze({
  maxConnections: Infinity,
  maxConnectionsPerIp: Infinity,
  handshakeTimeoutMs: 10_000,
  clock: systemClock,
} satisfies AttachWebSocketsOptions);

/** Per upgrade request, stashed on the request under a symbol until `websocket()` picks it up. */
interface UpgradeContext {
  readonly gateway: WebSocketGateway;
  readonly req: IncomingMessage;
  readonly socket: Socket;
  /** The bytes after the request head: the upgrade `head`, plus whatever arrived during routing. */
  head: Buffer[];
  headBytes: number;
  readonly res: ServerResponse;
  /** The request path without its query string (the query may hold tokens: never logged). */
  readonly path: string;
  /**
   * `routing`: in the middleware chain; `upgrading`: handed to ws, which may still refuse the
   * handshake; `open`: accepted; `done`: answered or gone.
   */
  state: 'routing' | 'upgrading' | 'open' | 'done';
  /** Why the gateway refused the upgrade, for the one log line written when the answer goes out. */
  refusal: Refusal | undefined;
  /** The address counted against `maxConnectionsPerIp`, once reserved. */
  ip: string | undefined;
  timer: TimerHandle;
  readonly onData: (chunk: Buffer) => void;
  readonly onEnd: () => void;
}

/** The `reason` of a refused upgrade's log line, plus anything that explains it (a limit's value). */
interface Refusal {
  reason: RefusalReason;
  details?: Record<string, unknown>;
}

/**
 * Why an upgrade request was refused, in the `reason` field of its `WebSocket upgrade refused`
 * log line. `middleware_response` and `no_route` are the app's own answers (auth 401, Express's
 * 404...); `not_an_upgrade` and `no_gateway` are the 426 of `websocket()` for a plain request;
 * the others are the gateway's.
 */
export type RefusalReason =
  | 'middleware_response'
  | 'no_route'
  | 'invalid_route_config'
  | 'app_threw'
  | 'invalid_handshake'
  | 'verify_client'
  | 'max_connections'
  | 'max_connections_per_ip'
  | 'handshake_timeout'
  | 'shutting_down'
  | 'not_an_upgrade'
  | 'no_gateway';

/**
 * Bytes a client may send after its upgrade request and before the answer. A conforming client
 * sends nothing until it sees 101; this only bounds what is buffered for a misbehaving one.
 */
const MAX_EARLY_BYTES = 64 * 1024;

const UPGRADE = Symbol('ws-timeouts.upgrade');
type WithUpgrade = IncomingMessage & { [UPGRADE]?: UpgradeContext };

const attached = new WeakMap<HttpServer | HttpsServer, WebSocketGateway>();

/**
 * One `WebSocketServer` in `noServer` mode for one HTTP(S) server, and the upgrade pipeline
 * through the Express app. Created by {@link attachWebSockets}.
 */
export class WebSocketGateway {
  readonly server: HttpServer | HttpsServer;
  readonly app: Application;
  /** The one `WebSocketServer` of this HTTP server (`noServer` mode). */
  readonly wss: WebSocketServer;
  /** Open managed connections, whatever their route. */
  readonly managers: ReadonlySet<WebSocketTimeoutManager>;

  private readonly options: WithDefaults<AttachWebSocketsOptions, typeof GATEWAY_DEFAULTS>;
  private readonly logger: Logger;
  private readonly open = new Set<WebSocketTimeoutManager>();
  private readonly routing = new Set<UpgradeContext>();
  private readonly perIp = new Map<string, number>();
  private readonly onUpgrade: (req: IncomingMessage, socket: Socket, head: Buffer) => void;
  private closed = false;

  /** @internal use {@link attachWebSockets} */
  constructor(server: HttpServer | HttpsServer, app: Application, options: AttachWebSocketsOptions = {}) {
    this.options = withDefaults(GATEWAY_DEFAULTS, options);
    checkLimit('maxConnections', this.options.maxConnections);
    checkLimit('maxConnectionsPerIp', this.options.maxConnectionsPerIp);
    checkTimeout(this.options.handshakeTimeoutMs);
    this.server = server;
    this.app = app;
    this.logger = options.logger ?? defaultLogger();
    this.managers = this.open;
    this.wss = new WebSocketServer({ ...options.wss, ...this.verifyClientOption(options.wss?.verifyClient), noServer: true });
    this.wss.on('error', (err) => this.logger.error('WebSocketServer error', { error: err }));
    // With a listener, ws leaves the answer to a broken handshake to us: it goes out (and is
    // logged) through the request's own response, like every other refusal.
    this.wss.on('wsClientError', (err: Error, socket: Socket, req: IncomingMessage) => this.handshakeFailed(err, socket, req as WithUpgrade));
    this.onUpgrade = (req, socket, head) => this.handleUpgrade(req as WithUpgrade, socket, head);
    server.on('upgrade', this.onUpgrade);
  }

  /** Open managed WebSocket connections. */
  get size(): number {
    return this.open.size;
  }

  /** Upgrade requests still in the Express middleware chain. */
  get pending(): number {
    return this.routing.size;
  }

  /**
   * Closes every open managed connection with `code`/`reason` (each bounded by its
   * `closeTimeoutMs`, then terminated) and refuses upgrade requests still in the middleware
   * chain with 503. New upgrades are still accepted afterwards; see {@link close} to stop them.
   * Never rejects.
   */
  async closeAll(code: number = CloseCode.GoingAway, reason: string = CloseReason.going_away): Promise<void> {
    for (const ctx of [...this.routing]) this.refuse(ctx, 503, 'Server is shutting down', { reason: 'shutting_down' });
    const closing = [...this.open].map((manager) => manager.gracefulClose(code, reason));
    // Sockets accepted but without a manager (its creation failed) have nothing to close gracefully.
    for (const ws of this.wss.clients) if (!isManaged(ws)) ws.terminate();
    await Promise.all(closing);
  }

  /**
   * Drops every connection at once, without a close frame: open WebSockets are terminated and
   * upgrade requests still in the middleware chain destroyed. For a shutdown whose deadline has
   * passed; {@link closeAll} is the graceful way.
   */
  terminateAll(): void {
    for (const ctx of [...this.routing]) {
      this.settle(ctx);
      ctx.socket.destroy();
    }
    for (const ws of this.wss.clients) ws.terminate();
  }

  /**
   * Stops the gateway for good: upgrades are answered 503 from now on, every connection is closed
   * as by {@link closeAll}, then the `'upgrade'` listener is removed and the `WebSocketServer` closed.
   */
  async close(code: number = CloseCode.GoingAway, reason: string = CloseReason.going_away): Promise<void> {
    this.closed = true;
    await this.closeAll(code, reason);
    this.server.off('upgrade', this.onUpgrade);
    if (attached.get(this.server) === this) attached.delete(this.server);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ---------------------------------------------------------------- 1. the upgrade request arrives

  private handleUpgrade(req: WithUpgrade, socket: Socket, head: Buffer): void {
    // An error on the raw socket (reset by the peer...) must never go unhandled.
    socket.on('error', onRawSocketError);
    const res = new ServerResponse(req);
    // Any HTTP answer is the last thing on this connection: it says `Connection: close`.
    res.shouldKeepAlive = false;
    try {
      res.assignSocket(socket);
    } catch {
      socket.destroy(); // a pipelined response still owns the socket: nothing safe to answer with
      return;
    }
    const ctx: UpgradeContext = {
      gateway: this,
      req,
      socket,
      head: head.length > 0 ? [head] : [],
      headBytes: head.length,
      res,
      path: pathOf(req.url),
      state: 'routing',
      refusal: undefined,
      ip: undefined,
      timer: undefined,
      onData: (chunk) => {
        ctx.head.push(chunk);
        ctx.headBytes += chunk.length;
        if (ctx.headBytes > MAX_EARLY_BYTES) socket.destroy();
      },
      onEnd: () => {
        if (ctx.state === 'routing') socket.destroy(); // the client left before the answer
      },
    };
    req[UPGRADE] = ctx;
    // After the gateway itself answered (handshake timeout, shutdown), a middleware that finishes
    // late and calls `res.end()` gets 'write after end' as an 'error' event: never a crash.
    res.on('error', (err) => this.logger.debug('WebSocket upgrade: response error after the answer', { path: ctx.path, error: err }));
    res.on('finish', () => this.answered(ctx));
    socket.once('close', () => this.gone(ctx));
    // Keep reading while the middleware chain runs: without a read, a client that gives up is
    // never noticed (the socket would linger until the handshake timeout). What is read is kept
    // and handed to ws as the upgrade head, in order.
    socket.on('data', ctx.onData);
    socket.on('end', ctx.onEnd);

    if (this.closed || !this.server.listening) return this.refuse(ctx, 503, 'Server is shutting down', { reason: 'shutting_down' });
    const max = this.options.maxConnections;
    if (this.open.size + this.routing.size >= max) {
      return this.refuse(ctx, 503, 'Too many WebSocket connections, try again later', { reason: 'max_connections', details: { maxConnections: max } });
    }
    this.routing.add(ctx);
    const timeoutMs = this.options.handshakeTimeoutMs;
    ctx.timer = this.options.clock.setTimeout(() => {
      if (ctx.state !== 'routing') return;
      this.refuse(ctx, 503, 'The server did not answer the upgrade request in time', { reason: 'handshake_timeout', details: { handshakeTimeoutMs: timeoutMs } });
    }, timeoutMs);

    try {
      this.app(req, res);
    } catch (err) {
      // Express catches middleware errors itself; this is a broken app object.
      this.refuse(ctx, 500, 'Internal Server Error', { reason: 'app_threw', details: { error: err } });
    }
  }

  /** A plain HTTP response went out instead of an upgrade: log it, close the socket once it is flushed. */
  private answered(ctx: UpgradeContext): void {
    if (ctx.state === 'open' || ctx.state === 'done') return;
    ctx.state = 'done';
    this.settle(ctx);
    this.logRefusal(ctx);
    ctx.res.detachSocket(ctx.socket);
    ctx.socket.destroySoon();
  }

  /** The one log line of a refused upgrade: path (never the query string), status and reason. */
  private logRefusal(ctx: UpgradeContext): void {
    const status = ctx.res.statusCode;
    const { reason, details } = ctx.refusal ?? { reason: appReason(ctx.req, status) };
    const level = status >= 500 ? 'warn' : 'info';
    this.logger[level]('WebSocket upgrade refused', { path: ctx.path, status, reason, ...details });
  }

  /** The raw socket closed: the client gave up, the response was flushed, or the WebSocket ended. */
  private gone(ctx: UpgradeContext): void {
    if (ctx.state !== 'open') ctx.state = 'done';
    this.settle(ctx);
    if (ctx.ip !== undefined) {
      const left = (this.perIp.get(ctx.ip) ?? 1) - 1;
      if (left > 0) this.perIp.set(ctx.ip, left);
      else this.perIp.delete(ctx.ip);
      ctx.ip = undefined;
    }
  }

  /** The request has left the middleware chain: no longer pending, no handshake timeout. */
  private settle(ctx: UpgradeContext): void {
    this.routing.delete(ctx);
    this.options.clock.clearTimeout(ctx.timer);
    ctx.timer = undefined;
  }

  /**
   * Answers `status` when nothing was sent yet. When a response is already under way (a
   * middleware started one and never finished it), drops the socket: that refusal is logged
   * with the status the middleware set.
   */
  private refuse(ctx: UpgradeContext, status: number, message: string, refusal: Refusal): void {
    if (ctx.state === 'open' || ctx.state === 'done') return;
    const { res, socket } = ctx;
    ctx.refusal = refusal;
    if (res.headersSent || socket.destroyed) {
      ctx.state = 'done';
      this.settle(ctx);
      if (!socket.destroyed) this.logRefusal(ctx);
      socket.destroy();
      return;
    }
    res.statusCode = status;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    if (status === 503) res.setHeader('Retry-After', '5');
    res.end(message);
  }

  // ---------------------------------------------------------------- 2. the chain reached websocket()

  /** @internal called by `websocket()` with the request the chain delivered */
  accept(ctx: UpgradeContext, req: AnyRequest, res: Response, handler: AnyHandler, route: ManagerOptions, next: (err?: unknown) => void): void {
    if (ctx.state !== 'routing') return; // the client left, or the chain already answered
    if (ctx.res.headersSent) {
      // A middleware answered and still called next() (`res.status(401).send(); next()`): its
      // response is the answer, and is logged once it has gone out. Nothing is accepted or reserved.
      ctx.refusal = { reason: 'middleware_response', details: { detail: 'a middleware answered and then called next(): not accepted' } };
      return;
    }
    if (this.closed || !this.server.listening) return this.refuse(ctx, 503, 'Server is shutting down', { reason: 'shutting_down' });

    const perIpMax = this.options.maxConnectionsPerIp;
    const ip = req.ip ?? ctx.socket.remoteAddress ?? 'unknown';
    if (perIpMax !== Infinity && (this.perIp.get(ip) ?? 0) >= perIpMax) {
      return this.refuse(ctx, 503, 'Too many WebSocket connections from this address, try again later', {
        reason: 'max_connections_per_ip',
        details: { maxConnectionsPerIp: perIpMax },
      });
    }

    // Config problems become a 500 through Express's error handling, before anything is accepted.
    let options: ManagerOptions;
    try {
      options = acceptOptions(req, res, route, { clock: this.options.clock, logger: this.options.logger });
    } catch (err) {
      ctx.refusal = { reason: 'invalid_route_config', details: { error: err } };
      return next(err);
    }

    ctx.state = 'upgrading';
    this.settle(ctx);
    if (perIpMax !== Infinity) {
      ctx.ip = ip;
      this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    }
    const { socket } = ctx;
    // The response stays bound to the socket until ws accepts: a handshake ws refuses is answered through it.
    socket.off('data', ctx.onData);
    socket.off('end', ctx.onEnd);
    // Back to "no reader yet" (as Node leaves an upgrade socket), so ws's 'data' listener starts the flow.
    socket.pause();
    (socket as { readableFlowing: boolean | null }).readableFlowing = null;
    const head = ctx.head.length === 1 ? ctx.head[0]! : Buffer.concat(ctx.head);
    ctx.head = [];
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ctx.state = 'open';
      res.statusCode = 101; // what a logger listening on the response sees
      ctx.res.detachSocket(socket);
      delete (req as WithUpgrade)[UPGRADE];
      socket.off('error', onRawSocketError); // ws owns the socket and its errors now
      this.opened(ws, req, handler, options);
    });
  }

  /** ws refused the handshake (bad key, version, Upgrade header...): answer as ws would, and log it. */
  private handshakeFailed(err: Error, socket: Socket, req: WithUpgrade): void {
    const ctx = req[UPGRADE];
    if (ctx?.state !== 'upgrading') {
      socket.destroy();
      return;
    }
    ctx.res.setHeader('Sec-WebSocket-Version', '13, 8'); // the versions ws speaks (RFC 6455, 4.4)
    const status = req.method === 'GET' ? 400 : 405; // ws's own rule
    this.refuse(ctx, status, err.message, { reason: 'invalid_handshake', details: { detail: err.message } });
  }

  /**
   * The app's `verifyClient`, wrapped: ws would write its refusal straight to the socket, unseen;
   * the wrapper answers through the request's own response instead, so it is logged (reason
   * `verify_client`) like every other refusal, with the status, message and headers it chose.
   */
  private verifyClientOption(verify: ServerOptions['verifyClient']): Pick<ServerOptions, 'verifyClient'> {
    if (verify === undefined) return {};
    type Info = Parameters<VerifyClientCallbackAsync>[0];
    type Done = Parameters<VerifyClientCallbackAsync>[1];
    const verifyClient: VerifyClientCallbackAsync = (info: Info, done: Done) => {
      const decide = (verified: boolean, code = 401, message?: string, headers?: OutgoingHttpHeaders): void => {
        const ctx = (info.req as WithUpgrade)[UPGRADE];
        if (verified || ctx?.state !== 'upgrading') return done(verified, code, message, headers);
        for (const [name, value] of Object.entries(headers ?? {})) if (value !== undefined) ctx.res.setHeader(name, value);
        this.refuse(ctx, code, message ?? STATUS_CODES[code] ?? '', { reason: 'verify_client' });
      };
      if (verify.length >= 2) (verify as VerifyClientCallbackAsync)(info, decide);
      else decide((verify as VerifyClientCallbackSync)(info));
    };
    return { verifyClient };
  }

  // ---------------------------------------------------------------- 3. the socket is open

  private opened(ws: WebSocket, req: AnyRequest, handler: AnyHandler, options: ManagerOptions): void {
    try {
      accept(ws, req, handler, options, {
        sink: this.options.registry,
        logger: this.logger,
        opened: (manager) => {
          managed.add(ws);
          this.open.add(manager);
          void manager.whenClosed().then(() => {
            this.open.delete(manager);
            managed.delete(ws);
          });
          if (!this.closed) return true;
          void manager.gracefulClose(CloseCode.GoingAway, CloseReason.going_away);
          return false;
        },
      });
    } catch (err) {
      // Creating the manager threw (a handler's own errors are accept()'s).
      this.logger.error('WebSocket manager could not be created', { userId: options.userId, ...options.labels, error: err });
      ws.close(CloseCode.InternalError, CloseReason.internal_error);
    }
  }
}

const managed = new WeakSet<WebSocket>();
function isManaged(ws: WebSocket): boolean {
  return managed.has(ws);
}

function onRawSocketError(this: Socket): void {
  this.destroy();
}

/**
 * Attaches the upgrade gateway to `server`: one `WebSocketServer({ noServer: true })`, and every
 * upgrade request run through `app` before it is accepted. Call once per HTTP(S) server; plain
 * HTTP requests are untouched.
 *
 * @throws {Error} When a gateway is already attached to `server`.
 */
export function attachWebSockets(server: HttpServer | HttpsServer, app: Application, options: AttachWebSocketsOptions = {}): WebSocketGateway {
  if (attached.has(server)) {
    throw new Error('attachWebSockets: a gateway is already attached to this server; call it once per server and reuse the returned gateway');
  }
  const gateway = new WebSocketGateway(server, app, options);
  attached.set(server, gateway);
  return gateway;
}

/** @internal the upgrade context of a request, when it came through a gateway */
export function upgradeContextOf(req: IncomingMessage): UpgradeContext | undefined {
  return (req as WithUpgrade)[UPGRADE];
}

export type { UpgradeContext };

/** The app answered instead of reaching `websocket()`: Express's 404 when no route matched the path. */
function appReason(req: IncomingMessage, status: number): RefusalReason {
  const matchedRoute = (req as Partial<Request>).route !== undefined;
  return status === 404 && !matchedRoute ? 'no_route' : 'middleware_response';
}

function checkTimeout(value: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
    throw new RangeError(`attachWebSockets: handshakeTimeoutMs must be a whole number of milliseconds from 1 to ${2 ** 31 - 1}, got ${String(value)}`);
  }
}

function checkLimit(name: string, value: number): void {
  if (value === Infinity) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new RangeError(`attachWebSockets: ${name} must be a non-negative integer (or Infinity), got ${String(value)}`);
  }
}
