/**
 * Seed 003 on ws-timeouts: session cleanup with a background scheduler, session metrics and an
 * enhanced `/health`. Each WebSocket connection owns a session (kept in a small in-memory
 * store here; yours would be Redis or a database). Every `SESSION_CLEANUP_INTERVAL_MINUTES`,
 * sessions with no message for `SESSION_TIMEOUT_MINUTES` are closed (the idle notice, then
 * 4001), `SESSION_CLEANUP_BATCH_SIZE` at a time, and their stored data is deleted afterwards.
 *
 * - `ws /ws/session`  sends `{"type":"session","sessionId":…}`; each message counts as activity and gets `{"type":"ack"}`
 * - `GET /health`     `healthy`, or `degraded` above 1000 sessions or `SESSION_MAX_MEMORY_MB`
 * - `GET /metrics`    Prometheus text
 *
 *     SESSION_TIMEOUT_MINUTES=30 SESSION_CLEANUP_INTERVAL_MINUTES=15 npx tsx examples/session-cleanup/server.ts
 */
import { randomUUID } from 'node:crypto';
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

/** A number above 0 (fractions allowed) of `unit`, at least 1 ms once converted with `msPerUnit`. */
const positive = (unit: string, msPerUnit = 0) =>
  makeValidator<number>((input) => {
    const text = String(input).trim();
    const value = Number(text);
    if (text === '' || !Number.isFinite(value) || value <= 0) {
      throw new EnvError(`expected a positive number of ${unit} (fractions allowed, e.g. 0.5), got "${text}"`);
    }
    if (msPerUnit > 0 && value * msPerUnit < 1) throw new EnvError(`${text} ${unit} is under 1 ms`);
    return value;
  });

const positiveInteger = makeValidator<number>((input) => {
  const text = String(input).trim();
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1) throw new EnvError(`expected a whole number of at least 1, got "${text}"`);
  return value;
});

const ENV_SPEC = {
  PORT: port({ default: 3000, desc: 'HTTP port' }),
  SESSION_TIMEOUT_MINUTES: positive('minutes', 60_000)({ default: 30, desc: 'a session with no message for this long is cleaned up' }),
  SESSION_CLEANUP_INTERVAL_MINUTES: positive('minutes', 60_000)({ default: 15, desc: 'how often the cleanup runs' }),
  SESSION_CLEANUP_BATCH_SIZE: positiveInteger({ default: 50, desc: 'sessions cleaned before yielding to the event loop' }),
  SESSION_MAX_MEMORY_MB: positive('MiB')({ default: 100, desc: '/health is degraded above this estimated session memory' }),
};

function fail(problems: string[]): never {
  console.error(`session-cleanup: invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.join('\n')}`);
  process.exit(1);
}

function readSettings(env: NodeJS.ProcessEnv) {
  const problems: string[] = [];
  const settings = cleanEnv(env, ENV_SPEC, {
    reporter: ({ errors }) => {
      for (const [name, error] of Object.entries(errors)) problems.push(`  ${name}=${JSON.stringify(env[name])}: ${error?.message}`);
    },
  });
  if (problems.length > 0) fail(problems);
  let config: TimeoutConfig;
  try {
    // As in seed 003, the cleanup run expires sessions (so a session lives between the timeout
    // and the timeout plus one interval). Set WS_IDLE_TIMEOUT to also expire them on the dot.
    config = loadTimeoutConfig(env, {
      idleTimeoutMs: env.WS_IDLE_TIMEOUT ? undefined : 0,
      connectionTimeoutMs: env.WS_CONNECTION_TIMEOUT ? undefined : 0,
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    fail(err.problems.map((p) => `  ${p.name}=${JSON.stringify(p.value)}: ${p.reason}`));
  }
  return {
    port: settings.PORT,
    config,
    sessionTimeoutMs: Math.round(settings.SESSION_TIMEOUT_MINUTES * 60_000),
    cleanupIntervalMs: Math.round(settings.SESSION_CLEANUP_INTERVAL_MINUTES * 60_000),
    batchSize: settings.SESSION_CLEANUP_BATCH_SIZE,
    maxMemoryMb: settings.SESSION_MAX_MEMORY_MB,
  };
}

const settings = readSettings(process.env);
const logger = createLogger();

// ------------------------------------------------------------------ the session store (stands in for Redis)

interface Session {
  createdAt: number;
  data: Record<string, unknown>;
}

class SessionStore {
  private readonly sessions = new Map<string, Session>();

  get size(): number {
    return this.sessions.size;
  }

  create(): string {
    const id = randomUUID();
    this.sessions.set(id, { createdAt: Date.now(), data: {} });
    return id;
  }

  /** Asynchronous, as a real store is; a rejection here is what the registry logs as a SessionStoreError. */
  async delete(id: string): Promise<void> {
    this.sessions.delete(id);
  }
}

const store = new SessionStore();
const sessionOf = new WeakMap<object, string>();

// ------------------------------------------------------------------ the SessionManager of seed 003

const metrics = new TimeoutMetrics();
const registry = new ConnectionRegistry({
  config: settings.config,
  logger,
  metrics,
  sessionTimeoutMs: settings.sessionTimeoutMs,
  batchSize: settings.batchSize,
  managerOptions: { onMessage: (_message, manager) => void manager.sendJsonWithTimeout({ type: 'ack' }) },
  // The stored session goes once its connection has closed, however it closed. A failure is
  // logged by the registry as a SessionStoreError and counted in hookErrors.
  onDisconnect: async (manager) => {
    const id = sessionOf.get(manager);
    if (id !== undefined) await store.delete(id);
  },
});

const app = express();
app.disable('x-powered-by');
app.get('/health', healthHandler(registry, { maxMemoryMb: settings.maxMemoryMb }));
app.get('/metrics', metricsHandler(metrics));

const server = createServer(app);
const wss = new WebSocketServer({ server, path: '/ws/session' });
wss.on('error', (err) => logger.error('WebSocket server error', { error: err }));
wss.on('connection', (ws) => {
  const manager = registry.add(ws, { labels: { route: '/ws/session' } });
  const sessionId = store.create();
  sessionOf.set(manager, sessionId);
  void manager.sendJsonWithTimeout({ type: 'session', sessionId });
});

// ------------------------------------------------------------------ start and stop

server.listen(settings.port, () => {
  registry.start();
  registry.startCleanupScheduler(settings.cleanupIntervalMs); // "Started session cleanup scheduler"
  logger.info('session-cleanup listening', {
    url: `http://localhost:${settings.port}`,
    port: settings.port,
    sessionTimeoutMs: settings.sessionTimeoutMs,
    cleanupIntervalMs: settings.cleanupIntervalMs,
    batchSize: settings.batchSize,
    maxMemoryMb: settings.maxMemoryMb,
  });
});

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info('Shutting down', { signal });
  server.close();
  await registry.closeAll(); // 1001 going_away
  await registry.stop(); // stops the cleanup scheduler, waits for a running cleanup and the store deletes
  logger.info('Sessions left in the store', { sessions: store.size });
  server.closeAllConnections();
  process.exit(0);
}
process.once('SIGTERM', (signal) => void shutdown(signal));
process.once('SIGINT', (signal) => void shutdown(signal));
