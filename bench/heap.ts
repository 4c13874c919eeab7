/**
 * Figure 2 — heap per idle socket: 2k, 5k and 9k (and 1k) idle sockets held by each variant,
 * heap measured after full GCs (`--expose-gc`) with the sockets open, minus the heap of the same
 * process right after they closed (averaged over repeated readings at the small counts), with
 * V8's code flushing off in the server (see KEEP_CODE). The overhead of a variant is its bytes per socket minus raw ws's at the same
 * count. Every variant runs in a fresh server process; the client sockets live in another process.
 */
import { round } from './stats.js';
import type { HeapResult } from './server.js';
import { clientKind, type Variant } from './variants.js';
import { startWorker } from './workers.js';

export interface HeapOptions {
  counts: number[];
  variants: Variant[];
  /** Heartbeat period of every variant: long, so the sockets stay idle. */
  heartbeatMs: number;
}

export interface HeapPoint {
  sockets: number;
  /** Heap used per socket, bytes: (heap after GC with the sockets open − heap after GC once they closed) / sockets, averaged over the readings. */
  bytesPerSocket: number;
  /** bytesPerSocket minus raw ws's at the same count (0 for raw). */
  overheadBytes: number;
  /** Array buffers per socket (ws read/write buffers live outside the JS heap), bytes. */
  arrayBufferBytesPerSocket: number;
}

export interface HeapResultSet {
  heartbeatMs: number;
  variants: Array<{ variant: Variant; points: HeapPoint[] }>;
}

/** Sockets opened and closed before the first reading, in every variant alike. */
const WARMUP_SOCKETS = 2_000;
/** A count is read as many times as it takes to open this many sockets (1k: 5 readings, 5k and up: 1). */
const SOCKETS_PER_POINT = 5_000;
/**
 * V8 throws away the bytecode and baseline code of functions that have not run for a few GCs,
 * and compiles them again on their next call. Each reading runs several full GCs, so with flushing
 * on, ws's and the library's connect and close code was discarded and recompiled between the
 * readings of one count, a few hundred KB either way: code the process holds once, not per socket.
 */
const KEEP_CODE = ['--no-flush-bytecode', '--no-flush-baseline-code'];
/** Wait after the server reaches a count, before reading its heap (ms). */
const SETTLE_MS = 200;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runHeap(opts: HeapOptions, log: (line: string) => void): Promise<HeapResultSet> {
  const measured = new Map<Variant, Array<{ sockets: number; heap: number; arrayBuffers: number }>>();
  for (const variant of opts.variants) {
    const client = await startWorker(`heap-client-${variant}`, new URL('./client.ts', import.meta.url));
    const server = await startWorker(`heap-server-${variant}`, new URL('./server.ts', import.meta.url), ['--expose-gc', ...KEEP_CODE]);
    try {
      const { port } = await server.call<{ port: number }>('listen', { variant, heartbeatMs: opts.heartbeatMs });
      const url = `ws://127.0.0.1:${port}/`;
      // Warm up every code path a connection takes (and the allocation sites' feedback), then
      // take the baseline with no socket open. As many as the 2k point: code V8 optimises only once
      // sockets are many is compiled once per process, not held per socket.
      await client.call('connect', { group: 'warmup', url, count: WARMUP_SOCKETS, ratePerSec: 4_000, client: clientKind(variant) });
      await client.call('drop', { group: 'warmup' });
      await waitForClients(server, 0);
      const points: Array<{ sockets: number; heap: number; arrayBuffers: number }> = [];
      for (const count of opts.counts) {
        // Each count is measured against the same process just after its sockets closed, not
        // against one baseline taken long before: code V8 compiles or throws away in between then
        // lands on both sides. What V8 does meanwhile still moves one reading by a few hundred KB,
        // so small counts are repeated (one reading per SOCKETS_PER_POINT sockets) and averaged.
        const repeats = Math.ceil(SOCKETS_PER_POINT / count);
        let heap = 0;
        let arrayBuffers = 0;
        for (let r = 0; r < repeats; r++) {
          const c = await client.call<{ open: number; failed: number }>('connect', { group: 'idle', url, count, ratePerSec: 4_000, client: clientKind(variant) });
          if (c.open !== count) throw new Error(`heap: ${variant}: ${c.open} of ${count} sockets opened (${c.failed} failed)`);
          await waitForClients(server, count);
          await sleep(SETTLE_MS);
          const open = await server.call<HeapResult>('heap');
          await client.call('drop', { group: 'idle' });
          await waitForClients(server, 0);
          await sleep(SETTLE_MS);
          const closed = await server.call<HeapResult>('heap');
          heap += (open.heapUsed - closed.heapUsed) / repeats;
          arrayBuffers += (open.arrayBuffers - closed.arrayBuffers) / repeats;
        }
        points.push({ sockets: count, heap, arrayBuffers });
      }
      measured.set(variant, points);
      log(`  ${variant.padEnd(7)} ${points.map((p) => `${p.sockets}: ${Math.round(p.heap / p.sockets)} B`).join(', ')}`);
    } finally {
      await Promise.allSettled([client.stop(), server.stop()]);
    }
  }
  const raw = measured.get('raw');
  return {
    heartbeatMs: opts.heartbeatMs,
    variants: opts.variants.map((variant) => ({
      variant,
      points: measured.get(variant)!.map((p, i) => {
        const bytesPerSocket = p.heap / p.sockets;
        const rawBytes = raw ? raw[i]!.heap / raw[i]!.sockets : NaN;
        return {
          sockets: p.sockets,
          bytesPerSocket: round(bytesPerSocket, 0),
          overheadBytes: round(bytesPerSocket - rawBytes, 0),
          arrayBufferBytesPerSocket: round(p.arrayBuffers / p.sockets, 0),
        };
      }),
    })),
  };
}

async function waitForClients(server: { call<T>(cmd: string): Promise<T> }, count: number): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if ((await server.call<number>('clients')) === count) return;
    await sleep(20);
  }
  throw new Error(`heap: the server never reached ${count} sockets`);
}
