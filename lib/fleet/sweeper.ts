/**
 * The fleet's sweeper: ends the sessions nobody else will end, on one node at a time.
 *
 * Every node runs one; only the holder of the sweeper lock (./sweeper-lock.ts) sweeps. A sweep
 * reaps, `batchSize` at a time, the session records (./sessions.ts) of node instances that are no
 * longer members of the fleet (crashed, killed, partitioned away), and looks at sessions past
 * the session timeout: one whose node is alive is closed by that node (a remote close, so the
 * node's own close and disconnect hook run); one whose node no longer holds it is reaped here.
 *
 * Reaping a session runs the app's disconnect hook with its record, on whichever node sweeps,
 * with the log lines and metrics of a local close. The hook runs at least once per session, and
 * exactly once unless a sweeper dies (or loses the lock) while the hook runs: each record is
 * claimed with the sweeper's fencing token before its hook and deleted after it, so the next
 * sweeper sees the claim, runs the hook again with `repeated: true`, and counts it. A failing
 * hook is logged and counted; the record is deleted anyway and the run goes on.
 */
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { CloseCode, CloseReason } from '../close-codes.js';
import { SessionStoreError } from '../errors.js';
import { defaultLogger, type Logger } from '../logger.js';
import { NO_ROLE, type TimeoutMetrics } from '../metrics.js';
import type { ConnectionRegistry, DisconnectInfo } from '../registry.js';
import type { BusWrite, FleetBus } from './bus.js';
import type { FleetNode } from './node.js';
import { fleetConnectionId, instanceOf, nodeIdOf } from './ids.js';
import { parseSessionMember, SessionTracker, sessionKeys, sessionMember, type SessionRecord } from './sessions.js';
import { SweeperLock, type HeldLock } from './sweeper-lock.js';

/** What a reaped session's disconnect hook is told, on top of a local close's {@link DisconnectInfo}. */
export interface ReapInfo extends DisconnectInfo {
  /** `node_gone` (1006: its node left the fleet) or `idle_timeout` (4001: past the session timeout). */
  reason: 'node_gone' | 'idle_timeout';
  /** The sweeper's fencing token: grows with every sweeper; fence your own store's writes with it if you need to. */
  fencingToken: number;
  /** A sweeper before this one claimed the session and died or lost the lock: its hook may have run already. */
  repeated: boolean;
}

/** @internal a remote close (FleetNode.close): closes `fleetId` on its node as a local close. */
export type RemoteClose = (
  fleetId: string,
  options: { code: number; reason: string; notice?: unknown },
) => Promise<'closed' | 'gone' | 'unknown' | 'unavailable'>;

/** What {@link trackSessions} takes. */
export interface TrackSessionsOptions {
  /** The app's disconnect hook for reaped sessions. Errors and rejections are logged and counted. */
  onDisconnect?: (session: SessionRecord, info: ReapInfo) => void | Promise<void>;
  /** How often records of new connections, activity and removals are written, ms. @default 2000 */
  flushIntervalMs?: number;
  /** How often the lock holder sweeps, ms. @default 10000 */
  intervalMs?: number;
  /** The lock's TTL: a dead sweeper is replaced within it, ms. @default 15000 */
  lockTtlMs?: number;
  /** Sessions reaped per batch (one claim write, the hooks in parallel, one delete write). @default 50 */
  batchSize?: number;
  /** No activity for this long (ms) ends a session; 0: only sessions of dead nodes are reaped. @default 0 */
  sessionTimeoutMs?: number;
  /** A hook still running after this long counts as failed, and the sweep goes on, ms. @default 10000 */
  hookTimeoutMs?: number;
  /** The label counted as a session's role. @default 'role' */
  roleLabel?: string;
  /** Where reaped sessions and sweeps are counted (the registry's). @default none */
  metrics?: TimeoutMetrics;
}

/** @internal what a {@link Sweeper} takes: the options of trackSessions, and what it wires in. */
export interface SweeperOptions extends Omit<TrackSessionsOptions, 'flushIntervalMs'> {
  bus: FleetBus;
  /** This node's id (the lock's owner in logs). */
  nodeId: string;
  /**
   * The live node instances (`<nodeId>@<startedAt>`) of the fleet, read from membership.
   * Must reject when membership cannot be read: an empty answer would reap every session.
   */
  liveInstances: () => Promise<ReadonlySet<string>>;
  /** Closes a session past the timeout on its live node; without it such sessions are left to their node. */
  close?: RemoteClose;
  /** @default 'ws-timeouts' */
  prefix?: string;
  clock?: Clock;
  logger?: Logger;
}

