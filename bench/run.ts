/**
 * `npm run bench`: ws-timeouts against raw ws, the ws README heartbeat recipe, one Node timer
 * per socket and socket.io 4, side by side in one run, printed as one table of ratios (see BENCHMARKS.md).
 *
 *   npm run bench                  # the full run (about 14 min on 2 cores), writes bench/results.json
 *   npm run bench -- --quick       # a smaller run (< 1 min), writes nothing unless --out is given
 *   npm run bench -- --only 1,3    # some figures only (1 hot path, 2 heap, 3 scheduler, 4 heartbeat, 5 accuracy, 6 fleet)
 *   npm run bench -- --out FILE    # where to write the results JSON
 *   npm run bench -- --source      # measure lib/*.ts through tsx instead of the tsc build
 *
 * The library is measured as users run it: compiled by `tsc` (tsconfig.build.json) into
 * node_modules/.cache/ws-timeouts-bench, so the run never touches dist/. Server and client are
 * separate processes on 127.0.0.1; every process stops by itself when the run ends or fails.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runAccuracy, type AccuracyResult } from './accuracy.js';
import { runHeap, type HeapResultSet } from './heap.js';
import { runHeartbeat, type HeartbeatResult } from './heartbeat.js';
import { runHotPath, type HotPathResult } from './hot-path.js';
import { fleetRows, runFleet, type FleetResult } from './fleet.js';
import { accuracyRows, formatTable, heapRows, heartbeatRows, hotPathRows, schedulerRows, TARGETS, type Row } from './report.js';
import type { SchedulerCostResult } from './scheduler-cost.js';
import { killAllWorkers, openFileLimit, startWorker } from './workers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILD_DIR = `${ROOT}node_modules/.cache/ws-timeouts-bench`;

/** Sizes of the full and the quick run. */
const PLANS = {
  full: {
    hotPath: { sockets: 1_000, ratePerSec: 10_000, rounds: 10, roundMs: 1_500, warmupMs: 2_000 },
    heap: { counts: [1_000, 2_000, 5_000, 9_000], heartbeatMs: 25_000, variants: ['raw', 'recipe', 'timers', 'auto', 'manual', 'socketio'] as const },
    heartbeat: { counts: [1_000, 5_000, 9_000], windowMs: 8_000, finalWindowMs: 20_000, heartbeatMs: 1_000, defaultResolutionOnly: false, repeatRounds: 2 },
    fleet: { socketsPerNode: 1_000, rounds: 30, restWindowMs: 10_000, closes: 200 },
    accuracy: {
      sockets: 1_000,
      runs: [
        { resolutionMs: 1_000, idleTimeoutMs: 3_000, pingIntervalMs: 1_000, pongTimeoutMs: 1_000 },
        { resolutionMs: 100, idleTimeoutMs: 1_000, pingIntervalMs: 500, pongTimeoutMs: 500 },
      ],
    },
  },
  quick: {
    hotPath: { sockets: 200, ratePerSec: 4_000, rounds: 2, roundMs: 500, warmupMs: 300 },
    heap: { counts: [1_000], heartbeatMs: 25_000, variants: ['raw', 'recipe', 'timers', 'auto', 'socketio'] as const },
    heartbeat: { counts: [1_000], windowMs: 1_000, finalWindowMs: 1_000, heartbeatMs: 1_000, defaultResolutionOnly: true, repeatRounds: 0 },
    accuracy: { sockets: 200, runs: [{ resolutionMs: 200, idleTimeoutMs: 600, pingIntervalMs: 400, pongTimeoutMs: 400 }] },
    fleet: { socketsPerNode: 200, rounds: 5, restWindowMs: 4_000, closes: 20 },
  },
};

