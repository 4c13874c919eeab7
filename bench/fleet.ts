/**
 * Figure 6, the fleet: example-server nodes (examples/server.ts through tsx, as `npm run fleet`
 * runs them) on one throwaway redis-server, clients in their own processes (bench/fleet-clients.ts).
 *
 * - broadcast latency: a POST /scans on node a until each of 3 × N `/ws/scans` sockets (N per
 *   node) has the scan, p50/p99 over every socket of every round; next to the same broadcast
 *   inside one node without Redis holding all 3 × N sockets;
 * - Redis commands per second per node at rest (INFO commandstats delta over a window, INFO
 *   itself left out) with 3 × N connections and with a tenth of them: membership is per node,
 *   so the rate must not grow with connections;
 * - remote close round trip: POST /api/connections/:id/close on node b for a socket on node a,
 *   until b answers (a has closed it by then), p50/p99.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { RedisServer } from '../spec/support/redis-server.js';
import type { Row } from './report.js';
import { fmt, percentile } from './stats.js';
import { startWorker, type Worker } from './workers.js';

export interface FleetPlan {
  socketsPerNode: number;
  /** Broadcasts measured (after 3 not measured). */
  rounds: number;
  /** The window of each at-rest measurement, ms; a multiple of the membership refresh (TTL/3 = 1 s here). */
  restWindowMs: number;
  /** Remote closes measured. */
  closes: number;
}

export interface Latency {
  p50Ms: number;
  p99Ms: number;
  samples: number;
}

export interface FleetResult {
  socketsPerNode: number;
  broadcast: { oneNode: Latency; fleet: Latency };
  atRest: Array<{ connections: number; commandsPerSecPerNode: number; byCommand: Record<string, number> }>;
  remoteClose: Latency;
}

const SERVER = fileURLToPath(new URL('../examples/server.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NODE_IDS = ['a', 'b', 'c'];
/** Timeouts that never fire during the run: the figure is the fleet, not the timers. */
const QUIET = { WS_IDLE_TIMEOUT: '0', WS_CONNECTION_TIMEOUT: '0', WS_PING_INTERVAL: '25', WS_PONG_TIMEOUT: '60' };
/**
 * Membership TTL of the nodes, s: a refresh (and a canary) every TTL/3. Shorter than the 15 s
 * default so that a short window holds enough refreshes to compare; Redis commands at rest scale
 * with 1/TTL (five times fewer at the default).
 */
export const BENCH_FLEET_TTL_S = 3;
const now = (): number => performance.timeOrigin + performance.now();

interface Node {
  id: string;
  url: string;
  wsUrl: string;
  child: ChildProcess;
}

const nodes = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of nodes) child.kill('SIGKILL');
});

/** One example server on a free port (LOG_LEVEL info: its "listening" line gives the port); resolves once it listens. */
async function startNode(id: string, env: Record<string, string>): Promise<Node> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(WS_|PORT$|HOST$|REDIS_URL$|NODE_ID$|NODE_OPTIONS$)/.test(name)));
  const raiseLimit = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"';
  const child = spawn('/bin/sh', ['-c', raiseLimit, 'sh', process.execPath, '--import', 'tsx', SERVER], {
    cwd: ROOT,
    env: { ...inherited, ...QUIET, ...env, LOG_LEVEL: 'info', NODE_ID: id, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  nodes.add(child);
  child.once('exit', () => nodes.delete(child));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    let listening = false; // from then on its log is only drained
    const timer = setTimeout(() => reject(new Error(`bench fleet: node ${id} did not listen within 30 s`)), 30_000);
    child.once('exit', (code) => reject(new Error(`bench fleet: node ${id} exited (${code}) before listening`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      if (listening) return;
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes('"Example server listening"'));
      if (!line) return;
      listening = true;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { port: number }).port);
    });
  });
  return { id, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}`, child };
}

async function stopNode(node: Node): Promise<void> {
  if (node.child.exitCode !== null) return;
  const exited = new Promise((resolve) => node.child.once('exit', resolve));
  node.child.kill('SIGKILL');
  await exited;
}

async function getJson<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, init);
  return { status: res.status, body: (await res.json()) as T };
}

/** Polls `check` every 100 ms until true, for at most `timeoutMs`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`bench fleet: timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function latency(values: number[]): Latency {
  return { p50Ms: percentile(values, 50), p99Ms: percentile(values, 99), samples: values.length };
}

