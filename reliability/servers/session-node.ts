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
 * it made. The parent SIGKILLs or SIGSTOPs it; a disconnect of the IPC channel ends it.
 */
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { joinFleet } from '../../lib/fleet/node.js';
import { trackSessions } from '../../lib/fleet/sweeper.js';
import { ConnectionRegistry, silentLogger } from '../../lib/index.js';
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

const registry = new ConnectionRegistry({
  logger: silentLogger,
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

// Report every sweep this node made (the parent checks that no two overlap).
const sweep = sessions.sweeper.sweep.bind(sessions.sweeper);
sessions.sweeper.sweep = async () => {
  const startedAt = Date.now();
  const result = await sweep();
  if (result && process.connected) {
    process.send!({ type: 'sweep', token: result.fencingToken, startedAt, endedAt: Date.now(), reaped: result.reaped, repeated: result.repeated, lockLost: result.lockLost });
  }
  return result;
};

process.send!({ type: 'ready', port: (server.http.address() as AddressInfo).port, nodeId: NODE_ID, pid: process.pid });
process.once('disconnect', () => {
  void (async () => {
    await server.close();
    await sessions.stop();
    await fleet.leave();
    store.disconnect();
  })();
});
