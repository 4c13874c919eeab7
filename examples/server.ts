/**
 * The example server (`npm start`): the whole toolkit on one Express app.
 *
 * - `GET /`           live dashboard (examples/public): every open WebSocket and timeouts by reason
 * - `ws /ws/echo`     each text message sent back unchanged, every timeout enforced
 * - `ws /ws/scans`    scanner dashboards; `POST /scans` broadcasts a ticket scan to them
 * - `GET /health`     JSON status and connection counts; `GET /metrics` Prometheus text
 * - `POST /api/connections/:id/close`  closes one connection: 200 closed, 410 Gone
 *
 * With `REDIS_URL` set the server is one node of a fleet on that Redis (`loadFleetSettings` reads
 * `NODE_ID`, default `<hostname>-<port>` here, `WS_FLEET_PREFIX`, `WS_FLEET_TTL`,
 * `WS_FLEET_REQUEST_TIMEOUT`; see guides/fleet.md): a posted scan reaches the scanners of every node, a connection
 * held by any node can be closed from any node, and `/health` and the dashboard show the fleet.
 * `npm run fleet` starts a local Redis and three nodes (scripts/fleet.ts).
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
  CloseCode,
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
  loadReconnectBudgetOptions,
  loadTimeoutConfig,
  metricsHandler,
  websocket,
  wsTimeouts,
  type ConfigProblem,
  type TimeoutConfig,
} from '../lib/index.js';
import type { FleetNode } from '../lib/fleet/index.js';
import { explainFleetSettings, type FleetSettings } from '../lib/fleet/settings.js'; // no ioredis behind it
import { defaultNodeId } from '../lib/fleet/ids.js'; // nor behind this
import { loadDotEnv } from './shared/settings.js';
import { echoHandler, scansHandler, sendToScanners, type Scanners } from './handlers.js';

// ------------------------------------------------------------------ configuration, all checked first

function readSettings(env: NodeJS.ProcessEnv): { config: TimeoutConfig; port: number; host: string | undefined; fleetSettings: FleetSettings | null } {
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
  const fleet = explainFleetSettings(env);
  problems.push(...fleet.problems);
  // Without NODE_ID: `<hostname>-<port>`, stable across restarts of the same node (joinFleet's default has the pid).
  const fleetSettings = fleet.settings && { nodeId: defaultNodeId(port), ...fleet.settings };
  if (problems.length > 0) {
    console.error(formatConfigProblems(problems, 'The example server cannot start'));
    process.exit(1);
  }
  return { config: config!, port, host: env.HOST?.trim() || undefined, fleetSettings };
}

const envFile = loadDotEnv();
const { config, port, host, fleetSettings } = readSettings(process.env);

// ------------------------------------------------------------------ the toolkit

const logger = createLogger();
const metrics = new TimeoutMetrics();
/**
 * Lifetime closes and the SIGTERM drain share one pace: WS_FLEET_RECONNECT_RATE closes per second as the
 * clients see them (default 200), spaced for WS_FLEET_RECONNECT_JITTER seconds of delivery jitter (default 0.25).
 */
// The rate is the fleet's: each node takes its share of it (the live node count, from the fleet's last membership read).
const reconnectBudget = new ReconnectBudget({
  ...loadReconnectBudgetOptions(process.env), // checked with the timeouts above
  nodes: () => Math.max(1, fleet?.health().nodes ?? 1),
});
const registry = new ConnectionRegistry({ config, logger, metrics, managerOptions: { reconnectBudget } });

/** The open `/ws/scans` sockets: a posted scan goes to these, not to echo clients. */
const scanners: Scanners = new Set();

/**
 * This node of the fleet, or null when the server runs alone (no `REDIS_URL`). The fleet entry
 * point (and ioredis behind it) is loaded only then, as an application without Redis would.
 */
const fleet: FleetNode | null = fleetSettings
  ? await import('../lib/fleet/index.js').then(({ joinFleet }) => joinFleet({ registry, logger, metrics, ...fleetSettings }))
  : null;

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

app.get('/health', healthHandler(registry, fleet ? { fleet } : {}));
app.get('/metrics', metricsHandler(metrics));
app.get('/api/connections', async (req, res) => {
  res.set('Cache-Control', 'no-store').json(await dashboardView(req.wsTimeouts ?? config));
});

