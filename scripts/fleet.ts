/**
 * `npm run fleet`: a local fleet to try the example server as several nodes. Starts a throwaway
 * `redis-server` on a free port (nothing saved to disk) and three example servers (nodes a, b
 * and c) on it, prints their URLs, and stops everything on Ctrl-C or SIGTERM.
 *
 *     npm run fleet                  # nodes on ports 3001, 3002, 3003
 *     PORT=4000 npm run fleet        # nodes on ports 4000, 4001, 4002
 *     PORT=0 npm run fleet           # each node on a free port
 *
 * Every other variable (`WS_*`, `LOG_LEVEL`, `WS_FLEET_*`) is passed on to the nodes. Their log
 * lines are printed with the node's id in front. Exits 1 when Redis or a node does not start.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RedisServer } from '../spec/support/redis-server.js';

const NODE_IDS = ['a', 'b', 'c'];
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVER = fileURLToPath(new URL('../examples/server.ts', import.meta.url));
/** How long a node may take to listen, and to shut down after SIGTERM. */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

interface Node {
  id: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

function fail(message: string): never {
  console.error(`npm run fleet: ${message}`);
  process.exit(1);
}

function basePort(): number {
  const text = process.env.PORT?.trim() || '3001';
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65_535 - NODE_IDS.length) fail(`PORT must be a whole number from 0 to ${65_535 - NODE_IDS.length}, got "${text}"`);
  return port;
}

/** Starts one node; resolves with its URL once it logs that it listens, rejects if it exits first. */
function startNode(id: string, port: number, redisUrl: string): { node: Node; url: Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER], {
    cwd: ROOT, // where `npm start` runs it: the same .env, the same tsx
    env: { ...process.env, PORT: String(port), NODE_ID: id, REDIS_URL: redisUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: Ctrl-C reaches this script only, which then stops the nodes one way (SIGTERM).
    detached: true,
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${id} did not listen within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    void exited.then((code) => reject(new Error(`node ${id} exited with ${code} before listening`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      console.log(`[${id}] ${line}`);
      if (!line.includes('"Example server listening"')) return;
      clearTimeout(timer);
      resolve(`http://localhost:${(JSON.parse(line) as { port: number }).port}/`);
    });
  });
  createInterface({ input: child.stderr! }).on('line', (line) => console.error(`[${id}] ${line}`));
  return { node: { id, child, exited }, url };
}

/** SIGTERM to every node (each closes its sockets and leaves the fleet), then Redis, last. */
async function stopAll(nodes: Node[], redis: RedisServer): Promise<void> {
  await Promise.all(
    nodes.map(async ({ child, exited }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }),
  );
  await redis.stop('SIGTERM');
}

async function main(): Promise<void> {
  const first = basePort();
  if (spawnSync('redis-server', ['--version']).status !== 0) fail('redis-server is not installed (Debian: apt-get install redis-server)');
  const redis = await RedisServer.start(undefined, { ownProcessGroup: true });
  console.log(`redis-server on ${redis.url} (pid ${redis.pid}, nothing saved); starting nodes ${NODE_IDS.join(', ')}…`);
  const nodes: Node[] = [];
  let stopping: Promise<void> | null = null;
  const stop = (code: number): void => {
    stopping ??= stopAll(nodes, redis).then(() => process.exit(code));
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  // Whatever happens to this script, nothing it started keeps running.
  process.on('exit', () => {
    for (const { child } of nodes) child.kill('SIGKILL');
  });

  const starting = NODE_IDS.map((id, i) => {
    const { node, url } = startNode(id, first === 0 ? 0 : first + i, redis.url);
    nodes.push(node);
    return url;
  });
  let urls: string[];
  try {
    urls = await Promise.all(starting);
  } catch (err) {
    console.error(`npm run fleet: ${(err as Error).message}; stopping the others`);
    stop(1);
    return;
  }
  console.log(
    [
      '',
      `A fleet of ${nodes.length} nodes on ${redis.url}:`,
      ...nodes.map((node, i) => `  node ${node.id}  ${urls[i]}`),
      'Open a dashboard per node; a scan posted on one reaches the scanners of all three.',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  // A node that dies on its own ends the fleet: a partial fleet would hide the failure.
  for (const node of nodes) {
    void node.exited.then((code) => {
      if (stopping) return;
      console.error(`npm run fleet: node ${node.id} exited (${code}); stopping the others`);
      stop(1);
    });
  }
}

main().catch((err: unknown) => fail((err as Error).message));
