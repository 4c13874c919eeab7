import { expect } from 'chai';
import { closeVia, health, pollUntil, postScan, startExampleFleet, type ExampleFleet } from '../spec/support/example-fleet.js';
import { requireRedisServer } from '../spec/support/redis-server.js';
import { Fleet as Clients } from './support/fleet.js';
import { fleetCaseEnv } from './support/fleet-probes.js';
import { ms, reliabilityCase } from './support/report.js';

const NODES = ['a', 'b', 'c'];
const PER_NODE = 50;
const TTL_MS = 3_000;
const REQUEST_TIMEOUT_MS = 500;
const ENV = fleetCaseEnv(TTL_MS, REQUEST_TIMEOUT_MS);

const report = reliabilityCase('Node SIGKILL', {
  load: `3 example-server nodes on one redis-server, ${PER_NODE} /ws/scans clients on each (child process)`,
  faults: `node c SIGKILLed (no leave: its membership key stays until its TTL of ${TTL_MS / 1000} s expires it); fleet request timeout ${REQUEST_TIMEOUT_MS} ms`,
});

describe(report.name, function () {
  this.timeout(120_000);
  let fleet: ExampleFleet;
  let clients: Clients;

  before(async function () {
    requireRedisServer(this);
    fleet = await startExampleFleet(NODES, ENV);
    clients = await Clients.start();
    for (const id of NODES) await clients.open(id, `${fleet.nodes[id]!.wsUrl}/ws/scans`, PER_NODE);
  });
  after(async () => {
    await clients?.stop();
    await fleet?.stop();
  });

  it('names the dead node as missing until its key expires, drops it from the counts within the TTL, and answers its ids "gone"', async () => {
    const [a, b, c] = NODES.map((id) => fleet.nodes[id]!);
    await pollUntil('nodes a and b to count the whole fleet', async () => (await Promise.all([a, b].map(health))).every((h) => h.fleet.nodes === 3 && h.fleet.connections === 3 * PER_NODE), 15_000);
    const view = (await (await fetch(`${c!.httpUrl}/api/connections`)).json()) as { connections: Array<{ id: string }> };
    const idsOnC = view.connections.map((x) => x.id);
    expect(idsOnC).to.have.length(PER_NODE);

    const killedAt = Date.now();
    await c!.kill();
    // Still a member (its key has not expired): a broadcast asks it, and names it, not counts it.
    const right = await postScan(a!, 'T-after-kill');
    const rightAfterMs = Date.now() - killedAt;
    const goneMs = await pollUntil('nodes a and b to drop node c', async () => {
      const all = await Promise.all([a, b].map(health));
      return all.every((h) => h.fleet.nodes === 2 && h.fleet.connections === 2 * PER_NODE) && Date.now() - killedAt;
    }, 4 * TTL_MS);
    const later = await postScan(a!, 'T-after-expiry');
    const closes = await Promise.all(idsOnC.slice(0, 10).map((id) => closeVia(b!, id)));

    expect(rightAfterMs, 'the first broadcast came before the TTL could expire the key').to.be.below(TTL_MS - 1_000);
    expect(right.body).to.deep.include({ status: 'partial', nodes: 3, sent: 2 * PER_NODE });
    expect(right.body.nodesMissing).to.deep.equal(['c']);
    // The key expires at most TTL after c's last refresh; a and b read the members every TTL/3.
    expect(goneMs).to.be.below(TTL_MS + TTL_MS / 3 + 1_000);
    expect(later.body).to.deep.include({ status: 'ok', nodes: 2, sent: 2 * PER_NODE, failed: 0 });
    expect(closes.every((x) => x.status === 410 && x.result === 'gone'), JSON.stringify(closes)).to.equal(true);

    report.figure(
      `a broadcast ${ms(rightAfterMs)} after the kill: ${right.body.status}, ${right.body.sent} sent, nodesMissing ${JSON.stringify(right.body.nodesMissing)} (c named, not counted); ` +
        `c gone from the counts of a and b ${ms(goneMs)} after SIGKILL (TTL ${ms(TTL_MS)}, reads every ${ms(TTL_MS / 3)}); then broadcasts ok on 2 nodes; ` +
        `10/10 of c's connection ids closed from b answered 410 "gone"`,
    );
  });
});
