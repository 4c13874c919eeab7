/**
 * The bench server process: one WebSocket server on 127.0.0.1 running one variant
 * (bench/variants.ts), measured from inside — CPU time, event-loop delay, heap after GC,
 * messages handled, timeout lateness. Started and driven by bench/run.ts over IPC.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { WebSocketServer } from 'ws';
import { percentile } from './stats.js';
import { attachVariant, listenSocketIo, type Counters, type Library, type VariantSpec } from './variants.js';
import { serveCommands } from './workers.js';

// BENCH_LIB: the compiled library's lib/index.js (bench/run.ts builds it); else the sources via tsx.
const lib = (await import(process.env.BENCH_LIB ? pathToFileURL(process.env.BENCH_LIB).href : '../lib/index.js')) as Library;

const counters: Counters = { messages: 0, lateMs: {}, timeouts: {}, rttMs: [] };
/** Each `listen`'s count of connected clients (figure 1 runs its variants side by side in one process). */
const servers: Array<() => number> = [];

function clientCount(): number {
  let n = 0;
  for (const clients of servers) n += clients();
  return n;
}
let window: { cpu: NodeJS.CpuUsage; t0: bigint; messages: number; eld: IntervalHistogram } | null = null;

export interface WindowResult {
  /** Server process CPU (user + system) during the window, µs. */
  cpuUs: number;
  /** The system (kernel) part of `cpuUs`. */
  systemUs: number;
  wallMs: number;
  messages: number;
  /** Event-loop delay (monitorEventLoopDelay, 10 ms resolution), ms. */
  eld: { p50: number; p99: number; max: number; mean: number };
}

export interface HeapResult {
  clients: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

// BENCH_PROFILE_DIR: write a CPU profile of every measurement window there (inspector, no restart).
const profileDir = process.env.BENCH_PROFILE_DIR;
let session: Session | null = null;
let profileLabel = '';

function post<T>(method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => session!.post(method, params, (err, result) => (err ? reject(err) : resolve(result as T))));
}

async function startProfile(label: string): Promise<void> {
  if (!session) {
    session = new Session();
    session.connect();
    await post('Profiler.enable');
  }
  profileLabel = label;
  await post('Profiler.start');
}

async function stopProfile(): Promise<void> {
  const { profile } = await post<{ profile: object }>('Profiler.stop');
  mkdirSync(profileDir!, { recursive: true });
  const name = `${process.env.BENCH_WORKER}-${profileLabel}-${Date.now()}.cpuprofile`.replace(/[^\w.-]+/g, '_');
  writeFileSync(join(profileDir!, name), JSON.stringify(profile));
}

async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('bench server: run with --expose-gc');
  // Several full collections with turns in between, so weak callbacks and finalisers settle.
  for (let i = 0; i < 4; i++) {
    gc();
    await nextTurn();
  }
}

serveCommands({
  async listen(spec: VariantSpec): Promise<{ port: number }> {
    if (spec.variant === 'socketio') {
      const { port, clients } = await listenSocketIo(spec, counters);
      servers.push(clients);
      return { port };
    }
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, backlog: 2048 });
    attachVariant(lib, server, spec, counters);
    servers.push(() => server.clients.size);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    server.on('error', (err) => console.error('bench server error:', err));
    return { port: (server.address() as AddressInfo).port };
  },

  clients(): number {
    return clientCount();
  },

  async windowStart(args: { label?: string } = {}): Promise<void> {
    if (profileDir) await startProfile(args.label ?? 'window');
    const eld = monitorEventLoopDelay({ resolution: 10 });
    eld.enable();
    window = { cpu: process.cpuUsage(), t0: process.hrtime.bigint(), messages: counters.messages, eld };
  },

  wsTimeouts(): { timeouts: Record<string, number>; rtt: { count: number; p50: number; p99: number; max: number } } {
    const r = counters.rttMs;
    counters.rttMs = [];
    return { timeouts: counters.timeouts, rtt: { count: r.length, p50: percentile(r, 50), p99: percentile(r, 99), max: r.length ? Math.max(...r) : NaN } };
  },

  async windowStop(): Promise<WindowResult> {
    if (!window) throw new Error('no window started');
    const { cpu, t0, messages, eld } = window;
    window = null;
    const used = process.cpuUsage(cpu);
    eld.disable();
    if (profileDir) await stopProfile();
    const ms = (ns: number): number => ns / 1e6;
    return {
      cpuUs: used.user + used.system,
      systemUs: used.system,
      wallMs: Number(process.hrtime.bigint() - t0) / 1e6,
      messages: counters.messages - messages,
      eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max), mean: ms(eld.mean) },
    };
  },

  async heap(): Promise<HeapResult> {
    await collectGarbage();
    const m = process.memoryUsage();
    return { clients: clientCount(), heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
  },

  lateness(): Record<string, { count: number; p50: number; p99: number; max: number }> {
    const out: Record<string, { count: number; p50: number; p99: number; max: number }> = {};
    for (const [reason, values] of Object.entries(counters.lateMs)) {
      out[reason] = { count: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) };
    }
    return out;
  },
});
