/**
 * `connectHandler()`: runs a route handler written for `websocket(handler)` against the
 * in-memory pair, with an Express request carrying the path, query, params, headers and the
 * `WS_*` config, so a test exercises the very handler the app ships — no server, no port.
 *
 * It builds the request as Express would (`req.wsTimeouts` as `wsTimeouts(config, { env })`
 * would set it, `req.route` for the route pattern), then accepts it with the gateway's own
 * accept functions (lib/express/accept.ts): the manager configured from `req.wsTimeouts` (route
 * options on top), `userId` from `res.locals.userId` or `req.user.id`, `labels.route`, the
 * manager started, `handler(manager, req)` called, and a throwing or rejecting handler logged and
 * closed with `1011 internal_error`.
 */
import { randomBytes } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import express, { type Express, type Request, type Response } from 'express';
import type { Clock } from '../clock.js';
import { loadTimeoutConfig, resolveTimeoutConfig, type TimeoutConfig } from '../config.js';
import { accept, acceptOptions } from '../express/accept.js';
import type { WebSocketHandler } from '../express/index.js';
import { silentLogger, type Logger } from '../logger.js';
import type { ManagerOptions, WebSocketTimeoutManager } from '../manager.js';
import type { ManagedSocket } from '../socket.js';
import { installedTestClock } from './clock.js';
import { createSocketPair, type InMemoryServerSocket, type TestClient } from './socket-pair.js';

export interface ConnectHandlerOptions {
  /** The request path, without the query string (`req.path`). @default '/' */
  path?: string;
  /** The route pattern, e.g. `/ws/rooms/:room`: the manager's `labels.route`. @default path */
  route?: string;
  /** `req.query` (parsed from the URL by Express, as for a real request). */
  query?: Record<string, string | readonly string[]>;
  /** `req.params`, as the route pattern would have matched them. */
  params?: Record<string, string>;
  /** Request headers (names are lower-cased); the WebSocket upgrade headers are already there. */
  headers?: Record<string, string | readonly string[]>;
  /** The client address (`req.ip`). @default '127.0.0.1' */
  ip?: string;
  /**
   * `WS_*` variables (seconds, as strings), parsed by `loadTimeoutConfig` as the real
   * `wsTimeouts()` middleware does; bad values throw its `ConfigError`. Pass `process.env`
   * to test with the real environment.
   * @default {} // the library defaults: tests do not depend on the machine's environment
   */
  env?: Record<string, string | undefined>;
  /** `wsTimeouts(config)` overrides (ms) on top of `env`: the result is `req.wsTimeouts`. */
  config?: Partial<TimeoutConfig>;
  /** What your auth middleware would put in `res.locals.userId`: the manager's `userId`. */
  userId?: string;
  /** More of `res.locals`. */
  locals?: Record<string, unknown>;
  /** Anything else your middleware would have done to the request (e.g. set `req.user`), before the socket opens. */
  prepare?: (req: Request, res: Response) => void;
  /** The options of `websocket(handler, options)` (`heartbeatMode`, `onMessage`, route `config`...). */
  managerOptions?: ManagerOptions;
  /**
   * Where the gateway would create managers (`attachWebSockets(server, app, { registry })`): a
   * `ConnectionRegistry` fits. `add` must return a started manager. Its managers run on the
   * registry's `clock`: build it with the test clock (`new ConnectionRegistry({ clock: t.clock })`).
   */
  registry?: { readonly clock?: Clock; add(ws: ManagedSocket, options: ManagerOptions): WebSocketTimeoutManager };
  /**
   * The clock of the pair, and of the manager unless `managerOptions.clock` sets one (as
   * `attachWebSockets`' `clock`): `createTestClock()`'s result or its `.clock`.
   * With a `registry`, it must be the registry's own clock (else this throws a `TypeError`):
   * the registry's managers run on that one whatever is passed here.
   * @default the registry's clock, else the `installTestClock()` in force, else the global timers
   */
  clock?: Clock | { readonly clock: Clock };
  /**
   * The manager's logger unless `managerOptions.logger` sets one, as `attachWebSockets`' `logger`
   * (try `captureLogs().logger`); also where a failing handler is logged.
   * @default silent; with a `registry`, the registry's own logger for the manager
   */
  logger?: Logger;
  /** The client answers pings by itself. @default true */
  autoPong?: boolean;
  /** The client answers the server's close frame. @default true */
  answerClose?: boolean;
  /** Start automatic enforcement (idle, lifetime, pings), as `websocket()` does. @default true */
  start?: boolean;
}

export interface ConnectedHandler {
  /** The client end of the pair: drive it and read what the handler sent. */
  client: TestClient;
  /** The server socket the manager wraps. */
  server: InMemoryServerSocket;
  /** The manager the handler got. */
  manager: WebSocketTimeoutManager;
  /** The request the handler got. */
  request: Request;
  /** Its response (`res.locals`). */
  response: Response;
  /**
   * Settles with the handler: resolves when its promise resolves (at once for a synchronous
   * handler), rejects with what it threw or rejected with — the socket is then closed with
   * 1011, as `websocket()` does. Awaiting it is optional: a rejection is never unhandled.
   */
  done: Promise<void>;
}

let app: Express | undefined;

/** Express's route class, as `req.route` holds it (not in Express's types; built without compiling the pattern). */
const { Route } = express as unknown as { Route: new (path: string) => { readonly path: string } };

