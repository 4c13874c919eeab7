/**
 * Seed 002 on ws-timeouts: the idle-connection handler of a live-translation service.
 * Speakers talk, listeners hear; a connection with no message for
 * `CONNECTION_IDLE_TIMEOUT_SECONDS` gets the `connectionTimeout` notice, is closed with 4001,
 * and the disconnect handler runs afterwards, asynchronously. Timeouts are counted by role and
 * reason, along with connections checked, idle detected and connections closed.
 *
 * - `ws /ws?role=speaker` or `ws /ws?role=listener` (the default); another role gets 400
 * - a speaker's text message is relayed to every listener
 * - `GET /metrics` Prometheus text; `GET /health` JSON
 *
 *     CONNECTION_IDLE_TIMEOUT_SECONDS=120 PORT=3000 npx tsx examples/idle-handler/server.ts
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
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
  type Message,
  type TimeoutConfig,
  type WebSocketTimeoutManager,
} from '../../lib/index.js';

// ------------------------------------------------------------------ configuration, checked before anything listens

/** Seconds, fractions allowed, more than 0 and at least 1 ms. */
const seconds = makeValidator<number>((input) => {
  const text = String(input).trim();
  const value = Number(text);
  if (text === '' || !Number.isFinite(value) || value <= 0) {
    throw new EnvError(`expected a positive number of seconds (fractions allowed, e.g. 0.5), got "${text}"`);
  }
  if (value * 1000 < 1) throw new EnvError(`${text} seconds is under 1 ms`);
  return value;
});

function fail(problems: string[]): never {
  console.error(`idle-handler: invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.join('\n')}`);
  process.exit(1);
}

function readSettings(env: NodeJS.ProcessEnv): { port: number; idleSeconds: number; config: TimeoutConfig } {
  const problems: string[] = [];
  const settings = cleanEnv(
    env,
    {
      PORT: port({ default: 3000, desc: 'HTTP port' }),
      CONNECTION_IDLE_TIMEOUT_SECONDS: seconds({ default: 120, desc: 'a connection with no message for this long is closed' }),
    },
    {
      reporter: ({ errors }) => {
        for (const [name, error] of Object.entries(errors)) problems.push(`  ${name}=${JSON.stringify(env[name])}: ${error?.message}`);
      },
    },
  );
  if (problems.length > 0) fail(problems);
  const idleSeconds = settings.CONNECTION_IDLE_TIMEOUT_SECONDS;
  let config: TimeoutConfig;
  try {
    // Seed 002 has no lifetime limit: none unless WS_CONNECTION_TIMEOUT asks for one.
    config = loadTimeoutConfig(env, { idleTimeoutMs: idleSeconds * 1000, connectionTimeoutMs: env.WS_CONNECTION_TIMEOUT ? undefined : 0 });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // The idle timeout came from CONNECTION_IDLE_TIMEOUT_SECONDS: say so wherever a problem names it.
    const named = (text: string) => text.replaceAll('idleTimeoutMs', 'CONNECTION_IDLE_TIMEOUT_SECONDS (idleTimeoutMs)');
    fail(err.problems.map((p) => `  ${named(p.name)}=${JSON.stringify(p.value)}: ${named(p.reason)}`));
  }
  return { port: settings.PORT, idleSeconds, config };
}

const settings = readSettings(process.env);
const logger = createLogger();

// ------------------------------------------------------------------ speakers, listeners and the idle handler

type Role = 'speaker' | 'listener';
const ROLES: readonly Role[] = ['speaker', 'listener'];
const isListener = (manager: WebSocketTimeoutManager): boolean => manager.labels?.role === 'listener';

/** A speaker's text is relayed to every listener (which counts as activity for both). */
function relay(message: Message, from: WebSocketTimeoutManager): void {
  if (from.labels?.role !== 'speaker' || typeof message !== 'string') return;
  void registry.broadcast(message, { filter: isListener });
}

const metrics = new TimeoutMetrics();
const registry = new ConnectionRegistry({
  config: settings.config,
  logger,
  metrics, // timeouts_total{reason,role}, connections_checked_total, idle_detected_total, connections_closed_total
  managerOptions: { onMessage: relay },
  // Seed 002's disconnect handler: after the close, asynchronously; a failure is logged, never blocks.
  onDisconnect: async (manager, { code, timeoutReason }) => {
    logger.info('Disconnect handler: connection cleaned up', {
      connectionId: manager.id,
      role: manager.labels?.role,
      code,
      timeoutReason,
    });
  },
});

const app = express();
app.disable('x-powered-by');
app.get('/metrics', metricsHandler(metrics));
app.get('/health', healthHandler(registry));

const server = createServer(app);
const wss = new WebSocketServer({ noServer: true });
wss.on('error', (err) => logger.error('WebSocket server error', { error: err }));

// The role is checked before the upgrade, so a bad one gets a plain 400 and no socket.
server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
  socket.on('error', () => undefined);
  const url = new URL(req.url ?? '/', 'http://localhost');
  const role = url.searchParams.get('role') ?? 'listener';
  if (url.pathname !== '/ws' || !(ROLES as readonly string[]).includes(role)) {
    const status = url.pathname !== '/ws' ? '404 Not Found' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${status === '404 Not Found' ? 'no such route' : 'role must be speaker or listener'}\n`);
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => registry.add(ws, { labels: { role } }));
});

// ------------------------------------------------------------------ start and stop

server.listen(settings.port, () => {
  registry.start();
  logger.info('idle-handler listening', { url: `http://localhost:${settings.port}`, port: settings.port, idleSeconds: settings.idleSeconds });
});

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info('Shutting down', { signal });
  server.close();
  await registry.closeAll(); // 1001 going_away
  await registry.stop(); // waits for pending disconnect handlers
  server.closeAllConnections();
  process.exit(0);
}
process.once('SIGTERM', (signal) => void shutdown(signal));
process.once('SIGINT', (signal) => void shutdown(signal));
