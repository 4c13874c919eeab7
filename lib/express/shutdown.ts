/**
 * Graceful shutdown: on SIGTERM/SIGINT, stop accepting, close every managed WebSocket with
 * `1001 going_away` (all at once, or at a reconnect budget's pace: a rolling drain), let
 * in-flight HTTP requests finish, and exit — all under one deadline.
 */
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { CloseCode, CloseReason } from '../close-codes.js';
import { withDefaults } from '../defaults.js';
import { drainConnections } from '../drain.js';
import { defaultLogger, type Logger } from '../logger.js';
import type { WebSocketTimeoutManager } from '../manager.js';
import type { ReconnectBudget } from '../reconnect-budget.js';

/** Anything that can close its connections: a `WebSocketGateway` or a `ConnectionRegistry`. */
export interface ClosesAll {
  closeAll(code?: number, reason?: string): Promise<void>;
  /** Drops every connection without a close frame: what is left when the shutdown deadline passes. */
  terminateAll?(): void;
  /** The open managers, for a drain at a reconnect budget's pace (the gateway's set, the registry's method). */
  managers?: Iterable<WebSocketTimeoutManager> | (() => Iterable<WebSocketTimeoutManager>);
}

export interface ShutdownOptions {
  /**
   * The whole shutdown's deadline, ms. WebSocket closes are each bounded by their
   * `closeTimeoutMs` already; this also bounds slow HTTP requests. When it passes, every
   * remaining connection is destroyed. @default 10_000 // 10 seconds
   */
  timeoutMs?: number;
  /** @default defaultLogger() */
  logger?: Logger;
  /**
   * App cleanup once every WebSocket has closed, within the same deadline, e.g.
   * `() => registry.stop()` (waits for disconnect hooks). Errors are logged.
   */
  onClosed?: () => void | Promise<void>;
  /**
   * The source of time for the deadline, the logged duration and the duplicate-signal window.
   * The managers' close timeouts run on their own clock (the gateway's or the registry's).
   * @default systemClock
   */
  clock?: Clock;
  /**
   * Drain at this budget's pace instead of closing every WebSocket at once: each connection gets
   * `{"type":"reconnectAdvised","reason":"going_away","retryAfterMs":…}`, then `1001 going_away`
   * at its slot. If the budget cannot close them all before `timeoutMs` less one `closeTimeoutMs`,
   * the pace is raised to fit and a warning is logged (see `checkDrainBudget` to find this at start-up).
   * Needs a target that lists its managers (a gateway or a registry).
   * @default none // every WebSocket closed at once
   */
  reconnectBudget?: ReconnectBudget;
}

/** The defaults of {@link ShutdownOptions}, declared once. */
const SHUTDOWN_DEFAULTS = Object.freeze({
  timeoutMs: 10_000,
  clock: systemClock,
} satisfies ShutdownOptions);

export interface GracefulShutdownOptions extends ShutdownOptions {
  /** @default ['SIGTERM', 'SIGINT'] */
  signals?: NodeJS.Signals[];
  /**
   * Called with 0 after a clean shutdown, 1 when the deadline had to force it or on a second
   * signal during shutdown. @default process.exit
   */
  exit?: (code: number) => void;
}

/**
 * Shuts down now, without signals or exit: the server stops listening (new upgrades get 503),
 * `target.closeAll(1001, 'going_away')` runs, and idle keep-alive connections are closed. Resolves
 * `true` when everything closed before `timeoutMs`, `false` when the deadline destroyed what
 * was left. Never rejects.
 */