/** The defaults, declared once. */
export const SWEEPER_DEFAULTS = Object.freeze({
  prefix: 'ws-timeouts',
  intervalMs: 10_000,
  lockTtlMs: 15_000,
  batchSize: 50,
  sessionTimeoutMs: 0,
  hookTimeoutMs: 10_000,
  roleLabel: 'role',
});

/** What one sweep did. */
export interface SweepResult {
  fencingToken: number;
  /** Records examined. */
  checked: number;
  /** Sessions whose hook ran (failed hooks included) and whose record was deleted. */
  reaped: number;
  /** Hooks that threw, rejected or timed out. */
  errors: number;
  /** Hooks run again for sessions a previous sweeper had claimed. */
  repeated: number;
  /** Sessions past the timeout closed by their own node. */
  closedRemotely: number;
  /** The lock was lost during the sweep: its remaining writes were refused. */
  lockLost: boolean;
}

function checkWhole(name: string, value: unknown, min: number, unit = 'milliseconds'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 2 ** 31 - 1) {
    throw new RangeError(`trackSessions: ${name} must be a whole number of ${unit} from ${min} to 2147483647, got ${String(value)}`);
  }
  return value;
}

/** A sweep stops at the first write its lock no longer fences. */
class LockLost extends Error {}

const noop = (): void => undefined;

/** The close code of a connection that ended without a close frame: its node is gone. */
const ABNORMAL_CLOSURE = 1006;

export class Sweeper {
  readonly lock: SweeperLock;
  readonly intervalMs: number;
  readonly batchSize: number;
  readonly sessionTimeoutMs: number;
  private readonly options: SweeperOptions;
  private readonly keys: ReturnType<typeof sessionKeys>;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly hookTimeoutMs: number;
  private readonly roleLabel: string;
  private timer: TimerHandle | null = null;
  private running: Promise<SweepResult | null> | null = null;
  private lastRunAt = -Infinity;
  /** Sessions of live nodes that answered `gone` in the last sweep: reaped if still there in the next. */
  private goneBefore = new Set<string>();
  private stopped = false;

  constructor(options: SweeperOptions) {
    this.options = options;
    this.intervalMs = checkWhole('intervalMs', options.intervalMs ?? SWEEPER_DEFAULTS.intervalMs, 1);
    this.batchSize = checkWhole('batchSize', options.batchSize ?? SWEEPER_DEFAULTS.batchSize, 1, 'sessions');
    this.sessionTimeoutMs = checkWhole('sessionTimeoutMs', options.sessionTimeoutMs ?? SWEEPER_DEFAULTS.sessionTimeoutMs, 0);
    this.hookTimeoutMs = checkWhole('hookTimeoutMs', options.hookTimeoutMs ?? SWEEPER_DEFAULTS.hookTimeoutMs, 1);
    if (options.onDisconnect !== undefined && typeof options.onDisconnect !== 'function') {
      throw new TypeError(`trackSessions: onDisconnect must be a function, got ${typeof options.onDisconnect}`);
    }
    this.roleLabel = options.roleLabel ?? SWEEPER_DEFAULTS.roleLabel;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? defaultLogger();
    const prefix = options.prefix ?? SWEEPER_DEFAULTS.prefix;
    this.keys = sessionKeys(prefix);
    this.lock = new SweeperLock({
      bus: options.bus,
      prefix,
      owner: options.nodeId,
      ttlMs: options.lockTtlMs ?? SWEEPER_DEFAULTS.lockTtlMs,
      clock: this.clock,
      logger: this.logger,
    });
  }

  /**
   * Starts contending for the lock: every `min(intervalMs, lockTtlMs / 3)` a node without it
   * tries to take it (and sweeps at once when it does); the holder sweeps every `intervalMs`.
   */
  start(): void {
    if (this.timer !== null || this.stopped) return;
    const period = Math.max(1, Math.min(this.intervalMs, Math.floor(this.lock.ttlMs / 3)));
    const loop = (): void => {
      this.timer = null;
      const due = !this.lock.current || this.clock.now() - this.lastRunAt >= this.intervalMs;
      const next = (): void => {
        if (!this.stopped) this.timer = this.clock.setTimeout(loop, period);
      };
      if (due) void this.sweep().catch(noop).finally(next);
      else next();
    };
    loop();
  }

