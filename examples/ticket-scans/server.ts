/**
 * Seeds 000/001 on ws-timeouts: the ticket-scan service. Scanner dashboards connect over
 * WebSocket; every scan posted to the API is broadcast to all of them; a dashboard with no
 * traffic for `SESSION_TIMEOUT_MINUTES` is expired in the background.
 *
 * - `ws /ws/scans`   scanner connections (their messages count as activity and are otherwise ignored)
 * - `POST /scans`    a JSON scan, e.g. `{"ticketId":"T-1","gate":"A"}`, broadcast as `{"type":"scan",...}`
 * - `GET /health`    `{status, reasons, sessions}`; `GET /metrics` Prometheus text
 *
 *     SESSION_TIMEOUT_MINUTES=30 PORT=3000 npx tsx examples/ticket-scans/server.ts
 */
import { createServer } from 'node:http';
import { EnvError, cleanEnv, makeValidator, port } from 'envalid';
import express from 'express';
import { WebSocketServer } from 'ws';
import {
  ConfigError,
  ConnectionRegistry,
  TimeoutMetrics,
  createLogger,
  healthHandler,
  loadTimeoutConfig,
  metricsHandler,
  type TimeoutConfig,
} from '../../lib/index.js';

// ------------------------------------------------------------------ configuration, checked before anything listens

/** Minutes, fractions allowed (`0.5` = 30 s), more than 0 and at least 1 ms. */
const minutes = makeValidator<number>((input) => {
  const text = String(input).trim();
  const value = Number(text);
  if (text === '' || !Number.isFinite(value) || value <= 0) {
    throw new EnvError(`expected a positive number of minutes (fractions allowed, e.g. 0.5), got "${text}"`);
  }
  if (value * 60_000 < 1) throw new EnvError(`${text} minutes is under 1 ms`);
  return value;
});

function readSettings(env: NodeJS.ProcessEnv): { port: number; sessionTimeoutMinutes: number; config: TimeoutConfig } {
  const problems: string[] = [];
  const settings = cleanEnv(
    env,
    {
      PORT: port({ default: 3000, desc: 'HTTP port' }),
      SESSION_TIMEOUT_MINUTES: minutes({ default: 30, desc: 'a scanner connection with no traffic for this long is closed' }),
    },
    {
      reporter: ({ errors }) => {
        for (const [name, error] of Object.entries(errors)) problems.push(`  ${name}=${JSON.stringify(env[name])}: ${error?.message}`);
      },
    },
  );
  if (problems.length > 0) fail(problems);
  const sessionTimeoutMinutes = settings.SESSION_TIMEOUT_MINUTES;
  let config: TimeoutConfig;
  try {
    // SESSION_TIMEOUT_MINUTES is the idle timeout. Seed 000 has no lifetime limit, so none
    // unless WS_CONNECTION_TIMEOUT asks for one; every other WS_* variable applies as usual.
    config = loadTimeoutConfig(env, {
      idleTimeoutMs: sessionTimeoutMinutes * 60_000,
      connectionTimeoutMs: env.WS_CONNECTION_TIMEOUT ? undefined : 0,
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // The idle timeout came from SESSION_TIMEOUT_MINUTES: say so wherever a problem names it.
    const named = (text: string) => text.replaceAll('idleTimeoutMs', 'SESSION_TIMEOUT_MINUTES (idleTimeoutMs)');
    fail(err.problems.map((p) => `  ${named(p.name)}=${JSON.stringify(p.value)}: ${named(p.reason)}`));
  }
  return { port: settings.PORT, sessionTimeoutMinutes, config };
}

function fail(problems: string[]): never {
  console.error(`ticket-scans: invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.join('\n')}`);
  process.exit(1);
}

const settings = readSettings(process.env);
const logger = createLogger();

// ------------------------------------------------------------------ the TicketScanManager of seed 000

const metrics = new TimeoutMetrics();
const registry = new ConnectionRegistry({
  config: settings.config,
  logger,
  metrics,
  // Scanners only listen: what they send is activity and nothing more (no unread queue builds up).
  managerOptions: { onMessage: () => undefined },
  onStart: () => {
    logger.info('Ticket scan service ready', { sessionTimeoutMinutes: settings.sessionTimeoutMinutes });
  },
});

const app = express();
app.disable('x-powered-by');
app.use(express.json({ limit: '16kb' }));

app.post('/scans', async (req, res) => {
  const scan: unknown = req.body;
  if (typeof scan !== 'object' || scan === null || Array.isArray(scan)) {
    res.status(400).json({ error: 'expected a JSON object, e.g. {"ticketId":"T-1","gate":"A"}' });
    return;
  }
  // One frame per scanner, each with its own send deadline; a dead scanner is closed and dropped.
  const result = await registry.broadcast({ type: 'scan', scan, timestamp: Date.now() });
  res.status(202).json(result);
});
app.get('/health', healthHandler(registry));
app.get('/metrics', metricsHandler(metrics));

const server = createServer(app);
const wss = new WebSocketServer({ server, path: '/ws/scans' });
wss.on('connection', (ws) => registry.add(ws, { labels: { route: '/ws/scans' } }));
wss.on('error', (err) => logger.error('WebSocket server error', { error: err }));

// ------------------------------------------------------------------ start and stop

server.listen(settings.port, () => {
  registry.start(); // "Started session expiry with 30.0 minute timeout"
  logger.info('ticket-scans listening', { url: `http://localhost:${settings.port}`, port: settings.port });
});

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info('Shutting down', { signal });
  server.close(); // no new connections
  await registry.closeAll(); // 1001 going_away, each bounded by WS_CLOSE_TIMEOUT
  await registry.stop(); // "Stopped session expiry"
  server.closeAllConnections();
  process.exit(0);
}
process.once('SIGTERM', (signal) => void shutdown(signal));
process.once('SIGINT', (signal) => void shutdown(signal));