/** ws-timeouts in figure 4: the default resolution, and a finer one that spreads pings over the second. */
const HEARTBEAT_VARIANTS = [
  { label: 'raw ws (no heartbeat)', variant: 'raw', heartbeat: false },
  { label: 'ws README recipe', variant: 'recipe', heartbeat: true },
  { label: 'timer per socket', variant: 'timers', heartbeat: true },
  { label: 'ws-timeouts (res 1 s)', variant: 'auto', heartbeat: true, resolutionMs: 1_000 },
  { label: 'ws-timeouts (res 50 ms)', variant: 'auto', heartbeat: true, resolutionMs: 50 },
  { label: 'socket.io 4', variant: 'socketio', heartbeat: true },
] as const;
/** What the 9k targets compare, measured again: ws-timeouts at its default resolution, raw ws (the event-loop floor) and the recipe (the CPU bar). */
const HEARTBEAT_JUDGED = HEARTBEAT_VARIANTS.filter((v) => v.variant === 'raw' || v.variant === 'recipe' || ('resolutionMs' in v && v.resolutionMs === 1_000)).map((v) => v.label);

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Compiles lib/ with tsc into BUILD_DIR; returns the compiled lib/index.js. */
function buildLibrary(): string {
  const started = Date.now();
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', `${ROOT}tsconfig.build.json`, '--outDir', BUILD_DIR, '--noEmitOnError', 'false', '--declaration', 'false', '--declarationMap', 'false', '--sourceMap', 'false'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    // Type errors still emit JavaScript; only a missing or stale output is fatal.
    const out = String((err as { stdout?: Buffer }).stdout ?? '').trim();
    log(`  note: tsc reported type errors (the JavaScript was still emitted):\n${out.split('\n').slice(0, 5).map((l) => `    ${l}`).join('\n')}`);
  }
  const entry = `${BUILD_DIR}/lib/index.js`;
  if (!existsSync(entry) || statSync(entry).mtimeMs < started - 1_000) throw new Error(`bench: tsc did not emit ${entry}`);
  return entry;
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  const ws = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('ws/package.json'), 'utf8')) as { version: string };
  return {
    node: process.version,
    ws: ws.version,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    os: `${os.type()} ${os.release()}`,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    openFileLimit: openFileLimit(),
  };
}