  /** Stops sweeping and releases the lock (after a sweep in progress). Never rejects. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(noop);
    await this.lock.release();
  }

  /**
   * One sweep, if this node holds (or can take) the lock; null when another node holds it.
   * Calls during a sweep share it. Never rejects.
   */
  sweep(): Promise<SweepResult | null> {
    this.running ??= this.runSweep().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async runSweep(): Promise<SweepResult | null> {
    const lock = await this.lock.acquire();
    if (!lock) return null;
    this.lastRunAt = this.clock.now();
    const startedHr = performance.now();
    const result: SweepResult = { fencingToken: lock.token, checked: 0, reaped: 0, errors: 0, repeated: 0, closedRemotely: 0, lockLost: false };
    let failure: unknown;
    try {
      const live = await this.options.liveInstances();
      const instances = await this.options.bus.setMembers(this.keys.instances);
      for (const instance of instances) {
        if (!live.has(instance)) await this.reapInstance(lock, instance, result);
      }
      if (this.sessionTimeoutMs > 0) await this.sweepTimedOut(lock, live, result);
    } catch (error) {
      if (error instanceof LockLost) result.lockLost = true;
      else failure = error;
    }
    this.options.metrics?.checked(result.checked);
    this.options.metrics?.cleanupRun(result.errors);
    const meta = {
      cleanupCount: result.reaped,
      sessionsChecked: result.checked,
      errorsEncountered: result.errors,
      repeatedHooks: result.repeated,
      closedRemotely: result.closedRemotely,
      fencingToken: lock.token,
      durationMs: Math.round((performance.now() - startedHr) * 1000) / 1000,
    };
    if (result.lockLost) this.logger.warn('Session sweep stopped: the sweeper lock was lost', meta);
    else if (failure !== undefined) this.logger.error('Session sweep failed; the next sweep retries', { ...meta, error: failure });
    else this.logger.info('Session sweep completed', meta);
    return result;
  }

  /** Reaps every record of a node instance that left the fleet, a batch at a time. */
  private async reapInstance(lock: HeldLock, instance: string, result: SweepResult): Promise<void> {
    const key = this.keys.records(instance);
    for (;;) {
      const entries = await this.options.bus.hashSample(key, this.batchSize);
      if (entries.length === 0) {
        await this.fencedWrite(lock, [{ op: 'srem', key: this.keys.instances, member: instance }]);
        return;
      }
      result.checked += entries.length;
      await this.reapBatch(lock, instance, entries, 'node_gone', result);
    }
  }

  /** Sessions with no activity for `sessionTimeoutMs`: closed by their live node, or reaped here. */
  private async sweepTimedOut(lock: HeldLock, live: ReadonlySet<string>, result: SweepResult): Promise<void> {
    const cutoff = this.clock.now() - this.sessionTimeoutMs;
    const goneNow = new Set<string>();
    let offset = 0;
    for (;;) {
      const members = await this.options.bus.rangeByScore(this.keys.activity, cutoff, offset, this.batchSize);
      if (members.length === 0) break;
      let kept = members.length;
      const byInstance = new Map<string, string[]>();
      for (const member of members) {
        const parsed = parseSessionMember(member);
        if (!parsed) continue;
        byInstance.set(parsed.instance, [...(byInstance.get(parsed.instance) ?? []), parsed.connectionId]);
      }
      for (const [instance, connectionIds] of byInstance) {
        const values = await this.options.bus.hashGet(this.keys.records(instance), connectionIds);
        const orphans: Array<[string, string]> = [];
        const reapable: Array<[string, string]> = [];
        for (let i = 0; i < connectionIds.length; i++) {
          const connectionId = connectionIds[i]!;
          const value = values[i];
          const member = sessionMember(instance, connectionId);
          if (value === null || value === undefined) orphans.push([connectionId, '']);
          else if (!live.has(instance)) continue; // its node's records are reaped as node_gone
          else if (this.goneBefore.has(member)) reapable.push([connectionId, value]);
          else if (this.options.close) {
            result.checked++;
            const record = parseRecord(value);
            const answer = record ? await this.closeRemotely(record) : 'gone';
            if (answer === 'closed') result.closedRemotely++;
            else if (answer === 'gone') goneNow.add(member);
          }
        }
        if (orphans.length > 0) {
          // An activity entry without its record: nothing to run, only the entry to drop.
          await this.fencedWrite(lock, orphans.map(([id]) => ({ op: 'zrem', key: this.keys.activity, member: sessionMember(instance, id) })));
          kept -= orphans.length;
        }
        if (reapable.length > 0) {
          result.checked += reapable.length;
          await this.reapBatch(lock, instance, reapable, 'idle_timeout', result);
          kept -= reapable.length;
        }
      }
      offset += kept;
    }
    this.goneBefore = goneNow;
  }

  /** The node holding a session past the timeout closes it (notice, then 4001), as its own idle close. */
  private async closeRemotely(record: SessionRecord): Promise<string> {
    const answer = await this.options.close!(record.fleetId, {
      code: CloseCode.IdleTimeout,
      reason: CloseReason.idle,
      notice: { type: 'connectionTimeout', reason: 'idle', message: 'Connection closed due to inactivity', idleSeconds: this.sessionTimeoutMs / 1000 },
    }).catch(() => 'unavailable' as const);
    if (answer === 'closed') {
      this.options.metrics?.timeout('idle', record.labels[this.roleLabel] ?? NO_ROLE);
      this.options.metrics?.connectionsClosed.inc();
      this.logger.warn('WebSocket timeout', { ...this.meta(record), reason: 'idle', source: 'sweeper', maxAgeMs: this.sessionTimeoutMs });
    }
    return answer;
  }

  /** Claim (fenced), run the hooks in parallel, delete (fenced). */
  private async reapBatch(
    lock: HeldLock,
    instance: string,
    entries: Array<[connectionId: string, value: string]>,
    reason: ReapInfo['reason'],
    result: SweepResult,
  ): Promise<void> {
    const members = entries.map(([connectionId]) => sessionMember(instance, connectionId));
    const claims = await this.options.bus.hashGet(this.keys.claims, members);
    await this.fencedWrite(lock, members.map((member) => ({ op: 'hset', key: this.keys.claims, field: member, value: String(lock.token) })));
    const now = this.clock.now();
    await Promise.all(
      entries.map(async ([connectionId, value], i) => {
        const record = parseRecord(value) ?? brokenRecord(instance, connectionId, now);
        const repeated = claims[i] !== null && claims[i] !== undefined;
        if (repeated) result.repeated++;
        const ok = await this.reapOne(record, reason, lock.token, repeated, now);
        if (!ok) result.errors++;
      }),
    );
    const deletes: BusWrite[] = [];
    for (let i = 0; i < entries.length; i++) {
      deletes.push(
        { op: 'hdel', key: this.keys.records(instance), field: entries[i]![0] },
        { op: 'zrem', key: this.keys.activity, member: members[i]! },
        { op: 'hdel', key: this.keys.claims, field: members[i]! },
      );
    }
    await this.fencedWrite(lock, deletes);
    result.reaped += entries.length;
  }

  /** One session's close as its node would have logged and counted it, and the hook; false when the hook failed. */
  private async reapOne(record: SessionRecord, reason: ReapInfo['reason'], fencingToken: number, repeated: boolean, now: number): Promise<boolean> {
    const role = record.labels[this.roleLabel] ?? NO_ROLE;
    const idle = reason === 'idle_timeout';
    const info: ReapInfo = idle
      ? { code: CloseCode.IdleTimeout, reason, timeoutReason: 'idle', fencingToken, repeated }
      : { code: ABNORMAL_CLOSURE, reason, fencingToken, repeated };
    const durationMs = Math.max(0, now - record.openedAt);
    if (idle) {
      this.options.metrics?.timeout('idle', role);
      this.options.metrics?.connectionsClosed.inc();
      this.logger.warn('WebSocket timeout', { ...this.meta(record), reason: 'idle', source: 'sweeper', maxAgeMs: this.sessionTimeoutMs, idleMs: now - record.lastActivityAt });
    }
    this.options.metrics?.sessionDuration.observe(durationMs / 1000);
    this.logger.info('WebSocket closed', { ...this.meta(record), code: info.code, reason, timeoutReason: info.timeoutReason, durationMs, source: 'sweeper', fencingToken, repeated });
    const hook = this.options.onDisconnect;
    if (!hook) return true;
    try {
      await this.withTimeout(Promise.resolve().then(() => hook(record, info)));
      return true;
    } catch (cause) {
      const error = new SessionStoreError(`onDisconnect hook failed for session ${record.fleetId}`, { cause });
      this.logger.error('onDisconnect hook failed', { ...this.meta(record), error, errorCode: error.code, cause, source: 'sweeper' });
      return false;
    }
  }

  private withTimeout(hook: Promise<unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(
        () => reject(new Error(`the hook did not settle within ${this.hookTimeoutMs} ms (hookTimeoutMs)`)),
        this.hookTimeoutMs,
      );
      hook.then(resolve, reject).finally(() => this.clock.clearTimeout(timer));
    });
  }

  private async fencedWrite(lock: HeldLock, writes: BusWrite[]): Promise<void> {
    if (this.lock.current !== lock || !(await this.options.bus.write(writes, lock.fence))) throw new LockLost();
  }

  private meta(record: SessionRecord): Record<string, unknown> {
    return { connectionId: record.fleetId, userId: record.userId, ...record.labels, nodeId: record.nodeId };
  }
}

