import { expect } from 'chai';
import { SessionStore, sessionRoute } from '../../examples/session-cleanup/handlers.js';
import { ConnectionRegistry, ESTIMATED_SESSION_BYTES } from '../../lib/index.js';
import { captureLogs, connectHandler, createTestClock, type TestClock } from '../../lib/testing/index.js';

// The session route and its store hook (examples/session-cleanup/handlers.ts, wired by its
// server.ts), tested as guides/testing.md shows: fake time, no port, through a
// registry as the server's `attachWebSockets(server, app, { registry })` does.
// Acceptance: session-cleanup.spec.ts.

/** As server.ts reads its defaults: no idle or lifetime limit of its own; the cleanup runs expire sessions. */
const config = { idleTimeoutMs: 0, connectionTimeoutMs: 0 };
const MINUTE = 60_000;

describe('examples/session-cleanup/handlers.ts with ws-timeouts/testing', () => {
  let t: TestClock;
  let store: SessionStore;
  let registry: ConnectionRegistry;
  let route: ReturnType<typeof sessionRoute>;
  let logs: ReturnType<typeof captureLogs>;

  beforeEach(() => {
    t = createTestClock();
    store = new SessionStore();
    route = sessionRoute(store);
    logs = captureLogs();
    // SESSION_TIMEOUT_MINUTES=30, SESSION_CLEANUP_BATCH_SIZE=2
    registry = new ConnectionRegistry({ config, clock: t.clock, logger: logs.logger, sessionTimeoutMs: 30 * MINUTE, batchSize: 2, onDisconnect: route.onDisconnect });
  });

  afterEach(() => registry.stopCleanupScheduler());

  async function connect() {
    const connection = connectHandler(route.handler, { clock: t, registry, config, path: '/ws/session' });
    const { sessionId } = await connection.client.nextJson<{ type: 'session'; sessionId: string }>(0);
    return { ...connection, sessionId };
  }

  it('gives each connection a stored session and acknowledges every message', async () => {
    const { client, sessionId } = await connect();
    expect(client.receivedJson()[0]).to.deep.equal({ type: 'session', sessionId });
    expect(store.has(sessionId)).to.equal(true);
    client.send('touch');
    expect(await client.nextJson()).to.deep.equal({ type: 'ack' });
  });

  it('the cleanup scheduler closes sessions idle for SESSION_TIMEOUT_MINUTES (notice, 4001), keeps a busy one, deletes their store entries', async () => {
    registry.startCleanupScheduler(15 * MINUTE); // SESSION_CLEANUP_INTERVAL_MINUTES=15
    const idle = [await connect(), await connect(), await connect()];
    const busy = await connect();
    for (let minute = 1; minute <= 45; minute++) {
      await t.tickAsync(MINUTE);
      busy.client.send('touch');
      // The 15-minute run found no session idle for 30 minutes.
      if (minute === 29) expect(idle.map(({ manager }) => manager.state)).to.deep.equal(['open', 'open', 'open']);
    }
    await t.flush();
    for (const { client, sessionId } of idle) {
      expect(client.closeEvent).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      expect(client.receivedJson()[1]).to.include({ type: 'connectionTimeout', reason: 'idle' });
      expect(store.has(sessionId)).to.equal(false);
    }
    expect(busy.manager.state).to.equal('open');
    expect(store.size).to.equal(1);
    expect(registry.getSessionMetrics()).to.include({ activeSessions: 1, sessionsCleaned: 3, cleanupErrors: 0 });
  });

  it('startCleanupScheduler() without an interval cleans up every 15 minutes', async () => {
    registry.startCleanupScheduler();
    expect(logs.find('Started session cleanup scheduler')?.meta).to.include({ intervalMs: 15 * MINUTE });
    await t.tickAsync(15 * MINUTE - 1);
    expect(registry.getSessionMetrics().cleanupRuns).to.equal(0);
    await t.tickAsync(1);
    await t.tickAsync(15 * MINUTE);
    expect(registry.getSessionMetrics().cleanupRuns).to.equal(2);
  });

  it('logs each run as "Session cleanup completed" with cleanupCount, durationMs, memoryFreedMb and errorsEncountered, never session data', async () => {
    const sessions = [await connect(), await connect(), await connect()];
    await t.tickAsync(30 * MINUTE);
    const cleaned = registry.cleanupInactiveSessions();
    await t.tickAsync(1_000); // the batches and the close handshakes
    expect(await cleaned).to.equal(3);
    const run = logs.find('Session cleanup completed');
    expect(run?.level).to.equal('info');
    expect(run?.meta).to.include({ cleanupCount: 3, errorsEncountered: 0, memoryFreedMb: Math.round(((3 * ESTIMATED_SESSION_BYTES) / 1_048_576) * 1000) / 1000 });
    expect(run?.meta.durationMs).to.be.a('number');
    expect(JSON.stringify(run?.meta)).to.not.include(sessions[0]!.sessionId);
  });

  it('deletes the stored session however the connection ends, e.g. closed by the client', async () => {
    const { client, sessionId, done } = await connect();
    client.close(1000);
    await done;
    await t.flush();
    expect(store.has(sessionId)).to.equal(false);
    expect(store.size).to.equal(0);
  });
});
