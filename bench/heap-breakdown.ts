/**
 * What one connection holds, by object type:
 *
 *   npm run bench:heap                    # a socket in a ConnectionRegistry (automatic mode)
 *   npm run bench:heap -- --mode manual   # a socket served by the manual loop (bench variant `manual`)
 *
 * Opens 2,000 real sockets to a plain ws server in two child processes — one raw (an `'error'`
 * listener only), one managed by the library in the chosen mode — takes a heap snapshot in each
 * after GC, and prints the per-socket difference by V8 object type and name (BENCHMARKS.md,
 * figure 2). The manual mode runs the bench's own loop (`receiveWithTimeout` →
 * `sendJsonWithTimeout` on a started manager), each socket idle in a pending receive. In each
 * child the clients share the server's process; both hold the same clients, so they cancel out.
 * 200 managed sockets open and close first in both children, so the library's code is compiled
 * in both and not counted per socket. Loopback only; every process exits by itself.
 * `--warmup N` opens and closes N sockets first instead; with 2,000, as figure 2 warms up, the
 * code V8 optimises once the sockets are many (about 50–80 B per socket at 2,000 with 200) is
 * compiled before the baseline and the rows left are what each socket holds. `BENCH_LIB=<compiled lib/index.js>` measures a
 * tsc build, as figure 2 does, instead of the sources through tsx; `BENCH_KEEP_SNAPSHOT=1` keeps
 * both snapshots for DevTools.
 */
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { WebSocket, WebSocketServer } from 'ws';
import { attachVariant, type Counters, type Library } from './variants.js';

// BENCH_LIB: a compiled library's lib/index.js, as figure 2 measures it; else the sources via tsx.
const lib = (await import(process.env.BENCH_LIB ? pathToFileURL(process.env.BENCH_LIB).href : '../lib/index.js')) as Library;

const SOCKETS = 2_000;

function onError(): void {
  // teardown resets
}

type Mode = 'registry' | 'manual';
const MODES: readonly Mode[] = ['registry', 'manual'];

/** Hands each accepted socket to the library the way `mode` does. */
function managedBy(mode: Mode): (ws: WebSocket) => void {
  // Pings far apart, so every socket is idle while the snapshot is taken.
  const config = lib.loadTimeoutConfig({}, { pingIntervalMs: 60_000, pongTimeoutMs: 60_000 });
  if (mode === 'registry') {
    const registry = new lib.ConnectionRegistry({ config, logger: lib.silentLogger });
    return (ws) => void registry.add(ws);
  }
  // The bench's manual loop, fed through a stand-in server that only emits 'connection'.
  const accepted = new EventEmitter();
  const counters: Counters = { messages: 0, lateMs: {}, timeouts: {}, rttMs: [] };
  attachVariant(lib, accepted as unknown as WebSocketServer, { variant: 'manual', heartbeatMs: 60_000 }, counters);
  return (ws) => void accepted.emit('connection', ws);
}

async function snapshot(side: 'raw' | 'managed', mode: Mode): Promise<Map<string, { count: number; bytes: number }>> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  const manage = managedBy(mode);
  let warm = true;
  wss.on('connection', (ws) => (side === 'raw' && !warm ? ws.on('error', onError) : manage(ws)));
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
  for (const client of await connect(warmupSockets)) client.terminate();
  while (wss.clients.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  warm = false;
  await connect(SOCKETS);
  for (let i = 0; i < 4; i++) (globalThis as { gc?: () => void }).gc?.();
  const file = join(tmpdir(), `ws-timeouts-heap-${process.pid}-${side}.heapsnapshot`);
  v8.writeHeapSnapshot(file);
  const byType = summarise(file);
  if (process.env.BENCH_KEEP_SNAPSHOT) process.stderr.write(`kept ${file}\n`);
  else rmSync(file);
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

const { values } = parseArgs({ options: { mode: { type: 'string', default: 'registry' }, side: { type: 'string' }, warmup: { type: 'string', default: '200' } } });
const mode = values.mode as Mode;
if (!MODES.includes(mode)) throw new Error(`heap-breakdown: --mode must be one of ${MODES.join(', ')}, got ${values.mode}`);
const warmupSockets = Number(values.warmup);
if (!Number.isInteger(warmupSockets) || warmupSockets < 0) throw new Error(`heap-breakdown: --warmup must be a whole number of sockets, got ${values.warmup}`);
if (values.side === 'raw' || values.side === 'managed') {
  // A child: measure one side, answer on stdout.
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') throw new Error('run with --expose-gc');
  process.stdout.write(JSON.stringify([...(await snapshot(values.side, mode))]), () => process.exit(0));
} else {
  await compare();
}

async function compare(): Promise<void> {
  const child = (side: string): Summary =>
    new Map(JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--mode', mode, '--warmup', String(warmupSockets), '--side', side], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, timeout: 120_000 })) as Array<[string, { count: number; bytes: number }]>);
  const raw = child('raw');
  const managed = child('managed');
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
  const what = mode === 'registry' ? 'ConnectionRegistry' : 'the manual loop';
  console.log(`Heap per socket, ${what} over raw ws (${SOCKETS} idle sockets), by V8 object type:`);
  console.table(rows);
  console.log(`total: ${(total / SOCKETS).toFixed(0)} B per socket`);
  process.exit(0);
}
