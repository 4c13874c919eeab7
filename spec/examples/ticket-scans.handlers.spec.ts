import { expect } from 'chai';
import { broadcastScan, scanHandler, startCleanupStatistics } from '../../examples/ticket-scans/handlers.js';
import { ConnectionRegistry } from '../../lib/index.js';
import { captureLogs, connectHandler, createTestClock, type TestClock } from '../../lib/testing/index.js';

// The ticket-scan service's route (examples/ticket-scans/handlers.ts, mounted by its server.ts),
// tested as guides/testing.md shows: fake time, no port, through a registry as the
// server's `attachWebSockets(server, app, { registry })` does. Acceptance: ticket-scans.spec.ts.

/** SESSION_TIMEOUT_MINUTES=30 as server.ts reads it: the idle timeout; no lifetime limit. */
const config = { idleTimeoutMs: 30 * 60_000, connectionTimeoutMs: 0 };

describe('examples/ticket-scans/handlers.ts with ws-timeouts/testing', () => {
  let t: TestClock;
  let registry: ConnectionRegistry;
  let logs: ReturnType<typeof captureLogs>;

  beforeEach(() => {
    t = createTestClock();
    logs = captureLogs();
    registry = new ConnectionRegistry({ config, clock: t.clock, logger: logs.logger });
  });

  function scanner(options: { autoPong?: boolean } = {}) {
    return connectHandler(scanHandler, { clock: t, registry, config, path: '/ws/scans', ...options });
  }

  it('broadcasts a scan to every connected scanner as {type:"scan", scan, timestamp}', async () => {
    const [a, b] = [scanner(), scanner()];
    a.client.send('heartbeat'); // activity, read and dropped
    const scan = { ticketId: 'T-1', gate: 'A' };
    expect(await broadcastScan(registry, scan)).to.deep.equal({ sent: 2, failed: 0 });
    for (const { client } of [a, b]) expect(client.receivedJson()).to.deep.equal([{ type: 'scan', scan, timestamp: t.now() }]);
  });

  it('expires a scanner silent for SESSION_TIMEOUT_MINUTES (notice, then 4001) and keeps a busy one', async () => {
    const [idle, busy] = [scanner(), scanner()];
    for (let minute = 1; minute < 30; minute++) {
      await t.tickAsync(60_000);
      busy.client.send('heartbeat');
    }
    expect(idle.client.closeEvent).to.equal(null);
    await t.tickAsync(60_000 + 1_000); // 30 min + one scheduler tick
    expect(idle.client.receivedJson()).to.have.length(1);
    expect(idle.client.receivedJson()[0]).to.include({ type: 'connectionTimeout', reason: 'idle', idleSeconds: 1_800 });
    expect(idle.client.closeEvent).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
    expect(busy.manager.state).to.equal('open');
    expect(registry.size).to.equal(1);
  });

  it('terminates a scanner that stops answering pings after ping interval + pong timeout, without a close frame', async () => {
    const { client, manager } = scanner({ autoPong: false });
    await t.tickAsync(59_000); // no ping can have waited the 60 s pong timeout yet
    expect(manager.state).to.equal('open');
    await t.tickAsync(25_000 + 1_000 + 1_000); // the first ping (within 25 s) + 60 s + one tick
    expect(manager.state).to.equal('closed');
    expect(client.closeFrame).to.equal(null);
    expect(client.closeEvent).to.deep.equal({ code: 1006, reason: '' });
    expect(registry.size).to.equal(0);
    expect(registry.timeoutsByReason).to.include({ pong_timeout: 1 });
  });

  it('logs "Cleaned up N inactive session(s)" every SESSION_CLEANUP_INTERVAL_MINUTES, N the scanners expired since the last line', async () => {
    const stop = startCleanupStatistics(registry, 60_000); // SESSION_CLEANUP_INTERVAL_MINUTES=1, as server.ts starts it
    const [busy] = [scanner(), scanner(), scanner()];
    const counts = () => logs.entries.filter((e) => /^Cleaned up \d+ inactive session\(s\)$/.test(e.message)).map((e) => e.meta.cleanupCount);
    for (let minute = 1; minute <= 32; minute++) {
      await t.tickAsync(60_000);
      busy.client.send('heartbeat');
    }
    // Two scanners silent since 0:00 expire at 30:00 plus a tick; the 31:00 line reports them.
    expect(counts()).to.deep.equal([...Array(30).fill(0), 2, 0]);
    expect(logs.entries.find((e) => e.message === 'Cleaned up 2 inactive session(s)')?.meta).to.include({ cleanupCount: 2, activeSessions: 1 });
    stop();
    await t.tickAsync(5 * 60_000);
    expect(counts()).to.have.length(32);
  });
});
