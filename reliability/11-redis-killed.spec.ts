import { expect } from 'chai';
import { health, pollUntil, startExampleFleet, type ExampleFleet } from '../spec/support/example-fleet.js';
import { requireRedisServer } from '../spec/support/redis-server.js';
import { Fleet as Clients } from './support/fleet.js';
import { fleetCaseEnv, rssBytes, ScanPoster, statuses } from './support/fleet-probes.js';
import { bytes, ms, reliabilityCase } from './support/report.js';
import { max, sleep, waitFor } from './support/util.js';

const NODES = ['a', 'b', 'c'];
const SCANNERS = 20; // per node
const POST_EVERY_MS = 100;
const DOWN_MS = 10_000;
const TTL_MS = 1_500;
const REQUEST_TIMEOUT_MS = 500;
const ENV = fleetCaseEnv(TTL_MS, REQUEST_TIMEOUT_MS);

const report = reliabilityCase('Redis killed', {
  load: `3 example-server nodes (npm start) on one redis-server, ${SCANNERS} /ws/scans clients on each (child process); a POST /scans on node a every ${POST_EVERY_MS} ms throughout`,
  faults: `redis-server SIGKILLed for ${DOWN_MS / 1000} s, then restarted empty on the same port (membership TTL ${TTL_MS / 1000} s, fleet request timeout ${REQUEST_TIMEOUT_MS} ms)`,
});

describe(report.name, function () {
  this.timeout(120_000);
  let fleet: ExampleFleet;
  let clients: Clients;
  let poster: ScanPoster | undefined;

  before(async function () {
    requireRedisServer(this);
    fleet = await startExampleFleet(NODES, ENV);
    clients = await Clients.start();
    for (const id of NODES) await clients.open(id, `${fleet.nodes[id]!.wsUrl}/ws/scans`, SCANNERS);
  });
  after(async () => {
    await poster?.stop(); // a failed case leaves nothing running that would keep mocha alive
    await clients?.stop();
    await fleet?.stop();
  });

  it('loses no local message while Redis is down, answers every fleet broadcast at once, keeps memory bounded, and delivers to the fleet again after the restart', async () => {
    const a = fleet.nodes.a!;
    await pollUntil('node a to count the whole fleet', async () => (await health(a)).fleet.connections === NODES.length * SCANNERS, 15_000);
    poster = new ScanPoster(a, POST_EVERY_MS);
    const rss: Array<{ at: number; bytes: number }> = [];
    const sampler = setInterval(() => rss.push({ at: Date.now(), bytes: rssBytes(a.serverPid()) }), 250);
    let restartedAt = 0;
    let killedAt = 0;
    let backAt = 0;
    try {
      await sleep(3_000);
      killedAt = Date.now();
      await fleet.redis.stop();
      await sleep(DOWN_MS);
      await fleet.redis.restart();
      restartedAt = Date.now();
      // Back: a scan posted on a is confirmed by every node and delivered to all their scanners.
      const first = await pollUntil('a broadcast confirmed by all three nodes', async () => poster!.between(restartedAt).find((x) => x.status === 'ok' && x.nodes === 3 && x.sent === NODES.length * SCANNERS), 20_000);
      backAt = first.at + first.ms;
      await sleep(2_000);
    } finally {
      clearInterval(sampler);
    }
    const answers = await poster.stop();

    // Every scan reached node a's own scanners, whatever Redis did.
    await waitFor('node a scanners to receive every scan', async () => (await clients.stats('a')).minReceived === answers.length, 5_000);
    const local = await clients.stats('a');
    expect(local.minReceived, 'scans received by the scanners of node a').to.equal(answers.length);
    expect(local.open).to.equal(SCANNERS);
    // A scan counted as delivered by b and c did reach their scanners: nothing is counted that was not sent.
    const confirmed = answers.filter((x) => x.sent === NODES.length * SCANNERS).length;
    for (const id of ['b', 'c']) expect((await clients.stats(id)).minReceived, `scans received on node ${id}`).to.be.at.least(confirmed);

    const down = answers.filter((x) => x.at >= killedAt && x.at < restartedAt);
    expect(answers.every((x) => x.httpStatus === 202)).to.equal(true);
    expect(down.length).to.be.above(10);
    // While Redis is down the answers say so, at once: no broadcast waits for Redis or claims the fleet.
    expect(down.filter((x) => x.status === 'ok'), 'broadcasts answered ok while Redis was down').to.have.length(0);
    const slowest = max(down.map((x) => x.ms));
    expect(slowest).to.be.below(REQUEST_TIMEOUT_MS + 1_000);

    const baseline = max(rss.filter((s) => s.at < killedAt).map((s) => s.bytes));
    const whileDown = max(rss.filter((s) => s.at >= killedAt && s.at < restartedAt).map((s) => s.bytes));
    expect(whileDown - baseline, 'RSS growth of node a while Redis was down').to.be.below(32 * 1024 * 1024);
    const recoveryMs = backAt - restartedAt;
    expect(recoveryMs).to.be.below(10_000);

    report.figure(
      `${answers.length} scans posted on node a (${down.length} while Redis was down): ${local.minReceived}/${answers.length} reached each of its ${SCANNERS} scanners (0 local lost); ` +
        `while down the answers were ${statuses(down)}, slowest ${ms(slowest)} (request timeout ${ms(REQUEST_TIMEOUT_MS)}); ` +
        `fleet delivery to all ${NODES.length * SCANNERS} scanners back ${ms(recoveryMs)} after the restart; ` +
        `node a RSS ${bytes(baseline)} before, at most ${bytes(whileDown)} while down (${whileDown - baseline >= 0 ? '+' : ''}${bytes(whileDown - baseline)})`,
    );
  });
});
