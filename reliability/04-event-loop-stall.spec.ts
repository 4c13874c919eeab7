import { expect } from 'chai';
import type { TimeoutConfig } from '../lib/config.js';
import type { TimeoutReason } from '../lib/close-codes.js';
import { ConnectionRegistry } from '../lib/registry.js';
import { silentLogger } from '../lib/logger.js';
import { Fleet } from './support/fleet.js';
import { ms, reliabilityCase } from './support/report.js';
import { serveRegistry, sleep, tearDown, waitFor } from './support/util.js';
import type { TestServer } from '../spec/support/ws-server.js';

const HEALTHY = 200;
const CONTROL = 10;
const STALL_MS = 3_000;
const CONFIG: Partial<TimeoutConfig> = {
  pingIntervalMs: 500,
  pongTimeoutMs: 1_000,
  resolutionMs: 100,
  closeTimeoutMs: 500,
  idleTimeoutMs: 0,
  connectionTimeoutMs: 0,
};

const report = reliabilityCase('Event-loop stall', {
  load: `${HEALTHY} healthy clients answering pings from a child process, + ${CONTROL} silent controls (autoPong: false) connected after the stall`,
  faults: `the server's event loop blocked synchronously for ${STALL_MS / 1000} s with pong timeout 1 s (ping 0.5 s, resolution 0.1 s)`,
});

/** Blocks this process's event loop: no timer, no I/O, for `durationMs`. */
function stall(durationMs: number): void {
  const until = Date.now() + durationMs;
  while (Date.now() < until) {
    // busy: the pongs pile up unread in the kernel
  }
}

describe(report.name, function () {
  let server: TestServer;
  let registry: ConnectionRegistry;
  let fleet: Fleet;
  const timeouts: Array<{ kind: string; reason: TimeoutReason }> = [];
  let stallArmed = false;
  let stallStartedAt = 0;
  let stallEndedAt = 0;
  let outstanding = 0;
  let lagAfterStall = -1;
  let stalled: () => void = () => undefined;
  function runStall(): void {
    outstanding = [...registry.managers()].filter((m) => m.pingOutstandingSince >= 0).length;
    stallStartedAt = Date.now();
    stall(STALL_MS);
    stallEndedAt = Date.now();
    stalled();
  }

  before(async () => {
    registry = new ConnectionRegistry({
      config: CONFIG,
      logger: silentLogger,
      managerOptions: {
        // Pings of clients accepted together go out in the same ticks (no random phase).
        pingPhase: 0,
        onTimeout: (reason, m) => void timeouts.push({ kind: m.labels?.kind ?? '?', reason }),
        onCheck: () => {
          if (stallArmed) {
            // The stall starts right after this tick has sent its pings: their pongs arrive while the loop is blocked.
            stallArmed = false;
            queueMicrotask(runStall);
          } else if (stallEndedAt > 0 && lagAfterStall < 0) {
            lagAfterStall = registry.scheduler.lastLagMs;
          }
        },
      },
    });
    server = await serveRegistry(registry);
    fleet = await Fleet.start();
  });

  after(() => tearDown(fleet, registry, server));

  it(`terminates no healthy peer after a ${STALL_MS / 1000} s stall, and still terminates silent ones afterwards`, async () => {
    await fleet.open('healthy', `${server.url}/?kind=healthy`, HEALTHY, { concurrency: HEALTHY });
    await waitFor('every client to be registered', () => registry.size === HEALTHY);
    // 0–1.5 s: three ping rounds, every pong answered.
    await sleep(1_500);
    const rttsBefore = [...registry.managers()].filter((m) => m.lastRttMs >= 0).length;
    expect(rttsBefore).to.equal(HEALTHY);

    // 1.5 s: the next scheduler tick sends its pings, then the loop blocks for 3 s; the pongs wait in the kernel.
    await new Promise<void>((resolve) => {
      stalled = resolve;
      stallArmed = true;
    });
    // 4.5 s: the first tick after the stall sees every deadline passed, but judges pongs only after pending input is read.
    await sleep(2 * (CONFIG.pingIntervalMs! + CONFIG.pongTimeoutMs!));

    expect(timeouts, 'timeouts after the stall').to.deep.equal([]);
    expect(outstanding, 'pings outstanding when the stall began').to.be.above(0);
    const healthy = await fleet.stats('healthy');
    expect(healthy.open).to.equal(HEALTHY);
    expect(registry.size).to.equal(HEALTHY);
    const answeredAfter = [...registry.managers()].filter((m) => m.lastPongAt > stallEndedAt).length;
    expect(answeredAfter).to.equal(HEALTHY);

    // Control: the checks still work after the stall: silent peers are terminated on time.
    await fleet.open('control', `${server.url}/?kind=control`, CONTROL, { autoPong: false });
    await waitFor('the silent controls to be terminated', async () => (await fleet.stats('control')).closed === CONTROL, 5_000);
    expect(timeouts.filter((t) => t.kind === 'control' && t.reason === 'pong_timeout')).to.have.length(CONTROL);
    expect(timeouts.filter((t) => t.kind === 'healthy')).to.have.length(0);

    await fleet.request('close', { group: 'healthy' });
    await waitFor('the registry to empty', () => registry.size === 0);
    report.figure(
      `0/${HEALTHY} healthy peers terminated after a ${ms(stallEndedAt - stallStartedAt)} stall (${outstanding} pings outstanding when it began; ` +
        `first tick ran ${ms(lagAfterStall)} late); ${answeredAfter}/${HEALTHY} answered pings after it; ${CONTROL}/${CONTROL} silent controls still terminated (pong_timeout)`,
    );
  });
});
