/**
 * Scheduler micro-benchmark: `npx tsx bench/scheduler.bench.ts`.
 *
 * Drives `Scheduler#tick()` by hand on a manual clock (its timer never fires), so only the
 * wheel's own work is measured. Figures are medians over several runs, in microseconds per tick
 * and nanoseconds per `schedule()` call.
 */
import { pathToFileURL } from 'node:url';
import type { Clock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { Scheduler, initSchedulerEntry, type SchedulerEntry } from '../lib/scheduler.js';
import { median, round } from './stats.js';

export interface SchedulerBenchResult {
  /** Entries on the wheel in every scenario. */
  entries: number;
  resolutionMs: number;
  wheelSize: number;
  /** One tick over 100,000 entries, none due (one slot visited, its later-round entries skipped). */
  tickNoneDueUs: number;
  /** One tick over 100,000 entries with 1% (1,000) due, callbacks included. */
  tickOnePercentDueUs: number;
  /** One `schedule()` of an already scheduled entry that moves it to another slot. */
  rescheduleNs: number;
  /** One `schedule()` to the tick the entry is already due at (activity within the same tick). */
  rescheduleSameTickNs: number;
}

const ENTRIES = 100_000;
const RESOLUTION_MS = 1000;
const WHEEL_SIZE = 1024;
const START = 1_699_500_000_000;
/** Far entries sit 1 to 11 wheel rounds ahead, so none becomes due while ticks are measured. */
const FAR_FROM_MS = 2_000 * RESOLUTION_MS;
const FAR_SPAN_MS = 10 * WHEEL_SIZE * RESOLUTION_MS;

function manualClock(): Clock & { time: number } {
  const clock = {
    time: START,
    now: () => clock.time,
    setTimeout: () => 0,
    clearTimeout: () => undefined,
    afterIo: () => undefined,
  };
  return clock;
}

function elapsedNs(from: bigint): number {
  return Number(process.hrtime.bigint() - from);
}

/** A spread of far deadlines that is the same every run (no Math.random). */
function farDeadline(i: number): number {
  return START + FAR_FROM_MS + ((i * 7_919_117) % FAR_SPAN_MS);
}

function createEntries(count: number, onDue: () => void): SchedulerEntry[] {
  return Array.from({ length: count }, () => initSchedulerEntry({ onDue }));
}

interface Setup {
  scheduler: Scheduler;
  clock: Clock & { time: number };
  entries: SchedulerEntry[];
  fired: () => number;
}

function setup(dueCount: number): Setup {
  const clock = manualClock();
  const scheduler = new Scheduler({ clock, resolutionMs: RESOLUTION_MS, wheelSize: WHEEL_SIZE, logger: silentLogger });
  let fired = 0;
  const entries = createEntries(ENTRIES, () => fired++);
  for (let i = 0; i < ENTRIES; i++) {
    scheduler.schedule(entries[i]!, i < dueCount ? START + 1 + (i % (RESOLUTION_MS - 1)) : farDeadline(i));
  }
  return { scheduler, clock, entries, fired: () => fired };
}

function benchTickNoneDue(): number {
  const { scheduler, clock, fired } = setup(0);
  const samples: number[] = [];
  for (let i = 0; i < 1_000; i++) {
    clock.time += RESOLUTION_MS;
    const t0 = process.hrtime.bigint();
    scheduler.tick();
    samples.push(elapsedNs(t0));
  }
  if (fired() !== 0) throw new Error(`bench: expected no entry due, ${fired()} fired`);
  return median(samples) / 1000;
}

/** One tick with `due` of the 100,000 entries due (the rest in later wheel rounds), ns: median of `runs`. */
export function tickWithDue(due: number, runs = 9): number {
  const samples: number[] = [];
  for (let run = 0; run < runs; run++) {
    const { scheduler, clock, fired } = setup(due);
    clock.time += RESOLUTION_MS;
    const t0 = process.hrtime.bigint();
    const count = scheduler.tick();
    samples.push(elapsedNs(t0));
    if (count !== due || fired() !== count) throw new Error(`bench: expected ${due} due, ${count} fired`);
  }
  return median(samples);
}

function benchReschedule(sameTick: boolean): number {
  const { scheduler, entries } = setup(0);
  const samples: number[] = [];
  const calls = 1_000_000;
  for (let run = 0; run < 7; run++) {
    // Moving: every pass shifts each entry one more tick (another slot); same tick: no shift.
    const shift = sameTick ? 0 : (run + 1) * RESOLUTION_MS;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) {
      const index = i % ENTRIES;
      scheduler.schedule(entries[index]!, farDeadline(index) + shift);
    }
    samples.push(elapsedNs(t0) / calls);
  }
  return median(samples);
}

/** Runs every scenario and returns the figures (the benchmark suite imports this). */
export async function runSchedulerBench(): Promise<SchedulerBenchResult> {
  // Warm up the JIT on the same code paths.
  benchTickNoneDue();
  return {
    entries: ENTRIES,
    resolutionMs: RESOLUTION_MS,
    wheelSize: WHEEL_SIZE,
    tickNoneDueUs: round(benchTickNoneDue()),
    tickOnePercentDueUs: round(tickWithDue(ENTRIES / 100, 15) / 1000),
    rescheduleNs: round(benchReschedule(false)),
    rescheduleSameTickNs: round(benchReschedule(true)),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = process.hrtime.bigint();
  const r = await runSchedulerBench();
  console.log(`Scheduler: ${r.entries.toLocaleString('en')} entries, resolution ${r.resolutionMs} ms, ${r.wheelSize} slots`);
  console.table({
    'tick, none due': { median: `${r.tickNoneDueUs} µs` },
    'tick, 1% (1,000) due': { median: `${r.tickOnePercentDueUs} µs` },
    'schedule(), moves slot': { median: `${r.rescheduleNs} ns` },
    'schedule(), same tick': { median: `${r.rescheduleSameTickNs} ns` },
  });
  console.log(`(${(elapsedNs(started) / 1e9).toFixed(1)} s)`);
}
