/**
 * `websocket(handler)`: the last handler of an Express route that accepts WebSocket connections.
 *
 * ```ts
 * app.get('/ws/rooms/:room', auth, wsTimeouts({ idleTimeoutMs: 5_000 }), websocket(async (manager, req) => {
 *   for await (const message of manager) await manager.sendTextWithTimeout(`${req.params.room}: ${message}`);
 * }));
 * ```
 *
 * Works on an app, an `express.Router()` and mounted routers, with params and `req.query`,
 * because it *is* an ordinary Express handler: the gateway of {@link attachWebSockets} sends the
 * upgrade request through the app, and only when the chain reaches this handler is the socket
 * accepted.
 */
import type { NextFunction, Request, Response } from 'express';
import type { ParamsDictionary, Query } from 'express-serve-static-core';
import { defaultLogger, type Logger } from '../logger.js';
import type { ManagerOptions } from '../manager.js';
import { upgradeContextOf, type RefusalReason, type WebSocketHandler } from './gateway.js';
import { WEBSOCKET_ROUTE, type WebSocketRoute } from './route-types.js';

/**
 * A route handler that accepts the WebSocket and calls `handler(manager, req)`.
 *
 * - The manager is configured from `req.wsTimeouts` (see `wsTimeouts()`), with `options.config`
 *   (ms) on top; it is already enforcing idle, lifetime and pong timeouts (`start()`).
 * - Its `userId` is `res.locals.userId`, else `req.user.id`, else `options.userId`; its labels
 *   get `route` (the route pattern, e.g. `/ws/rooms/:room`).
 * - If `handler` throws or rejects, the error is logged and the socket closed with
 *   `1011 internal_error`. Returning does not close the connection: it lives until it is closed
 *   or times out.
 * - A plain (non-upgrade) request gets `426 Upgrade Required`.
 * - Typed as Express's `RequestHandler`: inline in `app.get('/ws/rooms/:room', websocket(...))`,
 *   `req.params.room` is a `string`; `req: Request<{ room: string }>` may also be written out.
 *
 * @param options Manager options for this route (`heartbeatMode`, `onMessage`, `labels`, ...).
 */
export function websocket<
  P = ParamsDictionary,
  ResBody = any,
  ReqBody = any,
  ReqQuery = Query,
  LocalsObj extends Record<string, any> = Record<string, any>,
>(handler: WebSocketHandler<P, ResBody, ReqBody, ReqQuery, LocalsObj>, options: ManagerOptions = {}): WebSocketRoute<P, ResBody, ReqBody, ReqQuery, LocalsObj> {
  if (typeof handler !== 'function') {
    throw new TypeError(`websocket(handler): handler must be a function (manager, req) => void, got ${typeof handler}`);
  }
  function websocketRoute(req: Request<P, ResBody, ReqBody, ReqQuery, LocalsObj>, res: Response<any, LocalsObj>, next: NextFunction): void {
    const ctx = upgradeContextOf(req);
    if (ctx) return ctx.gateway.accept(ctx, req, res, handler, options, next);
    logNotUpgraded(options.logger, req.path, isUpgradeRequest(req.headers.upgrade));
    res.status(426).set({ Upgrade: 'websocket', Connection: 'Upgrade' }).type('text/plain').send('Upgrade Required: this route only accepts WebSocket connections');
  }
  return Object.assign(websocketRoute, { [WEBSOCKET_ROUTE]: true as const });
}

function isUpgradeRequest(header: string | undefined): boolean {
  return typeof header === 'string' && header.toLowerCase().split(',').some((p) => p.trim() === 'websocket');
}

/**
 * The gateway never sees a plain request, so the 426 is logged here, as the gateway logs its
 * refusals. Node hands an upgrade request to Express as a plain one only when the server has no
 * 'upgrade' listener: the gateway was never attached, which breaks every WebSocket route (warn).
 */
function logNotUpgraded(logger: Logger | undefined, path: string, wasUpgrade: boolean): void {
  const log = logger ?? defaultLogger();
  if (wasUpgrade) {
    const reason: RefusalReason = 'no_gateway';
    log.warn('WebSocket upgrade refused', { path, status: 426, reason, detail: 'this HTTP server has no WebSocket gateway: call attachWebSockets(server, app)' });
  } else {
    const reason: RefusalReason = 'not_an_upgrade';
    log.info('WebSocket upgrade refused', { path, status: 426, reason });
  }
}
