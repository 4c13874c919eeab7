/**
 * Figure 4 — heartbeat at scale: every socket pinged every second. For each variant, in a fresh
 * server process, sockets are added up to each count (1k, 5k, 9k) at a steady rate, and once the
 * heartbeat has settled the server measures, over a window: event-loop delay
 * (`monitorEventLoopDelay`, 10 ms resolution) and its CPU time. Raw ws runs with no heartbeat at
 * all: the floor every other variant is a ratio to.
 *
 * Connections arrive at a steady rate, so a per-socket timer's phase (its connect time modulo the
 * interval) is spread evenly over the second, as it would be on a server whose clients come and
 * go; the README recipe pings every socket in one tick whatever the arrival times.
 */
import type { WindowResult } from './server.js';
import { round } from './stats.js';
import { clientKind, type Variant } from './variants.js';
import { startWorker } from './workers.js';

export interface HeartbeatOptions {
  /** Socket counts, ascending; the last is the headline figure. */
  counts: number[];
  /** Measurement window per count, ms (the last count gets `finalWindowMs`). */
  windowMs: number;
  finalWindowMs: number;
  heartbeatMs: number;
  /** Variants with a label: ws-timeouts may run at more than one scheduler resolution. */
  variants: HeartbeatVariant[];
  /**
   * More windows at the last count for the variants (by label) a target compares, each in a
   * fresh process, alternating which runs first: between processes, one window's CPU time
   * varies by about ±5% on a shared machine, more than the difference the target judges.
   */
  repeat?: { labels: string[]; rounds: number };
}

export interface HeartbeatVariant {
  label: string;
  variant: Variant;
  resolutionMs?: number;
  heartbeat: boolean;
}

export interface HeartbeatPoint {
  sockets: number;
  windowMs: number;
  eldP50Ms: number;
  eldP99Ms: number;
  eldMaxMs: number;
  /** Server CPU time per second of the window, ms (1000 = one core busy). */
  cpuMsPerSec: number;
  /** Sockets still open at the end of the window (none may be dropped by a late pong). */
  openAtEnd: number;
}

export interface HeartbeatResult {
  heartbeatMs: number;
  variants: Array<{
    label: string;
    variant: Variant;
    resolutionMs?: number;
    points: HeartbeatPoint[];
    /** The extra windows at the last count (`HeartbeatOptions.repeat`). */
    repeats?: HeartbeatPoint[];
  }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runHeartbeat(opts: HeartbeatOptions, log: (line: string) => void): Promise<HeartbeatResult> {
  const out: HeartbeatResult['variants'] = [];
  for (const v of opts.variants) out.push({ label: v.label, variant: v.variant, resolutionMs: v.resolutionMs, points: await measure(v, opts.counts, opts, log) });
  const last = opts.counts.slice(-1);
  for (let round = 0; round < (opts.repeat?.rounds ?? 0); round++) {
    // The first repeat runs in the reverse order of the main pass, so each variant runs first as often as last.
    const labels = round % 2 === 0 ? [...opts.repeat!.labels].reverse() : opts.repeat!.labels;
    for (const label of labels) {
      const v = opts.variants.find((candidate) => candidate.label === label);
      if (!v) throw new Error(`heartbeat: no variant labelled ${label} to repeat`);
      const [point] = await measure(v, last, opts, log);
      (out.find((o) => o.label === label)!.repeats ??= []).push(point!);
    }
  }
  return { heartbeatMs: opts.heartbeatMs, variants: out };
}

/** One variant in a fresh server process, its sockets added up to each count in turn. */
async function measure(v: HeartbeatVariant, counts: number[], opts: HeartbeatOptions, log: (line: string) => void): Promise<HeartbeatPoint[]> {
  const client = await startWorker(`hb-client-${v.label}`, new URL('./client.ts', import.meta.url));
  const server = await startWorker(`hb-server-${v.label}`, new URL('./server.ts', import.meta.url));
  try {
    const { port } = await server.call<{ port: number }>('listen', {
      variant: v.variant,
      heartbeatMs: v.heartbeat ? opts.heartbeatMs : undefined,
      resolutionMs: v.resolutionMs,
    });
    const url = `ws://127.0.0.1:${port}/`;
    const points: HeartbeatPoint[] = [];
    let open = 0;
    for (const [i, count] of counts.entries()) {
      // A whole number of heartbeat periods per step, so per-socket phases cover the period evenly.
      const add = count - open;
      const periods = Math.max(1, Math.ceil(add / 2_000 / (opts.heartbeatMs / 1000)));
      const ratePerSec = add / ((periods * opts.heartbeatMs) / 1000);
      const c = await client.call<{ open: number; failed: number }>('connect', { group: 'hb', url, count: add, ratePerSec, client: clientKind(v.variant) }, 300_000);
      open += c.open;
      if (open !== count) throw new Error(`heartbeat: ${v.label}: ${open} of ${count} sockets opened (${c.failed} failed)`);
      // Let every new socket reach its steady heartbeat (first ping after one interval).
      await sleep(opts.heartbeatMs + 500);
      const windowMs = i === counts.length - 1 ? opts.finalWindowMs : opts.windowMs;
      await server.call('windowStart');
      await sleep(windowMs);
      const w = await server.call<WindowResult>('windowStop');
      const openAtEnd = await server.call<number>('clients');
      const wst = await server.call<{ timeouts: Record<string, number>; rtt: { count: number; p50: number; p99: number; max: number } }>('wsTimeouts');
      if (v.variant === 'auto' && (wst.rtt.count > 0 || Object.keys(wst.timeouts).length > 0)) log(`    ws-timeouts: timeouts ${JSON.stringify(wst.timeouts)}, pong RTT p50 ${wst.rtt.p50} / p99 ${wst.rtt.p99} / max ${wst.rtt.max} ms (${wst.rtt.count})`);
      points.push({
        sockets: count,
        windowMs: Math.round(w.wallMs),
        eldP50Ms: round(w.eld.p50, 2),
        eldP99Ms: round(w.eld.p99, 2),
        eldMaxMs: round(w.eld.max, 2),
        cpuMsPerSec: round(w.cpuUs / w.wallMs, 2),
        openAtEnd,
      });
      const p = points.at(-1)!;
      log(`  ${v.label.padEnd(22)} ${String(count).padStart(5)} sockets: loop delay p99 ${p.eldP99Ms} ms (max ${p.eldMaxMs}), CPU ${p.cpuMsPerSec} ms/s, open ${openAtEnd}`);
    }
    return points;
  } finally {
    await Promise.allSettled([client.stop(), server.stop()]);
  }
}
