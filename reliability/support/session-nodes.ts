/**
 * The parent side of ../servers/session-node.ts, for the session cases: start fleet nodes as
 * child processes on one redis-server, read what their disconnect hooks did, seed the records of
 * a node that is already gone.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { fleetConnectionId, instanceOf } from '../../lib/fleet/ids.js';
import { sessionKeys, sessionMember, type SessionRecord } from '../../lib/fleet/sessions.js';
import { track } from './children.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../servers/session-node.ts', import.meta.url));

export interface SweepEvent {
  node: string;
  token: number;
  startedAt: number;
  endedAt: number;
  reaped: number;
  repeated: number;
  lockLost: boolean;
}

export interface SessionNode {
  nodeId: string;
  child: ChildProcess;
  port: number;
  pid: number;
}

/** Starts a node; resolves once it listens and has joined the fleet. Its sweeps are pushed to `sweeps`. */
export function startSessionNode(nodeId: string, env: Record<string, string | number>, sweeps: SweepEvent[]): Promise<SessionNode> {
  const child = track(
    fork(SCRIPT, [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, NODE_ID: nodeId, ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`session node ${nodeId} not ready within 20 s`)), 20_000);
    child.once('exit', (code, signal) => reject(new Error(`session node ${nodeId} exited before it was ready (${code ?? signal})`)));
    child.on('message', (message: { type: string } & Record<string, unknown>) => {
      if (message.type === 'sweep') sweeps.push({ node: nodeId, ...(message as unknown as Omit<SweepEvent, 'node'>) });
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve({ nodeId, child, port: message.port as number, pid: message.pid as number });
      }
    });
  });
}

/** Kills `node` with `signal` and resolves once it has exited. */
export async function killNode(node: SessionNode, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => node.child.once('exit', () => resolve()));
  node.child.kill(signal);
  await exited;
}

export interface HookEntry {
  id: string;
  node: string;
  pid: number;
  token: number;
  repeated: boolean;
  reason: string;
  phase: 'start' | 'end';
  at: number;
}

/** What the nodes' disconnect hooks recorded, in the order Redis received it. */
export async function readHooks(redis: Redis, prefix: string): Promise<HookEntry[]> {
  return (await redis.lrange(`${prefix}:test:hooks`, 0, -1)).map((line) => JSON.parse(line) as HookEntry);
}

/** Writes the session records of a node run that is not a member (it died before the test looked). */
export async function seedDeadSessions(redis: Redis, prefix: string, nodeId: string, startedAt: number, count: number): Promise<string[]> {
  const keys = sessionKeys(prefix);
  const instance = instanceOf(nodeId, startedAt);
  const pipeline = redis.pipeline();
  pipeline.sadd(keys.instances, instance);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const record: SessionRecord = {
      fleetId: fleetConnectionId(instance, `c${i}`),
      nodeId,
      instance,
      connectionId: `c${i}`,
      userId: `user-${i}`,
      labels: { role: 'listener' },
      openedAt: startedAt,
      lastActivityAt: startedAt,
    };
    pipeline.hset(keys.records(instance), record.connectionId, JSON.stringify(record));
    pipeline.zadd(keys.activity, record.lastActivityAt, sessionMember(instance, record.connectionId));
    ids.push(record.fleetId);
  }
  await pipeline.exec();
  return ids;
}

/** Runs of each session's hook that started, by fleet id. */
export function startsById(hooks: HookEntry[]): Map<string, HookEntry[]> {
  const out = new Map<string, HookEntry[]>();
  for (const hook of hooks) {
    if (hook.phase !== 'start') continue;
    out.set(hook.id, [...(out.get(hook.id) ?? []), hook]);
  }
  return out;
}
