// Bus faults under fake time: every fleet operation resolves `unavailable` at once while the bus
// is down (within the deadline while it is stalled), local work goes on, health and metrics say
// so, a deaf subscriber is caught by the canary, and everything recovers by itself.
import { expect } from 'chai';
import express from 'express';
import { checkHealth } from '../../lib/health.js';
import { settles } from '../support/settles.js';
import { createFleet, REQUEST_MS, TTL_MS, type TestFleet } from './fleet-harness.js';

async function counter(f: TestFleet, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await f.metrics.register.getSingleMetric(`ws_timeouts_${name}`)!.get();
  return metric.values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
}

describe('fleet faults', () => {
  let f: TestFleet;
  afterEach(async () => f?.cleanup());

  it('bus down: every fleet operation resolves unavailable at once; local delivery goes on', async () => {
    f = await createFleet();
    const local = f.nodes.a!.connect({ userId: 'alice' });
    const remote = f.nodes.b!.connect();
    await f.t.tickAsync(TTL_MS / 3); // a has read the members since b and c joined
    f.network.takeDown();
    const a = f.nodes.a!.fleet;
    // settles() with no time allowed: nothing waits for a deadline.
    expect(await settles(f.t, a.broadcast('m'), 'broadcast')).to.deep.equal({ status: 'unavailable', nodes: 3, sent: 1, failed: 0, nodesMissing: ['b', 'c'] });
    expect(local.client.received).to.deep.equal(['m']);
    expect(await settles(f.t, a.send(f.nodes.b!.fleet.idOf(remote.manager), 'm'), 'send')).to.equal('unavailable');
    expect(await settles(f.t, a.close(f.nodes.b!.fleet.idOf(remote.manager)), 'close')).to.equal('unavailable');
    expect(await settles(f.t, a.sendToUser('alice', 'u'), 'sendToUser')).to.include({ status: 'unavailable', sent: 1 });
    expect(await settles(f.t, a.closeUser('bob'), 'closeUser')).to.include({ status: 'unavailable', closed: 0 });
    expect(remote.client.received).to.deep.equal([]);
    expect(await counter(f, 'fleet_operations_total', { op: 'broadcast', result: 'unavailable' })).to.equal(1);
    expect(await counter(f, 'fleet_operations_total', { result: 'unavailable' })).to.equal(5);
  });

  it('bus stalled: fleet operations resolve unavailable by the deadline, never later', async () => {
    f = await createFleet();
    const remote = f.nodes.b!.connect();
    f.network.stall();
    const a = f.nodes.a!.fleet;
    expect(await settles(f.t, a.broadcast('m'), 'broadcast', REQUEST_MS)).to.include({ status: 'unavailable' });
    expect(await settles(f.t, a.close(f.nodes.b!.fleet.idOf(remote.manager)), 'close')).to.equal('unavailable'); // the bus knows it is stalled now
    expect(await counter(f, 'fleet_bus_errors_total', { op: 'broadcast' })).to.equal(1);
  });

  it('bus stalled: requests that reached frozen Redis and are delivered after it thaws are dropped, not run: "unavailable" meant not acted on', async () => {
    f = await createFleet(['a', 'b']);
    const byId = f.nodes.b!.connect();
    const bob = f.nodes.b!.connect({ userId: 'bob' });
    const a = f.nodes.a!.fleet;
    f.network.stall();
    const answers = Promise.all([a.close(f.nodes.b!.fleet.idOf(byId.manager)), a.broadcast('late'), a.closeUser('bob')]);
    const [close, broadcast, closeUser] = await settles(f.t, answers, 'the operations', REQUEST_MS);
    expect(close).to.equal('unavailable');
    expect(broadcast).to.include({ status: 'unavailable' });
    expect(closeUser).to.include({ status: 'unavailable' });
    await f.t.tickAsync(1_000); // frozen for a while longer
    f.network.bringUp(); // thawed: what reached it is delivered now
    await f.t.flush();
    expect(byId.manager.state, 'the socket whose close answered unavailable').to.equal('open');
    expect(bob.manager.state, "bob's socket, whose closeUser answered unavailable").to.equal('open');
    expect(byId.client.received).to.deep.equal([]);
    expect(await counter(f, 'fleet_operations_total', { result: 'expired' })).to.equal(3);
    const dropped = f.logs.entries.filter((e) => e.message === 'Fleet request dropped: past its deadline, its sender has answered already');
    expect(dropped.map((e) => e.meta?.op).sort()).to.deep.equal(['broadcast', 'close', 'closeUser']);
    expect(dropped[0]).to.include({ level: 'warn' });
    expect(dropped[0]!.meta).to.include({ nodeId: 'b', from: 'a' });
    expect(dropped[0]!.meta.lateMs).to.be.at.least(1_000);
  });

  it('a request delivered before its deadline is run, however short the deadline', async () => {
    f = await createFleet(['a', 'b']);
    const { manager } = f.nodes.b!.connect();
    expect(await f.nodes.a!.fleet.close(f.nodes.b!.fleet.idOf(manager), { timeoutMs: 1 })).to.equal('closed');
    expect(manager.state).to.not.equal('open');
  });

  it('health: unavailable with the reason while the bus is down, ok again once it is back; the instance is degraded, not down', async () => {
    f = await createFleet(['a', 'b']);
    const { fleet, registry } = f.nodes.a!;
    await f.t.tickAsync(TTL_MS / 3); // a has read the members since b joined
    expect(checkHealth(registry, { fleet })).to.include({ status: 'healthy' });
    f.network.takeDown();
    expect(fleet.health()).to.deep.include({ status: 'unavailable', nodes: 2 });
    expect(fleet.health().reason).to.match(/^bus unavailable/);
    const report = checkHealth(registry, { fleet });
    expect(report.status).to.equal('degraded');
    expect(report.reasons).to.have.length(1);
    expect(report.reasons[0]).to.match(/^redis unavailable: bus unavailable/);
    expect(report.fleet).to.include({ status: 'unavailable', nodes: 2 });
    f.network.bringUp({ empty: true });
    await f.t.flush();
    expect(fleet.health()).to.deep.equal({ status: 'ok', nodes: 2, connections: 0 });
  });

  it('recovers by itself: after the bus is back, broadcast and remote operations reach the other nodes again', async () => {
    f = await createFleet();
    const { client, manager } = f.nodes.c!.connect();
    f.network.takeDown();
    await f.t.tickAsync(TTL_MS * 2); // down for longer than the TTL: every key is gone
    f.network.bringUp({ empty: true });
    await f.t.flush();
    expect(await f.nodes.a!.fleet.broadcast('back')).to.deep.equal({ status: 'ok', nodes: 3, sent: 1, failed: 0, nodesMissing: [] });
    expect(await f.nodes.a!.fleet.close(f.nodes.c!.fleet.idOf(manager))).to.equal('closed');
    expect(client.received).to.deep.equal(['back']);
  });

  it('the canary catches a deaf subscriber: logged, counted, health unavailable, resubscribed, and it hears again', async () => {
    f = await createFleet(['a', 'b']);
    const { client } = f.nodes.b!.connect();
    f.nodes.b!.bus.deafen();
    const period = TTL_MS / 3;
    await f.t.tickAsync(period + REQUEST_MS); // first canary missed
    expect(f.nodes.b!.fleet.health().status).to.equal('ok');
    await f.t.tickAsync(period); // second canary missed: deaf
    expect(f.nodes.b!.fleet.health()).to.deep.include({ status: 'unavailable' });
    expect(f.nodes.b!.fleet.health().reason).to.match(/^subscriber deaf: 2 canaries/);
    expect(f.logs.entries.find((e) => e.message === 'Fleet subscriber deaf: resubscribing')?.meta).to.include({ nodeId: 'b', canariesMissed: 2 });
    expect(await counter(f, 'fleet_deaf_subscribers_total')).to.equal(1);
    // Resubscribed: a broadcast reaches b again, and the next canary clears the verdict.
    expect(await f.nodes.a!.fleet.broadcast('heard')).to.include({ status: 'ok', sent: 1 });
    expect(client.received).to.deep.equal(['heard']);
    await f.t.tickAsync(period);
    expect(f.nodes.b!.fleet.health().status).to.equal('ok');
  });

  it('a fleet operation never throws into the caller, whatever the data: unserialisable data is logged', async () => {
    f = await createFleet(['a']);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(await f.nodes.a!.fleet.broadcast(cyclic)).to.include({ sent: 0 });
    expect(f.logs.entries.find((e) => e.message === 'Fleet broadcast failed: data is not serialisable to JSON')?.meta).to.include({ nodeId: 'a' });
  });
});

void express; // the health handler's shape is pinned in spec/health.spec.ts
