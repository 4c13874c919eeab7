/**
 * The hashes, sorted sets and lock of the session records and the sweeper lock, as the
 * in-memory network (./memory-bus.ts) keeps them: the same semantics as the Lua scripts of the
 * Redis bus (./redis-records.ts). Plain values with a TTL (the lock) and sets live in the
 * network's own store, passed in as `values`.
 */
import type { BusWrite, Fence } from './bus.js';

/** The network's own store: values with a TTL (the lock) and sets (the session instances). */
export interface TtlValues {
  get(key: string): string | null;
  set(key: string, value: string, ttlMs: number): void;
  del(key: string): void;
  setAdd(key: string, member: string): void;
  setRemove(key: string, member: string): void;
}

export class MemoryRecords {
  private readonly hashes = new Map<string, Map<string, string>>();
  private readonly sorted = new Map<string, Map<string, number>>();
  private readonly counters = new Map<string, number>();

  constructor(private readonly values: TtlValues) {}

  /** Forgets everything (a Redis restarted without persistence). */
  clear(): void {
    this.hashes.clear();
    this.sorted.clear();
    this.counters.clear();
  }

  /** Every hash key starting with `prefix` (Redis keeps no empty hash). */
  keys(prefix: string): string[] {
    return [...this.hashes.keys(), ...this.sorted.keys()].filter((key) => key.startsWith(prefix));
  }

  write(writes: readonly BusWrite[], fence?: Fence): boolean {
    if (fence && this.values.get(fence.key) !== fence.value) return false;
    for (const write of writes) {
      switch (write.op) {
        case 'sadd':
          this.values.setAdd(write.key, write.member);
          break;
        case 'srem':
          this.values.setRemove(write.key, write.member);
          break;
        case 'hset':
          this.collection(this.hashes, write.key).set(write.field, write.value);
          break;
        case 'hdel':
          this.remove(this.hashes, write.key, write.field);
          break;
        case 'zadd':
          this.collection(this.sorted, write.key).set(write.member, write.score);
          break;
        case 'zrem':
          this.remove(this.sorted, write.key, write.member);
          break;
      }
    }
    return true;
  }

  hashGet(key: string, fields: readonly string[]): Array<string | null> {
    const hash = this.hashes.get(key);
    return fields.map((field) => hash?.get(field) ?? null);
  }

  hashSample(key: string, count: number): Array<[string, string]> {
    return [...(this.hashes.get(key) ?? [])].slice(0, count);
  }

  rangeByScore(key: string, maxScore: number, offset: number, count: number): string[] {
    const entries = [...(this.sorted.get(key) ?? [])].filter(([, score]) => score <= maxScore);
    entries.sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return entries.slice(offset, offset + count).map(([member]) => member);
  }

  acquireLock(key: string, counterKey: string, owner: string, ttlMs: number): number | null {
    if (this.values.get(key) !== null) return null;
    const token = (this.counters.get(counterKey) ?? 0) + 1;
    this.counters.set(counterKey, token);
    this.values.set(key, `${token}/${owner}`, ttlMs);
    return token;
  }

  renewLock(fence: Fence, ttlMs: number): boolean {
    if (this.values.get(fence.key) !== fence.value) return false;
    this.values.set(fence.key, fence.value, ttlMs);
    return true;
  }

  releaseLock(fence: Fence): boolean {
    if (this.values.get(fence.key) !== fence.value) return false;
    this.values.del(fence.key);
    return true;
  }

  private collection<V>(all: Map<string, Map<string, V>>, key: string): Map<string, V> {
    let collection = all.get(key);
    if (!collection) all.set(key, (collection = new Map()));
    return collection;
  }

  private remove<V>(all: Map<string, Map<string, V>>, key: string, field: string): void {
    const collection = all.get(key);
    if (!collection) return;
    collection.delete(field);
    if (collection.size === 0) all.delete(key);
  }
}
