/**
 * Figure 1 — hot-path cost: closed-loop JSON echo over loopback, raw ws (plain, and waiting for
 * each send's result) against ws-timeouts' manual loop (`receiveWithTimeout` /
 * `sendJsonWithTimeout`) and the registry's automatic mode (`onMessage` + `sendJsonWithTimeout`).
 *
 * The variants listen side by side in ONE server process (a port each), so they share its
 * JIT, heap and CPU placement, and one client process holds all their sockets; only one variant
 * gets traffic at a time. Rounds take turns (the order rotates every round) so drift in the
 * machine's load hits every variant alike. Each round's figure is divided by raw's figure of the
 * same round, and the median of those ratios is reported: absolute numbers on a shared machine
 * drift, paired ratios much less.
 *
 * Server CPU per message is measured at a fixed load (the same messages per second for every
 * variant), because at each variant's own top speed the kernel's wake-up costs change with the
 * speed itself; the closed-loop round trips per second are reported beside it.
 */
import { median, round, spread } from './stats.js';
import type { Variant } from './variants.js';
import { startWorker, type Worker } from './workers.js';
import type { WindowResult } from './server.js';

export interface HotPathOptions {
  sockets: number;
  /** The fixed load (messages per second, all sockets together) CPU per message is measured at. */
  ratePerSec: number;
  rounds: number;
  roundMs: number;
  warmupMs: number;
}

export interface HotPathVariant {
  variant: Variant;
  /** Server CPU per echoed message, µs: median over rounds, and (max − min) / median. */
  cpuUsPerMsg: number;
  cpuSpread: number;
  roundTripsPerSec: number;
  rateSpread: number;
  /** Median over rounds of this variant's figure / raw's figure in the same round (1 for raw). */
  cpuRatio: number;
  cpuRatioSpread: number;
  /** The same against raw ws + send result, the baseline a send that reports its result is judged by (1 for it). */
  ackCpuRatio: number;
  ackCpuRatioSpread: number;
  rateRatio: number;
  rateRatioSpread: number;
  /** The user-space part of `cpuUsPerMsg`, µs, median, and its paired ratio to raw ws + send result's. */
  userUsPerMsg: number;
  userAckRatio: number;
  /** Server CPU per message in the closed loop (at each variant's own top speed), µs, median. */
  closedCpuUsPerMsg: number;
  closedCpuRatio: number;
  rounds: RoundFigures[];
}

interface RoundFigures {
  /** At the fixed load. */
  cpuUsPerMsg: number;
  /** The user-space part of `cpuUsPerMsg` (JavaScript, V8 and libuv; the rest is the kernel's). */
  userUsPerMsg: number;
  /** Closed loop. */
  roundTripsPerSec: number;
  closedCpuUsPerMsg: number;
  /** Echoed at the fixed load. */
  messages: number;
}

export interface HotPathResult {
  sockets: number;
  ratePerSec: number;
  rounds: number;
  roundMs: number;
  variants: HotPathVariant[];
}

export const HOT_PATH_VARIANTS: Variant[] = ['raw', 'rawAck', 'manual', 'auto'];

