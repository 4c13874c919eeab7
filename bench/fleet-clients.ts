/**
 * A bench client process for the fleet figure (bench/fleet.ts): holds `/ws/scans` or `/ws/echo`
 * sockets on one example-server node and records when each scan arrives (wall clock with sub-ms
 * precision, comparable across processes of this machine). Started and driven over IPC.
 */
import { WebSocket } from 'ws';
import { serveCommands } from './workers.js';

/** Wall-clock ms with sub-ms precision: the same clock in every process of the machine. */
const now = (): number => performance.timeOrigin + performance.now();

const sockets: WebSocket[] = [];
/** ticketId → arrival time of each copy. */
const arrivals = new Map<string, number[]>();
const waiters = new Set<() => void>();

function openOne(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10_000 });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      ws.on('error', () => undefined);
      sockets.push(ws);
      resolve();
    });
    ws.on('message', (data) => {
      const at = now();
      const { ticketId } = JSON.parse(data.toString()) as { ticketId?: string };
      if (ticketId === undefined) return;
      const list = arrivals.get(ticketId) ?? [];
      list.push(at);
      arrivals.set(ticketId, list);
      for (const wake of waiters) wake();
    });
  });
}

serveCommands({
  /** Opens `count` sockets to `url`, `concurrency` handshakes at a time. */
  async open({ url, count, concurrency = 100 }: { url: string; count: number; concurrency?: number }): Promise<{ open: number }> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        next++;
        await openOne(url);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    return { open: sockets.length };
  },
  /** The arrival times of `ticketId`, once `expected` copies arrived (or `timeoutMs` passed). */
  async arrivals({ ticketId, expected, timeoutMs = 10_000 }: { ticketId: string; expected: number; timeoutMs?: number }): Promise<number[]> {
    const done = (): boolean => (arrivals.get(ticketId)?.length ?? 0) >= expected;
    if (!done()) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          if (!done()) return;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(() => (waiters.delete(wake), resolve()), timeoutMs);
        waiters.add(wake);
      });
    }
    const list = arrivals.get(ticketId) ?? [];
    arrivals.delete(ticketId);
    return list;
  },
  /** Closes every socket and waits for the closes. */
  async closeAll(): Promise<void> {
    await Promise.all(sockets.splice(0).map((ws) => new Promise<void>((resolve) => (ws.readyState === WebSocket.CLOSED ? resolve() : (ws.once('close', () => resolve()), ws.close())))));
  },
});
