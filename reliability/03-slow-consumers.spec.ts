import { setImmediate as nextTurn } from 'node:timers/promises';
import { expect } from 'chai';
import type { TimeoutConfig } from '../lib/config.js';
import type { TimeoutReason } from '../lib/close-codes.js';
import { ConnectionRegistry } from '../lib/registry.js';
import { captureLogs } from '../lib/testing/log-capture.js';
import type { WebSocketTimeoutManager } from '../lib/manager.js';
import { Fleet } from './support/fleet.js';
import { bytes, ms, reliabilityCase } from './support/report.js';
import { serveRegistry, tearDown, waitFor } from './support/util.js';
import type { TestServer } from '../spec/support/ws-server.js';

const SLOW = 10;
const FAST = 10;
const MESSAGES = 1_500;
const MESSAGE_BYTES = 16 * 1024;
const MAX_BUFFERED = 256 * 1024;
const BATCH = 100;
const CONFIG: Partial<TimeoutConfig> = {
  // Sized, as README advises, for the largest burst a client that reads must take: the fast
  // clients' 16 MiB took up to 2.7 s on a machine running ten busy processes per core.
  messageTimeoutMs: 5_000,
  closeTimeoutMs: 500,
  // Out of the way: a paused client cannot answer pings, and this case is about sends.
  pingIntervalMs: 60_000,
  pongTimeoutMs: 60_000,
  resolutionMs: 100,
  idleTimeoutMs: 0,
  connectionTimeoutMs: 0,
};

const report = reliabilityCase('Slow consumers', {
  load: `${MESSAGES} broadcasts, ${BATCH} in flight at a time, of ${bytes(MESSAGE_BYTES)} (${bytes(MESSAGES * MESSAGE_BYTES)} per client) to ${FAST} fast + ${SLOW} slow clients (child process)`,
  faults: `${SLOW} clients stop reading right after connecting; maxBufferedBytes ${bytes(MAX_BUFFERED)} (each burst is ${(BATCH * MESSAGE_BYTES) / MAX_BUFFERED}× that), send deadline ${ms(CONFIG.messageTimeoutMs!)}, close timeout ${ms(CONFIG.closeTimeoutMs!)}`,
});

