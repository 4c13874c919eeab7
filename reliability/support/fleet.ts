/** The parent side of ../clients/fleet.ts: a child process holding many `ws` clients. */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { kill, track } from './children.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../clients/fleet.ts', import.meta.url));

export interface GroupStats {
  count: number;
  open: number;
  closed: number;
  /** Close code → clients that saw it. */
  codes: Record<string, number>;
  /** `Date.now()` of each close, in the fleet process (same machine clock). */
  closeTimes: number[];
  openTimes: number[];
  /** The close each `reconnectAdvised` notice announced: its `timestamp + retryAfterMs` (server clock, same machine). */
  plannedCloseTimes: number[];
  /** Clients that got a `reconnectAdvised` notice before their close. */
  advisedBeforeClose: number;
  seqErrors: number;
  received: number;
  /** The fewest in-order broadcasts any client of the group received. */
  minSeqReceived: number;
  /** The fewest messages any client of the group received. */
  minReceived: number;
}

export interface OpenOptions {
  autoPong?: boolean;
  pause?: boolean;
  checkSeq?: boolean;
  concurrency?: number;
  headers?: Record<string, string>;
}

export class Fleet {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();

  private constructor(readonly child: ChildProcess) {
    child.on('message', (message: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const p = this.pending.get(message.id);
      if (!p) return;
      this.pending.delete(message.id);
      if (message.ok) p.resolve(message.result);
      else p.reject(new Error(message.error));
    });
    child.once('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`the client fleet exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  static async start(): Promise<Fleet> {
    const child = track(fork(SCRIPT, [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const fleet = new Fleet(child);
    await fleet.request('stats', { group: '-' }); // answers once the script is loaded
    return fleet;
  }

  request<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ id, op, ...args });
    });
  }

  /** Opens `count` clients of `group`; rejects unless every one opened. */
  async open(group: string, url: string, count: number, options: OpenOptions = {}): Promise<{ ms: number }> {
    const r = await this.request<{ opened: number; failed: number; errors: string[]; ms: number }>('open', { group, url, count, ...options });
    if (r.failed > 0) throw new Error(`${r.failed}/${count} clients of ${group} failed to open: ${r.errors.join(', ')}`);
    return r;
  }

  stats(group: string): Promise<GroupStats> {
    return this.request('stats', { group });
  }

  /** Ends the fleet: its sockets are terminated and the process exits by itself (killed after 5 s). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.disconnect();
    const timer = setTimeout(() => kill(this.child), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
