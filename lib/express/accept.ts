/**
 * Accepting a WebSocket on a route: what happens once an upgrade request has reached
 * `websocket(handler, options)`. The gateway runs it on a real socket, the testing kit's
 * `connectHandler()` on the in-memory pair: both call these two functions, so a handler tested
 * in memory gets the manager it gets in production.
 */
import type { Request, Response } from 'express';
import type { Clock } from '../clock.js';
import { CloseCode, CloseReason } from '../close-codes.js';
import { resolveTimeoutConfig, type TimeoutConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { WebSocketTimeoutManager, type ManagerOptions } from '../manager.js';
import type { ManagedSocket } from '../socket.js';

/** @internal a request of any route */
export type AnyRequest = Request<any, any, any, any, any>;

/** @internal a route handler of any route, as the gateway stores and calls it */
export type AnyHandler = (manager: WebSocketTimeoutManager, req: AnyRequest) => void | Promise<void>;

/** What applies to the managers of every route unless the route's own options say otherwise. */
export interface AcceptDefaults {
  /** The managers' clock when the route sets none. */
  clock?: Clock;
  /** The managers' logger when the route sets none; unset leaves a registry's own logger in place. */
  logger?: Logger;
}

/**
 * @internal
 * The options of the manager for `req`: the route's options (`websocket(handler, route)`), with
 * - `config`: `req.wsTimeouts` (set by `wsTimeouts()`) with the route's `config` on top,
 *   validated now, so a bad one fails before anything is accepted;
 * - `userId`: `res.locals.userId`, else `req.user.id`, else the route's `userId`;
 * - `labels.route`: the route pattern (see {@link routeLabel});
 * - `clock` and `logger`: the route's, else `defaults`.
 * @throws {ConfigError} When the route's `config` is invalid on top of `req.wsTimeouts`.
 */
export function acceptOptions(req: AnyRequest, res: Response, route: ManagerOptions, defaults: AcceptDefaults): ManagerOptions {
  const options: ManagerOptions = { ...route, labels: { ...route.labels, route: routeLabel(req) } };
  setOrDelete(options, 'config', routeConfig(req.wsTimeouts, route.config));
  setOrDelete(options, 'userId', userIdOf(req, res) ?? route.userId);
  setOrDelete(options, 'clock', route.clock ?? defaults.clock);
  setOrDelete(options, 'logger', route.logger ?? defaults.logger);
  return options;
}

/** Where managers are created when not standalone: `ConnectionRegistry` fits. `add` must return a started manager. */
export interface ManagerSink {
  add(ws: ManagedSocket, options: ManagerOptions): WebSocketTimeoutManager;
}

/** @internal how {@link accept} creates the manager and reports a failing handler */
export interface AcceptHow {
  /** Create the manager with `sink.add(ws, options)`; else standalone. */
  sink?: ManagerSink | undefined;
  /** Start a standalone manager's automatic enforcement (a sink's managers are started by the sink). @default true */
  start?: boolean;
  /** Where a throwing or rejecting handler is logged. */
  logger: Logger;
  /** Told of the manager before the handler runs; returning false keeps the handler from running. */
  opened?: (manager: WebSocketTimeoutManager) => boolean;
}

/** @internal */
export interface Accepted {
  manager: WebSocketTimeoutManager;
  /**
   * Settles with the handler: resolves with its promise (at once for a synchronous handler),
   * rejects with what it threw or rejected with, once that was logged and the socket closed with
   * `1011 internal_error`. Never an unhandled rejection, awaited or not.
   */
  done: Promise<void>;
}

/**
 * @internal
 * Creates the manager of `ws` (through the sink, or standalone and started) and calls
 * `handler(manager, req)`. A handler that throws or rejects is logged (`WebSocket handler
 * failed`) and its socket closed with 1011; returning does not close the connection.
 * @throws What creating the manager threw (the socket is left to the caller).
 */
export function accept(ws: ManagedSocket, req: AnyRequest, handler: AnyHandler, options: ManagerOptions, how: AcceptHow): Accepted {
  let manager: WebSocketTimeoutManager;
  if (how.sink) manager = how.sink.add(ws, options);
  else {
    manager = new WebSocketTimeoutManager(ws, options);
    if (how.start !== false) manager.start();
  }
  if (how.opened && !how.opened(manager)) return { manager, done: Promise.resolve() };
  const failed = (err: unknown): never => {
    how.logger.error('WebSocket handler failed', { connectionId: manager.id, userId: manager.userId, ...manager.labels, error: err });
    void manager.gracefulClose(CloseCode.InternalError, CloseReason.internal_error);
    throw err;
  };
  let done: Promise<void>;
  try {
    done = Promise.resolve(handler(manager, req)).then(() => undefined, failed);
  } catch (err) {
    done = Promise.reject(err as Error).catch(failed);
  }
  done.catch(() => undefined); // the caller may not await it: never an unhandled rejection
  return { manager, done };
}

/**
 * @internal
 * Who the connection belongs to, for logs, metrics and the dashboard: `res.locals.userId` (set it
 * in your auth middleware), else `req.user.id` (passport and friends). Strings and numbers only.
 */
export function userIdOf(req: AnyRequest, res: Response): string | undefined {
  const fromLocals: unknown = res.locals?.userId;
  if (typeof fromLocals === 'string' || typeof fromLocals === 'number') return String(fromLocals);
  const fromUser: unknown = (req as { user?: { id?: unknown } }).user?.id;
  if (typeof fromUser === 'string' || typeof fromUser === 'number') return String(fromUser);
  return undefined;
}

/** The route pattern (`/rooms/:room`, with its mount path), not the concrete URL: low cardinality for metrics. */
export function routeLabel(req: AnyRequest): string {
  const pattern = (req.route as { path?: unknown } | undefined)?.path;
  const label = `${req.baseUrl ?? ''}${typeof pattern === 'string' ? pattern : ''}`;
  return label === '' ? pathOf(req.originalUrl ?? req.url) : label;
}

/** The path of a request URL, without its query string (which may hold tokens: never logged). */
export function pathOf(url: string | undefined): string {
  const path = (url ?? '/').split('?')[0]!;
  return path === '' ? '/' : path;
}

/** Route overrides (`websocket(handler, { config })`) on top of `req.wsTimeouts`, validated now. */
function routeConfig(fromRequest: TimeoutConfig | undefined, fromRoute: Partial<TimeoutConfig> | undefined): Partial<TimeoutConfig> | undefined {
  if (fromRequest === undefined) return fromRoute;
  return resolveTimeoutConfig(fromRequest, fromRoute);
}

/** A key that is absent rather than `undefined`, so a sink's own defaults (a registry's logger) stay in place. */
function setOrDelete<K extends keyof ManagerOptions>(options: ManagerOptions, key: K, value: ManagerOptions[K] | undefined): void {
  if (value === undefined) delete options[key];
  else options[key] = value;
}
