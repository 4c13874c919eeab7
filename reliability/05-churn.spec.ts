import { expect } from 'chai';
import { fork, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { kill, track } from './support/children.js';
import { bytes, ms, reliabilityCase } from './support/report.js';
import { waitFor } from './support/util.js';

const CYCLES = 10_000;
const WARM_UP = 1_000;
const CONCURRENCY = 50;
const BIG = Buffer.alloc(64 * 1024, 'y');
const KINDS = ['polite', 'terminate', 'client-mid-send', 'server-mid-send', 'upgrade-aborted'] as const;
type Kind = (typeof KINDS)[number];
const SCRIPT = fileURLToPath(new URL('./servers/churn-server.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const report = reliabilityCase('Churn', {
  load: `${CYCLES.toLocaleString('en')} connect/disconnect cycles, ${CONCURRENCY} at a time, against Express + attachWebSockets + ConnectionRegistry in a child process (after ${WARM_UP.toLocaleString('en')} warm-up cycles)`,
  faults: 'a fifth each: polite close, terminate right after open, terminate while sending 64 KiB, socket destroyed while the server echoes 64 KiB, upgrade request aborted',
});

interface Measure {
  heapUsed: number;
  codeSpace: number;
  arrayBuffers: number;
  rss: number;
  registrySize: number;
  gatewaySize: number;
  pendingUpgrades: number;
  wsClients: number;
  scheduled: number;
  tcpConnections: number;
  closedSessions: number;
  logged: Record<string, number>;
}

/** Close codes of polite cycles whose echo did not come back. */
const lostCodes: number[] = [];

/** One cycle; resolves true when the echo of a polite cycle came back intact (always true for the others). */
function cycle(port: number, kind: Kind, i: number): Promise<boolean> {
  const url = `ws://127.0.0.1:${port}/ws/echo`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cycle ${i} (${kind}) did not end in 10 s`)), 10_000);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      resolve(ok);
    };
    if (kind === 'upgrade-aborted') {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.once('close', () => done(true));
      socket.once('connect', () => {
        const request = `GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
        // Half the time the request is cut in the middle of its headers, half the time right after them.
        socket.write(i % 2 === 0 ? request.slice(0, 40) : request);
        setImmediate(() => socket.destroy());
      });
      return;
    }
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let echoed = false;
    ws.on('error', () => undefined);
    ws.once('close', (code) => {
      if (kind === 'polite' && !echoed) lostCodes.push(code);
      done(kind !== 'polite' || echoed);
    });
    ws.once('open', () => {
      switch (kind) {
        case 'polite':
          ws.once('message', (data) => {
            echoed = data.toString() === `hello ${i}`;
            ws.close(1000);
          });
          ws.send(`hello ${i}`);
          break;
        case 'terminate':
          ws.terminate();
          break;
        case 'client-mid-send':
          ws.send(BIG);
          setImmediate(() => ws.terminate());
          break;
        case 'server-mid-send': {
          // The first bytes of the echo arrive: the server is in the middle of sending 200 KiB.
          const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket;
          socket.prependOnceListener('data', () => socket.destroy());
          ws.send(BIG);
          break;
        }
      }
    });
  });
}

async function churn(port: number, total: number, offset: number): Promise<{ lost: number; byKind: Record<string, number> }> {
  let next = 0;
  let lost = 0;
  const byKind: Record<string, number> = {};
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = offset + next++;
      const kind = KINDS[i % KINDS.length]!;
      byKind[kind] = (byKind[kind] ?? 0) + 1;
      if (!(await cycle(port, kind, i))) lost++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { lost, byKind };
}

