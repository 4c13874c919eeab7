/**
 * The bench client process: opens groups of plain `ws` client sockets to 127.0.0.1 at a steady
 * rate, drives closed-loop echo (one message in flight per socket), answers pings (or not), and
 * reports how its sockets were closed. Started and driven by bench/run.ts over IPC.
 * For the socket.io variant, a group holds `socket.io-client` sockets instead (connect and drop
 * only: the figures that use it hold idle sockets, which answer engine.io's pings by themselves).
 */
import type { Socket as IoSocket } from 'socket.io-client';
import { WebSocket } from 'ws';
import type { ClientKind } from './variants.js';
import { serveCommands } from './workers.js';

interface Group {
  sockets: WebSocket[];
  /** socket.io groups: their sockets (`sockets` stays empty). */
  ioSockets: IoSocket[];
  /** 1 while socket i has a message in flight. */
  busy: Uint8Array;
  open: number;
  closed: number;
  closeCodes: Record<number, number>;
  /** 'closed': every reply sends the next message; 'paced': the pacer sends, replies only count. */
  echoing: false | 'closed' | 'paced';
  roundTrips: number;
  inFlight: number;
  payload: string;
  drained: (() => void) | null;
}

const groups = new Map<string, Group>();

function group(name: string): Group {
  const g = groups.get(name);
  if (!g) throw new Error(`no group ${name}`);
  return g;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface ConnectArgs {
  group: string;
  url: string;
  count: number;
  /** New connections per second (spread evenly, so per-socket timers get evenly spread phases). */
  ratePerSec: number;
  /** Answer pings (false: a peer that stopped answering). @default true */
  autoPong?: boolean;
  /** Handshakes in progress at once, so the server's accept backlog never overflows. @default 400 */
  maxPending?: number;
  /** @default 'ws' */
  client?: ClientKind;
}

serveCommands({
  async connect(args: ConnectArgs): Promise<{ open: number; failed: number; ms: number }> {
    const g: Group = groups.get(args.group) ?? {
      sockets: [],
      ioSockets: [],
      busy: new Uint8Array(0),
      open: 0,
      closed: 0,
      closeCodes: {},
      echoing: false,
      roundTrips: 0,
      inFlight: 0,
      payload: JSON.stringify({ type: 'echo', text: 'hello, ws-timeouts', n: 42 }),
      drained: null,
    };
    groups.set(args.group, g);
    const maxPending = args.maxPending ?? 400;
    const started = performance.now();
    let begun = 0;
    let pending = 0;
    let failed = 0;
    let opened = 0;

    const onMessage = (ws: WebSocket, index: number): void => {
      if (g.busy[index] === 0) return; // a notice, not an echo
      if (g.echoing) g.roundTrips++;
      if (g.echoing === 'closed') {
        ws.send(g.payload);
        return;
      }
      g.busy[index] = 0;
      g.inFlight--;
      if (g.inFlight === 0) g.drained?.();
    };

    // Each socket its own connection (forceNew: no multiplexing over one), never reconnecting.
    const io = args.client === 'socket.io' ? (await import('socket.io-client')).io : null;
    const ioFailures: Record<string, number> = {};
    const openOneIo = (): void => {
      pending++;
      begun++;
      const socket = io!(args.url.replace(/^ws/, 'http'), { transports: ['websocket'], forceNew: true, reconnection: false });
      let counted = false;
      let settled = false;
      // A failed handshake, or a connection engine.io closed before socket.io's connect packet.
      const fail = (why: string): void => {
        if (settled) return;
        settled = true;
        pending--;
        failed++;
        ioFailures[why] = (ioFailures[why] ?? 0) + 1;
      };
      socket.once('connect_error', (err) => fail(err.message));
      socket.once('connect', () => {
        if (settled) return;
        settled = true;
        counted = true;
        pending--;
        opened++;
        g.open++;
        g.ioSockets.push(socket);
      });
      socket.once('disconnect', (reason) => {
        if (!counted) return fail(reason);
        g.open--;
        g.closed++;
      });
    };

    const openOne = (): void => {
      if (io) return openOneIo();
      pending++;
      begun++;
      const ws = new WebSocket(args.url, { autoPong: args.autoPong ?? true, perMessageDeflate: false });
      let settled = false;
      let counted = false;
      ws.on('error', () => {
        if (!settled) {
          settled = true;
          pending--;
          failed++;
        }
      });
      let index = -1;
      ws.on('open', () => {
        settled = true;
        counted = true;
        pending--;
        opened++;
        g.open++;
        index = g.sockets.push(ws) - 1;
      });
      ws.on('message', () => onMessage(ws, index));
      ws.on('close', (code) => {
        if (counted) {
          g.open--;
          g.closed++;
          g.closeCodes[code] = (g.closeCodes[code] ?? 0) + 1;
        }
      });
    };

    const deadline = started + Math.max(30_000, (args.count / args.ratePerSec) * 3_000);
    while (begun < args.count) {
      if (performance.now() > deadline) throw new Error(`connect: only ${begun} of ${args.count} started in time`);
      const due = Math.min(args.count, Math.ceil(((performance.now() - started) / 1000) * args.ratePerSec) + 1);
      while (begun < due && pending < maxPending) openOne();
      await sleep(5);
    }
    while (pending > 0) {
      if (performance.now() > deadline) throw new Error(`connect: ${pending} handshakes still pending`);
      await sleep(5);
    }
    if (failed > 0 && io) process.stderr.write(`  socket.io client: ${failed} of ${args.count} failed to connect: ${JSON.stringify(ioFailures)}\n`);
    const busy = new Uint8Array(g.sockets.length);
    busy.set(g.busy);
    g.busy = busy;
    return { open: opened, failed, ms: performance.now() - started };
  },

  /**
   * Echo on every socket of the group for `durationMs`, one message in flight per socket at most.
   * Without `ratePerSec`: closed loop (each reply sends the next: the pair's top speed). With it:
   * messages are sent at that total rate, round robin over the sockets with nothing in flight,
   * so every variant handles the same load. Waits for the last replies before answering.
   */
  async echo(args: { group: string; durationMs: number; ratePerSec?: number }): Promise<{ roundTrips: number; wallMs: number; sent: number }> {
    const g = group(args.group);
    if (g.ioSockets.length > 0) throw new Error('echo: socket.io groups only connect and drop');
    const n = g.sockets.length;
    g.roundTrips = 0;
    let sent = 0;
    const send = (i: number): void => {
      const ws = g.sockets[i]!;
      if (g.busy[i] === 1 || ws.readyState !== WebSocket.OPEN) return;
      g.busy[i] = 1;
      g.inFlight++;
      sent++;
      ws.send(g.payload);
    };
    const t0 = performance.now();
    if (args.ratePerSec === undefined) {
      g.echoing = 'closed';
      for (let i = 0; i < n; i++) send(i);
      await sleep(args.durationMs);
    } else {
      g.echoing = 'paced';
      let next = 0;
      for (let now = t0; now - t0 < args.durationMs; now = performance.now()) {
        const due = Math.floor(((now - t0) / 1000) * args.ratePerSec);
        for (let tries = 0; sent < due && tries < n; tries++) {
          send(next);
          next = (next + 1) % n;
        }
        await sleep(2);
      }
    }
    const wallMs = performance.now() - t0;
    g.echoing = false;
    const roundTrips = g.roundTrips;
    // Closed loop: every busy socket has exactly one reply still to come.
    if (g.inFlight > 0) {
      await Promise.race([new Promise<void>((resolve) => (g.drained = resolve)), sleep(5_000)]);
      g.drained = null;
    }
    g.busy.fill(0);
    g.inFlight = 0;
    return { roundTrips, wallMs, sent };
  },

  /** Waits until every socket of the group has closed (or `timeoutMs`); returns the close codes seen. */
  async waitClosed(args: { group: string; timeoutMs: number }): Promise<{ open: number; closeCodes: Record<number, number> }> {
    const g = group(args.group);
    const until = performance.now() + args.timeoutMs;
    while (g.open > 0 && performance.now() < until) await sleep(20);
    return { open: g.open, closeCodes: g.closeCodes };
  },

  /** Drops every socket of the group. */
  async drop(args: { group: string }): Promise<void> {
    const g = group(args.group);
    for (const ws of g.sockets) ws.terminate();
    for (const socket of g.ioSockets) socket.disconnect();
    const until = performance.now() + 5_000;
    while (g.open > 0 && performance.now() < until) await sleep(20);
    groups.delete(args.group);
  },
});
