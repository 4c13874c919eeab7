import { expect } from 'chai';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { TimeoutConfig } from '../lib/config.js';
import { ConnectionRegistry } from '../lib/registry.js';
import { silentLogger } from '../lib/logger.js';
import type { TimeoutReason } from '../lib/close-codes.js';
import { rawClient } from '../spec/support/raw-client.js';
import { Fleet } from './support/fleet.js';
import { ms, reliabilityCase } from './support/report.js';
import { clientFrame, max, serveRegistry, sleep, tearDown, waitFor } from './support/util.js';
import type { TestServer } from '../spec/support/ws-server.js';

const SILENT = 500;
const HEALTHY = 50;
const RAW = 20;
const CONFIG: Partial<TimeoutConfig> = {
  pingIntervalMs: 500,
  // The healthy clients answer from a process that is opening 500 more: on a loaded machine that
  // held some of their pongs back over a second.
  pongTimeoutMs: 3_000,
  resolutionMs: 100,
  closeTimeoutMs: 500,
  messageTimeoutMs: 1_000,
  idleTimeoutMs: 0,
  connectionTimeoutMs: 0,
};
/** A silent peer must be gone by connect + ping interval + pong timeout + resolution. */
const BUDGET = CONFIG.pingIntervalMs! + CONFIG.pongTimeoutMs! + CONFIG.resolutionMs!;

const report = reliabilityCase('Half-open peers', {
  load: `${SILENT} ws clients with autoPong: false + ${RAW} raw TCP peers silent mid-frame + ${HEALTHY} healthy clients, one server (clients in a child process)`,
  faults: `peers stop answering pings; raw peers stop in the middle of a frame; ping ${ms(CONFIG.pingIntervalMs!)}, pong timeout ${ms(CONFIG.pongTimeoutMs!)}, resolution ${ms(CONFIG.resolutionMs!)}`,
});

interface Ended {
  kind: string;
  reason: TimeoutReason | undefined;
  lateMs: number;
  code: number;
}

describe(report.name, function () {
  let server: TestServer;
  let registry: ConnectionRegistry;
  let fleet: Fleet;
  /** Why and when (Date.now()) the manager gave up on each connection: it terminates the socket then. */
  const timeouts = new Map<unknown, { reason: TimeoutReason; at: number }>();
  const ended: Ended[] = [];

  before(async () => {
    registry = new ConnectionRegistry({
      config: CONFIG,
      logger: silentLogger,
      managerOptions: {
        onTimeout: (reason, manager) => timeouts.set(manager, { reason, at: Date.now() }),
        onClose: (code, _reason, manager) => {
          const deadline = manager.connectedAt + BUDGET;
          const verdict = timeouts.get(manager);
          ended.push({ kind: manager.labels?.kind ?? '?', reason: verdict?.reason, lateMs: (verdict?.at ?? Date.now()) - deadline, code });
        },
      },
    });
    server = await serveRegistry(registry);
    fleet = await Fleet.start();
  });

  after(() => tearDown(fleet, registry, server));

  it(`terminates all ${SILENT + RAW} silent peers within ping interval + pong timeout + resolution, and no healthy one`, async () => {
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    // 0 s: healthy clients first, then the silent ones; each silent peer's deadline runs from its own connect.
    await fleet.open('healthy', `${server.url}/?kind=healthy`, HEALTHY);
    const opening = fleet.open('silent', `${server.url}/?kind=silent`, SILENT, { autoPong: false, concurrency: 100 });
    const raws = await Promise.all(Array.from({ length: RAW }, () => rawClient(server.port, '/?kind=raw')));
    for (const raw of raws) {
      // One whole text frame, then a frame that announces 100 bytes and delivers 10: silent mid-stream.
      raw.socket.write(clientFrame(0x1, Buffer.from('hello')));
      raw.socket.write(clientFrame(0x1, Buffer.alloc(100, 0x61)).subarray(0, 16));
    }
    const opened = await opening;
    // ping + pong timeout + resolution after each connect: every silent peer is terminated (pong_timeout, no close frame).
    const waited = await waitFor('every silent peer to be terminated', () => ended.filter((e) => e.kind !== 'healthy').length === SILENT + RAW, 15_000);
    // Keep the healthy clients through three more ping/pong rounds.
    await sleep(3 * BUDGET - Math.min(waited, 2 * BUDGET));
    lag.disable();

    const silent = ended.filter((e) => e.kind === 'silent');
    const raw = ended.filter((e) => e.kind === 'raw');
    expect(silent).to.have.length(SILENT);
    expect(raw).to.have.length(RAW);
    expect(silent.every((e) => e.reason === 'pong_timeout')).to.equal(true, 'every silent peer ended by pong_timeout');
    expect(raw.every((e) => e.reason === 'pong_timeout')).to.equal(true, 'every raw peer ended by pong_timeout');
    const worstLate = max([...silent, ...raw].map((e) => e.lateMs));
    const fleetSilent = await fleet.stats('silent');
    expect(fleetSilent.codes).to.deep.equal({ 1006: SILENT }); // terminated: no close frame
    await Promise.all(raws.map((r) => r.closed));

    const healthy = await fleet.stats('healthy');
    expect(healthy.open, 'healthy clients still open').to.equal(HEALTHY);
    expect(ended.filter((e) => e.kind === 'healthy')).to.have.length(0);
    expect(registry.size).to.equal(HEALTHY);
    const lagMax = lag.max / 1e6;
    // Each of three ticks may wait a resolution plus an event-loop lag (570 sockets being accepted,
    // or a busy machine not running this process): the ping's, the verdict's, and the one more a
    // late tick gives pending pongs. The 520 verdicts due together then take their turns.
    expect(worstLate).to.be.at.most(3 * CONFIG.resolutionMs! + 3 * lagMax + 100);

    const closed = await fleet.request<{ open: number }>('close', { group: 'healthy' });
    expect(closed.open).to.equal(0);
    await waitFor('the registry to empty', () => registry.size === 0);
    report.figure(
      `${silent.length}/${SILENT} autoPong-off peers and ${raw.length}/${RAW} raw mid-frame peers terminated (pong_timeout), ` +
        `worst verdict ${worstLate >= 0 ? `${ms(worstLate)} after` : `${ms(-worstLate)} before`} connect + ping + pong + resolution (${ms(BUDGET)}; allowed: two more resolutions + three loop lags, ` +
        `measured lag max ${ms(lagMax)}; ${SILENT} opened in ${ms(opened.ms)}); ${HEALTHY}/${HEALTHY} healthy peers kept, 0 lost`,
    );
  });
});
