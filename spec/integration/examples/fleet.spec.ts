import { expect } from 'chai';
import { closed, nextMessage, openClient } from '../../support/express-server.js';
import { startExample } from '../../support/example-server.js';
import { closeVia, fleetIdOf, health, pollUntil, postScan, startExampleFleet, type ExampleFleet } from '../../support/example-fleet.js';
import { requireRedisServer } from '../../support/redis-server.js';

// The example server as a fleet: a real redis-server and three `npm start` nodes, each a child
// process, with clients on each. Membership is refreshed every TTL/3 = 0.5 s; a node that stops
// refreshing leaves the counts when its key expires (TTL 1.5 s) and the others next read them.
const TTL_MS = 1_500;
const ENV = {
  WS_IDLE_TIMEOUT: '30',
  WS_PING_INTERVAL: '1',
  WS_PONG_TIMEOUT: '5',
  WS_TIMER_RESOLUTION: '0.1',
  WS_CLOSE_TIMEOUT: '1',
  WS_FLEET_TTL: String(TTL_MS / 1000),
  WS_FLEET_REQUEST_TIMEOUT: '1',
};

describe('examples/server.ts as a fleet node (REDIS_URL, three processes)', function () {
  this.timeout(120_000);
  let fleet: ExampleFleet;

  before(async function () {
    requireRedisServer(this);
    fleet = await startExampleFleet(['a', 'b', 'c'], ENV);
  });
  after(async () => fleet?.stop());

  const node = (id: string) => fleet.nodes[id]!;
  /** Every node's /health fleet part, once each counts `nodes` nodes and `connections` connections. */
  const counted = (nodes: number, connections: number, on = ['a', 'b', 'c']) =>
    pollUntil(`${on.join(', ')} to count ${nodes} nodes and ${connections} connections`, async () => {
      const all = await Promise.all(on.map(async (id) => (await health(node(id))).fleet));
      return all.every((f) => f.status === 'ok' && f.nodes === nodes && f.connections === connections) && all;
    });

  it('counts every node and every connection of the fleet in /health on each node', async () => {
    const sockets = [await openClient(`${node('a').wsUrl}/ws/echo`), await openClient(`${node('b').wsUrl}/ws/echo`), await openClient(`${node('b').wsUrl}/ws/echo`)];
    const fleetHealth = await counted(3, 3);
    expect(fleetHealth[2]).to.deep.include({ status: 'ok', nodes: 3, connections: 3 });
    const body = await health(node('c'));
    expect(body.status).to.equal('healthy');
    await Promise.all(sockets.map((ws) => (ws.close(), closed(ws))));
    await counted(3, 0);
  });

  it('delivers a scan posted on node a to the /ws/scans sockets of every node, and not to echo sockets', async () => {
    const scanners = await Promise.all(['a', 'b', 'c'].map((id) => openClient(`${node(id).wsUrl}/ws/scans?user=gate-${id}`)));
    const echo = await openClient(`${node('b').wsUrl}/ws/echo`);
    let echoGot = 0;
    echo.on('message', () => echoGot++);
    await counted(3, 4);
    const received = scanners.map(nextMessage);
    const { status, body } = await postScan(node('a'), 'T-fleet-1');
    expect(status).to.equal(202);
    expect(body).to.deep.include({ status: 'ok', nodes: 3, sent: 3, failed: 0, delivered: 3 });
    expect(body.nodesMissing).to.deep.equal([]);
    for (const message of await Promise.all(received)) expect(JSON.parse(message)).to.include({ type: 'scan', ticketId: 'T-fleet-1' });
    expect(echoGot).to.equal(0);
    await Promise.all([...scanners, echo].map((ws) => (ws.close(), closed(ws))));
  });

  it('closes from node b a socket held by node a (notice, then 1000), and answers 410 Gone the second time', async () => {
    const ws = await openClient(`${node('a').wsUrl}/ws/echo?user=remote-close`);
    const id = await fleetIdOf(node('a'), 'remote-close');
    expect(id, 'the node id and its run, then the connection id').to.match(/^a@\d+:c\d+$/);
    const notice = nextMessage(ws);
    const close = closed(ws);
    expect(await closeVia(node('b'), id)).to.deep.equal({ status: 200, result: 'closed' });
    expect(JSON.parse(await notice)).to.include({ type: 'closedByOperator' });
    expect(await close).to.deep.equal({ code: 1000, reason: 'closed_by_operator' });
    expect(await closeVia(node('b'), id)).to.deep.equal({ status: 410, result: 'gone' });
    expect(await closeVia(node('c'), 'nobody:123')).to.deep.equal({ status: 410, result: 'gone' });
  });

  it('drops a SIGKILLed node from the counts within the TTL; its connection ids then answer 410 Gone', async () => {
    await openClient(`${node('c').wsUrl}/ws/echo?user=on-c`);
    const id = await fleetIdOf(node('c'), 'on-c');
    await counted(3, 1, ['a', 'b']);
    const killedAt = Date.now();
    await node('c').kill(); // SIGKILL: no leave(), its key stays until the TTL expires it
    await counted(2, 0, ['a', 'b']);
    const goneAfterMs = Date.now() - killedAt;
    // Expiry is at most TTL after the last refresh; the others see it at their next read (TTL/3).
    expect(goneAfterMs).to.be.below(TTL_MS + TTL_MS / 3 + 2_000);
    expect(await closeVia(node('a'), id)).to.deep.equal({ status: 410, result: 'gone' });
  });
});

describe('examples/server.ts fleet settings', function () {
  this.timeout(30_000);

  it('reports a bad REDIS_URL, NODE_ID and WS_FLEET_* with the WS_* problems at once, without the password, and exits 1', async () => {
    const server = await startExample(
      { REDIS_URL: 'http://user:s3cret@127.0.0.1:1', NODE_ID: 'a:b', WS_FLEET_PREFIX: 'a b', WS_FLEET_TTL: 'soon', WS_IDLE_TIMEOUT: 'never' },
      { waitForListening: false },
    );
    expect((await server.exited).code).to.not.equal(0);
    const stderr = server.stderr();
    for (const name of ['REDIS_URL', 'NODE_ID', 'WS_FLEET_PREFIX', 'WS_FLEET_TTL', 'WS_IDLE_TIMEOUT']) expect(stderr).to.include(name);
    expect(stderr).not.to.include('s3cret');
    expect(server.logs().some((e) => e.message === 'Example server listening')).to.equal(false);
  });
});