/** One bare app gives requests their Express prototype and default settings (the query parser). */
function expressApp(): Express {
  return (app ??= express());
}

function resolveClock({ clock: option, registry }: ConnectHandlerOptions): Clock | undefined {
  const given = option === undefined || !('clock' in option) ? option : option.clock;
  if (registry?.clock !== undefined) {
    // registry.add() builds the manager on the registry's clock, whatever the options say: a
    // test that ticks another clock would wait forever for a timeout.
    if (given !== undefined && given !== registry.clock) {
      throw new TypeError(
        "connectHandler: the registry runs on another clock than the clock option, so its managers would never time out as that clock moves. " +
          'Build the registry with the test clock (new ConnectionRegistry({ clock: t.clock })), or leave out the clock option to use the registry\'s.',
      );
    }
    return registry.clock;
  }
  // Under installTestClock(), its own clock object reads the same faked globals as the default
  // clock, but gives this install its own shared scheduler: the default clock's scheduler
  // outlives each install and would lag when the next install starts at an earlier time.
  return given ?? installedTestClock();
}

function urlOf(path: string, query: ConnectHandlerOptions['query']): string {
  if (!path.startsWith('/')) throw new TypeError(`connectHandler: path must start with "/", got ${JSON.stringify(path)}`);
  if (path.includes('?')) throw new TypeError('connectHandler: pass the query string as the query option, not in path');
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    for (const item of typeof value === 'string' ? [value] : value) search.append(name, item);
  }
  const qs = search.toString();
  return qs ? `${path}?${qs}` : path;
}

function buildRequest(options: ConnectHandlerOptions, wsTimeouts: TimeoutConfig): { req: Request; res: Response } {
  const app = expressApp();
  const socket = new Socket(); // never connected: only read for its address
  Object.defineProperty(socket, 'remoteAddress', { value: options.ip ?? '127.0.0.1' });
  Object.defineProperty(socket, 'remotePort', { value: 50_000 });
  const message = new IncomingMessage(socket);
  const url = urlOf(options.path ?? '/', options.query);
  const headers: Record<string, string | string[]> = {
    host: 'localhost',
    connection: 'Upgrade',
    upgrade: 'websocket',
    'sec-websocket-version': '13',
    'sec-websocket-key': randomBytes(16).toString('base64'),
  };
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    headers[name.toLowerCase()] = typeof value === 'string' ? value : [...value];
  }
  message.method = 'GET';
  message.url = url;
  message.httpVersion = '1.1';
  message.httpVersionMajor = 1;
  message.httpVersionMinor = 1;
  message.headers = headers;
  message.rawHeaders = Object.entries(headers).flatMap(([name, value]) => (typeof value === 'string' ? [name, value] : value.flatMap((v) => [name, v])));
  message.complete = true;
  message.push(null); // no body

  // What Express's own init does for every request: the app's request/response prototypes.
  const req = Object.setPrototypeOf(message, app.request) as Request;
  const res = Object.setPrototypeOf(new ServerResponse(message), app.response) as Response;
  res.locals = { ...options.locals, ...(options.userId !== undefined ? { userId: options.userId } : {}) };
  // `req.route` as Express sets it for the matched route: the manager's `labels.route` is its path.
  const route = new Route(options.route ?? options.path ?? '/');
  Object.assign(req, { res, originalUrl: url, baseUrl: '', route, params: { ...options.params }, wsTimeouts });
  Object.assign(res, { req });
  return { req, res };
}

/**
 * Opens an in-memory WebSocket connection to `handler` (a `websocket(handler)` route handler)
 * and calls it the way the Express gateway does, synchronously: by the time this returns, the
 * handler has run up to its first `await`.
 *
 * ```ts
 * const t = createTestClock();
 * const { client, done } = connectHandler(echoHandler, { clock: t, config: { idleTimeoutMs: 300_000 } });
 * await t.tickAsync(300_000 + 1_000);
 * expect(client.closeFrame).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
 * ```
 *
 * @throws {ConfigError} When `env` or `config` (or the route's `managerOptions.config`) is invalid.
 * @throws {TypeError} When `clock` is not the clock of the given `registry`.
 */
export function connectHandler(handler: WebSocketHandler<any, any, any, any, any>, options: ConnectHandlerOptions = {}): ConnectedHandler {
  if (typeof handler !== 'function') {
    throw new TypeError(`connectHandler(handler): handler must be a function (manager, req) => void, got ${typeof handler}`);
  }
  const clock = resolveClock(options);
  const wsTimeouts = resolveTimeoutConfig(loadTimeoutConfig(options.env ?? {}), options.config);
  const { req, res } = buildRequest(options, wsTimeouts);
  options.prepare?.(req, res);

  // As the gateway's own `logger` and `clock`, under the route's: silent by default, except that a
  // registry keeps its own logger unless one is given.
  const logger = options.logger ?? (options.registry ? undefined : silentLogger);
  const managerOptions = acceptOptions(req, res, options.managerOptions ?? {}, { clock, logger });

  const { server, client } = createSocketPair({ autoPong: options.autoPong, answerClose: options.answerClose, clock });
  const { manager, done } = accept(server, req, handler, managerOptions, {
    sink: options.registry,
    start: options.start,
    logger: options.logger ?? managerOptions.logger ?? silentLogger,
  });
  return { client, server, manager, request: req, response: res, done };
}
