/**
 * The commands of the session records and the sweeper lock on Redis (used by ./redis-bus.ts).
 * The lock and every fenced write are Lua scripts, so that checking the lock's value and acting
 * on it is one atomic step; the in-memory network (./memory-records.ts) has the same semantics.
 */
import type { Redis } from 'ioredis';
import type { BusWrite, Fence } from './bus.js';

/** KEYS[1] lock, KEYS[2] counter; ARGV owner, ttl. Takes a free lock with the next fencing token. */
const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. '/' .. ARGV[1], 'PX', ARGV[2])
return token`;

/** KEYS[1] lock; ARGV value, ttl. Extends the TTL only while the lock still holds `value`. */
const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/** KEYS[1] lock; ARGV value. Deletes the lock only while it still holds `value`. */
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`;

/**
 * KEYS[1] the fence key ('' for none), KEYS[2..] one key per write; ARGV[1] the fence value,
 * then three arguments per write: op, field/member, value/score. All or nothing: refused (0)
 * when the fence key does not hold the fence value.
 */
const WRITE = `
if KEYS[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do
  local op, a, b = ARGV[3 * i - 4], ARGV[3 * i - 3], ARGV[3 * i - 2]
  if op == 'hset' then redis.call('HSET', KEYS[i], a, b)
  elseif op == 'sadd' then redis.call('SADD', KEYS[i], a)
  elseif op == 'srem' then redis.call('SREM', KEYS[i], a)
  elseif op == 'hdel' then redis.call('HDEL', KEYS[i], a)
  elseif op == 'zadd' then redis.call('ZADD', KEYS[i], b, a)
  elseif op == 'zrem' then redis.call('ZREM', KEYS[i], a)
  else return redis.error_reply('unknown write ' .. tostring(op)) end
end
return 1`;

export async function acquireLock(redis: Redis, key: string, counterKey: string, owner: string, ttlMs: number): Promise<number | null> {
  const token = (await redis.eval(ACQUIRE, 2, key, counterKey, owner, ttlMs)) as number | null;
  return token === null ? null : Number(token);
}

export async function renewLock(redis: Redis, fence: Fence, ttlMs: number): Promise<boolean> {
  return (await redis.eval(RENEW, 1, fence.key, fence.value, ttlMs)) === 1;
}

export async function releaseLock(redis: Redis, fence: Fence): Promise<boolean> {
  return (await redis.eval(RELEASE, 1, fence.key, fence.value)) === 1;
}

export async function write(redis: Redis, writes: readonly BusWrite[], fence?: Fence): Promise<boolean> {
  if (writes.length === 0 && !fence) return true;
  const keys = [fence?.key ?? '', ...writes.map((w) => w.key)];
  const args: Array<string | number> = [fence?.value ?? ''];
  for (const w of writes) {
    if (w.op === 'hset') args.push(w.op, w.field, w.value);
    else if (w.op === 'hdel') args.push(w.op, w.field, '');
    else if (w.op === 'zadd') args.push(w.op, w.member, w.score);
    else args.push(w.op, w.member, ''); // zrem, sadd, srem
  }
  return (await redis.eval(WRITE, keys.length, ...keys, ...args)) === 1;
}

export async function hashSample(redis: Redis, key: string, count: number): Promise<Array<[string, string]>> {
  const flat = (await redis.call('HRANDFIELD', key, count, 'WITHVALUES')) as string[] | null;
  const out: Array<[string, string]> = [];
  for (let i = 0; flat && i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

export async function hashGet(redis: Redis, key: string, fields: readonly string[]): Promise<Array<string | null>> {
  return fields.length === 0 ? [] : redis.hmget(key, ...fields);
}

export async function rangeByScore(redis: Redis, key: string, maxScore: number, offset: number, count: number): Promise<string[]> {
  return redis.zrangebyscore(key, '-inf', maxScore, 'LIMIT', offset, count);
}
