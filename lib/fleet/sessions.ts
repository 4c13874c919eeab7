/**
 * Session records: one record in Redis per open connection of this node, so that when the node
 * dies, the fleet's sweeper (./sweeper.ts) still knows who was connected and runs the app's
 * disconnect hook for them.
 *
 * Nothing is written per message: every `flushIntervalMs` the tracker compares the registry with
 * what it last wrote and sends one batch — records of connections opened since, last activity of
 * those that had any, removals of those that closed. A batch that fails (Redis down) is sent
 * again, complete, at the next tick.
 *
 * Layout (`P` is the fleet prefix): `P:sessions:<instance>` is a hash, connection id → JSON
 * record, one per node instance (`<nodeId>@<startedAt>`, so a node restarted under the same id
 * never mixes its records with those of its dead predecessor), listed in the set
 * `P:session-instances` (written with them: the sweeper never scans the keyspace); `P:session-activity` is a sorted
 * set of `<instance>/<connectionId>` by last activity (what the sweeper's session timeout reads);
 * `P:session-claims` marks the records a sweeper is reaping (see ./sweeper.ts).
 */
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { defaultLogger, type Logger } from '../logger.js';
import type { WebSocketTimeoutManager } from '../manager.js';
import type { ConnectionRegistry } from '../registry.js';
import type { BusWrite, FleetBus } from './bus.js';
import { fleetConnectionId, instanceOf } from './ids.js';

/** What the fleet knows of one open connection (and what a reaped session's hook is given). */
export interface SessionRecord {
  /** The fleet-wide connection id, `<instance>:<connectionId>` (what `fleet.idOf` gives). */
  fleetId: string;
  /** The node that holds the connection. */
  nodeId: string;
  /** That node's run: `<nodeId>@<startedAt>`. */
  instance: string;
  /** The connection id on its node (`manager.id`). */
  connectionId: string;
  userId: string | null;
  /** The connection's labels (role, route...). */
  labels: Record<string, string>;
  /** ms since the epoch. */
  openedAt: number;
  /** Last application message in or out as of the last flush, ms since the epoch. */
  lastActivityAt: number;
}

/** The Redis keys of the session records under `prefix`, declared once. */
export function sessionKeys(prefix: string) {
  return {
    /** Hash of one node instance's records, connection id → JSON. */
    records: (instance: string) => `${prefix}:sessions:${instance}`,
    /** Set of the instances that have (or had) records. */
    instances: `${prefix}:session-instances`,
    /** Sorted set of `<instance>/<connectionId>` by last activity. */
    activity: `${prefix}:session-activity`,
    /** Hash `<instance>/<connectionId>` → fencing token of the sweeper reaping it. */
    claims: `${prefix}:session-claims`,
  };
}

/** The member of the activity set and of the claims hash for one session. */
export const sessionMember = (instance: string, connectionId: string): string => `${instance}/${connectionId}`;

/** The instance and connection id of an activity member (instances never contain '/'). */
export function parseSessionMember(member: string): { instance: string; connectionId: string } | null {
  const slash = member.indexOf('/');
  return slash <= 0 ? null : { instance: member.slice(0, slash), connectionId: member.slice(slash + 1) };
}

export interface SessionTrackerOptions {
  bus: FleetBus;
  registry: ConnectionRegistry;
  nodeId: string;
  /** When the node started (ms since the epoch), as its membership entry says. */
  startedAt: number;
  /** @default 'ws-timeouts' */
  prefix?: string;
  /** How often records of new connections, activity and removals are written, ms. @default 2000 */
  flushIntervalMs?: number;
  clock?: Clock;
  logger?: Logger;
}

/** The defaults, declared once. */
export const SESSION_DEFAULTS = Object.freeze({
  prefix: 'ws-timeouts',
  flushIntervalMs: 2000,
});

/** Sessions changed per bus command. */
const WRITES_PER_COMMAND = 500;

interface Written {
  /** `lastActivityAt` last written. */
  activity: number;
  /** The tick that last saw the manager in the registry. */
  seen: number;
}

/**
 * Keeps one {@link SessionRecord} per connection of `registry` in Redis (see the file comment).
 * Create it with {@link trackSessions}.
 */
