/**
 * Figure 3 — scheduler cost in process, without sockets: bench/scheduler.bench.ts's figures (one
 * tick over 100,000 tracked entries with none due and with 1% due, one reschedule), plus how a
 * tick grows with the number due (O(due)), and what one activity update costs a manager.
 *
 * Runs in its own process (bench/run.ts forks it), so nothing else shares its heap or JIT.
 */
import { EventEmitter } from 'node:events';
import { pathToFileURL } from 'node:url';
import { runSchedulerBench, tickWithDue, type SchedulerBenchResult } from './scheduler.bench.js';
import { median, round } from './stats.js';
import type { Library } from './variants.js';
import { serveCommands } from './workers.js';

export interface SchedulerCostResult extends SchedulerBenchResult {
  /** One tick over `entries` with this many due (callbacks included), µs, and per due entry, ns. */
  dueScaling: Array<{ due: number; tickUs: number; nsPerDue: number }>;
  /** `manager.updateActivity()` (a clock read and a field write: no reschedule), ns. */
  activityUpdateNs: number;
  /** `Date.now()` alone, ns: the floor of an activity update. */
  dateNowNs: number;
}

/** ns per call of `fn`, median of 7 runs of `calls`. */
function nsPerCall(calls: number, fn: () => void): number {
  const samples: number[] = [];
  for (let run = 0; run < 7; run++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) fn();
    samples.push(Number(process.hrtime.bigint() - t0) / calls);
  }
  return median(samples);
}

class IdleSocket extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  send(): void {}
  ping(): void {}
  close(): void {}
  terminate(): void {}
}

export async function runSchedulerCost(lib: Library, quick = false): Promise<SchedulerCostResult> {
  const base = await runSchedulerBench();
  tickWithDue(1_000); // warm-up
  const dueScaling = [100, 1_000, 10_000].map((due) => {
    const ns = tickWithDue(due, quick ? 3 : 9);
    return { due, tickUs: round(ns / 1000, 1), nsPerDue: round(ns / due, 0) };
  });
  const manager = new lib.WebSocketTimeoutManager(new IdleSocket(), { logger: lib.silentLogger, config: lib.loadTimeoutConfig({}) });
  nsPerCall(1_000_000, () => manager.updateActivity());
  const calls = quick ? 1_000_000 : 5_000_000;
  const activityUpdateNs = round(nsPerCall(calls, () => manager.updateActivity()), 1);
  let sink = 0;
  const dateNowNs = round(
    nsPerCall(calls, () => {
      sink += Date.now();
    }),
    1,
  );
  if (sink === 0) throw new Error('unreachable');
  return { ...base, dueScaling, activityUpdateNs, dateNowNs };
}

if (process.env.BENCH_WORKER) {
  const lib = (await import(process.env.BENCH_LIB ? pathToFileURL(process.env.BENCH_LIB).href : '../lib/index.js')) as Library;
  serveCommands({ run: (args: { quick?: boolean } = {}) => runSchedulerCost(lib, args.quick) });
}
