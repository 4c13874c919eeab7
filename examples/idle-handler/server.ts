/**
 * The idle-connection handler of a live-translation service, on ws-timeouts.
 * Speakers talk, listeners hear; a connection with no message for
 * `CONNECTION_IDLE_TIMEOUT_SECONDS` gets the `connectionTimeout` notice, is closed with 4001,
 * and the disconnect handler runs afterwards, asynchronously. Timeouts are counted by role and
 * reason, along with connections checked, idle detected and connections closed.
 *
 * - `ws /ws?role=speaker` or `ws /ws?role=listener` (the default); another role gets 400
 * - a speaker's text message is relayed to every listener
 * - `GET /metrics` Prometheus text; `GET /health` JSON
 *
 *     CONNECTION_IDLE_TIMEOUT_SECONDS=120 PORT=3000 node --import tsx examples/idle-handler/server.ts
 */
import { createServer } from 'node:http';
import express from 'express';
import { ConnectionRegistry, TimeoutMetrics, attachWebSockets, createLogger, healthHandler, installGracefulShutdown, metricsHandler, websocket } from '../../lib/index.js';
import { readSettingsOrExit, seconds } from '../shared/settings.js';
import { listenerHandler, listenerRoute, speakerHandler, speakerRoute } from './handlers.js';

// ------------------------------------------------------------------ configuration, checked before anything listens

const { vars, config } = readSettingsOrExit('idle-handler', {
  vars: {
    CONNECTION_IDLE_TIMEOUT_SECONDS: seconds({ default: 120, desc: 'a connection with no message for this long is closed' }),
    TIMEOUT_CHECK_INTERVAL_SECONDS: seconds({ default: 60, desc: 'how often the sweep examines every connection' }),
  },
  idleTimeoutFrom: ['CONNECTION_IDLE_TIMEOUT_SECONDS', 1_000],
});
const logger = createLogger();

// ------------------------------------------------------------------ speakers, listeners and the idle handler

const metrics = new TimeoutMetrics();
const registry = new ConnectionRegistry({
  config,
  logger,
  // timeouts_total{reason,role}, idle_detected_total; connections_checked_total (connections each
  // sweep examined) and connections_closed_total (connections closed for inactivity).
  metrics,
  // The service's disconnect handler: after the close, asynchronously; a failure is logged, never blocks.
  onDisconnect: async (manager, { code, timeoutReason }) => {
    logger.info('Disconnect handler: connection cleaned up', { connectionId: manager.id, role: manager.labels?.role, code, timeoutReason });
  },
});

// One WebSocket route per role: the `role` label is what metrics count timeouts by.
// A speaker's text is relayed to every listener of the registry; listeners only hear.
const speaker = websocket(speakerHandler(registry), speakerRoute);
const listener = websocket(listenerHandler, listenerRoute);

const app = express();
app.disable('x-powered-by');
app.get('/metrics', metricsHandler(metrics));
app.get('/health', healthHandler(registry));
// The role is checked before the upgrade, so a bad one gets a plain 400 and no socket.
app.get('/ws', (req, res, next) => {
  const role = req.query.role ?? 'listener';
  if (role === 'speaker') return speaker(req, res, next);
  if (role === 'listener') return listener(req, res, next);
  res.status(400).type('text/plain').send('role must be speaker or listener');
});

// ------------------------------------------------------------------ start and stop

const server = createServer(app);
const gateway = attachWebSockets(server, app, { registry, logger });
// SIGTERM/SIGINT: everyone closed with 1001 going_away, pending disconnect handlers awaited, exit 0.
installGracefulShutdown(server, gateway, { logger, onClosed: () => registry.stop() });

server.listen(vars.PORT, () => {
  registry.start(); // the scheduler closes each idle connection within one timer resolution
  // The periodic sweep: examines every connection (connections_checked_total) and closes any idle
  // one the scheduler has not closed yet. registry.stop() ends it.
  registry.startCleanupScheduler(Math.round(vars.TIMEOUT_CHECK_INTERVAL_SECONDS * 1_000));
  logger.info('idle-handler listening', {
    url: `http://localhost:${vars.PORT}`,
    port: vars.PORT,
    idleSeconds: vars.CONNECTION_IDLE_TIMEOUT_SECONDS,
    checkIntervalSeconds: vars.TIMEOUT_CHECK_INTERVAL_SECONDS,
  });
});
