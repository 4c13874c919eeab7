/**
 * The one table `npm run bench` prints, built from the figures' results: figure, variant,
 * value, ratio to raw ws, target, and whether the target is met.
 */
import type { AccuracyResult } from './accuracy.js';
import type { HeapResultSet } from './heap.js';
import type { HeartbeatResult } from './heartbeat.js';
import type { HotPathResult } from './hot-path.js';
import type { SchedulerCostResult } from './scheduler-cost.js';
import { SCHEDULER_DEFAULTS } from '../lib/scheduler.js';
import { fmt, median } from './stats.js';
import type { Variant } from './variants.js';

export interface Row {
  figure: string;
  variant: string;
  value: string;
  ratio: string;
  target: string;
  /** 'pass', 'FAIL', or '' when the row is information only. */
  result: 'pass' | 'FAIL' | '';
}

export const TARGETS = Object.freeze({
  /** CPU per echoed message against raw ws + send result: the registry's, and the manual loop's. */
  cpuPerMessageRatio: 1.03,
  manualCpuPerMessageRatio: 1.15,
  heapOverheadBytes: 300,
  tickUs: 1000,
  loopDelayP99Ratio: 1.2,
});

const NAMES: Record<Variant, string> = {
  raw: 'raw ws',
  rawAck: 'raw ws + send result',
  recipe: 'ws README recipe',
  timers: 'timer per socket',
  manual: 'ws-timeouts manual',
  auto: 'ws-timeouts registry',
  accuracy: 'ws-timeouts',
  socketio: 'socket.io 4',
};

const verdict = (ok: boolean): 'pass' | 'FAIL' => (ok ? 'pass' : 'FAIL');
const x = (ratio: number): string => (Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : 'n/a');
const pct = (fraction: number): string => `±${Math.round((fraction * 100) / 2)}%`;
const k = (n: number): string => (n % 1000 === 0 ? `${n / 1000}k` : String(n));

export function hotPathRows(r: HotPathResult): Row[] {
  const rows: Row[] = [];
  const figure = `1 hot path CPU/msg (${k(r.sockets)} sockets, ${k(r.ratePerSec)} msg/s)`;
  for (const v of r.variants) {
    const isRaw = v.variant === 'raw';
    // Only ws-timeouts is judged, against raw ws + send result: a send that reports its result costs that much anyway.
    const limit = v.variant === 'auto' ? TARGETS.cpuPerMessageRatio : v.variant === 'manual' ? TARGETS.manualCpuPerMessageRatio : undefined;
    rows.push({
      figure,
      variant: NAMES[v.variant],
      value: `${fmt(v.cpuUsPerMsg, 'µs')} ${pct(v.cpuSpread)}`,
      ratio: isRaw ? '1.00×' : `${x(v.cpuRatio)} ${pct(v.cpuRatioSpread)}`,
      target: limit === undefined ? '' : `≤ ${limit.toFixed(2)}× raw+result (${x(v.ackCpuRatio)} ${pct(v.ackCpuRatioSpread)})`,
      result: limit === undefined ? '' : verdict(v.ackCpuRatio <= limit),
    });
  }
  for (const v of r.variants) {
    // Not judged: where the CPU goes. The kernel's part (the rest) is the same work for every variant.
    rows.push({
      figure: `1 hot path user-space CPU/msg (same load)`,
      variant: NAMES[v.variant],
      value: fmt(v.userUsPerMsg, 'µs'),
      ratio: v.variant === 'rawAck' ? '1.00× raw+result' : `${x(v.userAckRatio)} raw+result`,
      target: '',
      result: '',
    });
  }
  for (const v of r.variants) {
    rows.push({
      figure: `1 hot path round-trips/s (closed loop)`,
      variant: NAMES[v.variant],
      value: `${Math.round(v.roundTripsPerSec).toLocaleString('en')} ${pct(v.rateSpread)}`,
      ratio: v.variant === 'raw' ? '1.00×' : `${x(v.rateRatio)} ${pct(v.rateRatioSpread)}`,
      target: '',
      result: '',
    });
  }
  return rows;
}

export function heapRows(r: HeapResultSet): Row[] {
  return r.variants.map((v) => {
    const last = v.points.at(-1)!;
    const isRaw = v.variant === 'raw';
    const series = v.points.map((p) => `${k(p.sockets)} ${isRaw ? p.bytesPerSocket : signed(p.overheadBytes)}`).join(', ');
    const worst = Math.max(...v.points.map((p) => p.overheadBytes));
    const raw = r.variants.find((w) => w.variant === 'raw')?.points.at(-1);
    const judged = v.variant === 'auto';
    const row: Row = {
      figure: `2 heap B/socket ${isRaw ? '' : 'over raw '}(idle)`,
      variant: NAMES[v.variant],
      value: series,
      ratio: raw ? x(last.bytesPerSocket / raw.bytesPerSocket) : 'n/a',
      target: judged ? `≤ +${TARGETS.heapOverheadBytes} B` : '',
      result: judged ? verdict(worst <= TARGETS.heapOverheadBytes) : '',
    };
    const registry = r.variants.find((w) => w.variant === 'auto')?.points.at(-1);
    return v.variant === 'socketio' && registry ? { ...row, ...aheadOf(last.bytesPerSocket, registry.bytesPerSocket) } : row;
  });
}

/** socket.io's row judges ws-timeouts (the registry, at the largest count): it must cost less. */
function aheadOf(socketIo: number, wsTimeouts: number): Pick<Row, 'target' | 'result'> {
  return { target: `registry below (${fmt(wsTimeouts)})`, result: verdict(wsTimeouts < socketIo) };
}

function signed(n: number): string {
  return n >= 0 ? `+${n}` : String(n);
}

