import { expect } from 'chai';
import type { TimeoutConfig } from '../lib/config.js';
import { ConnectionRegistry } from '../lib/registry.js';
import { silentLogger } from '../lib/logger.js';
import type { CloseOutcome, WebSocketTimeoutManager } from '../lib/manager.js';
import { rawClient } from '../spec/support/raw-client.js';
import { Fleet } from './support/fleet.js';
import { ms, reliabilityCase } from './support/report.js';
import { closeCodeOf, max, min, serveRegistry, tearDown, waitFor } from './support/util.js';
import type { TestServer } from '../spec/support/ws-server.js';

const IGNORING = 100;
const POLITE = 100;
const CONFIG: Partial<TimeoutConfig> = {
  // The polite clients answer from another process, a round trip and a half: on a machine with
  // ten busy processes per core that took up to 1.6 s, and they must not look like ignorers.
  closeTimeoutMs: 3_000,
  pingIntervalMs: 10_000,
  pongTimeoutMs: 10_000,
  resolutionMs: 100,
  idleTimeoutMs: 0,
  connectionTimeoutMs: 0,
};

const report = reliabilityCase('Close ignored', {
  load: `${IGNORING} raw TCP peers that never answer a close frame + ${POLITE} polite ws clients (child process), all closed at once`,
  faults: `close frame never answered (socket left open); close timeout ${ms(CONFIG.closeTimeoutMs!)}`,
});

describe(report.name, function () {
  let server: TestServer;
  let registry: ConnectionRegistry;
  let fleet: Fleet;

  before(async () => {
    registry = new ConnectionRegistry({ config: CONFIG, logger: silentLogger });
    server = await serveRegistry(registry);
    fleet = await Fleet.start();
  });

  after(() => tearDown(fleet, registry, server));

  it("terminates every peer that ignores the close frame after the close timeout ('terminated') and closes polite ones ('closed')", async () => {
    const raws = await Promise.all(Array.from({ length: IGNORING }, () => rawClient(server.port, '/?kind=ignoring')));
    await fleet.open('polite', `${server.url}/?kind=polite`, POLITE);
    await waitFor('every connection to be registered', () => registry.size === IGNORING + POLITE);

    // 0 s: gracefulClose(1000) on all 200 at once; the raw peers read the close frame and say nothing.
    const started = Date.now();
    const results = await Promise.all(
      [...registry.managers()].map(async (manager: WebSocketTimeoutManager) => {
        const outcome = await manager.gracefulClose(1000, 'normal_closure');
        return { kind: manager.labels?.kind, outcome, ms: Date.now() - started, again: await manager.gracefulClose() };
      }),
    );
    const ignoring = results.filter((r) => r.kind === 'ignoring');
    const polite = results.filter((r) => r.kind === 'polite');
    expect(ignoring.map((r) => r.outcome)).to.deep.equal(Array<CloseOutcome>(IGNORING).fill('terminated'));
    expect(polite.map((r) => r.outcome)).to.deep.equal(Array<CloseOutcome>(POLITE).fill('closed'));
    // Idempotent: a second call gets the first call's outcome.
    expect(results.every((r) => r.again === r.outcome)).to.equal(true);
    const earliest = min(ignoring.map((r) => r.ms));
    const latest = max(ignoring.map((r) => r.ms));
    expect(earliest).to.be.at.least(CONFIG.closeTimeoutMs! - 5);
    expect(latest).to.be.below(CONFIG.closeTimeoutMs! + 2_000);
    const politeWorst = max(polite.map((r) => r.ms));
    expect(politeWorst).to.be.below(CONFIG.closeTimeoutMs!);

    // Every raw peer did get the close frame (1000) and then lost its socket.
    await Promise.all(raws.map((r) => r.closed));
    expect(raws.every((r) => r.frames.some((f) => f.opcode === 0x8 && closeCodeOf(f.payload) === 1000))).to.equal(true);
    const politeStats = await fleet.stats('polite');
    expect(politeStats.codes).to.deep.equal({ 1000: POLITE });
    await waitFor('the registry to empty', () => registry.size === 0);
    report.figure(
      `${ignoring.length}/${IGNORING} ignoring peers 'terminated' ${ms(earliest)}–${ms(latest)} after gracefulClose (close timeout ${ms(CONFIG.closeTimeoutMs!)}); ` +
        `${polite.length}/${POLITE} polite peers 'closed' (code 1000) within ${ms(politeWorst)}; registry back to 0`,
    );
  });
});
