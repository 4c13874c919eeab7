/**
 * Probes the fleet fault cases run against example-server nodes (child processes): a steady
 * stream of `POST /scans`, an echo round-trip timer, and a node's resident memory; and the
 * nodes' environment they share.
 */
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import type { ExampleServer } from '../../spec/support/example-server.js';

/**
 * The example nodes' environment in the fleet fault cases: no idle close and a slow heartbeat
 * (neither is under test), the membership TTL and the fleet request deadline of the case.
 */
export function fleetCaseEnv(ttlMs: number, requestTimeoutMs: number): Record<string, string> {
  return {
    WS_IDLE_TIMEOUT: '0',
    WS_PING_INTERVAL: '2',
    WS_PONG_TIMEOUT: '10',
    WS_FLEET_TTL: String(ttlMs / 1000),
    WS_FLEET_REQUEST_TIMEOUT: String(requestTimeoutMs / 1000),
  };
}

/** One answer of `POST /scans`: when it was sent, how long it took, and what the fleet said. */
export interface ScanAnswer {
  at: number;
  ms: number;
  httpStatus: number;
  status: string;
  nodes: number;
  sent: number;
  failed: number;
  nodesMissing: string[];
}

/** "12× unavailable, 3× partial": how many answers had each status. */
export function statuses(answers: ScanAnswer[]): string {
  const counts = new Map<string, number>();
  for (const a of answers) counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
  return [...counts].map(([status, n]) => `${n}× "${status}"`).join(', ') || 'none';
}

/** Posts a scan to `node` every `everyMs` (one at a time) until `stop()`; keeps every answer. */
export class ScanPoster {
  readonly answers: ScanAnswer[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    private readonly node: ExampleServer,
    everyMs: number,
  ) {
    this.done = this.loop(everyMs);
  }

  private async loop(everyMs: number): Promise<void> {
    for (let i = 0; this.running; i++) {
      const at = Date.now();
      try {
        const res = await fetch(`${this.node.httpUrl}/scans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ticketId: `T-${i}` }) });
        const body = (await res.json()) as Omit<ScanAnswer, 'at' | 'ms' | 'httpStatus'>;
        this.answers.push({ at, ms: Date.now() - at, httpStatus: res.status, ...body });
      } catch (error) {
        // The node is gone (a failed case's clean-up): recorded, never an unhandled rejection.
        this.answers.push({ at, ms: Date.now() - at, httpStatus: 0, status: `error: ${(error as Error).message}`, nodes: 0, sent: 0, failed: 0, nodesMissing: [] });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, at + everyMs - Date.now())));
    }
  }

  /** Answers sent in [from, to). */
  between(from: number, to = Infinity): ScanAnswer[] {
    return this.answers.filter((a) => a.at >= from && a.at < to);
  }

  async stop(): Promise<ScanAnswer[]> {
    this.running = false;
    await this.done;
    return this.answers;
  }
}

/** An echo client on `node`: a message every `everyMs`, each round trip timed. */
export class EchoProbe {
  readonly rtts: Array<{ at: number; ms: number }> = [];
  private timer: NodeJS.Timeout | undefined;
  private sentAt = 0;

  private constructor(private readonly ws: WebSocket) {}

  static async start(node: ExampleServer, everyMs: number): Promise<EchoProbe> {
    const ws = new WebSocket(`${node.wsUrl}/ws/echo?user=echo-probe`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const probe = new EchoProbe(ws);
    ws.on('message', () => {
      probe.rtts.push({ at: probe.sentAt, ms: Date.now() - probe.sentAt });
      probe.sentAt = 0;
    });
    probe.timer = setInterval(() => {
      if (probe.sentAt !== 0 || ws.readyState !== WebSocket.OPEN) return; // one in flight at a time
      probe.sentAt = Date.now();
      ws.send('ping');
    }, everyMs);
    return probe;
  }

  /** Round trips started in [from, to). */
  between(from: number, to = Infinity): number[] {
    return this.rtts.filter((r) => r.at >= from && r.at < to).map((r) => r.ms);
  }

  /** Idempotent: called again by a clean-up after a failure. */
  stop(): void {
    clearInterval(this.timer);
    this.ws.terminate();
  }
}

/** Resident memory of process `pid` (VmRSS), bytes. */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}
