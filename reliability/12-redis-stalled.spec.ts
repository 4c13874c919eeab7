import { expect } from 'chai';
import type { WebSocket } from 'ws';
import { closeVia, fleetIdOf, health, pollUntil, startExampleFleet, type ExampleFleet } from '../spec/support/example-fleet.js';
import { openClient } from '../spec/support/express-server.js';
import { requireRedisServer } from '../spec/support/redis-server.js';
import { fleetCaseEnv, EchoProbe, ScanPoster, statuses } from './support/fleet-probes.js';
import { ms, reliabilityCase } from './support/report.js';
import { max, sleep } from './support/util.js';
import { percentile } from '../bench/stats.js';

const NODES = ['a', 'b', 'c'];
const STALL_MS = 5_000;
const REQUEST_TIMEOUT_MS = 500;
const ENV = fleetCaseEnv(3_000, REQUEST_TIMEOUT_MS);

const report = reliabilityCase('Redis stalled', {
  load: '3 example-server nodes on one redis-server; on node a an echo client (a message every 20 ms, one in flight) and a POST /scans every 100 ms; remote closes from a of a socket on b',
  faults: `redis-server frozen with SIGSTOP for ${STALL_MS / 1000} s (connections open, nothing answered), then SIGCONT; fleet request timeout ${REQUEST_TIMEOUT_MS} ms`,
});

/** Whether `ws` echoes `text` back (an `/ws/echo` socket): false when it closes first, or after 5 s. */
function echoes(ws: WebSocket, text: string): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5_000);
    ws.on('message', (data) => {
      if (data.toString() !== text) return;
      clearTimeout(timer);
      resolve(true);
    });
    ws.once('close', () => resolve(false));
    ws.send(text, (error) => error && resolve(false));
  });
}

describe(report.name, function () {
  this.timeout(120_000);
  let fleet: ExampleFleet;
  let poster: ScanPoster | undefined;
  let echo: EchoProbe | undefined;

  before(async function () {
    requireRedisServer(this);
    fleet = await startExampleFleet(NODES, ENV);
  });
  after(async () => {
    echo?.stop(); // a failed case leaves nothing running that would keep mocha alive
    await poster?.stop();
    fleet?.redis.resume();
    await fleet?.stop();
  });

  it('answers fleet operations "unavailable" within their deadline, blocks no handler (echo keeps its latency), reports degraded, and recovers after SIGCONT', async () => {
    const a = fleet.nodes.a!;
    const b = fleet.nodes.b!;
    const remote = await openClient(`${b.wsUrl}/ws/echo?user=held-by-b`);
    const remoteId = await fleetIdOf(b, 'held-by-b');
    await pollUntil('node a to count 3 nodes', async () => (await health(a)).fleet.nodes === 3, 10_000);
    echo = await EchoProbe.start(a, 20);
    poster = new ScanPoster(a, 100);
    await sleep(2_000);

    const stalledAt = Date.now();
    fleet.redis.pause();
    // A remote close during the stall: answered 503 within the deadline.
    const closeStarted = Date.now();
    const closeDuring = await closeVia(a, remoteId);
    const closeMs = Date.now() - closeStarted;
    const degraded = await pollUntil('node a /health to report Redis', async () => {
      const h = await health(a);
      return h.status === 'degraded' && h.reasons.some((r) => /redis/i.test(r)) && h;
    }, STALL_MS - 1_000);
    const degradedMs = Date.now() - stalledAt;
    await sleep(Math.max(0, stalledAt + STALL_MS - Date.now()));
    fleet.redis.resume();
    const resumedAt = Date.now();
    await pollUntil('a broadcast confirmed by all three nodes again', async () => poster!.between(resumedAt).some((x) => x.status === 'ok' && x.nodes === 3), 15_000);
    const recoveredMs = Date.now() - resumedAt;
    const answers = await poster.stop();
    echo.stop();
    // The close request that answered 503 sat in frozen Redis and reached b after SIGCONT (before the
    // broadcasts that confirmed recovery): b must have dropped it, past its deadline. An echo round
    // trip after that proves the socket untouched (a close frame would have come first).
    const stillOpen = await echoes(remote, 'still open?');
    // Retried once Redis answers again, the close is run.
    const retry = await closeVia(a, remoteId);

    expect(closeDuring.status, `remote close during the stall (${closeDuring.result})`).to.equal(503);
    expect(['unavailable', 'unknown']).to.include(closeDuring.result);
    expect(closeMs).to.be.below(REQUEST_TIMEOUT_MS + 1_000);
    expect(stillOpen, 'the socket whose close answered 503 still open after SIGCONT').to.equal(true);
    expect(retry, 'the retried close').to.deep.equal({ status: 200, result: 'closed' });
    expect(degraded.fleet.status).to.equal('unavailable');

    const during = answers.filter((x) => x.at >= stalledAt && x.at < resumedAt);
    expect(during.length).to.be.above(10);
    expect(during.filter((x) => x.status === 'ok'), 'broadcasts answered ok while Redis was frozen').to.have.length(0);
    const slowest = max(during.map((x) => x.ms));
    expect(slowest, 'slowest POST /scans while frozen').to.be.below(REQUEST_TIMEOUT_MS + 1_000);

    const before = echo.between(0, stalledAt);
    const stalled = echo.between(stalledAt, resumedAt);
    expect(stalled.length).to.be.above(STALL_MS / 100);
    // Local echo never waits on Redis: its worst round trip stays far below the fleet deadline.
    expect(max(stalled), 'echo round trips while Redis was frozen').to.be.below(REQUEST_TIMEOUT_MS / 2);

    report.figure(
      `while frozen: ${during.length} POST /scans answered ${statuses(during)}, slowest ${ms(slowest)} (deadline ${ms(REQUEST_TIMEOUT_MS)}); remote close answered 503 "${closeDuring.result}" in ${ms(closeMs)} ` +
        `(${stillOpen ? 'the request, delivered to b after SIGCONT past its deadline, was dropped: the socket still open' : 'yet the socket on b was closed after SIGCONT'}; the retry after SIGCONT answered ${retry.status} "${retry.result}"); ` +
        `/health degraded naming Redis ${ms(degradedMs)} after SIGSTOP; echo round trip p50/p99/max ${ms(percentile(before, 50))}/${ms(percentile(before, 99))}/${ms(max(before))} before, ` +
        `${ms(percentile(stalled, 50))}/${ms(percentile(stalled, 99))}/${ms(max(stalled))} while frozen (${stalled.length} round trips); fleet broadcast confirmed by all nodes ${ms(recoveredMs)} after SIGCONT`,
    );
  });
});
