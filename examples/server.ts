/**
 * The example server (`npm start`): the whole toolkit on one Express app.
 *
 * - `GET /`           live dashboard (examples/public): every open WebSocket and timeouts by reason
 * - `ws /ws/echo`     each text message sent back unchanged, every timeout enforced
 * - `ws /ws/scans`    scanner dashboards; `POST /scans` broadcasts a ticket scan to them
 * - `GET /health`     JSON status and connection counts; `GET /metrics` Prometheus text
 *
 * The WebSocket handlers live in ./handlers.ts (starts nothing on import), tested with
 * `ws-timeouts/testing` in spec/examples/server.handlers.spec.ts.
 *
 * `PORT` (default 3000), `HOST` (default: every interface) and every `WS_*` variable, from the
 * environment or from `.env` in the current directory; a bad value prints every problem on
 * stderr and exits 1 before anything listens.
 */
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response } from 'express';
import {
  ConfigError,
  ConnectionRegistry,
  ReconnectBudget,
  TimeoutMetrics,
  attachWebSockets,
  checkDrainBudget,
  createLogger,
  formatConfigProblems,
  healthHandler,
  installGracefulShutdown,
  loadReconnectRate,
  loadTimeoutConfig,
  metricsHandler,
  websocket,
  wsTimeouts,
  type ConfigProblem,
  type TimeoutConfig,
} from '../lib/index.js';
import { loadDotEnv } from './shared/settings.js';
import { echoHandler, scansHandler, sendToScanners, type Scanners } from './handlers.js';

// ------------------------------------------------------------------ configuration, all checked first

function readSettings(env: NodeJS.ProcessEnv): { config: TimeoutConfig; port: number; host: string | undefined } {
  const problems: ConfigProblem[] = [];
  let config: TimeoutConfig | undefined;
  try {
    config = loadTimeoutConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  const rawPort = env.PORT?.trim() || '3000';
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port > 65_535) problems.push({ name: 'PORT', value: env.PORT, reason: 'expected a whole number from 0 to 65535' });
  if (problems.length > 0) {
    console.error(formatConfigProblems(problems, 'The example server cannot start'));
    process.exit(1);
  }
  return { config: config!, port, host: env.HOST?.trim() || undefined };
}

const envFile = loadDotEnv();
const { config, port, host } = readSettings(process.env);

// ------------------------------------------------------------------ the toolkit

const logger = createLogger();
const metrics = new TimeoutMetrics();
/** Lifetime closes and the SIGTERM drain share one pace: WS_FLEET_RECONNECT_RATE closes per second (default 200). */
const reconnectBudget = new ReconnectBudget({ rate: loadReconnectRate(process.env) }); // checked with the timeouts above
const registry = new ConnectionRegistry({ config, logger, metrics, managerOptions: { reconnectBudget } });

/** The open `/ws/scans` sockets: a posted scan goes to these, not to echo clients. */
const scanners: Scanners = new Set();

/**
 * Stand-in for real authentication: `?user=alice` names the connection (it becomes
 * `manager.userId`, shown on the dashboard and in every log line). A malformed name is refused
 * with 400 *before* the upgrade, as a real auth middleware would refuse with 401.
 */
function identify(req: Request, res: Response, next: NextFunction): void {
  const user = req.query.user;
  if (user === undefined) return next();
  if (typeof user !== 'string' || !/^[\w.-]{1,32}$/.test(user)) {
    res.status(400).type('text/plain').send('user must be 1 to 32 letters, digits, "_", "." or "-"');
    return;
  }
  res.locals.userId = user;
  next();
}

const app = express();
app.disable('x-powered-by');
app.use(wsTimeouts()); // the WS_* config on every request (already validated above)
app.use(express.static(fileURLToPath(new URL('./public/', import.meta.url))));

app.get('/health', healthHandler(registry));
app.get('/metrics', metricsHandler(metrics));
app.get('/api/connections', (req, res) => {
  res.set('Cache-Control', 'no-store').json(dashboardView(req.wsTimeouts ?? config));
});

