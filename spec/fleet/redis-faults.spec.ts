// The fleet against a real redis-server, one case per fault class: Redis killed and restarted,
// Redis frozen (SIGSTOP) and thawed, a node that stops refreshing. Short real deadlines; every
// wait is a poll for a state, with a bound, never a sleep that hopes.
import { expect } from 'chai';
import { joinFleet, type FleetNode } from '../../lib/fleet/node.js';
import { ConnectionRegistry } from '../../lib/registry.js';
import { captureLogs } from '../../lib/testing/log-capture.js';
import { createSocketPair } from '../../lib/testing/socket-pair.js';
import { RedisServer, requireRedisServer } from '../support/redis-server.js';

const REQUEST_MS = 300;
const TTL_MS = 1_500;

async function eventually<T>(attempt: () => Promise<T | undefined> | T | undefined, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await attempt();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the fleet on a real redis-server', function () {
  let server: RedisServer;
  let nodes: Array<{ fleet: FleetNode; registry: ConnectionRegistry }>;
  let prefix = 0;

  before(async function () {
    requireRedisServer(this);
    server = await RedisServer.start();
  });
  after(async () => server?.stop());

  /** Node `nodeId` joins this test's fleet (nodes[i] in the order they join). */
  async function join(nodeId: string, membershipTtlMs = TTL_MS): Promise<FleetNode> {
    const logs = captureLogs();
    const registry = new ConnectionRegistry({ logger: logs.logger, config: { idleTimeoutMs: 0, connectionTimeoutMs: 0, messageTimeoutMs: 1_000 } });
    const fleet = await joinFleet({ registry, redisUrl: server.url, nodeId, prefix: `spec${prefix}`, requestTimeoutMs: REQUEST_MS, membershipTtlMs, logger: logs.logger });
    nodes.push({ fleet, registry });
    return fleet;
  }

  beforeEach(async () => {
    prefix++;
    nodes = [];
    for (const nodeId of ['a', 'b']) await join(nodeId);
  });

  afterEach(async () => {
    server.resume();
    if (!server.running) await server.restart();
    for (const { fleet } of nodes ?? []) await fleet.leave();
  });

  /** A client of node `i`. */
  function connect(i: number) {
    const { server: socket, client } = createSocketPair();
    const manager = nodes[i]!.registry.add(socket);
    return { client, manager };
  }

  /**
   * Waits until a fleet broadcast from node 0 counts both nodes and reaches node 1's client, and
   * returns that result. (Right after Redis restarted empty, node 1 may deliver before its key is
   * written again: it is then not counted, as a node the sender did not know of.)
   */
  async function fleetDeliveryBack(client: { received: unknown[] }) {
    return eventually(async () => {
      const before = client.received.length;
      const result = await nodes[0]!.fleet.broadcast('probe');
      if (result.status !== 'ok' || result.nodes !== 2) return undefined;
      await eventually(() => client.received.length > before, 'node 1 delivered what it acknowledged', 2_000);
      return result;
    }, 'fleet delivery back');
  }

  it('both nodes see each other and a broadcast reaches both', async () => {
    const [here, there] = [connect(0), connect(1)];
    const members = await eventually(async () => {
      const found = await nodes[0]!.fleet.members();
      return found.length === 2 ? found : undefined;
    }, 'two members');
    expect(members.map((m) => m.nodeId)).to.deep.equal(['a', 'b']);
    expect(await nodes[0]!.fleet.broadcast('hello')).to.deep.equal({ status: 'ok', nodes: 2, sent: 2, failed: 0, nodesMissing: [] });
    expect(here.client.received).to.deep.equal(['hello']);
    await eventually(() => there.client.received.length === 1, 'b delivered');
    expect(there.client.received).to.deep.equal(['hello']);
  });

  it('Redis killed: fleet operations answer unavailable without waiting, local delivery goes on, health says why; restarted: it all comes back', async () => {
    const [here, there] = [connect(0), connect(1)];
    await fleetDeliveryBack(there.client);
    await server.stop();
    await eventually(() => nodes.every(({ fleet }) => fleet.health().status === 'unavailable'), 'both nodes unavailable');
    expect(nodes[0]!.fleet.health().reason).to.match(/^bus unavailable/);
    const startedAt = Date.now();
    const result = await nodes[0]!.fleet.broadcast('while down');
    const remote = await nodes[0]!.fleet.close(nodes[1]!.fleet.idOf(there.manager));
    expect(Date.now() - startedAt, 'waited for a deadline').to.be.below(REQUEST_MS);
    expect(result).to.include({ status: 'unavailable', sent: 1 });
    expect(remote).to.equal('unavailable');
    expect(here.client.received.at(-1)).to.equal('while down');

    await server.restart(); // empty: every key is gone
    expect(await fleetDeliveryBack(there.client)).to.deep.equal({ status: 'ok', nodes: 2, sent: 2, failed: 0, nodesMissing: [] });
    await eventually(() => nodes.every(({ fleet }) => fleet.health().status === 'ok'), 'both nodes healthy');
    expect(await nodes[0]!.fleet.close(nodes[1]!.fleet.idOf(there.manager))).to.equal('closed');
  });

  it('Redis frozen (SIGSTOP): fleet operations answer unavailable, never hang; thawed (SIGCONT): it comes back', async () => {
    const { client, manager } = connect(1);
    await fleetDeliveryBack(client);
    server.pause();
    // Bounded by the deadline; the bound here only guards against a hang (the exact deadline is
    // asserted under fake time in faults.spec.ts).
    const startedAt = Date.now();
    expect(await nodes[0]!.fleet.broadcast('while frozen')).to.include({ status: 'unavailable' });
    expect(Date.now() - startedAt).to.be.below(REQUEST_MS * 10);
    expect(await nodes[0]!.fleet.send(nodes[1]!.fleet.idOf(manager), 'm')).to.equal('unavailable');
    expect(nodes[0]!.fleet.health().status).to.equal('unavailable');

    server.resume();
    expect(await fleetDeliveryBack(client)).to.include({ status: 'ok', nodes: 2 });
  });

  it('a node that stops refreshing leaves the fleet within its TTL, and its connection ids answer gone', async () => {
    const ttlMs = 300; // c's own: the time this test waits for
    const c = await join('c', ttlMs);
    const { manager } = connect(2);
    const id = c.idOf(manager);
    await eventually(async () => (await nodes[0]!.fleet.members()).length === 3 || undefined, 'three members');
    await c.bus.close(); // c stops talking to Redis without a goodbye, as a killed node does
    const startedAt = Date.now();
    await eventually(async () => (await nodes[0]!.fleet.members()).length === 2 || undefined, 'c gone from the members', ttlMs * 5 + 5_000);
    expect(Date.now() - startedAt, 'c stayed after its TTL').to.be.below(ttlMs + 1_000);
    expect((await nodes[0]!.fleet.members()).map((m) => m.nodeId)).to.deep.equal(['a', 'b']);
    expect(await nodes[0]!.fleet.close(id)).to.equal('gone');
  });
});
