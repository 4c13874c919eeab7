/**
 * What one registry connection holds, by object type: `node --import tsx bench/heap-breakdown.ts`.
 *
 * Opens 2,000 real sockets to a plain ws server in two child processes — one raw (an `'error'`
 * listener only), one adding each socket to a `ConnectionRegistry` — takes a heap snapshot in each
 * after GC, and prints the per-socket difference by V8 object type and name (BENCHMARKS.md,
 * figure 2). In each child the clients share the server's process; both hold the same clients, so
 * they cancel out. As in figure 2, 200 registry sockets open and close first in both children, so
 * the library's code is compiled in both and not counted per socket. Loopback only; every
 * process exits by itself.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { WebSocket, WebSocketServer } from 'ws';
import { ConnectionRegistry, loadTimeoutConfig, silentLogger } from '../lib/index.js';

const SOCKETS = 2_000;
const WARMUP_SOCKETS = 200;

function onError(): void {
  // teardown resets
}

async function snapshot(mode: 'raw' | 'registry'): Promise<Map<string, { count: number; bytes: number }>> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  // Pings far apart, so every socket is idle while the snapshot is taken.
  const registry = new ConnectionRegistry({ config: loadTimeoutConfig({}, { pingIntervalMs: 60_000, pongTimeoutMs: 60_000 }), logger: silentLogger });
  let warm = true;
  wss.on('connection', (ws) => (mode === 'raw' && !warm ? ws.on('error', onError) : registry.add(ws)));
  const { port } = wss.address() as { port: number };
  const connect = async (count: number): Promise<WebSocket[]> => {
    const clients: WebSocket[] = [];
    for (let i = 0; i < count; i++) {
      const client = new WebSocket(`ws://127.0.0.1:${port}`);
      client.on('error', onError);
      clients.push(client);
      await new Promise((resolve) => client.once('open', resolve));
    }
    while (wss.clients.size < count) await new Promise((resolve) => setTimeout(resolve, 10));
    return clients;
  };
  for (const client of await connect(WARMUP_SOCKETS)) client.terminate();
  while (wss.clients.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  warm = false;
  await connect(SOCKETS);
  for (let i = 0; i < 4; i++) (globalThis as { gc?: () => void }).gc?.();
  const file = join(tmpdir(), `ws-timeouts-heap-${process.pid}-${mode}.heapsnapshot`);
  v8.writeHeapSnapshot(file);
  const byType = summarise(file);
  rmSync(file);
  return byType;
}

/** Self size and count per kind of node in a snapshot. */
function summarise(file: string): Map<string, { count: number; bytes: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + iType]!]!;
    // Objects by constructor name, arrays by role; strings, code and V8's own structures by type alone.
    const name = type === 'object' || type === 'closure' || type === 'array' ? snap.strings[snap.nodes[i + iName]!]!.slice(0, 40) : '';
    const key = `${type} ${name}`.trim();
    const entry = out.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += snap.nodes[i + iSize]!;
    out.set(key, entry);
  }
  return out;
}

type Summary = Map<string, { count: number; bytes: number }>;

const mode = process.argv[2];
if (mode === 'raw' || mode === 'registry') {
  // A child: measure one mode, answer on stdout.
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') throw new Error('run with --expose-gc');
  process.stdout.write(JSON.stringify([...(await snapshot(mode))]), () => process.exit(0));
} else {
  await compare();
}

async function compare(): Promise<void> {
  const child = (m: string): Summary =>
    new Map(JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), m], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, timeout: 120_000 })) as Array<[string, { count: number; bytes: number }]>);
  const raw = child('raw');
  const managed = child('registry');
  let total = 0;
  const rows: Array<{ what: string; objects: number; bytesPerSocket: number }> = [];
  for (const key of new Set([...raw.keys(), ...managed.keys()])) {
    const a = raw.get(key) ?? { count: 0, bytes: 0 };
    const b = managed.get(key) ?? { count: 0, bytes: 0 };
    const diff = b.bytes - a.bytes;
    total += diff;
    if (Math.abs(diff) >= SOCKETS * 4) rows.push({ what: key, objects: b.count - a.count, bytesPerSocket: Math.round((diff / SOCKETS) * 10) / 10 });
  }
  rows.sort((x, y) => y.bytesPerSocket - x.bytesPerSocket);
  console.log(`Heap per socket, ConnectionRegistry over raw ws (${SOCKETS} idle sockets), by V8 object type:`);
  console.table(rows);
  console.log(`total: ${(total / SOCKETS).toFixed(0)} B per socket`);
  process.exit(0);
}
