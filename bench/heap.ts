/**
 * Figure 2 — heap per idle socket: 2k, 5k and 9k (and 1k) idle sockets held by each variant,
 * heap measured after full GCs (`--expose-gc`), minus the heap of the same process before any
 * socket was open. The overhead of a variant is its bytes per socket minus raw ws's at the same
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
  /** Heap used per socket, bytes: (heap after GC with the sockets − heap before any socket) / sockets. */
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

/** Sockets opened and closed before the baseline, in every variant alike. */
const WARMUP_SOCKETS = 2_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runHeap(opts: HeapOptions, log: (line: string) => void): Promise<HeapResultSet> {
  const measured = new Map<Variant, Array<{ sockets: number; heap: number; arrayBuffers: number }>>();
  for (const variant of opts.variants) {
    const client = await startWorker(`heap-client-${variant}`, new URL('./client.ts', import.meta.url));
    const server = await startWorker(`heap-server-${variant}`, new URL('./server.ts', import.meta.url), ['--expose-gc']);
    try {
      const { port } = await server.call<{ port: number }>('listen', { variant, heartbeatMs: opts.heartbeatMs });
      const url = `ws://127.0.0.1:${port}/`;
      // Warm up every code path a connection takes (and the allocation sites' feedback), then
      // take the baseline with no socket open. As many as the 2k point: code V8 optimises only once
      // sockets are many is compiled once per process, not held per socket.
      await client.call('connect', { group: 'warmup', url, count: WARMUP_SOCKETS, ratePerSec: 4_000, client: clientKind(variant) });
      await client.call('drop', { group: 'warmup' });
      await waitForClients(server, 0);
      const base = await server.call<HeapResult>('heap');
      const points: Array<{ sockets: number; heap: number; arrayBuffers: number }> = [];
      let open = 0;
      for (const count of opts.counts) {
        const c = await client.call<{ open: number; failed: number }>('connect', { group: 'idle', url, count: count - open, ratePerSec: 3_000, client: clientKind(variant) });
        open += c.open;
        if (open !== count) throw new Error(`heap: ${variant}: ${open} of ${count} sockets opened (${c.failed} failed)`);
        await waitForClients(server, count);
        await sleep(300);
        const h = await server.call<HeapResult>('heap');
        points.push({ sockets: count, heap: h.heapUsed - base.heapUsed, arrayBuffers: h.arrayBuffers - base.arrayBuffers });
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
