import { expect } from 'chai';
import { Redis } from 'ioredis';
import { RedisServer, requireRedisServer } from '../spec/support/redis-server.js';
import { Fleet } from './support/fleet.js';
import { ms, reliabilityCase } from './support/report.js';
import { killNode, readHooks, startSessionNode, startsById, type SessionNode, type SweepEvent } from './support/session-nodes.js';
import { waitFor } from './support/util.js';

const SESSIONS = 500;
const MEMBERSHIP_TTL_MS = 1_500;
const LOCK_TTL_MS = 1_500;
const SWEEP_MS = 200;
/**
 * Membership and lock expire side by side; then a sweep poll and the reaping itself (500 hooks, two
 * Redis writes each, 10 batches), measured at 0.2–2.4 s on 2 cores with one kept busy.
 */
const BOUND_MS = Math.max(MEMBERSHIP_TTL_MS, LOCK_TTL_MS) + SWEEP_MS + 4_000;
const PREFIX = 'crash';

const report = reliabilityCase('Node crash', {
  load: `3 fleet nodes (child processes) on a real redis-server, ${SESSIONS} ws clients (another process) on one of them, session records flushed every 200 ms; membership and sweeper-lock TTL ${MEMBERSHIP_TTL_MS} ms, sweeps every ${SWEEP_MS} ms in batches of 50`,
  faults: 'the node holding the 500 sessions is SIGKILLed: its sockets and its own disconnect hooks are gone',
});

describe(report.name, function () {
  let server: RedisServer;
  let redis: Redis;
  let clients: Fleet;
  const nodes: SessionNode[] = [];
  const sweeps: SweepEvent[] = [];

  before(async function () {
    requireRedisServer(this);
    server = await RedisServer.start();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const env = { REDIS_URL: server.url, PREFIX, MEMBERSHIP_TTL_MS, LOCK_TTL_MS, SWEEP_MS, FLUSH_MS: 200, BATCH: 50 };
    for (const id of ['a', 'b', 'c']) nodes.push(await startSessionNode(id, env, sweeps));
    clients = await Fleet.start();
  });
  after(async () => {
    await clients?.stop();
    for (const node of nodes) await killNode(node);
    redis?.disconnect();
    await server?.stop();
  });

  it(`every one of the ${SESSIONS} sessions of a SIGKILLed node is reaped and its hook run exactly once, within the bound`, async () => {
    const b = nodes[1]!;
    await clients.open('b', `ws://127.0.0.1:${b.port}/?user=listener`, SESSIONS, { concurrency: 50 });
    const recordsKey = async () => (await redis.keys(`${PREFIX}:sessions:b@*`))[0];
    await waitFor('the 500 records of node b', async () => {
      const key = await recordsKey();
      return key !== undefined && (await redis.hlen(key)) === SESSIONS;
    });
    const key = (await recordsKey())!;
    const fleetIds = (await redis.hvals(key)).map((value) => (JSON.parse(value) as { fleetId: string }).fleetId);

    const killedAt = Date.now();
    await killNode(b);
    await waitFor('every hook ended', async () => (await readHooks(redis, PREFIX)).filter((h) => h.phase === 'end').length >= SESSIONS, 30_000, 50);
    const hooks = await readHooks(redis, PREFIX);
    const lastEnd = Math.max(...hooks.filter((h) => h.phase === 'end').map((h) => h.at));
    const elapsed = lastEnd - killedAt;
    // A late duplicate would come after the wait: give the sweepers a few more rounds to make one.
    await new Promise((resolve) => setTimeout(resolve, 5 * SWEEP_MS));
    const finalHooks = await readHooks(redis, PREFIX);

    const starts = startsById(finalHooks);
    expect([...starts.keys()].sort()).to.deep.equal([...fleetIds].sort());
    const twice = [...starts.values()].filter((runs) => runs.length !== 1).length;
    expect(twice, 'sessions whose hook ran more than once').to.equal(0);
    expect(finalHooks.every((h) => h.reason === 'node_gone' && !h.repeated && h.node !== 'b')).to.equal(true);
    expect(await redis.exists(key), 'the records of node b').to.equal(0);
    const stats = await clients.stats('b');
    expect(stats.closed, 'clients that saw their socket drop').to.equal(SESSIONS);
    const byNode = new Map<string, number>();
    for (const h of finalHooks) if (h.phase === 'end') byNode.set(h.node, (byNode.get(h.node) ?? 0) + 1);
    report.figure(
      `${SESSIONS}/${SESSIONS} hooks ran exactly once (0 twice), the last ${ms(elapsed)} after the SIGKILL (bound ${ms(BOUND_MS)}: TTL ${ms(MEMBERSHIP_TTL_MS)} + a sweep + reaping, on a shared machine); ` +
        `run on ${[...byNode].map(([node, n]) => `node ${node}: ${n}`).join(', ')}`,
    );
    expect(elapsed, 'from SIGKILL to the last hook').to.be.at.most(BOUND_MS);
  });
});
