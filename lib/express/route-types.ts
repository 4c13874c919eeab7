/**
 * Typed route params for WebSocket routes.
 *
 * Express types `req.params` from the path (`'/ws/rooms/:room'` gives `{ room: string }`) only for
 * handlers written inline in `app.get(path, ...)`. A handler built by a call, as
 * `websocket(handler)` is, gets its type before TypeScript has read the path, and would fall
 * back to `string | string[]` for every name. So routes whose last handler is `websocket()`
 * get one more overload of Express's route methods (`app.get`, `router.get`, `app.all`...):
 * the path's params are passed into `websocket()`, and the middleware before it sees them too.
 * Any other route is typed by Express's own overloads, as before.
 */
import type { ParamsDictionary, Query, RequestHandler, RouteParameters } from 'express-serve-static-core';

/** Marks what `websocket()` returns, so the overload below applies only to WebSocket routes. */
export const WEBSOCKET_ROUTE: unique symbol = Symbol('ws-timeouts.websocketRoute');

/**
 * What `websocket(handler)` returns: an Express `RequestHandler` with the same type parameters
 * (route params, response body, request body, query, `res.locals`), marked as a WebSocket route.
 */
export interface WebSocketRoute<
  P = ParamsDictionary,
  ResBody = any,
  ReqBody = any,
  ReqQuery = Query,
  LocalsObj extends Record<string, any> = Record<string, any>,
> extends RequestHandler<P, ResBody, ReqBody, ReqQuery, LocalsObj> {
  readonly [WEBSOCKET_ROUTE]: true;
}

declare module 'express-serve-static-core' {
  interface IRouterMatcher<T, Method> {
    <Route extends string, ResBody = any, ReqBody = any, ReqQuery = Query, LocalsObj extends Record<string, any> = Record<string, any>>(
      path: Route,
      ...handlers: [
        ...Array<RequestHandler<RouteParameters<Route>, ResBody, ReqBody, ReqQuery, LocalsObj>>,
        WebSocketRoute<RouteParameters<Route>, ResBody, ReqBody, ReqQuery, LocalsObj>,
      ]
    ): T;
  }
}