export class SessionTracker {
  readonly instance: string;
  private readonly bus: FleetBus;
  private readonly registry: ConnectionRegistry;
  private readonly nodeId: string;
  private readonly keys: ReturnType<typeof sessionKeys>;
  private readonly clock: Clock;
  private readonly logger: Logger;
  readonly flushIntervalMs: number;
  /** What Redis holds for each manager, as far as the last successful flush knows. */
  private readonly written = new Map<WebSocketTimeoutManager, Written>();
  private tick = 0;
  private timer: TimerHandle | null = null;
  private flushing: Promise<void> | null = null;
  private failing = false;
  private stopped = false;

  constructor(options: SessionTrackerOptions) {
    this.bus = options.bus;
    this.registry = options.registry;
    this.nodeId = options.nodeId;
    this.instance = instanceOf(options.nodeId, options.startedAt);
    this.keys = sessionKeys(options.prefix ?? SESSION_DEFAULTS.prefix);
    this.clock = options.clock ?? this.registry.clock ?? systemClock;
    this.logger = options.logger ?? this.registry.logger ?? defaultLogger();
    const interval = options.flushIntervalMs ?? SESSION_DEFAULTS.flushIntervalMs;
    if (typeof interval !== 'number' || !Number.isInteger(interval) || interval < 1 || interval > 2 ** 31 - 1) {
      throw new RangeError(`trackSessions: flushIntervalMs must be a whole number of milliseconds from 1 to 2147483647, got ${String(interval)}`);
    }
    this.flushIntervalMs = interval;
  }

  /** Starts the periodic flush (the first one now). */
  start(): void {
    if (this.timer !== null || this.stopped) return;
    const loop = (): void => {
      void this.flush().finally(() => {
        if (!this.stopped) this.timer = this.clock.setTimeout(loop, this.flushIntervalMs);
      });
    };
    loop();
  }

  /**
   * Stops the periodic flush after a last one: call it after the registry's connections were
   * closed, so that their records are removed (else the sweeper reaps them and their disconnect
   * hooks run a second time). Never rejects.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.flushing; // it may have looked at the registry before the last closes
    await this.flush();
  }

  /**
   * Writes what changed since the last successful flush in one batch; resolves when written or
   * failed (logged once per outage; the next flush sends it again). Never rejects; calls made
   * during a flush share it.
   */
  flush(): Promise<void> {
    this.flushing ??= this.writeChanges().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async writeChanges(): Promise<void> {
    const tick = ++this.tick;
    const records = this.keys.records(this.instance);
    // One change per manager: its writes, and what to remember once they are in Redis.
    const changes: Array<{ writes: BusWrite[]; commit: () => void }> = [];
    for (const manager of this.registry.managers()) {
      const written = this.written.get(manager);
      if (written) written.seen = tick;
      if (written?.activity === manager.lastActivityAt) continue;
      const record = this.recordOf(manager);
      changes.push({
        writes: [
          { op: 'hset', key: records, field: manager.id, value: JSON.stringify(record) },
          { op: 'zadd', key: this.keys.activity, member: sessionMember(this.instance, manager.id), score: record.lastActivityAt },
        ],
        commit: () => this.written.set(manager, { activity: record.lastActivityAt, seen: tick }),
      });
    }
    for (const [manager, written] of this.written) {
      if (written.seen === tick) continue;
      changes.push({
        writes: [
          { op: 'hdel', key: records, field: manager.id },
          { op: 'zrem', key: this.keys.activity, member: sessionMember(this.instance, manager.id) },
        ],
        commit: () => this.written.delete(manager),
      });
    }
    // A few thousand connections accepted at once are several commands, not one that blocks Redis.
    for (let start = 0; start < changes.length; start += WRITES_PER_COMMAND) {
      const chunk = changes.slice(start, start + WRITES_PER_COMMAND);
      try {
        await this.bus.write([{ op: 'sadd', key: this.keys.instances, member: this.instance }, ...chunk.flatMap((change) => change.writes)]);
      } catch (error) {
        if (!this.failing) this.logger.warn('Session records not written; retrying every flush', { error, pending: changes.length - start });
        this.failing = true;
        return;
      }
      for (const change of chunk) change.commit();
    }
    if (this.failing && changes.length > 0) this.logger.info('Session records written again', { sessions: this.registry.size });
    if (changes.length > 0) this.failing = false;
  }

  private recordOf(manager: WebSocketTimeoutManager): SessionRecord {
    return {
      fleetId: fleetConnectionId(this.instance, manager.id),
      nodeId: this.nodeId,
      instance: this.instance,
      connectionId: manager.id,
      userId: manager.userId ?? null,
      labels: { ...manager.labels },
      openedAt: manager.connectedAt,
      lastActivityAt: manager.lastActivityAt,
    };
  }
}
