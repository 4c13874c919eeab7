// trackSessions on a fleet under fake time: a node dies with open sessions, and another node's
// sweeper runs the disconnect hook once for each of them; a node that closes its own sessions
// leaves nothing for the sweeper.
import { expect } from 'chai';
import { trackSessions, type FleetSessions, type ReapInfo } from '../../lib/fleet/sweeper.js';
import type { SessionRecord } from '../../lib/fleet/sessions.js';
import { createFleet, TTL_MS, type TestFleet } from './fleet-harness.js';

const SWEEP_MS = 1_000;

describe('trackSessions (a fleet under fake time)', () => {
  let f: TestFleet;
  let sessions: Record<string, FleetSessions>;
  let hooks: Array<{ on: string; session: SessionRecord; info: ReapInfo }>;

  beforeEach(async () => {
    f = await createFleet(['a', 'b']);
    hooks = [];
    sessions = {};
    for (const id of ['a', 'b']) {
      sessions[id] = trackSessions(f.nodes[id]!.fleet, f.nodes[id]!.registry, {
        flushIntervalMs: 500,
        intervalMs: SWEEP_MS,
        lockTtlMs: TTL_MS,
        metrics: f.metrics,
        onDisconnect: (session, info) => void hooks.push({ on: id, session, info }),
      });
    }
  });
  afterEach(async () => {
    await Promise.all(Object.values(sessions).map((s) => s.stop()));
    await f.cleanup();
  });

  it('runs the hook once for every session of a node that died, on the surviving node, within the membership TTL plus a sweep', async () => {
    const b = f.nodes.b!;
    const opened = Array.from({ length: 30 }, (_, i) => b.connect({ userId: `user-${i}`, labels: { role: 'listener' } }).manager);
    await f.t.tickAsync(500);
    // node b dies: nothing of it reaches Redis any more (no refresh, no flush, no sweep).
    await b.bus.close();
    const diedAt = f.t.now();
    while (hooks.length < 30 && f.t.now() - diedAt < TTL_MS + 2 * SWEEP_MS) await f.t.tickAsync(100);
    expect(f.t.now() - diedAt).to.be.at.most(TTL_MS + 2 * SWEEP_MS);
    expect(hooks.map((h) => h.session.fleetId).sort()).to.deep.equal(opened.map((m) => b.fleet.idOf(m)).sort());
    expect(hooks.every((h) => h.on === 'a' && h.info.reason === 'node_gone' && !h.info.repeated)).to.equal(true);
    expect(hooks[0]!.session).to.deep.include({ nodeId: 'b', userId: hooks[0]!.session.userId, labels: { role: 'listener' } });
    await f.t.tickAsync(10 * SWEEP_MS);
    expect(hooks, 'never again').to.have.length(30);
  });

  it('a node that closes its own sessions and leaves gets no hook run for them by the sweeper', async () => {
    const b = f.nodes.b!;
    for (let i = 0; i < 5; i++) b.connect({ userId: `user-${i}` });
    await f.t.tickAsync(500);
    await b.registry.closeAll();
    await f.t.tickAsync(1_000);
    await sessions.b!.stop();
    delete sessions.b;
    await b.fleet.leave();
    await f.t.tickAsync(TTL_MS + 5 * SWEEP_MS);
    expect(hooks).to.deep.equal([]);
  });
});
