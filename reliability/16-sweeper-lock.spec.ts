import { expect } from 'chai';
import { Redis } from 'ioredis';
import { RedisServer, requireRedisServer } from '../spec/support/redis-server.js';
import { monitorRedis, type RedisMonitor } from './support/redis-monitor.js';
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

/** The sweepers' fenced writes as Redis executes them (MONITOR), and whether each was applied. */
async function watchFencedWrites(url: string): Promise<RedisMonitor & { writes: Array<{ token: number; applied: boolean }> }> {
  const writes: Array<{ token: number; applied: boolean }> = [];
  let current: { token: number; applied: boolean } | null = null;
  const monitor = await monitorRedis(url, ({ args, source }) => {
    const command = args[0]?.toLowerCase();
    if (source === 'lua') {
      if (current && ['hset', 'hdel', 'zadd', 'zrem', 'sadd', 'srem'].includes(command ?? '')) current.applied = true;
      return;
    }
    current = null;
    // The fenced write script: KEYS[1] is the fence key, ARGV[1] its value "<token>/<owner>".
    if (command !== 'eval' || !args[1]?.includes("redis.call('HSET'")) return;
    const keyCount = Number(args[2]);
    if (args[3] === '') return; // not fenced: a node's own session records
    current = { token: Number(args[3 + keyCount]!.split('/')[0]), applied: false };
    writes.push(current);
  });
  return { ...monitor, writes };
}

const report = reliabilityCase('Sweeper lock', {
  load: `3 fleet nodes (child processes) contending for the sweeper lock on a real redis-server over ${ROUNDS} rounds, each round ${PER_ROUND} session records of a gone node to reap; lock TTL ${LOCK_TTL_MS} ms, sweeps every ${SWEEP_MS} ms`,
  faults: `before ${STALLS.size} of the rounds the lock holder is frozen (SIGSTOP) past the TTL, then thawed (SIGCONT) as a stale holder`,
});

describe(report.name, function () {
  let server: RedisServer;
  let redis: Redis;
  const nodes: SessionNode[] = [];
  const sweeps: SweepEvent[] = [];
  let fenced: Awaited<ReturnType<typeof watchFencedWrites>> | undefined;

  before(async function () {
    requireRedisServer(this);
    server = await RedisServer.start();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const env = { REDIS_URL: server.url, PREFIX, LOCK_TTL_MS, SWEEP_MS, MEMBERSHIP_TTL_MS: 3_000 };
    for (const id of ['a', 'b', 'c']) nodes.push(await startSessionNode(id, env, sweeps));
  });
  after(async () => {
    fenced?.stop();
    for (const node of nodes) node.child.kill('SIGCONT');
    for (const node of nodes) await killNode(node);
    redis?.disconnect();
    await server?.stop();
  });

  it('never two sweeps at once (fencing tokens only grow, stale writes refused), no round waits longer than one lock TTL', async function () {
    this.timeout(300_000);
    fenced = await watchFencedWrites(server.url);
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
    // Every fenced write Redis executed, in its order (MONITOR): the applied ones never go back to an older token,
    // so no two sweepers ever wrote in the same stretch; the refused ones are stale holders stopped by the fence.
    fenced.stop();
    expect(fenced.failure(), 'the MONITOR connection').to.equal(undefined);
    const applied = fenced.writes.filter((w) => w.applied).map((w) => w.token);
    const backwards = applied.filter((token, i) => i > 0 && token < applied[i - 1]!).length;
    expect(applied.length, 'fenced writes seen: claim, delete, unlist per round').to.be.at.least(3 * ROUNDS);
    expect(backwards, 'applied fenced writes with an older token than the one before').to.equal(0);
    const refusedWrites = fenced.writes.filter((w) => !w.applied).length;
    const effective = sweeps.filter((s) => s.reaped > 0);
    const refused = sweeps.filter((s) => s.lockLost).length;
    const distinctTokens = new Set(effective.map((s) => s.token)).size;
    const byNode = new Map<string, number>();
    for (const s of effective) byNode.set(s.node, (byNode.get(s.node) ?? 0) + 1);
    report.figure(
      `${seeded.length}/${seeded.length} hooks ran exactly once; ${effective.length} sweeps reaped, by ${distinctTokens} lock holders (tokens only grew in Redis order; ` +
        `${[...byNode].map(([n, c]) => `${n}: ${c}`).join(', ')}); ${applied.length} fenced writes applied in token order (0 going back), ${refusedWrites} refused; ` +
        `thawed stale holders: ${refused} sweep(s) stopped by a refused write, the others saw the lost lock first (own TTL check, failed renewal); ` +
        `round swept within ${ms(max(roundMs))} (max), after a frozen holder within ${ms(max(takeoverMs))} (max; bound ${ms(TAKEOVER_BOUND_MS)}, lock TTL ${ms(LOCK_TTL_MS)})`,
    );
    expect(max(takeoverMs), 'rounds after a frozen holder').to.be.at.most(TAKEOVER_BOUND_MS);
    expect(max(roundMs), 'other rounds: within one lock TTL').to.be.at.most(LOCK_TTL_MS);
  });
});
