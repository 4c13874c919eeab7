/**
 * Membership: each node keeps one key, `${prefix}:member:${nodeId}`, alive with a TTL and
 * refreshes it every ttl/3 with its counts. The live keys are the fleet; a node that stops
 * refreshing (killed, partitioned) drops out within the TTL. Nothing is written per message
 * or per connection: the counts ride on the refresh.
 *
 * The node ids are also kept in one set, `${prefix}:nodes`, so that reading the fleet is two
 * commands (the set, then its keys) whatever else the Redis holds: a key SCAN would walk the
 * whole keyspace of a Redis shared with sessions or caches. Readers drop ids whose key expired.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { FleetBus } from './bus.js';

/** One live node, as its membership key says. */
export interface FleetMember {
  nodeId: string;
  /** Connections the node holds. */
  connections: number;
  /** Connections by their route label (`'none'` without one). */
  byRoute: Record<string, number>;
  /** Connections by their role label (`'none'` without one). */
  byRole: Record<string, number>;
  /** The version the node runs (the app's, if given to `joinFleet`, else the library's). */
  version: string;
  /** When the node joined, ms since the epoch. */
  startedAt: number;
  /** When the node last refreshed its key, ms since the epoch. */
  updatedAt: number;
}

export type MemberCounts = Pick<FleetMember, 'connections' | 'byRoute' | 'byRole'>;

export interface MembershipOptions {
  bus: FleetBus;
  prefix: string;
  nodeId: string;
  ttlMs: number;
  version: string;
  clock: Clock;
  /** This node's counts now (read at each refresh). */
  counts: () => MemberCounts;
  /** Runs after each refresh tick (whatever its outcome): the node's other periodic work. */
  onTick?: () => void;
  /** A bus call of a refresh failed. */
  onBusError: (op: string, error: unknown) => void;
  /** After each refresh: whether the key was written and the members read. */
  onRefreshed?: (ok: boolean) => void;
}

export class Membership {
  readonly key: string;
  readonly startedAt: number;
  private readonly index: string;
  /** The members of the last successful read, and when it was. */
  lastRead: { members: FleetMember[]; at: number } | null = null;
  private timer: TimerHandle | null = null;
  private stopped = false;

  constructor(private readonly options: MembershipOptions) {
    this.key = memberKey(options.prefix, options.nodeId);
    this.index = `${options.prefix}:nodes`;
    this.startedAt = options.clock.now();
  }

  /** Refreshes now, then every ttl/3 until `stop()`; resolves after the first refresh. */
  start(): Promise<void> {
    return this.tick();
  }

  /** Writes this node's key and reads the members; false when the bus refused (reported to `onBusError`). */
  async refresh(): Promise<boolean> {
    const { bus, nodeId, ttlMs, version, clock } = this.options;
    const member: FleetMember = { nodeId, ...this.options.counts(), version, startedAt: this.startedAt, updatedAt: clock.now() };
    try {
      await bus.setWithTtl(this.key, JSON.stringify(member), ttlMs);
      await bus.setAdd(this.index, nodeId);
      await this.read();
      this.options.onRefreshed?.(true);
      return true;
    } catch (error) {
      this.options.onBusError('membership', error);
      this.options.onRefreshed?.(false);
      return false;
    }
  }

  /** The live members now, read from the bus (rejects `BusUnavailableError`). */
  async read(): Promise<FleetMember[]> {
    const { bus, prefix, clock } = this.options;
    const nodeIds = await bus.setMembers(this.index);
    const values = await bus.getMany(nodeIds.map((nodeId) => memberKey(prefix, nodeId)));
    const members: FleetMember[] = [];
    for (const [i, value] of values.entries()) {
      const member = parseMember(value);
      if (member) members.push(member);
      // Its key expired: the node is gone (it adds itself again at its next refresh if it is not).
      else if (value === null) void bus.setRemove(this.index, nodeIds[i]!).catch(() => undefined);
    }
    members.sort((a, b) => a.nodeId.localeCompare(b.nodeId));
    this.lastRead = { members, at: clock.now() };
    return members;
  }

  /** Stops refreshing and deletes the key (best effort: it expires anyway). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.options.clock.clearTimeout(this.timer);
    this.timer = null;
    await Promise.all([
      this.options.bus.del(this.key).catch(() => undefined),
      this.options.bus.setRemove(this.index, this.options.nodeId).catch(() => undefined),
    ]);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    await this.refresh();
    if (this.stopped) return;
    this.options.onTick?.();
    this.timer = this.options.clock.setTimeout(() => void this.tick(), Math.floor(this.options.ttlMs / 3));
  }
}

export function memberKey(prefix: string, nodeId: string): string {
  return `${prefix}:member:${nodeId}`;
}

function parseMember(value: string | null): FleetMember | null {
  if (value === null) return null;
  try {
    const member = JSON.parse(value) as FleetMember;
    return typeof member?.nodeId === 'string' && typeof member.connections === 'number' ? member : null;
  } catch {
    return null; // a key another program wrote under our prefix: not a member
  }
}
