// Membership under fake time: one key per node with a TTL, refreshed every ttl/3 with the counts;
// the fleet is the live keys. Nothing is written per message or per connection.
import { expect } from 'chai';
import sinon from 'sinon';
import { joinFleet } from '../../lib/fleet/node.js';
import { ConnectionRegistry } from '../../lib/registry.js';
import { silentLogger } from '../../lib/logger.js';
import { MemoryBusNetwork } from '../../lib/fleet/memory-bus.js';
import { createFleet, TTL_MS, type TestFleet } from './fleet-harness.js';

describe('fleet membership', () => {
  let f: TestFleet;
  afterEach(async () => f?.cleanup());

  it('every node is a member with its connections counted by route and role; health sums the fleet', async () => {
    f = await createFleet(['a', 'b']);
    f.nodes.a!.connect({ labels: { route: '/ws/scans', role: 'scanner' } });
    f.nodes.a!.connect({ labels: { route: '/ws/scans', role: 'dashboard' } });
    f.nodes.b!.connect({ labels: { route: '/ws/echo' } });
    await f.t.tickAsync(TTL_MS / 3);
    const members = await f.nodes.a!.fleet.members();
    expect(members.map((m) => [m.nodeId, m.connections, m.byRoute, m.byRole])).to.deep.equal([
      ['a', 2, { '/ws/scans': 2 }, { scanner: 1, dashboard: 1 }],
      ['b', 1, { '/ws/echo': 1 }, { none: 1 }],
    ]);
    expect(members[0]).to.include({ version: '0.1.0', startedAt: f.t.now() - TTL_MS / 3, updatedAt: f.t.now() });
    expect(f.nodes.b!.fleet.health()).to.deep.equal({ status: 'ok', nodes: 2, connections: 3 });
  });

  it('the counts change at the next refresh (every ttl/3), not per connection or message', async () => {
    f = await createFleet(['a', 'b']);
    const writes = sinon.spy(f.nodes.a!.bus, 'setWithTtl');
    const publishes = sinon.spy(f.nodes.a!.bus, 'publish');
    const clients = Array.from({ length: 50 }, () => f.nodes.a!.connect());
    for (const { manager } of clients) await manager.sendTextWithTimeout('local message');
    await f.t.tickAsync(TTL_MS / 3 - 1);
    expect(writes.callCount, 'writes before the refresh').to.equal(0);
    expect(publishes.callCount, 'publishes before the refresh').to.equal(0);
    expect((await f.nodes.b!.fleet.members()).find((m) => m.nodeId === 'a')?.connections).to.equal(0);
    await f.t.tickAsync(1);
    expect(writes.callCount).to.equal(1);
    expect((await f.nodes.b!.fleet.members()).find((m) => m.nodeId === 'a')?.connections).to.equal(50);
  });

  it('a node that stops refreshing (killed) leaves the fleet within the TTL', async () => {
    f = await createFleet(['a', 'b']);
    await f.t.tickAsync(TTL_MS / 3); // b refreshed at this instant, its last refresh
    await f.nodes.b!.bus.close(); // b is killed: no more refreshes, no goodbye
    await f.t.tickAsync(TTL_MS - 1);
    expect((await f.nodes.a!.fleet.members()).map((m) => m.nodeId)).to.deep.equal(['a', 'b']);
    await f.t.tickAsync(1);
    expect((await f.nodes.a!.fleet.members()).map((m) => m.nodeId)).to.deep.equal(['a']);
    expect(await f.nodes.a!.bus.setMembers('ws-timeouts:nodes'), 'the index forgets it too').to.deep.equal(['a']);
  });

  it('reading the fleet never scans the keyspace (a Redis shared with sessions or caches stays cheap)', async () => {
    f = await createFleet(['a', 'b']);
    const scans = sinon.spy(f.nodes.a!.bus, 'keys');
    for (let i = 0; i < 1000; i++) await f.nodes.a!.bus.setWithTtl(`sess:${i}`, 'x', 60_000);
    await f.t.tickAsync(TTL_MS);
    await f.nodes.a!.fleet.members();
    await f.nodes.a!.fleet.broadcast('m');
    expect(scans.callCount).to.equal(0);
  });

  it('leave() removes the node at once', async () => {
    f = await createFleet(['a', 'b']);
    await f.nodes.b!.fleet.leave();
    expect((await f.nodes.a!.fleet.members()).map((m) => m.nodeId)).to.deep.equal(['a']);
  });

  it('after Redis comes back empty, the key is written again as soon as the bus is ready', async () => {
    f = await createFleet(['a', 'b']);
    f.network.takeDown();
    f.network.bringUp({ empty: true });
    await f.t.flush();
    expect((await f.nodes.a!.fleet.members()).map((m) => m.nodeId)).to.deep.equal(['a', 'b']);
  });

  it('refuses a bad node id, prefix or TTL, naming the option and echoing the value', async () => {
    const registry = new ConnectionRegistry({ logger: silentLogger });
    const bus = new MemoryBusNetwork({ logger: silentLogger }).bus();
    await expectRejection(joinFleet({ registry, bus, nodeId: 'web:1' }), RangeError, /nodeId must be 1 to 64 characters .* got "web:1"/);
    await expectRejection(joinFleet({ registry, bus, prefix: 'has space' }), RangeError, /prefix must be .* got "has space"/);
    await expectRejection(joinFleet({ registry, bus, membershipTtlMs: 0 }), RangeError, /membershipTtlMs must be a whole number of milliseconds from 1 .* got 0/);
    await expectRejection(joinFleet({ registry }), TypeError, /give either bus .* or redisUrl/);
    await bus.close();
  });
});

async function expectRejection(promise: Promise<unknown>, type: new (...args: never[]) => Error, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => expect.fail('resolved'),
    (e: unknown) => e,
  );
  expect(error).to.be.instanceOf(type);
  expect((error as Error).message).to.match(message);
}
