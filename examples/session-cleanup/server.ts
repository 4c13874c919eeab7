/**
 * A session service on ws-timeouts: session cleanup with a background scheduler, session metrics and an
 * enhanced `/health`. Each WebSocket connection owns a session (kept in a small in-memory
 * store here; yours would be Redis or a database). Every `SESSION_CLEANUP_INTERVAL_MINUTES`,
 * sessions with no message for `SESSION_TIMEOUT_MINUTES` are closed (the idle notice, then
 * 4001), `SESSION_CLEANUP_BATCH_SIZE` at a time, and their stored data is deleted afterwards.
 *
 * - `ws /ws/session`  sends `{"type":"session","sessionId":…}`; each message counts as activity and gets `{"type":"ack"}`
 * - `GET /health`     `services.session_manager: {status, metrics}`: `degraded` at 1000 sessions or more, or above `SESSION_MAX_MEMORY_MB`
 * - `GET /metrics`    Prometheus text
 *
 *     SESSION_TIMEOUT_MINUTES=30 SESSION_CLEANUP_INTERVAL_MINUTES=15 node --import tsx examples/session-cleanup/server.ts
 */
import { createServer } from 'node:http';
import { EnvError, makeValidator } from 'envalid';
import express from 'express';
import { ConnectionRegistry, TimeoutMetrics, attachWebSockets, createLogger, healthHandler, installGracefulShutdown, metricsHandler, websocket } from '../../lib/index.js';
import { minutes, positive, readSettingsOrExit } from '../shared/settings.js';
import { SessionStore, sessionRoute } from './handlers.js';

// ------------------------------------------------------------------ configuration, checked before anything listens

const positiveInteger = makeValidator<number>((input) => {
  const text = String(input).trim();
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1) throw new EnvError(`expected a whole number of at least 1, got "${text}"`);
  return value;
});

const { vars, config } = readSettingsOrExit('session-cleanup', {
  vars: {
    SESSION_TIMEOUT_MINUTES: minutes({ default: 30, desc: 'a session with no message for this long is cleaned up' }),
    SESSION_CLEANUP_INTERVAL_MINUTES: minutes({ default: 15, desc: 'how often the cleanup runs' }),
    SESSION_CLEANUP_BATCH_SIZE: positiveInteger({ default: 50, desc: 'sessions cleaned before yielding to the event loop' }),
    SESSION_MAX_MEMORY_MB: positive('MiB')({ default: 100, desc: '/health is degraded above this estimated session memory' }),
  },
  // No idleTimeoutFrom: as in the service it reproduces, the cleanup run expires sessions (so a session lives between
  // the timeout and the timeout plus one interval). Set WS_IDLE_TIMEOUT to also expire them on the dot.
});
const settings = {
  sessionTimeoutMs: Math.round(vars.SESSION_TIMEOUT_MINUTES * 60_000),
  cleanupIntervalMs: Math.round(vars.SESSION_CLEANUP_INTERVAL_MINUTES * 60_000),
  batchSize: vars.SESSION_CLEANUP_BATCH_SIZE,
  maxMemoryMb: vars.SESSION_MAX_MEMORY_MB,
};
const logger = createLogger();

// ------------------------------------------------------------------ the session store (stands in for Redis)

const store = new SessionStore();
const sessions = sessionRoute(store);

// ------------------------------------------------------------------ the service's SessionManager

const metrics = new TimeoutMetrics();
const registry = new ConnectionRegistry({
  config,
  logger,
  metrics,
  sessionTimeoutMs: settings.sessionTimeoutMs,
  batchSize: settings.batchSize,
  // The stored session goes once its connection has closed, however it closed. A failure is
  // logged by the registry as a SessionStoreError and counted in hookErrors.
  onDisconnect: sessions.onDisconnect,
  // At the end of stop(), once the store deletes of the last closes are done.
  onStop: () => {
    logger.info('Sessions left in the store', { sessions: store.size });
  },
});

const app = express();
app.disable('x-powered-by');
// The shape the service's probes read: {status, services: {session_manager: {status, reasons, metrics}}}.
app.get('/health', healthHandler(registry, { maxMemoryMb: settings.maxMemoryMb, service: 'session_manager' }));
app.get('/metrics', metricsHandler(metrics));
app.get('/ws/session', websocket(sessions.handler));

// ------------------------------------------------------------------ start and stop

const server = createServer(app);
const gateway = attachWebSockets(server, app, { registry, logger });
// SIGTERM/SIGINT: every connection closed with 1001 going_away; stop() ends the cleanup
// scheduler and waits for a running cleanup and the store deletes; exit 0.
installGracefulShutdown(server, gateway, { logger, onClosed: () => registry.stop() });

server.listen(vars.PORT, () => {
  registry.start();
  registry.startCleanupScheduler(settings.cleanupIntervalMs); // "Started session cleanup scheduler"
  logger.info('session-cleanup listening', { url: `http://localhost:${vars.PORT}`, port: vars.PORT, ...settings });
});
