/**
 * `wsTimeouts()`: the Express middleware that puts the resolved timeout configuration on the
 * request (`req.wsTimeouts`), for WebSocket routes and plain HTTP routes alike.
 *
 * Used once at app level and again on a route, the route's overrides apply on top of the app's
 * (custom timeouts for one endpoint):
 *
 * ```ts
 * app.use(wsTimeouts());                                          // the WS_* environment
 * app.get('/ws/slow', wsTimeouts({ idleTimeoutMs: 300_000 }), websocket(handler));
 * ```
 */
import type { RequestHandler } from 'express';
import { defaultTimeoutConfig, loadTimeoutConfig, resolveTimeoutConfig, type TimeoutConfig } from '../config.js';

declare module 'express-serve-static-core' {
  interface Request {
    /**
     * The timeout configuration for this request (ms, frozen), set by `wsTimeouts()`.
     * `websocket()` configures the route's `WebSocketTimeoutManager` from it.
     */
    wsTimeouts?: TimeoutConfig;
  }
}

export interface WsTimeoutsOptions {
  /**
   * The environment to read the `WS_*` variables from, once, when the middleware is created.
   * @default process.env (through `defaultTimeoutConfig()`, loaded once per process)
   */
  env?: Record<string, string | undefined>;
}

/**
 * An Express middleware that sets `req.wsTimeouts`.
 *
 * - The environment is read once, when the middleware is created, never per request.
 * - When an earlier `wsTimeouts()` already set `req.wsTimeouts`, `overrides` apply on top of it;
 *   otherwise on top of the environment's config.
 * - Bad overrides or a bad environment throw a {@link ConfigError} here, at creation, with every
 *   problem at once. A combination that is only invalid on top of an earlier middleware's config
 *   (say a route idle timeout longer than the app's lifetime) is passed to `next(err)`.
 *
 * @param overrides Values in milliseconds, on top of the environment (or the earlier middleware).
 * @throws {ConfigError} At creation, when the environment or `overrides` are invalid.
 */
export function wsTimeouts(overrides?: Partial<TimeoutConfig>, options: WsTimeoutsOptions = {}): RequestHandler {
  const loaded = options.env ? loadTimeoutConfig(options.env) : defaultTimeoutConfig();
  const own = resolveTimeoutConfig(loaded, overrides);
  // Stacked use: resolve once per distinct base config (configs are frozen, so the result is too).
  const stacked = new WeakMap<TimeoutConfig, TimeoutConfig>();

  return function wsTimeoutsMiddleware(req, _res, next) {
    const base = req.wsTimeouts;
    if (base === undefined || base === own) {
      req.wsTimeouts = own;
      return next();
    }
    let config = stacked.get(base);
    if (config === undefined) {
      try {
        config = resolveTimeoutConfig(base, overrides);
      } catch (err) {
        return next(err);
      }
      stacked.set(base, config);
    }
    req.wsTimeouts = config;
    next();
  };
}