export function schedulerRows(r: SchedulerCostResult): Row[] {
  const figure = `3 scheduler (${(r.entries / 1000).toFixed(0)}k tracked)`;
  // O(due) means a fixed part plus a constant cost per due entry: the cost each step of added
  // due entries adds, per entry, stays within 3× from 100 to 10k due.
  const marginalNs = r.dueScaling.slice(1).map((d, i) => ((d.tickUs - r.dueScaling[i]!.tickUs) * 1000) / (d.due - r.dueScaling[i]!.due));
  const linear = marginalNs.length > 0 && Math.min(...marginalNs) > 0 && Math.max(...marginalNs) / Math.min(...marginalNs) <= 3;
  return [
    { figure, variant: 'tick, none due', value: fmt(r.tickNoneDueUs, 'µs'), ratio: '', target: `≤ ${TARGETS.tickUs} µs`, result: verdict(r.tickNoneDueUs <= TARGETS.tickUs) },
    { figure, variant: 'tick, 1% due', value: fmt(r.tickOnePercentDueUs, 'µs'), ratio: '', target: `≤ ${TARGETS.tickUs} µs`, result: verdict(r.tickOnePercentDueUs <= TARGETS.tickUs) },
    {
      figure,
      variant: 'tick vs number due',
      value: `${r.dueScaling.map((d) => `${k(d.due)}: ${fmt(d.tickUs)} µs`).join(', ')} (+${marginalNs.map((ns) => fmt(ns)).join(', +')} ns per added due)`,
      ratio: '',
      target: 'O(due)',
      result: verdict(linear),
    },
    { figure, variant: 'activity update', value: `${fmt(r.activityUpdateNs, 'ns')} (Date.now ${fmt(r.dateNowNs, 'ns')})`, ratio: '', target: '', result: '' },
    { figure, variant: 'reschedule (moves slot)', value: fmt(r.rescheduleNs, 'ns'), ratio: '', target: '', result: '' },
  ];
}

export function heartbeatRows(r: HeartbeatResult): Row[] {
  type Measured = HeartbeatResult['variants'][number];
  const rows: Row[] = [];
  const raw = r.variants.find((v) => v.variant === 'raw');
  const recipe = r.variants.find((v) => v.variant === 'recipe');
  const n = raw ? raw.points.at(-1)!.sockets : 0;
  // Targets judge ws-timeouts as shipped (the default resolution); finer resolutions are shown
  // for the trade-off they make (BENCHMARKS.md, figure 4).
  const isDefault = (v: Measured): boolean => v.variant === 'auto' && (v.resolutionMs ?? SCHEDULER_DEFAULTS.resolutionMs) === SCHEDULER_DEFAULTS.resolutionMs;
  const registry = r.variants.find(isDefault);
  for (const [metric, label] of [
    ['eldP99Ms', 'loop delay p99 ms'],
    ['cpuMsPerSec', 'CPU ms/s'],
  ] as const) {
    // At the last count: the median of its windows when the variant was measured again (HeartbeatOptions.repeat).
    const at = (v: Measured): number => median([v.points.at(-1)!, ...(v.repeats ?? [])].map((p) => p[metric]));
    for (const v of r.variants) {
      const repeats = v.repeats?.length ? ` (${k(n)}: median of ${v.repeats.length + 1} windows ${fmt(at(v))})` : '';
      const ratio = raw ? at(v) / at(raw) : NaN;
      // Only ws-timeouts at its default resolution is judged: event-loop delay against raw, CPU against the recipe.
      const bar = !isDefault(v)
        ? null
        : metric === 'eldP99Ms'
          ? { target: `≤ ${TARGETS.loopDelayP99Ratio.toFixed(1)}×`, met: ratio <= TARGETS.loopDelayP99Ratio }
          : recipe && { target: `≤ recipe (${fmt(at(recipe))})`, met: at(v) <= at(recipe) };
      rows.push({
        figure: `4 heartbeat ${k(n)}: ${label}`,
        variant: v.label,
        value: v.points.map((p) => `${k(p.sockets)} ${fmt(p[metric])}`).join(', ') + repeats,
        ratio: x(ratio),
        target: bar ? bar.target : '',
        result: bar ? verdict(bar.met) : '',
        ...(v.variant === 'socketio' && registry ? aheadOf(at(v), at(registry)) : {}),
      });
    }
  }
  return rows;
}

export function accuracyRows(r: AccuracyResult): Row[] {
  const rows: Row[] = [];
  for (const run of r.runs) {
    for (const [kind, l] of [
      ['idle', run.idle],
      ['pong', run.pong],
    ] as const) {
      rows.push({
        figure: `5 lateness ms (${kind} timeout)`,
        variant: `resolution ${run.resolutionMs} ms`,
        value: `p50 ${fmt(l.p50)}, p99 ${fmt(l.p99)}, max ${fmt(l.max)} (n=${l.count})`,
        ratio: '',
        target: `p99 ≤ ${run.resolutionMs}`,
        result: verdict(l.count === r.sockets && l.p99 <= run.resolutionMs),
      });
    }
  }
  return rows;
}

/** The rows as a fixed-width text table (also valid Markdown). */
export function formatTable(rows: Row[]): string {
  const head: Row = { figure: 'figure', variant: 'variant', value: 'value', ratio: 'vs raw', target: 'target', result: '' };
  const cols = ['figure', 'variant', 'value', 'ratio', 'target', 'result'] as const;
  const width = cols.map((c) => Math.max(...[head, ...rows].map((r) => r[c].length)));
  const line = (r: Row): string => `| ${cols.map((c, i) => r[c].padEnd(width[i]!)).join(' | ')} |`;
  const rule = `|${width.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}