app.post('/scans', express.json({ limit: '8kb' }), async (req, res) => {
  const body = (req.body ?? {}) as Record<string, unknown>;
  const ticketId = body.ticketId;
  if (typeof ticketId !== 'string' || ticketId.length === 0 || ticketId.length > 64) {
    res.status(400).json({ error: 'ticketId must be a string of 1 to 64 characters' });
    return;
  }
  const scan = {
    type: 'scan',
    ticketId,
    gate: typeof body.gate === 'string' ? body.gate.slice(0, 32) : undefined,
    status: typeof body.status === 'string' ? body.status.slice(0, 32) : 'valid',
    scannedAt: Date.now(),
  };
  // Each send has its own deadline (messageTimeoutMs): one slow scanner never holds up the others.
  const { scanners: count, delivered } = await sendToScanners(scanners, scan);
  logger.info('Ticket scan broadcast', { ticketId, scanners: count, delivered });
  res.status(202).json({ delivered });
});

app.get('/ws/echo', identify, websocket(echoHandler));
app.get('/ws/scans', identify, websocket(scansHandler(scanners)));

/** What the dashboard polls: one entry per open connection, plus the counters and the config. */
function dashboardView(active: TimeoutConfig) {
  // A route may override the idle timeout: the countdown bar needs each connection's own.
  const idleTimeouts = new Map<string, number>();
  for (const manager of registry.managers()) idleTimeouts.set(manager.id, manager.config.idleTimeoutMs);
  return {
    status: `${registry.size} open`,
    config: active,
    timeoutsByReason: registry.timeoutsByReason,
    connections: registry.snapshot().map((c) => ({
      id: c.id,
      route: c.labels.route ?? null,
      user: c.userId,
      ageMs: c.ageMs,
      idleTimeoutMs: idleTimeouts.get(c.id) ?? active.idleTimeoutMs,
      idleRemainingMs: c.idleRemainingMs,
      lastRttMs: c.lastRttMs,
      state: c.state,
    })),
  };
}

// ------------------------------------------------------------------ serve

// What the README advises for any server. Node's defaults let a client that sends its headers
// slowly hold a socket for up to 90 s; these drop it with 408 within about 11 s.
const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 }, app);
/** The largest message a client may send; anything larger is closed with 1009 (ws's default is 100 MiB). */
const MAX_PAYLOAD_BYTES = 64 * 1024;
const gateway = attachWebSockets(server, app, { registry, logger, wss: { maxPayload: MAX_PAYLOAD_BYTES } });
// SIGTERM: stop accepting, then close the sockets at the budget's pace (a rolling drain), within the timeout.
const SHUTDOWN_TIMEOUT_MS = 10_000;
installGracefulShutdown(server, gateway, { logger, timeoutMs: SHUTDOWN_TIMEOUT_MS, reconnectBudget });
/** What one node is expected to hold, for the drain check: WS_MAX_CONNECTIONS when set, else an estimate. */
const expectedConnections = /^\d+$/.test(process.env.WS_MAX_CONNECTIONS?.trim() ?? '') ? Number(process.env.WS_MAX_CONNECTIONS) : 1_000;
const drainCheck = checkDrainBudget({
  connections: expectedConnections,
  rate: reconnectBudget.rate,
  timeoutMs: SHUTDOWN_TIMEOUT_MS,
  closeTimeoutMs: config.closeTimeoutMs,
});
logger[drainCheck.ok ? 'info' : 'warn'](`Drain check: ${drainCheck.message}`, { ...drainCheck });

server.listen(port, host, () => {
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  logger.info('Example server listening', {
    url: `http://${host ?? 'localhost'}:${actual}`,
    port: actual,
    pid: process.pid, // to signal the server itself: `npm start` runs it under npm, sh and tsx
    envFile: envFile ?? null,
    maxPayloadBytes: MAX_PAYLOAD_BYTES,
    idleTimeoutMs: config.idleTimeoutMs,
    connectionTimeoutMs: config.connectionTimeoutMs,
    pingIntervalMs: config.pingIntervalMs,
    pongTimeoutMs: config.pongTimeoutMs,
    reconnectRate: reconnectBudget.rate,
  });
});
