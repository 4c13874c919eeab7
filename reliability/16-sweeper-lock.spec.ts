import { expect } from 'chai';
import { Redis } from 'ioredis';
import { RedisServer, requireRedisServer } from '../spec/support/redis-server.js';
import { ms, reliabilityCase } from './support/report.js';
import { killNode, readHooks, seedDeadSessions, startSessionNode, startsById, type SessionNode, type SweepEvent } from './support/session-nodes.js';
import { max, waitFor } from './support/util.js';

const ROUNDS = 100;
const PER_ROUND = 5;
/** The rounds before which the lock holder is frozen (SIGSTOP) until another node has swept. */
const STALLS = new Set([10, 30, 50, 70, 90]);
const LOCK_TTL_MS = 1_000;
const SWEEP_MS = 100;
/** A frozen holder's lock expires within its TTL; another node's next attempt (every TTL/3) takes it; room for a busy core. */
const TAKEOVER_BOUND_MS = LOCK_TTL_MS + Math.floor(LOCK_TTL_MS / 3) + 1_000;
const PREFIX = 'sweeper-lock';

const report = reliabilityCase('Sweeper lock', {
  load: `3 fleet nodes (child processes) contending for the sweeper lock on a real redis-server over ${ROUNDS} rounds, each round ${PER_ROUND} session records of a gone node to reap; lock TTL ${LOCK_TTL_MS} ms, sweeps every ${SWEEP_MS} ms`,
  faults: `before ${STALLS.size} of the rounds the lock holder is frozen (SIGSTOP) past the TTL, then thawed (SIGCONT) as a stale holder`,
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
    const env = { REDIS_URL: server.url, PREFIX, LOCK_TTL_MS, SWEEP_MS, MEMBERSHIP_TTL_MS: 3_000 };
    for (const id of ['a', 'b', 'c']) nodes.push(await startSessionNode(id, env, sweeps));
  });
  after(async () => {
    for (const node of nodes) node.child.kill('SIGCONT');
    for (const node of nodes) await killNode(node);
    redis?.disconnect();
    await server?.stop();
  });

  it('never two sweeps at once (fencing tokens only grow, stale writes refused), no round waits longer than one lock TTL', async function () {
    this.timeout(180_000);
    const roundMs: number[] = [];
    const takeoverMs: number[] = [];
    const seeded: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let frozen: SessionNode | undefined;
      if (STALLS.has(round)) {
        const holder = (await redis.get(`${PREFIX}:sweeper:lock`))?.split('/')[1]?.split('#')[0];
        frozen = nodes.find((n) => n.nodeId === holder);
        expect(frozen, `a node holds the lock before round ${round}`).to.not.equal(undefined);
        frozen!.child.kill('SIGSTOP');
      }
      const startedAt = Date.now();
      const instance = `gone-${round}`;
      seeded.push(...(await seedDeadSessions(redis, PREFIX, instance, startedAt - 60_000, PER_ROUND)));
      const done = async () => (await redis.exists(`${PREFIX}:sessions:${instance}@${startedAt - 60_000}`)) === 0;
      await waitFor(`round ${round} swept`, done, 10_000, 5);
      (frozen ? takeoverMs : roundMs).push(Date.now() - startedAt);
      frozen?.child.kill('SIGCONT');
    }
    await new Promise((resolve) => setTimeout(resolve, 5 * SWEEP_MS)); // the thawed holders' last attempts

    const hooks = await readHooks(redis, PREFIX);
    const starts = startsById(hooks);
    expect([...starts.keys()].sort()).to.deep.equal([...seeded].sort());
    expect([...starts.values()].filter((runs) => runs.length !== 1).length, 'sessions whose hook ran more than once').to.equal(0);
    // In the order Redis saw them, the hooks' fencing tokens never go back: no stale sweeper acted after a newer one.
    const tokens = hooks.filter((h) => h.phase === 'start').map((h) => h.token);
    expect(tokens.every((token, i) => i === 0 || token >= tokens[i - 1]!), 'fencing tokens in Redis order').to.equal(true);
    // The sweeps that reaped anything, by start: each ends before the next one (of another token) starts.
    const effective = sweeps.filter((s) => s.reaped > 0).sort((x, y) => x.startedAt - y.startedAt);
    const overlaps = effective.filter((s, i) => i > 0 && s.token !== effective[i - 1]!.token && s.startedAt < effective[i - 1]!.endedAt);
    expect(overlaps, 'overlapping sweeps').to.deep.equal([]);
    const refused = sweeps.filter((s) => s.lockLost).length;
    const distinctTokens = new Set(effective.map((s) => s.token)).size;
    const byNode = new Map<string, number>();
    for (const s of effective) byNode.set(s.node, (byNode.get(s.node) ?? 0) + 1);
    report.figure(
      `${seeded.length}/${seeded.length} hooks ran exactly once; ${effective.length} sweeps reaped, by ${distinctTokens} lock holders (tokens only grew in Redis order; ` +
        `${[...byNode].map(([n, c]) => `${n}: ${c}`).join(', ')}), 0 overlapping; thawed stale holders: ${refused} sweep(s) stopped by a refused write, the others saw the lost lock first (own TTL check, failed renewal); ` +
        `round swept within ${ms(max(roundMs))} (max), after a frozen holder within ${ms(max(takeoverMs))} (max; bound ${ms(TAKEOVER_BOUND_MS)}, lock TTL ${ms(LOCK_TTL_MS)})`,
    );
    expect(max(takeoverMs), 'rounds after a frozen holder').to.be.at.most(TAKEOVER_BOUND_MS);
    expect(max(roundMs), 'other rounds: within one lock TTL').to.be.at.most(LOCK_TTL_MS);
  });
});