/** Posts `rounds` scans on `poster` (3 more first, not measured); each socket's delay from the POST to its copy. */
async function measureBroadcast(poster: Node, clients: Worker[], perClient: number, rounds: number, label: string): Promise<Latency> {
  const delays: number[] = [];
  for (let round = -3; round < rounds; round++) {
    const ticketId = `${label}-${round}`;
    const postedAt = now();
    const { status } = await getJson(`${poster.url}/scans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ticketId }) });
    if (status !== 202) throw new Error(`bench fleet: POST /scans answered ${status}`);
    const arrivals = await Promise.all(clients.map((c) => c.call<number[]>('arrivals', { ticketId, expected: perClient })));
    const got = arrivals.reduce((n, list) => n + list.length, 0);
    if (got !== perClient * clients.length) throw new Error(`bench fleet: scan ${ticketId} reached ${got} of ${perClient * clients.length} sockets`);
    if (round >= 0) for (const list of arrivals) for (const at of list) delays.push(at - postedAt);
  }
  return latency(delays);
}

async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const info = await redis.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (match[1] !== 'info') calls[match[1]!] = Number(match[2]);
  return calls;
}

async function atRest(redis: Redis, windowMs: number, connections: number): Promise<FleetResult['atRest'][number]> {
  const before = await commandCalls(redis);
  await new Promise((resolve) => setTimeout(resolve, windowMs));
  const after = await commandCalls(redis);
  const byCommand: Record<string, number> = {};
  let total = 0;
  for (const [name, calls] of Object.entries(after)) {
    const delta = calls - (before[name] ?? 0);
    if (delta === 0) continue;
    byCommand[name] = +(delta / (windowMs / 1000) / NODE_IDS.length).toFixed(2);
    total += delta;
  }
  return { connections, commandsPerSecPerNode: +(total / (windowMs / 1000) / NODE_IDS.length).toFixed(2), byCommand };
}

async function fleetCount(node: Node): Promise<{ nodes: number; connections: number }> {
  return (await getJson<{ fleet: { nodes: number; connections: number } }>(`${node.url}/health`)).body.fleet;
}

export async function runFleet(plan: FleetPlan, log: (line: string) => void): Promise<FleetResult> {
  const n = plan.socketsPerNode;
  const clients = await Promise.all(NODE_IDS.map((id) => startWorker(`fleet-clients-${id}`, new URL('./fleet-clients.ts', import.meta.url))));
  const closer = await startWorker('fleet-clients-close', new URL('./fleet-clients.ts', import.meta.url));
  const redisServer = await RedisServer.start();
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  await redis.connect();
  try {
    // One node, no Redis: the same broadcast to the same 3 × N sockets, one client process per N.
    log(`  one node without Redis, ${NODE_IDS.length} × ${n} scanners…`);
    const single = await startNode('single', {});
    await Promise.all(clients.map((c) => c.call('open', { url: `${single.wsUrl}/ws/scans`, count: n })));
    const oneNode = await measureBroadcast(single, clients, n, plan.rounds, 'one');
    await Promise.all(clients.map((c) => c.call('closeAll')));
    await stopNode(single);

    log(`  ${NODE_IDS.length} nodes on Redis, ${n} scanners each…`);
    const fleet = await Promise.all(NODE_IDS.map((id) => startNode(id, { REDIS_URL: redisServer.url, WS_FLEET_TTL: String(BENCH_FLEET_TTL_S) })));
    await Promise.all(clients.map((c, i) => c.call('open', { url: `${fleet[i]!.wsUrl}/ws/scans`, count: n })));
    await until('node a to count the whole fleet', async () => {
      const f = await fleetCount(fleet[0]!);
      return f.nodes === NODE_IDS.length && f.connections === NODE_IDS.length * n;
    });
    const fleetLatency = await measureBroadcast(fleet[0]!, clients, n, plan.rounds, 'fleet');

    log(`  Redis commands at rest: ${NODE_IDS.length * n} connections, then ${(NODE_IDS.length * n) / 10}…`);
    const rest = [await atRest(redis, plan.restWindowMs, NODE_IDS.length * n)];
    await Promise.all(clients.map((c) => c.call('closeAll')));
    await Promise.all(clients.map((c, i) => c.call('open', { url: `${fleet[i]!.wsUrl}/ws/scans`, count: n / 10 })));
    await until('node a to count a tenth of the connections', async () => (await fleetCount(fleet[0]!)).connections === (NODE_IDS.length * n) / 10);
    rest.unshift(await atRest(redis, plan.restWindowMs, (NODE_IDS.length * n) / 10));

    log(`  remote close round trip: ${plan.closes} sockets on node a closed from node b…`);
    await closer.call('open', { url: `${fleet[0]!.wsUrl}/ws/echo`, count: plan.closes });
    const view = await getJson<{ connections: Array<{ id: string; route: string | null }> }>(`${fleet[0]!.url}/api/connections`);
    const ids = view.body.connections.filter((c) => c.route === '/ws/echo').map((c) => c.id);
    const roundTrips: number[] = [];
    for (const id of ids) {
      const started = now();
      const { status } = await getJson(`${fleet[1]!.url}/api/connections/${encodeURIComponent(id)}/close`, { method: 'POST' });
      if (status !== 200) throw new Error(`bench fleet: remote close of ${id} answered ${status}`);
      roundTrips.push(now() - started);
    }
    await Promise.all(fleet.map(stopNode));
    return { socketsPerNode: n, broadcast: { oneNode, fleet: fleetLatency }, atRest: rest, remoteClose: latency(roundTrips) };
  } finally {
    for (const child of nodes) child.kill('SIGKILL');
    redis.disconnect();
    await redisServer.stop();
    await Promise.all([...clients, closer].map((c) => c.stop()));
  }
}

/** The figure's rows in the one table of `npm run bench`. */
export function fleetRows(r: FleetResult): Row[] {
  const k = (count: number): string => (count % 1000 === 0 ? `${count / 1000}k` : String(count));
  const lat = (l: Latency): string => `p50 ${fmt(l.p50Ms, 'ms')}, p99 ${fmt(l.p99Ms, 'ms')}`;
  const sockets = k(NODE_IDS.length * r.socketsPerNode);
  const [few, many] = r.atRest;
  const growth = many!.commandsPerSecPerNode / few!.commandsPerSecPerNode;
  const top = (byCommand: Record<string, number>): string =>
    Object.entries(byCommand)
      .sort((x, y) => y[1] - x[1])
      .map(([name, rate]) => `${name} ${rate}`)
      .join(', ');
  return [
    { figure: `6 fleet broadcast, POST to ${sockets} sockets`, variant: `one node, no Redis`, value: lat(r.broadcast.oneNode), ratio: '1.00×', target: '', result: '' },
    {
      figure: `6 fleet broadcast, POST to ${sockets} sockets`,
      variant: `${NODE_IDS.length} nodes × ${k(r.socketsPerNode)} on Redis`,
      value: lat(r.broadcast.fleet),
      ratio: `${(r.broadcast.fleet.p99Ms / r.broadcast.oneNode.p99Ms).toFixed(2)}× p99`,
      target: '',
      result: '',
    },
    ...r.atRest.map((rest) => ({
      figure: `6 fleet Redis commands/s per node at rest (TTL ${BENCH_FLEET_TTL_S} s)`,
      variant: `${k(rest.connections)} connections`,
      value: `${fmt(rest.commandsPerSecPerNode)} (${top(rest.byCommand)})`,
      ratio: rest === many ? `${growth.toFixed(2)}×` : '1.00×',
      target: rest === many ? `≤ 1.5× of ${k(few!.connections)}` : '',
      result: rest === many ? (growth <= 1.5 ? ('pass' as const) : ('FAIL' as const)) : ('' as const),
    })),
    { figure: '6 fleet remote close round trip (node b → a → b)', variant: `${r.remoteClose.samples} closes`, value: lat(r.remoteClose), ratio: '', target: '', result: '' },
  ];
}
