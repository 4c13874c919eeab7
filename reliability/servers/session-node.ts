/**
 * One fleet node of the session cases, in its own process (forked with `--import tsx`): a ws
 * server on 127.0.0.1 whose sockets join a `ConnectionRegistry` (`?user=` is the user id), the
 * registry joined to the fleet on the real redis-server at `REDIS_URL`, and `trackSessions` with
 * short intervals. Its disconnect hook plays an app's session store: it appends what it did to
 * the Redis list `<prefix>:test:hooks` (start and end, with this pid and the fencing token),
 * taking `HOOK_MS` in between.
 *
 * It tells the parent over IPC: `{ type: 'ready', port, nodeId, pid }` once listening, and
 * `{ type: 'sweep', token, startedAt, endedAt, reaped, repeated, lockLost }` after each sweep
 * it made (read from the sweep's log line). The parent SIGKILLs or SIGSTOPs it; a disconnect of the IPC channel ends it.
 */
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { joinFleet } from '../../lib/fleet/node.js';
import { trackSessions } from '../../lib/fleet/sweeper.js';
import { ConnectionRegistry, silentLogger, type Logger } from '../../lib/index.js';
import { startWsServer } from '../../spec/support/ws-server.js';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`session-node: ${name} is required`);
  return value;
};
const REDIS_URL = env('REDIS_URL');
const NODE_ID = env('NODE_ID');
const PREFIX = env('PREFIX', 'ws-timeouts');
const HOOK_MS = Number(env('HOOK_MS', '0'));
const num = (name: string, fallback: string): number => Number(env(name, fallback));

// Tells the parent about every sweep this node made, from the sweeper's own log line.
const logger: Logger = {
  ...silentLogger,
  info: (message, meta) => void report(message, meta, false),
  warn: (message, meta) => void report(message, meta, true),
};
function report(message: string, meta: Record<string, unknown> | undefined, lockLost: boolean): void {
  if (!meta || !process.connected) return;
  if (message !== 'Session sweep completed' && message !== 'Session sweep stopped: the sweeper lock was lost') return;
  const endedAt = Date.now();
  process.send!({
    type: 'sweep',
    token: meta.fencingToken,
    startedAt: endedAt - Math.round(meta.durationMs as number),
    endedAt,
    reaped: meta.cleanupCount,
    repeated: meta.repeatedHooks,
    lockLost,
  });
}

const registry = new ConnectionRegistry({
  logger,
  config: { idleTimeoutMs: 0, connectionTimeoutMs: 0, pingIntervalMs: 60_000, pongTimeoutMs: 120_000, resolutionMs: 100 },
});
const server = await startWsServer((ws, req) => {
  const user = new URL(req.url ?? '/', 'http://x').searchParams.get('user') ?? 'anonymous';
  registry.add(ws, { userId: user, labels: { role: 'listener' } });
});

// The app's own store connection: commands wait for a reconnect rather than fail (it is not the fleet bus).
const store = new Redis(REDIS_URL, { maxRetriesPerRequest: 3, enableOfflineQueue: true });
const fleet = await joinFleet({
  registry,
  redisUrl: REDIS_URL,
  nodeId: NODE_ID,
  prefix: PREFIX,
  membershipTtlMs: num('MEMBERSHIP_TTL_MS', '1500'),
  requestTimeoutMs: 500,
  logger: silentLogger,
});
const sessions = trackSessions(fleet, registry, {
  flushIntervalMs: num('FLUSH_MS', '200'),
  intervalMs: num('SWEEP_MS', '200'),
  lockTtlMs: num('LOCK_TTL_MS', '1500'),
  batchSize: num('BATCH', '50'),
  hookTimeoutMs: 5_000,
  onDisconnect: async (session, info) => {
    const entry = { id: session.fleetId, node: NODE_ID, pid: process.pid, token: info.fencingToken, repeated: info.repeated, reason: info.reason };
    await store.rpush(`${PREFIX}:test:hooks`, JSON.stringify({ ...entry, phase: 'start', at: Date.now() }));
    if (HOOK_MS > 0) await new Promise((resolve) => setTimeout(resolve, HOOK_MS));
    await store.rpush(`${PREFIX}:test:hooks`, JSON.stringify({ ...entry, phase: 'end', at: Date.now() }));
  },
});

process.send!({ type: 'ready', port: (server.http.address() as AddressInfo).port, nodeId: NODE_ID, pid: process.pid });
process.once('disconnect', () => {
  void (async () => {
    await server.close();
    await sessions.stop();
    await fleet.leave();
    store.disconnect();
  })();
});