/** Closes one connection, wherever in the fleet it is: 200 closed, 410 already gone, 503 when the fleet cannot tell. */
app.post('/api/connections/:id/close', async (req, res) => {
  const result = await closeConnection(req.params.id);
  logger.info('Connection close requested', { connectionId: req.params.id, result });
  res.status(result === 'closed' ? 200 : result === 'gone' ? 410 : 503).json({ result });
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
  if (fleet) {
    // Every /ws/scans socket of every node; the answer names the nodes that did not confirm in time.
    const result = await fleet.broadcast(scan, { route: '/ws/scans' });
    logger.info('Ticket scan broadcast to the fleet', { ticketId, ...result });
    res.status(202).json({ delivered: result.sent, ...result });
    return;
  }
  // Each send has its own deadline (messageTimeoutMs): one slow scanner never holds up the others.
  const { scanners: count, delivered } = await sendToScanners(scanners, scan);
  logger.info('Ticket scan broadcast', { ticketId, scanners: count, delivered });
  res.status(202).json({ delivered });
});

app.get('/ws/echo', identify, websocket(echoHandler));
app.get('/ws/scans', identify, websocket(scansHandler(scanners)));

/** Closes a connection of this node (by its id) or, in a fleet, of any node (by its fleet id). */
async function closeConnection(id: string): Promise<'closed' | 'gone' | 'unknown' | 'unavailable'> {
  const notice = { type: 'closedByOperator', message: 'An operator closed this connection' };
  if (fleet) return fleet.close(id, { code: CloseCode.NormalClosure, reason: 'closed_by_operator', notice });
  const manager = [...registry.managers()].find((m) => m.id === id);
  if (!manager) return 'gone';
  await manager.sendJsonWithTimeout(notice);
  await manager.gracefulClose(CloseCode.NormalClosure, 'closed_by_operator'); // a peer already gone is closed too
  return 'closed';
}

/** The fleet part of the dashboard: this node, the fleet's health, and every live node's counts (the last read while Redis is unreachable). */
async function fleetView(node: FleetNode) {
  // Members first: health() totals the last read, which is then this one, so the totals match the rows.
  const members = await node.members();
  return { nodeId: node.nodeId, ...node.health(), members };
}

/** What the dashboard polls: one entry per open connection, plus the counters and the config. */
async function dashboardView(active: TimeoutConfig) {
  // A route may override the idle timeout: the countdown bar needs each connection's own.
  const idleTimeouts = new Map<string, number>();
  const fleetIds = new Map<string, string>();
  for (const manager of registry.managers()) {
    idleTimeouts.set(manager.id, manager.config.idleTimeoutMs);
    if (fleet) fleetIds.set(manager.id, fleet.idOf(manager));
  }
  return {
    status: `${registry.size} open`,
    config: active,
    timeoutsByReason: registry.timeoutsByReason,
    fleet: fleet ? await fleetView(fleet) : null,
    connections: registry.snapshot().map((c) => ({
      id: fleetIds.get(c.id) ?? c.id,
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
installGracefulShutdown(server, gateway, {
  logger,
  timeoutMs: SHUTDOWN_TIMEOUT_MS,
  reconnectBudget,
  // The node leaves the fleet once its sockets are closed: its key goes, the others stop counting it.
  onClosed: () => fleet?.leave(),
});
/** What one node is expected to hold, for the drain check: WS_MAX_CONNECTIONS when set, else an estimate. */
const expectedConnections = /^\d+$/.test(process.env.WS_MAX_CONNECTIONS?.trim() ?? '') ? Number(process.env.WS_MAX_CONNECTIONS) : 1_000;
const drainCheck = checkDrainBudget({
  connections: expectedConnections,
  rate: reconnectBudget.rate,
  timeoutMs: SHUTDOWN_TIMEOUT_MS,
  closeTimeoutMs: config.closeTimeoutMs,
  jitterMs: reconnectBudget.jitterMs,
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
    nodeId: fleet?.nodeId ?? null,
    maxPayloadBytes: MAX_PAYLOAD_BYTES,
    idleTimeoutMs: config.idleTimeoutMs,
    connectionTimeoutMs: config.connectionTimeoutMs,
    pingIntervalMs: config.pingIntervalMs,
    pongTimeoutMs: config.pongTimeoutMs,
    reconnectRate: reconnectBudget.rate,
  });
});
