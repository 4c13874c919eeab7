import { expect } from 'chai';
import { health, pollUntil, startExampleFleet, type ExampleFleet, type FleetHealth } from '../spec/support/example-fleet.js';
import { RedisServer, requireRedisServer } from '../spec/support/redis-server.js';
import { Fleet as Clients } from './support/fleet.js';
import { fleetCaseEnv, ScanPoster, statuses } from './support/fleet-probes.js';
import { RedisProxy } from './support/redis-proxy.js';
import { ms, reliabilityCase } from './support/report.js';

const NODES = ['a', 'b'];
const SCANNERS = 20;
const TTL_MS = 1_500;
const REQUEST_TIMEOUT_MS = 500;
const ENV = fleetCaseEnv(TTL_MS, REQUEST_TIMEOUT_MS);

const report = reliabilityCase('Deaf subscriber', {
  load: `2 example-server nodes on one redis-server, node a through a TCP proxy; ${SCANNERS} /ws/scans clients on each (child process); a POST /scans on node b every 100 ms`,
  faults: `the proxy drops everything Redis sends on node a's subscriber connection, which stays open (a subscriber gone deaf; commands still answered); canary every TTL/3 = ${ms(TTL_MS / 3)}, reply deadline ${ms(REQUEST_TIMEOUT_MS)}`,
});

describe(report.name, function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let proxy: RedisProxy;
  let fleet: ExampleFleet;
  let clients: Clients;
  let poster: ScanPoster | undefined;
  let sampling = false;

  before(async function () {
    requireRedisServer(this);
    redis = await RedisServer.start();
    proxy = await RedisProxy.start(redis.port);
    const [viaProxy, direct] = await Promise.all([startExampleFleet(['a'], { ...ENV, REDIS_URL: proxy.url }, redis), startExampleFleet(['b'], ENV, redis)]);
    fleet = { redis, nodes: { ...viaProxy.nodes, ...direct.nodes }, stop: async () => (await viaProxy.stop(), await direct.stop()) };
    clients = await Clients.start();
    for (const id of NODES) await clients.open(id, `${fleet.nodes[id]!.wsUrl}/ws/scans`, SCANNERS);
  });
  after(async () => {
    sampling = false; // a failed case leaves nothing running that would keep mocha alive
    await poster?.stop();
    await clients?.stop();
    await fleet?.stop();
    await proxy?.close();
  });

  it("detects the deaf subscriber with its canary (logged, /health degraded naming it), resubscribes, and hears the fleet's broadcasts again", async () => {
    const [a, b] = NODES.map((id) => fleet.nodes[id]!);
    await pollUntil('both nodes to count the whole fleet', async () => (await Promise.all([a, b].map(health))).every((h) => h.fleet.connections === 2 * SCANNERS), 15_000);
    poster = new ScanPoster(b!, 100);
    await pollUntil('a broadcast from b confirmed by a', async () => poster!.answers.some((x) => x.status === 'ok' && x.sent === 2 * SCANNERS), 5_000);

    const deafAt = Date.now();
    expect(proxy.deafen(), 'subscriber connections of node a').to.equal(1);
    // /health of a, sampled throughout: the deaf window may be short (one canary round after the resubscribe).
    const samples: Array<{ at: number; health: FleetHealth }> = [];
    sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const sample = await health(a!).catch(() => undefined);
        if (sample) samples.push({ at: Date.now(), health: sample });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const deafLine = () => a!.logs().find((e) => /subscriber deaf/i.test(String(e.message)));
    const detectedMs = await pollUntil('node a to log its deaf subscriber', async () => deafLine() && Date.now() - deafAt, 15_000);
    const heardAgainMs = await pollUntil('a broadcast from b confirmed by a again', async () => poster!.between(deafAt + detectedMs).find((x) => x.status === 'ok' && x.sent === 2 * SCANNERS) && Date.now() - deafAt, 15_000);
    sampling = false;
    await sampler;
    const answers = await poster.stop();
    const whileDeaf = answers.filter((x) => x.at >= deafAt && x.at + x.ms < deafAt + detectedMs);
    const degraded = samples.filter((s) => s.health.status === 'degraded');
    const metrics = await (await fetch(`${a!.httpUrl}/metrics`)).text();

    expect(deafLine(), 'the log line').to.include({ level: 'error' });
    expect(metrics).to.match(/deaf\w* 1$/m);
    // While deaf, b's broadcasts name a as missing instead of counting its scanners.
    expect(whileDeaf.filter((x) => x.sent === 2 * SCANNERS), 'broadcasts counted as delivered to the deaf node').to.have.length(0);
    expect(whileDeaf.every((x) => x.nodesMissing.includes('a'))).to.equal(true);
    expect(detectedMs).to.be.below(10_000);
    for (const s of degraded) expect(s.health.reasons.join(' ')).to.match(/deaf|redis/i);

    report.figure(
      `node a logged its deaf subscriber ${ms(detectedMs)} after it went deaf (2 canaries missed) and resubscribed; ` +
        `/health degraded in ${degraded.length} of ${samples.length} samples (every 50 ms)${degraded[0] ? `, naming it: ${JSON.stringify(degraded[0].health.reasons)}` : ''}; ` +
        `${whileDeaf.length} broadcasts from b meanwhile answered ${statuses(whileDeaf)} with a named missing, none counted as delivered; ` +
        `a hears b's broadcasts again ${ms(heardAgainMs)} after the fault`,
    );
  });
});