describe(report.name, function () {
  let server: TestServer;
  let registry: ConnectionRegistry;
  let fleet: Fleet;
  const reasons = new Map<WebSocketTimeoutManager, TimeoutReason>();
  const logs = captureLogs();

  before(async () => {
    registry = new ConnectionRegistry({
      config: CONFIG,
      logger: logs.logger,
      managerOptions: { maxBufferedBytes: MAX_BUFFERED, slowConsumerPolicy: 'close', onTimeout: (reason, m) => reasons.set(m, reason) },
    });
    server = await serveRegistry(registry);
    fleet = await Fleet.start();
  });

  after(() => tearDown(fleet, registry, server));

  it('closes the slow clients (4003, terminated when they cannot read it), bounds every socket\'s buffer, and delivers every burst in order to the fast ones', async () => {
    await fleet.open('fast', `${server.url}/?kind=fast`, FAST, { checkSeq: true });
    await fleet.open('slow', `${server.url}/?kind=slow`, SLOW, { pause: true });
    await waitFor('every client to be registered', () => registry.size === FAST + SLOW);
    const slowManagers = [...registry.managers()].filter((m) => m.labels?.kind === 'slow');
    const fastManagers = [...registry.managers()].filter((m) => m.labels?.kind === 'fast');
    const slowClosed = slowManagers.map((m) => m.whenClosed().then(() => Date.now()));

    const padding = 'x'.repeat(MESSAGE_BYTES - 8);
    let peakSlowBuffered = 0;
    let peakFastBuffered = 0;
    let peakTotalBuffered = 0;
    let failed = 0;
    let slowestBurstMs = 0;
    const started = Date.now();
    // The producer does not wait for each broadcast: a burst of BATCH goes out at once, as from a
    // ticker, far more than maxBufferedBytes. Every socket holds at most the limit (plus one
    // message); the rest waits in the manager until the peer has read enough. The fast clients
    // read each burst within the send deadline; the slow ones miss it and are closed.
    const sample = (): void => {
      let total = 0;
      for (const m of slowManagers) {
        peakSlowBuffered = Math.max(peakSlowBuffered, m.ws.bufferedAmount);
        total += m.ws.bufferedAmount;
      }
      peakTotalBuffered = Math.max(peakTotalBuffered, total);
      for (const m of fastManagers) peakFastBuffered = Math.max(peakFastBuffered, m.ws.bufferedAmount);
    };
    for (let seq = 0; seq < MESSAGES; ) {
      const burstStarted = Date.now();
      const batch: Array<Promise<{ failed: number }>> = [];
      for (const end = Math.min(MESSAGES, seq + BATCH); seq < end; seq++) {
        batch.push(registry.broadcast(`${seq}:${padding}`));
        sample();
      }
      const results = await Promise.all(batch);
      for (const result of results) failed += result.failed;
      // A burst that had no slow consumer to wait for shows how long the fast clients took to read it.
      if (results.every((r) => r.failed === 0)) slowestBurstMs = Math.max(slowestBurstMs, Date.now() - burstStarted);
      // A ticker yields between ticks; a loop that resumes only on promises would keep timers from ever running.
      await nextTurn();
    }
    const broadcastMs = Date.now() - started;
    const closedAt = await Promise.all(slowClosed);

    // Every slow client was ended as a slow consumer; none of the fast ones.
    expect(slowManagers.map((m) => reasons.get(m))).to.deep.equal(Array(SLOW).fill('send_timeout'));
    expect([...reasons.values()].filter((r) => r === 'send_timeout')).to.have.length(SLOW);
    // Each slow client fails one or more sends (the one that missed its deadline, then those waiting behind it), then leaves the recipients.
    expect(failed).to.be.at.least(SLOW);
    // Memory held per socket stays at the limit plus the one message that crossed it.
    expect(peakSlowBuffered).to.be.at.most(MAX_BUFFERED + MESSAGE_BYTES + 1024);
    expect(peakFastBuffered).to.be.at.most(MAX_BUFFERED + MESSAGE_BYTES + 1024);

    await waitFor('the fast clients to read every message', async () => (await fleet.stats('fast')).minSeqReceived === MESSAGES, 20_000);
    const fast = await fleet.stats('fast');
    expect(fast.seqErrors).to.equal(0);
    expect(fast.open).to.equal(FAST);
    await fleet.request('resume', { group: 'slow' });
    await waitFor('the slow clients to see their close', async () => (await fleet.stats('slow')).open === 0);
    const slowCodes = (await fleet.stats('slow')).codes;
    expect(Object.keys(slowCodes).every((code) => code === '4003' || code === '1006')).to.equal(true, JSON.stringify(slowCodes));
    expect(registry.size).to.equal(FAST);
    const causes: Record<string, number> = {};
    for (const e of logs.entries) if (e.message === 'WebSocket slow consumer') causes[String(e.meta.cause)] = (causes[String(e.meta.cause)] ?? 0) + 1;

    await fleet.request('close', { group: 'fast' });
    await waitFor('the registry to empty', () => registry.size === 0);
    report.figure(
      `${SLOW}/${SLOW} slow clients closed as send_timeout (${Object.entries(slowCodes).map(([c, n]) => `${n}× ${c}`).join(', ')} seen by the clients; causes: ${Object.entries(causes).map(([c, n]) => `${n}× ${c}`).join(', ')}) ` +
        `within ${ms(Math.max(...closedAt) - started)}; peak unsent bytes per slow socket ${bytes(peakSlowBuffered)} (limit ${bytes(MAX_BUFFERED)}), ` +
        `${bytes(peakTotalBuffered)} for all ${SLOW}; ` +
        `${FAST}/${FAST} fast clients got ${MESSAGES}/${MESSAGES} messages in order (${fast.seqErrors} gaps) in ${ms(broadcastMs)}, ` +
        `none closed; the slowest burst that failed no one took ${ms(slowestBurstMs)} (deadline ${ms(CONFIG.messageTimeoutMs!)}), peak unsent bytes per fast socket ${bytes(peakFastBuffered)}`,
    );
  });
});
