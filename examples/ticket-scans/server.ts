/**
 * A ticket-scan service on ws-timeouts. Scanner dashboards connect over
 * WebSocket; every scan posted to the API is broadcast to all of them; a dashboard with no
 * traffic for `SESSION_TIMEOUT_MINUTES` is expired in the background.
 *
 * - `ws /ws/scans`   scanner connections (their messages count as activity and are otherwise ignored)
 * - `POST /scans`    a JSON scan, e.g. `{"ticketId":"T-1","gate":"A"}`, broadcast as `{"type":"scan",...}`
 * - `GET /health`    `{status, reasons, sessions}`; `GET /metrics` Prometheus text
 *
 *     SESSION_TIMEOUT_MINUTES=30 PORT=3000 node --import tsx examples/ticket-scans/server.ts
 */
import { createServer } from 'node:http';
import express from 'express';
import { ConnectionRegistry, TimeoutMetrics, attachWebSockets, createLogger, healthHandler, installGracefulShutdown, metricsHandler, websocket } from '../../lib/index.js';
import { minutes, readSettingsOrExit } from '../shared/settings.js';
import { broadcastScan, scanHandler, startCleanupStatistics } from './handlers.js';

// ------------------------------------------------------------------ configuration, checked before anything listens

const { vars, config } = readSettingsOrExit('ticket-scans', {
  vars: {
    SESSION_TIMEOUT_MINUTES: minutes({ default: 30, desc: 'a scanner connection with no traffic for this long is closed' }),
    SESSION_CLEANUP_INTERVAL_MINUTES: minutes({ default: 1, desc: 'how often the cleanup statistics are logged' }),
  },
  // SESSION_TIMEOUT_MINUTES is the idle timeout; every other WS_* variable applies as usual.
  idleTimeoutFrom: ['SESSION_TIMEOUT_MINUTES', 60_000],
});
const logger = createLogger();

// ------------------------------------------------------------------ the service's TicketScanManager

const metrics = new TimeoutMetrics();
let stopCleanupStatistics = (): void => undefined;
const registry = new ConnectionRegistry({
  config,
  logger,
  metrics,
  onStart: (r) => {
    logger.info('Ticket scan service ready', { sessionTimeoutMinutes: vars.SESSION_TIMEOUT_MINUTES });
    // "Cleaned up N inactive session(s)" every SESSION_CLEANUP_INTERVAL_MINUTES (1 by default).
    stopCleanupStatistics = startCleanupStatistics(r, Math.round(vars.SESSION_CLEANUP_INTERVAL_MINUTES * 60_000));
  },
  onStop: () => stopCleanupStatistics(),
});

const app = express();
app.disable('x-powered-by');

app.post('/scans', express.json({ limit: '16kb' }), async (req, res) => {
  const scan: unknown = req.body;
  if (typeof scan !== 'object' || scan === null || Array.isArray(scan)) {
    res.status(400).json({ error: 'expected a JSON object, e.g. {"ticketId":"T-1","gate":"A"}' });
    return;
  }
  // One frame per scanner, each with its own send deadline; a dead scanner is closed and dropped.
  const result = await broadcastScan(registry, scan);
  res.status(202).json(result);
});
app.get('/health', healthHandler(registry));
app.get('/metrics', metricsHandler(metrics));
// Scanners only listen: what they send is activity, read and dropped (no unread queue builds up).
app.get('/ws/scans', websocket(scanHandler));

// ------------------------------------------------------------------ start and stop

const server = createServer(app);
const gateway = attachWebSockets(server, app, { registry, logger });
// SIGTERM/SIGINT: every scanner closed with 1001 going_away, then "Stopped session expiry", exit 0.
installGracefulShutdown(server, gateway, { logger, onClosed: () => registry.stop() });

server.listen(vars.PORT, () => {
  registry.start(); // "Started session expiry with 30.0 minute timeout"
  logger.info('ticket-scans listening', { url: `http://localhost:${vars.PORT}`, port: vars.PORT });
});