export async function runHotPath(opts: HotPathOptions, log: (line: string) => void): Promise<HotPathResult> {
  const client = await startWorker('echo-client', new URL('./client.ts', import.meta.url));
  const server: Worker = await startWorker('echo-server', new URL('./server.ts', import.meta.url));
  try {
    for (const variant of HOT_PATH_VARIANTS) {
      const { port } = await server.call<{ port: number }>('listen', { variant });
      const c = await client.call<{ open: number; failed: number }>('connect', {
        group: variant,
        url: `ws://127.0.0.1:${port}/`,
        count: opts.sockets,
        ratePerSec: 2_000,
      });
      if (c.open !== opts.sockets) throw new Error(`hot path: ${variant}: ${c.open} of ${opts.sockets} sockets opened`);
    }
    log(`  ${opts.sockets} sockets per variant connected; warming up`);
    for (const variant of HOT_PATH_VARIANTS) await client.call('echo', { group: variant, durationMs: opts.warmupMs });

    const perRound = new Map<Variant, RoundFigures[]>();
    for (let r = 0; r < opts.rounds; r++) {
      const order = HOT_PATH_VARIANTS.map((_, i) => HOT_PATH_VARIANTS[(i + r) % HOT_PATH_VARIANTS.length]!);
      for (const variant of order) {
        // CPU per message at the same fixed load for every variant...
        await server.call('windowStart', { label: `${variant}-paced` });
        await client.call('echo', { group: variant, durationMs: opts.roundMs, ratePerSec: opts.ratePerSec });
        const paced = await server.call<WindowResult>('windowStop');
        // ...then the pair's top speed, closed loop.
        await server.call('windowStart', { label: `${variant}-closed` });
        const echo = await client.call<{ roundTrips: number; wallMs: number }>('echo', { group: variant, durationMs: opts.roundMs });
        const closed = await server.call<WindowResult>('windowStop');
        const entry = {
          cpuUsPerMsg: paced.cpuUs / paced.messages,
          userUsPerMsg: (paced.cpuUs - paced.systemUs) / paced.messages,
          roundTripsPerSec: echo.roundTrips / (echo.wallMs / 1000),
          closedCpuUsPerMsg: closed.cpuUs / closed.messages,
          messages: paced.messages,
        };
        (perRound.get(variant) ?? perRound.set(variant, []).get(variant)!).push(entry);
      }
      const line = HOT_PATH_VARIANTS.map((v) => {
        const e = perRound.get(v)![r]!;
        return `${v} ${e.cpuUsPerMsg.toFixed(2)} µs/msg (user ${e.userUsPerMsg.toFixed(2)}), closed ${e.closedCpuUsPerMsg.toFixed(2)} µs/msg ${Math.round(e.roundTripsPerSec)} rt/s`;
      }).join(' | ');
      log(`  round ${r + 1}/${opts.rounds}: ${line}`);
    }

    const raw = perRound.get('raw')!;
    const rawAck = perRound.get('rawAck')!;
    const variants = HOT_PATH_VARIANTS.map((variant): HotPathVariant => {
      const rounds = perRound.get(variant)!;
      const cpu = rounds.map((e) => e.cpuUsPerMsg);
      const rate = rounds.map((e) => e.roundTripsPerSec);
      const cpuRatios = rounds.map((e, i) => e.cpuUsPerMsg / raw[i]!.cpuUsPerMsg);
      const ackCpuRatios = rounds.map((e, i) => e.cpuUsPerMsg / rawAck[i]!.cpuUsPerMsg);
      const rateRatios = rounds.map((e, i) => e.roundTripsPerSec / raw[i]!.roundTripsPerSec);
      return {
        variant,
        cpuUsPerMsg: round(median(cpu), 3),
        cpuSpread: round(spread(cpu), 3),
        roundTripsPerSec: Math.round(median(rate)),
        rateSpread: round(spread(rate), 3),
        cpuRatio: round(median(cpuRatios), 3),
        cpuRatioSpread: round(spread(cpuRatios), 3),
        ackCpuRatio: round(median(ackCpuRatios), 3),
        ackCpuRatioSpread: round(spread(ackCpuRatios), 3),
        rateRatio: round(median(rateRatios), 3),
        rateRatioSpread: round(spread(rateRatios), 3),
        userUsPerMsg: round(median(rounds.map((e) => e.userUsPerMsg)), 3),
        userAckRatio: round(median(rounds.map((e, i) => e.userUsPerMsg / rawAck[i]!.userUsPerMsg)), 3),
        closedCpuUsPerMsg: round(median(rounds.map((e) => e.closedCpuUsPerMsg)), 3),
        closedCpuRatio: round(median(rounds.map((e, i) => e.closedCpuUsPerMsg / raw[i]!.closedCpuUsPerMsg)), 3),
        rounds: rounds.map((e) => ({
          cpuUsPerMsg: round(e.cpuUsPerMsg, 3),
          userUsPerMsg: round(e.userUsPerMsg, 3),
          roundTripsPerSec: Math.round(e.roundTripsPerSec),
          closedCpuUsPerMsg: round(e.closedCpuUsPerMsg, 3),
          messages: e.messages,
        })),
      };
    });
    return { sockets: opts.sockets, ratePerSec: opts.ratePerSec, rounds: opts.rounds, roundMs: opts.roundMs, variants };
  } finally {
    await Promise.allSettled([client.stop(), server.stop()]);
  }
}
