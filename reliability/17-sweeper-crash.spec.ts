import { expect } from 'chai';
import { Redis } from 'ioredis';
import { RedisServer, requireRedisServer } from '../spec/support/redis-server.js';
import { ms, reliabilityCase } from './support/report.js';
import { killNode, readHooks, seedDeadSessions, startSessionNode, startsById, type SessionNode, type SweepEvent } from './support/session-nodes.js';
import { waitFor } from './support/util.js';

const SESSIONS = 500;
const BATCH = 50;
const HOOK_MS = 20;
const LOCK_TTL_MS = 1_500;
const SWEEP_MS = 200;
/** The lock expires within its TTL of the last renewal; the next poll takes it (room for a busy core). */
const TAKEOVER_BOUND_MS = LOCK_TTL_MS + SWEEP_MS + 1_000;
const PREFIX = 'sweeper-crash';

const report = reliabilityCase('Sweeper crash', {
  load: `2 fleet nodes (child processes) on a real redis-server; ${SESSIONS} session records of a node that is gone, reaped in batches of ${BATCH}, each hook taking ${HOOK_MS} ms; sweeper-lock TTL ${LOCK_TTL_MS} ms`,
  faults: 'the node sweeping is SIGKILLed mid-run, with a batch of hooks in flight',
});

describe(report.name, function () {
  let server: RedisServer;
  let redis: Redis;
  const nodes: SessionNode[] = [];
  const sweeps: SweepEvent[] = [];

  before(async function () {
    requireRedisServer(this);
    server = await RedisServer.start();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const env = { REDIS_URL: server.url, PREFIX, LOCK_TTL_MS, SWEEP_MS, BATCH, HOOK_MS };
    for (const id of ['a', 'b']) nodes.push(await startSessionNode(id, env, sweeps));
  });
  after(async () => {
    for (const node of nodes) await killNode(node);
    redis?.disconnect();
    await server?.stop();
  });

  it('another node finishes the run; every hook ran at least once, twice only for the sessions in flight when the sweeper died', async () => {
    const fleetIds = await seedDeadSessions(redis, PREFIX, 'gone', Date.now() - 60_000, SESSIONS);
    await waitFor('the sweeper is a few batches in', async () => (await readHooks(redis, PREFIX)).filter((h) => h.phase === 'start').length >= 3 * BATCH + 1, 20_000, 5);
    const sweeperId = (await readHooks(redis, PREFIX))[0]!.node;
    const sweeper = nodes.find((n) => n.nodeId === sweeperId)!;
    const survivor = nodes.find((n) => n !== sweeper)!;
    const killedAt = Date.now();
    await killNode(sweeper);

    const ended = async () => new Set((await readHooks(redis, PREFIX)).filter((h) => h.phase === 'end').map((h) => h.id)).size;
    await waitFor('every session has a hook that ran to its end', async () => (await ended()) === SESSIONS, 30_000, 50);
    await new Promise((resolve) => setTimeout(resolve, 5 * SWEEP_MS)); // room for a late duplicate to show
    const hooks = await readHooks(redis, PREFIX);
    const takeoverMs = hooks.find((h) => h.node === survivor.nodeId)!.at - killedAt;

    const starts = startsById(hooks);
    expect([...starts.keys()].sort()).to.deep.equal([...fleetIds].sort());
    const twice = [...starts].filter(([, runs]) => runs.length > 1);
    const claimedByTheDead = [...starts].filter(([, runs]) => runs.some((r) => r.repeated));
    for (const [id, runs] of twice) {
      expect(runs, id).to.have.length(2);
      expect(runs[0]!.pid, `${id}: first run on the killed sweeper`).to.equal(sweeper.pid);
      expect(runs[1]!, `${id}: second run by the survivor, marked repeated`).to.deep.include({ node: survivor.nodeId, repeated: true });
    }
    for (const [id, runs] of claimedByTheDead) {
      expect(runs.filter((r) => r.repeated), id).to.have.length(1);
    }
    expect(claimedByTheDead.length, 'repeated hooks: at most the batch in flight').to.be.at.most(BATCH);
    const counted = sweeps.filter((s) => s.node === survivor.nodeId).reduce((sum, s) => sum + s.repeated, 0);
    expect(counted, 'repeated hooks the new sweeper counted').to.equal(claimedByTheDead.length);
    expect(await redis.keys(`${PREFIX}:sessions:*`)).to.deep.equal([]);
    expect(await redis.hlen(`${PREFIX}:session-claims`)).to.equal(0);
    const byDead = hooks.filter((h) => h.phase === 'start' && h.pid === sweeper.pid).length;
    report.figure(
      `${SESSIONS}/${SESSIONS} hooks ran at least once; the killed sweeper had started ${byDead}; ${claimedByTheDead.length} it had claimed were run again ` +
        `marked repeated (counted ${counted}), ${twice.length} of them after their first run had reached the store: the only hooks that ran twice; ` +
        `node ${survivor.nodeId} took over ${ms(takeoverMs)} after the SIGKILL (lock TTL ${ms(LOCK_TTL_MS)})`,
    );
    expect(takeoverMs, 'from SIGKILL to the first hook of the new sweeper').to.be.at.most(TAKEOVER_BOUND_MS);
  });
});
