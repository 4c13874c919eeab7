/**
 * A fleet of example servers for multi-process tests: one throwaway `redis-server` and one
 * `npm start` per node id, each a child process with `REDIS_URL`, `NODE_ID` and the given
 * variables (short timeouts, a short membership TTL). Helpers read each node's HTTP API.
 */
import { RedisServer } from './redis-server.js';
import { startExample, type ExampleServer } from './example-server.js';

export interface FleetHealth {
  status: string;
  reasons: string[];
  fleet: { status: 'ok' | 'unavailable'; nodes: number; connections: number };
}

export interface ExampleFleet {
  redis: RedisServer;
  /** The nodes by id. */
  nodes: Record<string, ExampleServer>;
  /** SIGKILLs every node still running and the Redis server. */
  stop(): Promise<void>;
}

/**
 * Starts Redis (unless given one), then every node at once; resolves once each listens. A
 * `REDIS_URL` in `env` wins over the server's (e.g. a proxy in front of it).
 */
export async function startExampleFleet(ids: string[], env: Record<string, string>, redis?: RedisServer): Promise<ExampleFleet> {
  redis ??= await RedisServer.start();
  // Several processes compiling the server at once on a busy machine: more time than one alone.
  const started = await Promise.allSettled(ids.map((id) => startExample({ REDIS_URL: redis.url, ...env, NODE_ID: id }, { startTimeoutMs: 60_000 })));
  const nodes = Object.fromEntries(started.flatMap((s, i) => (s.status === 'fulfilled' ? [[ids[i]!, s.value]] : [])));
  const fleet: ExampleFleet = {
    redis,
    nodes,
    async stop() {
      await Promise.all(Object.values(nodes).map((node) => node.kill()));
      await redis!.stop();
    },
  };
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await fleet.stop();
    throw failed.reason;
  }
  return fleet;
}

/** GET /health of `node`. */
export async function health(node: ExampleServer): Promise<FleetHealth> {
  return (await fetch(`${node.httpUrl}/health`)).json() as Promise<FleetHealth>;
}

/** The fleet id of the one connection of `node` opened by `user` (GET /api/connections). */
export async function fleetIdOf(node: ExampleServer, user: string): Promise<string> {
  const view = (await (await fetch(`${node.httpUrl}/api/connections`)).json()) as { connections: Array<{ id: string; user: string | null }> };
  const mine = view.connections.filter((c) => c.user === user);
  if (mine.length !== 1) throw new Error(`expected one connection of ${user} on ${node.httpUrl}, found ${mine.length}`);
  return mine[0]!.id;
}

/** POST /api/connections/:id/close on `node`: the HTTP status and the result. */
export async function closeVia(node: ExampleServer, fleetId: string): Promise<{ status: number; result: string }> {
  const res = await fetch(`${node.httpUrl}/api/connections/${encodeURIComponent(fleetId)}/close`, { method: 'POST' });
  return { status: res.status, result: ((await res.json()) as { result: string }).result };
}

/** POST /scans on `node`. */
export async function postScan(node: ExampleServer, ticketId: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${node.httpUrl}/scans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ticketId, gate: 'A' }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/**
 * Polls `check` every 50 ms until it returns a truthy value, which it resolves with; rejects with
 * the last value after `timeoutMs`. For states another process reaches on its own schedule
 * (membership refreshes), where no event can be awaited.
 */
export async function pollUntil<T>(what: string, check: () => Promise<T>, timeoutMs = 10_000): Promise<Exclude<T, false | 0 | '' | null | undefined>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await check().catch(() => undefined);
    if (last) return last as Exclude<T, false | 0 | '' | null | undefined>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
