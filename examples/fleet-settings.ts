/**
 * The example server's fleet settings: with `REDIS_URL` set it joins a fleet of nodes on that
 * Redis; without it nothing here is read and the server runs alone, as before.
 *
 * - `REDIS_URL`                 `redis://host:port` (or `rediss://`, with user/password/db as ioredis reads them)
 * - `NODE_ID`                   this node's name in the fleet; default `<hostname>-<port>`
 * - `WS_FLEET_PREFIX`           prefix of every Redis key and channel; default `ws-timeouts`
 * - `WS_FLEET_TTL`              seconds a node stays in the fleet counts after its last refresh; default 15
 * - `WS_FLEET_REQUEST_TIMEOUT`  seconds every fleet operation waits for the other nodes; default 1
 *
 * Problems are returned, not printed: the server reports them with the `WS_*` ones, all at once.
 */
import { hostname } from 'node:os';
import { NODE_ID_PATTERN } from '../lib/fleet/ids.js'; // the rule alone: this file loads no ioredis
import type { ConfigProblem } from '../lib/index.js';

export interface FleetSettings {
  redisUrl: string;
  nodeId: string;
  prefix: string;
  membershipTtlMs: number;
  requestTimeoutMs: number;
}

/** What `joinFleet` accepts as a prefix of keys and channels. */
const PREFIX = /^[A-Za-z0-9._:-]{1,100}$/;

/** `<hostname>-<port>` with anything a node id cannot hold replaced: stable across restarts of the same node. */
export function defaultNodeId(port: number): string {
  return `${hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 50)}-${port}`;
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallbackMs: number, minMs: number, problems: ConfigProblem[]): number {
  const text = env[name]?.trim();
  if (!text) return fallbackMs;
  const ms = Math.round(Number(text) * 1000);
  if (!/^\d+(\.\d+)?$/.test(text) || ms < minMs || ms > 3_600_000) {
    problems.push({ name, value: env[name], reason: `expected seconds from ${minMs / 1000} to 3600 (fractions allowed, e.g. 0.5)` });
  }
  return ms;
}

/** `url` with any user and password replaced by `***`, for the error message (even when it does not parse as a URL). */
function withoutPassword(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//***@');
}

/** The fleet settings, `null` without `REDIS_URL`; every problem found is pushed onto `problems`. */
export function readFleetSettings(env: NodeJS.ProcessEnv, port: number, problems: ConfigProblem[]): FleetSettings | null {
  const redisUrl = env.REDIS_URL?.trim();
  if (!redisUrl) return null;
  let protocol = '';
  try {
    protocol = new URL(redisUrl).protocol;
  } catch {
    // reported below
  }
  if (protocol !== 'redis:' && protocol !== 'rediss:') {
    problems.push({ name: 'REDIS_URL', value: withoutPassword(redisUrl), reason: 'expected a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379' });
  }
  const nodeId = env.NODE_ID?.trim() || defaultNodeId(port);
  if (!NODE_ID_PATTERN.test(nodeId)) problems.push({ name: 'NODE_ID', value: env.NODE_ID, reason: 'expected 1 to 64 letters, digits, ".", "_" or "-" (no ":")' });
  const prefix = env.WS_FLEET_PREFIX?.trim() || 'ws-timeouts';
  if (!PREFIX.test(prefix)) problems.push({ name: 'WS_FLEET_PREFIX', value: env.WS_FLEET_PREFIX, reason: 'expected 1 to 100 letters, digits, ".", "_", ":" or "-"' });
  const membershipTtlMs = seconds(env, 'WS_FLEET_TTL', 15_000, 300, problems);
  const requestTimeoutMs = seconds(env, 'WS_FLEET_REQUEST_TIMEOUT', 1_000, 50, problems);
  return { redisUrl, nodeId, prefix, membershipTtlMs, requestTimeoutMs };
}