export async function shutdownGracefully(server: HttpServer | HttpsServer, target: ClosesAll, options: ShutdownOptions = {}): Promise<boolean> {
  const { timeoutMs, clock } = withDefaults(SHUTDOWN_DEFAULTS, options);
  const logger = options.logger ?? defaultLogger();
  const started = clock.now();
  let timer: TimerHandle;
  const deadline = new Promise<false>((resolve) => {
    timer = clock.setTimeout(() => resolve(false), timeoutMs);
  });

  const serverClosed = new Promise<void>((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve()); // also closes idle keep-alive connections (Node >= 19)
  });
  const sockets = Promise.resolve()
    .then(() => options.reconnectBudget && drain(target, options.reconnectBudget, timeoutMs, logger))
    // After a drain, closes what is left: connections accepted meanwhile, upgrades still routing.
    .then(() => target.closeAll(CloseCode.GoingAway, CloseReason.going_away))
    .catch((err: unknown) => logger.error('Shutdown: closing WebSocket connections failed', { error: err }))
    .then(() => options.onClosed?.())
    .catch((err: unknown) => logger.error('Shutdown: onClosed failed', { error: err }));
  const clean = await Promise.race([Promise.all([sockets, serverClosed]).then(() => true as const), deadline]);
  clock.clearTimeout(timer);

  if (!clean) {
    logger.warn('Shutdown deadline passed, destroying the remaining connections', { timeoutMs });
    // Upgraded sockets are no longer the HTTP server's: closeAllConnections() does not see them.
    target.terminateAll?.();
    server.closeAllConnections();
  }
  logger.info('Shutdown complete', { clean, durationMs: clock.now() - started });
  return clean;
}

/** Closes `target`'s connections at the budget's pace, every close started one close handshake before the deadline. */
function drain(target: ClosesAll, budget: ReconnectBudget, timeoutMs: number, logger: Logger): Promise<void> | undefined {
  const managers = typeof target.managers === 'function' ? target.managers() : target.managers;
  if (managers === undefined) {
    logger.warn('Shutdown: this target does not list its connections, closing them all at once instead of draining', {});
    return undefined;
  }
  const open = Array.from(managers);
  const closeTimeoutMs = open.reduce((max, manager) => Math.max(max, manager.config.closeTimeoutMs), 0);
  return drainConnections(open, { budget, withinMs: timeoutMs - closeTimeoutMs, logger });
}

/** The same signal again within this many ms is a duplicate delivery, not a second request. */
const DUPLICATE_SIGNAL_WINDOW_MS = 500;

/**
 * On each of `signals`, runs {@link shutdownGracefully} and then `exit(0)` (`exit(1)` if the
 * deadline forced it). A second signal during shutdown exits at once with 1 (the same signal
 * repeated within 500 ms counts once: npm forwards the Ctrl-C the terminal already sent).
 *
 * @param target What closes the WebSockets: the gateway of `attachWebSockets` (every connection
 *   it accepted) or a `ConnectionRegistry`.
 * @returns A function that removes the signal listeners.
 */
export function installGracefulShutdown(server: HttpServer | HttpsServer, target: ClosesAll, options: GracefulShutdownOptions = {}): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const { timeoutMs, clock } = withDefaults(SHUTDOWN_DEFAULTS, options);
  const logger = options.logger ?? defaultLogger();
  let first: { signal: NodeJS.Signals; at: number } | null = null;

  const onSignal = (signal: NodeJS.Signals): void => {
    if (first) {
      // Ctrl-C under `npm start` arrives twice: from the terminal to the process group, and
      // forwarded by npm. The same signal within DUPLICATE_SIGNAL_WINDOW_MS is one request.
      if (signal === first.signal && clock.now() - first.at < DUPLICATE_SIGNAL_WINDOW_MS) return;
      logger.warn('Second signal during shutdown, exiting now', { signal });
      exit(1);
      return;
    }
    first = { signal, at: clock.now() };
    logger.info('Shutting down', { signal, timeoutMs });
    void shutdownGracefully(server, target, options).then((clean) => exit(clean ? 0 : 1));
  };
  for (const signal of signals) process.on(signal, onSignal);
  return () => {
    for (const signal of signals) process.off(signal, onSignal);
  };
}
