/**
 * Figure 5 — accuracy: how late idle and pong timeouts fire after their deadlines, at each
 * scheduler resolution. `/idle` sockets never send anything (deadline: last activity + idle
 * timeout); `/pong` sockets never answer pings (deadline: the unanswered ping + pong timeout).
 * The server records, in `onTimeout`, `Date.now()` minus the deadline; the client checks each
 * socket ended the documented way (4001 for idle, a terminated connection — 1006 — for pong).
 */
import { startWorker } from './workers.js';

export interface AccuracyRun {
  resolutionMs: number;
  idleTimeoutMs: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
}

export interface AccuracyOptions {
  /** Sockets per kind (idle, pong) per run. */
  sockets: number;
  runs: AccuracyRun[];
}

export interface Lateness {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface AccuracyResult {
  sockets: number;
  runs: Array<AccuracyRun & { idle: Lateness; pong: Lateness; closeCodes: { idle: Record<number, number>; pong: Record<number, number> } }>;
}

export async function runAccuracy(opts: AccuracyOptions, log: (line: string) => void): Promise<AccuracyResult> {
  const runs: AccuracyResult['runs'] = [];
  for (const run of opts.runs) {
    const client = await startWorker(`acc-client-${run.resolutionMs}`, new URL('./client.ts', import.meta.url));
    const server = await startWorker(`acc-server-${run.resolutionMs}`, new URL('./server.ts', import.meta.url));
    try {
      const { port } = await server.call<{ port: number }>('listen', {
        variant: 'accuracy',
        resolutionMs: run.resolutionMs,
        accuracy: { idleTimeoutMs: run.idleTimeoutMs, pingIntervalMs: run.pingIntervalMs, pongTimeoutMs: run.pongTimeoutMs },
      });
      const base = `ws://127.0.0.1:${port}`;
      // One kind at a time, so each figure is its own kind's burst, not both kinds' at once.
      const limit = Math.max(run.idleTimeoutMs, run.pingIntervalMs + run.pongTimeoutMs) + 2 * run.resolutionMs + 10_000;
      const ended: Record<'idle' | 'pong', { open: number; closeCodes: Record<number, number> }> = {} as never;
      for (const kind of ['idle', 'pong'] as const) {
        await client.call('connect', { group: kind, url: `${base}/${kind}`, count: opts.sockets, ratePerSec: 2_000, ...(kind === 'pong' ? { autoPong: false } : {}) });
        ended[kind] = await client.call('waitClosed', { group: kind, timeoutMs: limit }, limit + 5_000);
      }
      const { idle, pong } = ended;
      const late = await server.call<Record<string, Lateness>>('lateness');
      const none: Lateness = { count: 0, p50: NaN, p99: NaN, max: NaN };
      const entry = { ...run, idle: late.idle ?? none, pong: late.pong_timeout ?? none, closeCodes: { idle: idle.closeCodes, pong: pong.closeCodes } };
      if (idle.open > 0 || pong.open > 0) throw new Error(`accuracy: sockets still open after ${limit} ms (idle ${idle.open}, pong ${pong.open})`);
      runs.push(entry);
      log(
        `  resolution ${run.resolutionMs} ms: idle late p50 ${entry.idle.p50} / p99 ${entry.idle.p99} / max ${entry.idle.max} ms (${entry.idle.count}), ` +
          `pong late p50 ${entry.pong.p50} / p99 ${entry.pong.p99} / max ${entry.pong.max} ms (${entry.pong.count})`,
      );
    } finally {
      await Promise.allSettled([client.stop(), server.stop()]);
    }
  }
  return { sockets: opts.sockets, runs };
}
