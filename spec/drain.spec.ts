import { expect } from 'chai';
import { checkDrainBudget, drainConnections } from '../lib/drain.js';
import { ReconnectBudget } from '../lib/reconnect-budget.js';
import { ConnectionRegistry } from '../lib/registry.js';
import type { TimeoutConfig } from '../lib/config.js';
import { createSocketPair, type TestClient } from '../lib/testing/socket-pair.js';
import { createTestClock, type TestClock } from '../lib/testing/clock.js';
import { captureLogs } from '../lib/testing/log-capture.js';

const CONFIG: Partial<TimeoutConfig> = {
  idleTimeoutMs: 0,
  connectionTimeoutMs: 0,
  pingIntervalMs: 60_000,
  pongTimeoutMs: 60_000,
  closeTimeoutMs: 1_000,
  messageTimeoutMs: 1_000,
  resolutionMs: 100,
};

describe('rolling drain (lib/drain)', () => {
  let t: TestClock;
  let logs: ReturnType<typeof captureLogs>;
  let registry: ConnectionRegistry;

  beforeEach(() => {
    t = createTestClock();
    logs = captureLogs();
    registry = new ConnectionRegistry({ clock: t.clock, logger: logs.logger, config: CONFIG });
  });

  function connect(n: number, pairOptions = {}): TestClient[] {
    return Array.from({ length: n }, () => {
      const { server, client } = createSocketPair({ clock: t.clock, ...pairOptions });
      registry.add(server);
      return client;
    });
  }

  /** Whether `promise` has settled yet, read synchronously. */
  function watch<T>(promise: Promise<T>): { readonly settled: boolean; promise: Promise<T> } {
    const state = { settled: false, promise };
    void promise.finally(() => (state.settled = true));
    return state;
  }

  const messages = (client: TestClient) => client.received.map((m) => JSON.parse(String(m)) as Record<string, unknown>);

  describe('drainConnections()', () => {
    it('advises every client of its retryAfterMs at once, then closes each with 1001 at its slot', async () => {
      const clients = connect(5);
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 5, clock: t.clock }); // a slot every 200 ms
      const drained = watch(drainConnections(registry.managers(), { budget, withinMs: 10_000, logger: logs.logger }));
      await t.flush();
      expect(clients.map((c) => messages(c)[0])).to.deep.equal(
        [0, 200, 400, 600, 800].map((retryAfterMs) => ({ type: 'reconnectAdvised', reason: 'going_away', retryAfterMs, timestamp: t.now() })),
      );
      expect(clients[0]!.closeFrame).to.deep.equal({ code: 1001, reason: 'going_away' });
      for (let k = 1; k < 5; k++) {
        await t.tickAsync(199);
        expect(clients[k]!.closeFrame, `client ${k} 1 ms before its slot`).to.equal(null);
        await t.tickAsync(1);
        expect(clients[k]!.closeFrame, `client ${k} at its slot`).to.deep.equal({ code: 1001, reason: 'going_away' });
      }
      expect(await drained.promise).to.equal(undefined);
      expect(registry.size).to.equal(0);
      expect(logs.entries.find((e) => e.message === 'Draining 5 connection(s)')?.meta).to.include({ connections: 5, reconnectRate: 5, drainMs: 1000 });
    });

    it('makes the first close a jitter allowance after the notices, so it does not race them to the clients', async () => {
      const clients = connect(3);
      const budget = new ReconnectBudget({ rate: 5, jitterMs: 300, clock: t.clock }); // a slot every 260 ms
      const drained = watch(drainConnections(registry.managers(), { budget, withinMs: 10_000, logger: logs.logger }));
      await t.flush();
      expect(clients.map((c) => messages(c)[0]!.retryAfterMs)).to.deep.equal([300, 560, 820]);
      await t.tickAsync(299);
      expect(clients.map((c) => c.closeFrame)).to.deep.equal([null, null, null]);
      await t.tickAsync(1);
      expect(clients[0]!.closeFrame).to.deep.equal({ code: 1001, reason: 'going_away' });
      await t.tickAsync(520);
      expect(clients.map((c) => c.closeFrame?.code)).to.deep.equal([1001, 1001, 1001]);
      await drained.promise;
      expect(logs.entries.find((e) => e.message === 'Draining 3 connection(s)')?.meta).to.include({ drainMs: 300 + 3 * 260 });
    });

    it('raises the pace to fit withinMs when the budget is too slow, and logs a warning that says so', async () => {
      const clients = connect(4);
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 1, clock: t.clock }); // 4 s for 4 closes
      const drained = watch(drainConnections(registry.managers(), { budget, withinMs: 1_000, logger: logs.logger }));
      await t.flush();
      expect(clients.map((c) => messages(c)[0]!.retryAfterMs)).to.deep.equal([0, 250, 500, 750]);
      await t.tickAsync(749);
      expect(clients[3]!.closeFrame).to.equal(null);
      await t.tickAsync(1);
      expect(clients.map((c) => c.closeFrame?.code)).to.deep.equal([1001, 1001, 1001, 1001]);
      await drained.promise;
      const warning = logs.entries.find((e) => e.level === 'warn' && /cannot close every connection within the shutdown timeout/.test(e.message));
      expect(warning?.meta).to.include({ connections: 4, reconnectRate: 1, neededRate: 4, withinMs: 1_000 });
    });

    it('waits for a peer that does not answer the close frame, at most closeTimeoutMs', async () => {
      connect(1, { answerClose: false });
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 5, clock: t.clock });
      const drained = watch(drainConnections(registry.managers(), { budget, withinMs: 10_000, logger: logs.logger }));
      await t.tickAsync(999);
      expect(drained.settled).to.equal(false);
      await t.tickAsync(1);
      await drained.promise;
    });

    it('skips the slot of a client that left before it, and a connection already closing', async () => {
      const clients = connect(3);
      const [first] = registry.managers();
      void first!.gracefulClose(1000); // already closing: not drained
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 5, clock: t.clock });
      const drained = watch(drainConnections(registry.managers(), { budget, withinMs: 10_000, logger: logs.logger }));
      await t.flush();
      expect(messages(clients[0]!)).to.deep.equal([]);
      expect(messages(clients[1]!)[0]!.retryAfterMs).to.equal(0);
      expect(messages(clients[2]!)[0]!.retryAfterMs).to.equal(200);
      clients[2]!.close(1000); // leaves by itself before its slot
      await t.flush();
      await drained.promise;
      expect(budget.reserve(t.now()), 'its slot is given back').to.equal(t.now() + 200);
    });

    it('keeps the slot of a connection already waiting for its lifetime close', async () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 5, clock: t.clock });
      const lifetimeRegistry = new ConnectionRegistry({
        clock: t.clock,
        logger: logs.logger,
        config: { ...CONFIG, connectionTimeoutMs: 10_000, pingIntervalMs: 5_000 },
        managerOptions: { reconnectBudget: budget },
      });
      const pairs = Array.from({ length: 3 }, () => createSocketPair({ clock: t.clock }));
      for (const { server } of pairs) lifetimeRegistry.add(server);
      await t.tickAsync(10_000 + CONFIG.resolutionMs!); // every lifetime has ended: slots 0, 200, 400 from then
      const advisedAt = Number(messages(pairs[2]!.client)[0]!.timestamp);
      const drained = watch(drainConnections(lifetimeRegistry.managers(), { budget, withinMs: 10_000, logger: logs.logger }));
      await t.tickAsync(advisedAt + 400 - t.now());
      expect(drained.settled, 'every lifetime slot has passed').to.equal(true);
      expect(pairs.map((p) => messages(p.client).filter((m) => m.type === 'reconnectAdvised').length)).to.deep.equal([1, 1, 1]);
      expect(pairs.map((p) => p.client.closeFrame?.code)).to.deep.equal([4002, 4002, 4002]);
    });

    it('closes what is still open when withinMs is up, at once, even a lifetime slot past it', async () => {
      const budget = new ReconnectBudget({ jitterMs: 0, rate: 1, clock: t.clock }); // lifetime slots 1 s apart
      const lifetimeRegistry = new ConnectionRegistry({
        clock: t.clock,
        logger: logs.logger,
        config: { ...CONFIG, connectionTimeoutMs: 10_000, pingIntervalMs: 5_000 },
        managerOptions: { reconnectBudget: budget },
      });
      const pairs = Array.from({ length: 4 }, () => createSocketPair({ clock: t.clock }));
      for (const { server } of pairs) lifetimeRegistry.add(server);
      await t.tickAsync(10_000 + CONFIG.resolutionMs!); // lifetime slots at +0, +1 s, +2 s, +3 s from the verdict
      const drained = watch(drainConnections(lifetimeRegistry.managers(), { budget, withinMs: 1_500, logger: logs.logger }));
      await t.tickAsync(1_499);
      expect(pairs.filter((p) => p.client.closeFrame === null), 'open 1 ms before withinMs').to.have.length(2);
      await t.tickAsync(1);
      expect(pairs.map((p) => p.client.closeFrame?.code).sort()).to.deep.equal([1001, 1001, 4002, 4002]);
      await t.flush();
      expect(drained.settled).to.equal(true);
      expect(logs.entries.find((e) => e.message.startsWith('Drain: the time for closes is up'))?.meta).to.include({ remaining: 2, withinMs: 1_500 });
    });
  });

  describe('checkDrainBudget()', () => {
    it('reports a config that drains in time', () => {
      const report = checkDrainBudget({ connections: 1_000, rate: 200, jitterMs: 0, timeoutMs: 10_000, closeTimeoutMs: 5_000 });
      expect(report).to.include({ ok: true, nodeRate: 200, drainMs: 5_000, availableMs: 5_000 });
    });

    it('reports a config that cannot, with the rate that would fit', () => {
      const report = checkDrainBudget({ connections: 10_000, rate: 200, jitterMs: 0, nodes: 2, timeoutMs: 30_000, closeTimeoutMs: 5_000 });
      expect(report).to.include({ ok: false, nodeRate: 100, drainMs: 100_000, availableMs: 25_000, neededRate: 400 });
      expect(report.message).to.match(/raise WS_FLEET_RECONNECT_RATE to at least 800/);
    });

    it('counts the jitter allowance (250 ms by default): the first close 250 ms in, then 1,000 at 200 per 1.25 s', () => {
      const report = checkDrainBudget({ connections: 1_000, rate: 200, timeoutMs: 10_000, closeTimeoutMs: 5_000 });
      // 1,000 closes in the 4,750 ms left after the first 250: 263.158 per 1.25 s.
      expect(report).to.include({ ok: false, nodeRate: 200, drainMs: 6_500, availableMs: 5_000, neededRate: 263.158 });
      expect(report.message).to.match(/200 per 1250 ms.*raise WS_FLEET_RECONNECT_RATE to at least 264/);
      expect(checkDrainBudget({ connections: 1_000, rate: 200, timeoutMs: 10_000, closeTimeoutMs: 2_000 })).to.include({ ok: true, drainMs: 6_500 });
    });

    it('uses the shutdown and close timeouts defaults (10 s and 5 s)', () => {
      expect(checkDrainBudget({ connections: 1_001, rate: 200, jitterMs: 0 })).to.include({ ok: false, availableMs: 5_000 });
    });

    for (const [input, pattern] of [
      [{ connections: -1, rate: 200 }, /connections must be a finite number >= 0, got -1/],
      [{ connections: 10, rate: 0 }, /rate must be a number of closes per second greater than 0.*got 0/],
      [{ connections: 10, rate: 1, nodes: 0 }, /nodes must be a finite number >= 1, got 0/],
    ] as const) {
      it(`refuses ${JSON.stringify(input)} naming the value`, () => {
        expect(() => checkDrainBudget(input)).to.throw(RangeError, pattern);
      });
    }
  });
});