function parseRecord(value: string): SessionRecord | null {
  try {
    const record = JSON.parse(value) as SessionRecord;
    return typeof record?.fleetId === 'string' && typeof record.instance === 'string' ? record : null;
  } catch {
    return null;
  }
}

/** A record that could not be read still gets its hook, with what its keys say. */
function brokenRecord(instance: string, connectionId: string, now: number): SessionRecord {
  // Instances are written by instanceOf; one that is not names no node but itself.
  const nodeId = nodeIdOf(instance) ?? instance;
  return { fleetId: fleetConnectionId(instance, connectionId), nodeId, instance, connectionId, userId: null, labels: {}, openedAt: now, lastActivityAt: now };
}

/** The session records of one node and its sweeper, started together by {@link trackSessions}. */
export interface FleetSessions {
  /** Writes the records' changes now instead of at the next flush. Never rejects. */
  flush(): Promise<void>;
  /** Sweeps now if this node holds (or can take) the lock; null when another node holds it. Never rejects. */
  sweep(): Promise<SweepResult | null>;
  /**
   * Writes the last removals, stops sweeping and releases the lock. Call it after the registry's
   * connections were closed (their own hooks ran) and before `fleet.leave()`. Never rejects.
   */
  stop(): Promise<void>;
}

/**
 * Keeps a session record in Redis for every connection of `registry`, and runs this node's
 * sweeper: when a node of the fleet dies, whichever node holds the sweeper lock runs
 * `onDisconnect` for each of its sessions.
 *
 * ```ts
 * const fleet = await joinFleet({ registry, redisUrl: process.env.REDIS_URL });
 * const sessions = trackSessions(fleet, registry, { onDisconnect: async (session) => presence.leave(session.userId) });
 * // shutdown: await registry.closeAll(); await sessions.stop(); await fleet.leave();
 * ```
 */
export function trackSessions(fleet: FleetNode, registry: ConnectionRegistry, options: TrackSessionsOptions = {}): FleetSessions {
  const { membership } = fleet;
  const { flushIntervalMs, ...sweeperOptions } = options;
  const tracker = new SessionTracker({ bus: fleet.bus, registry, nodeId: fleet.nodeId, startedAt: membership.startedAt, prefix: fleet.prefix, flushIntervalMs, clock: registry.clock, logger: registry.logger });
  const sweeper = new Sweeper({
    ...sweeperOptions,
    bus: fleet.bus,
    nodeId: fleet.nodeId,
    prefix: fleet.prefix,
    // A read that fails rejects (never "no members"), so a Redis fault never reaps live sessions.
    liveInstances: async () => new Set((await membership.read()).map((m) => instanceOf(m.nodeId, m.startedAt))),
    close: (fleetId, closeOptions) => fleet.close(fleetId, closeOptions),
    clock: registry.clock,
    logger: registry.logger,
  });
  tracker.start();
  sweeper.start();
  return {
    flush: () => tracker.flush(),
    sweep: () => sweeper.sweep(),
    async stop() {
      await tracker.stop();
      await sweeper.stop();
    },
  };
}