describe(report.name, function () {
  // 11,000 cycles take 15–30 s on 2 busy cores; leave room for a slower machine.
  this.timeout(180_000);
  let child: ChildProcess;
  let port: number;
  let exited: Promise<{ code: number | null; signal: string | null }>;
  const inbox: Array<Record<string, unknown>> = [];

  function next<T>(event: string, timeoutMs = 20_000): Promise<T> {
    return waitFor(`the churn server's "${event}"`, () => inbox.some((m) => m.event === event), timeoutMs, 5).then(() => {
      const i = inbox.findIndex((m) => m.event === event);
      return inbox.splice(i, 1)[0] as T;
    });
  }

  async function measure(): Promise<Measure> {
    child.send({ op: 'measure' });
    return next<Measure>('measure');
  }

  before(async () => {
    child = track(fork(SCRIPT, [], { cwd: ROOT, execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    child.on('message', (m: Record<string, unknown>) => inbox.push(m));
    exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    port = (await next<{ port: number }>('listening')).port;
  });

  after(() => kill(child));

  it(`survives ${CYCLES.toLocaleString('en')} cycles with nothing lost and nothing left: registry 0, heap within 5%, and then exits by itself`, async () => {
    const settled = async (): Promise<{ m: Measure; ms: number }> => {
      let m!: Measure;
      const waited = await waitFor(
        'the server to hold nothing',
        async () => {
          m = await measure();
          return m.registrySize === 0 && m.gatewaySize === 0 && m.pendingUpgrades === 0 && m.wsClients === 0 && m.scheduled === 0 && m.tcpConnections === 0;
        },
        15_000,
        50,
      );
      return { m, ms: waited };
    };

    await churn(port, WARM_UP, 0);
    const baseline = (await settled()).m;

    const started = Date.now();
    const { lost, byKind } = await churn(port, CYCLES, WARM_UP);
    const churnMs = Date.now() - started;
    const { m: after, ms: drainMs } = await settled();

    expect(lost, `polite cycles whose echo was lost (close codes ${lostCodes.join(', ')})`).to.equal(0);
    // An aborted upgrade whose whole request arrived may still have been accepted before the abort was seen.
    expect(after.closedSessions - baseline.closedSessions).to.be.within(CYCLES - byKind['upgrade-aborted']!, CYCLES);
    // The heap after a full GC, without the JIT's compiled code (which grows as more of the server
    // gets optimised, whatever the connections do): what 10,000 connections could have leaked into.
    const heapBefore = baseline.heapUsed - baseline.codeSpace;
    const heapAfter = after.heapUsed - after.codeSpace;
    const heapGrowth = (heapAfter - heapBefore) / heapBefore;
    expect(heapGrowth, `heap without code ${heapBefore} → ${heapAfter}`).to.be.below(0.05);

    // Stop listening: the process must end by itself, with nothing (timer, listener, socket) left.
    const stopAt = Date.now();
    child.send({ op: 'stop' });
    const stopping = await next<{ upgradeListeners: number; scheduled: number; resources: string[] }>('stopping');
    const timeout = setTimeout(() => kill(child), 10_000);
    const exit = await exited;
    clearTimeout(timeout);
    const exitMs = Date.now() - stopAt;
    expect(exit).to.deep.equal({ code: 0, signal: null });
    expect(stopping.upgradeListeners).to.equal(0);
    expect(stopping.scheduled).to.equal(0);
    expect(stopping.resources.filter((r) => r !== 'PipeWrap' && r !== 'TTYWrap'), 'active resources besides the IPC pipe').to.deep.equal([]);

    report.figure(
      `${CYCLES.toLocaleString('en')} cycles in ${ms(churnMs)} (${Math.round(CYCLES / (churnMs / 1000))}/s; ${Object.values(byKind)[0]} of each kind), 0 stuck, ` +
        `${byKind.polite}/${byKind.polite} echoes intact; registry, gateway, TCP connections and scheduler back to 0 within ${ms(drainMs)}; ` +
        `heap after GC (without compiled code) ${bytes(heapBefore)} → ${bytes(heapAfter)} (${heapGrowth >= 0 ? '+' : ''}${(heapGrowth * 100).toFixed(1)}%; ` +
        `with code ${bytes(baseline.heapUsed)} → ${bytes(after.heapUsed)}); ` +
        `exited by itself (code 0) ${ms(exitMs)} after stop, active resources before the IPC channel closed: ${stopping.resources.join(', ') || 'none'}`,
    );
  });
});