function busiestProcesses(): string[] {
  try {
    const out = execFileSync('ps', ['-eo', 'pcpu,args', '--sort=-pcpu', '--no-headers'], { encoding: 'utf8' });
    return out
      .split('\n')
      .slice(0, 6)
      .map((l) => l.trim().slice(0, 140))
      .filter(Boolean);
  } catch {
    return [];
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string' },
      source: { type: 'boolean', default: false },
    },
  });
  const mode = values.quick ? 'quick' : 'full';
  const plan = PLANS[mode];
  const only = new Set((values.only ?? '1,2,3,4,5,6').split(',').map((s) => s.trim()));
  const started = Date.now();
  const loadStart = os.loadavg();
  const busyStart = busiestProcesses();

  const needed = Math.max(...plan.heap.counts, ...plan.heartbeat.counts) + 64;
  if (openFileLimit() < needed) throw new Error(`bench: the open-file limit is ${openFileLimit()}, ${needed} needed per process (ulimit -Hn)`);

  log(`ws-timeouts bench (${mode}) — Node ${process.version}, ${os.cpus()[0]?.model.trim()} × ${os.cpus().length}, load ${loadStart.map((l) => l.toFixed(2)).join(' ')}`);
  if (values.source) {
    delete process.env.BENCH_LIB;
    log('library: lib/*.ts through tsx (--source)');
  } else {
    log('library: building lib/ with tsc…');
    process.env.BENCH_LIB = buildLibrary();
  }

  const figures: {
    hotPath?: HotPathResult;
    heap?: HeapResultSet;
    scheduler?: SchedulerCostResult;
    heartbeat?: HeartbeatResult;
    accuracy?: AccuracyResult;
    fleet?: FleetResult;
  } = {};
  const rows: Row[] = [];

  let figureStarted = Date.now();
  const figureDone = (): void => {
    log(`  (${((Date.now() - figureStarted) / 1000).toFixed(0)} s)`);
    figureStarted = Date.now();
  };

  if (only.has('1')) {
    log(`\n[1] hot path: echo, ${plan.hotPath.sockets} sockets per variant, ${plan.hotPath.rounds} rounds`);
    figures.hotPath = await runHotPath(plan.hotPath, log);
    rows.push(...hotPathRows(figures.hotPath));
    figureDone();
  }
  if (only.has('2')) {
    log(`\n[2] heap per idle socket at ${plan.heap.counts.join(', ')}`);
    figures.heap = await runHeap({ ...plan.heap, variants: [...plan.heap.variants] }, log);
    rows.push(...heapRows(figures.heap));
    figureDone();
  }
  if (only.has('3')) {
    log('\n[3] scheduler in process');
    const worker = await startWorker('scheduler', new URL('./scheduler-cost.ts', import.meta.url));
    try {
      figures.scheduler = await worker.call<SchedulerCostResult>('run', { quick: mode === 'quick' });
    } finally {
      await worker.stop();
    }
    rows.push(...schedulerRows(figures.scheduler));
    figureDone();
  }
  if (only.has('4')) {
    log(`\n[4] heartbeat every ${plan.heartbeat.heartbeatMs} ms at ${plan.heartbeat.counts.join(', ')} sockets`);
    const variants = HEARTBEAT_VARIANTS.filter((v) => !plan.heartbeat.defaultResolutionOnly || !('resolutionMs' in v) || v.resolutionMs === 1_000);
    const { repeatRounds, ...heartbeat } = plan.heartbeat;
    figures.heartbeat = await runHeartbeat({ ...heartbeat, variants: variants.map((v) => ({ ...v })), repeat: { labels: HEARTBEAT_JUDGED, rounds: repeatRounds } }, log);
    rows.push(...heartbeatRows(figures.heartbeat));
    figureDone();
  }
  if (only.has('5')) {
    log('\n[5] accuracy of idle and pong timeouts');
    figures.accuracy = await runAccuracy(plan.accuracy, log);
    rows.push(...accuracyRows(figures.accuracy));
    figureDone();
  }

  if (only.has('6')) {
    log(`\n[6] fleet: ${plan.fleet.socketsPerNode} sockets on each of 3 nodes on one redis-server`);
    figures.fleet = await runFleet(plan.fleet, log);
    rows.push(...fleetRows(figures.fleet));
    figureDone();
  }

  const durationSec = Math.round((Date.now() - started) / 1000);
  const loadEnd = os.loadavg();
  const env: Record<string, unknown> & { cpuModel?: string; cores?: number; node?: string; ws?: string } = { ...machine(), loadAverageStart: loadStart.map((l) => +l.toFixed(2)), loadAverageEnd: loadEnd.map((l) => +l.toFixed(2)) };
  console.log(`\nws-timeouts bench (${mode}), ${new Date(started).toISOString()}, ${durationSec} s`);
  console.log(`${String(env.cpuModel)} × ${String(env.cores)}, Node ${String(env.node)}, ws ${String(env.ws)}, load average ${loadStart[0]!.toFixed(2)} → ${loadEnd[0]!.toFixed(2)}\n`);
  console.log(formatTable(rows));
  const missed = rows.filter((r) => r.result === 'FAIL');
  console.log(`\n${rows.filter((r) => r.result === 'pass').length} targets met, ${missed.length} missed${missed.length ? ': see BENCHMARKS.md for why' : ''}.`);

  const out = values.out ?? (mode === 'full' && only.size === 6 ? `${ROOT}bench/results.json` : undefined);
  if (out) {
    const results = {
      date: new Date(started).toISOString(),
      mode,
      durationSec,
      library: values.source ? 'lib/*.ts via tsx' : 'tsc build of lib/',
      machine: env,
      busiestProcessesAtStart: busyStart,
      targets: TARGETS,
      table: rows,
      figures,
    };
    writeFileSync(`${out}.tmp`, `${JSON.stringify(results, null, 2)}\n`);
    renameSync(`${out}.tmp`, out);
    console.log(`results written to ${out}`);
  } else {
    console.log('(results not written: pass --out FILE to keep them)');
  }
}

main().then(
  () => {
    killAllWorkers();
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    killAllWorkers();
    process.exit(1);
  },
);
