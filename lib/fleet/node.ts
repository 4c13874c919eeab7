/**
 * `FleetNode`: one process of the fleet. It joins a `ConnectionRegistry` to a {@link FleetBus}:
 * membership (one key per node, refreshed with its counts), fleet broadcast, send and close of a
 * connection held by any node, the same by user id, health, metrics, and the canary that catches
 * a subscriber gone deaf.
 *
 * Wire: two channels per prefix. `${prefix}:all` carries fan-out requests (broadcast, by-user
 * operations) and canaries; `${prefix}:to:${nodeId}` carries requests to one node and every
 * answer to it. A message is a JSON header, a newline, then the body as is: data is serialised
 * once, by the node that sends it.
 *
 * Delivery is at most once: a message is published once and never resent; a node that does not
 * answer within the deadline is named in `nodesMissing` (or the result is `unknown`), never
 * counted as delivered. Every operation resolves: `unavailable` at once while the bus is down.
 */
import { createRequire } from 'node:module';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { defaultLogger, type Logger } from '../logger.js';
import type { WebSocketTimeoutManager } from '../manager.js';
import { NO_ROLE, type TimeoutMetrics } from '../metrics.js';
import type { ConnectionRegistry } from '../registry.js';
import { checkDeadline, type BusStatus, type FleetBus } from './bus.js';
import { checkNodeId, defaultNodeId, fleetConnectionId, instanceOf, parseFleetConnectionId } from './ids.js';
import { Membership, memberKey, type FleetMember, type MemberCounts } from './membership.js';
import { FleetMetrics } from './metrics.js';
import { RedisBus } from './redis-bus.js';
import { FLEET_DEFAULTS, PREFIX_PATTERN, redactRedisUrl } from './settings.js';

export interface JoinFleetOptions {
  /** The registry of this process: its connections are this node's. */
  registry: ConnectionRegistry;
  /** The bus to use. Give this or `redisUrl`. */
  bus?: FleetBus;
  /** Creates a `RedisBus` on this URL (closed again by `leave()`). Give this or `bus`. */
  redisUrl?: string;
  /** This node's id, unique in the fleet: 1 to 64 of `A-Z a-z 0-9 . _ -`. @default `${hostname}-${pid}` */
  nodeId?: string;
  /** Prefix of every key and channel; nodes with the same prefix on one Redis form a fleet. @default 'ws-timeouts' */
  prefix?: string;
  /** TTL of the node's membership key, ms; refreshed every third of it. A node that stops refreshing leaves the counts within it. @default 15000 */
  membershipTtlMs?: number;
  /** Deadline of every fleet operation (the answers of other nodes) and of each bus call, ms. @default 1000 */
  requestTimeoutMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** @default the registry's logger */
  logger?: Logger;
  /** Where the fleet counters are registered (next to these metrics). @default none */
  metrics?: TimeoutMetrics;
  /** The connection label counted as the route in membership and matched by `route` filters. @default 'route' */
  routeLabel?: string;
  /** The connection label counted as the role in membership. @default 'role' */
  roleLabel?: string;
  /** The version this node reports in membership (your app's, say). @default the library's version */
  version?: string;
}

export interface FleetBroadcastOptions {
  /** Only connections whose route label is this. */
  route?: string;
  /** Only connections with every one of these labels. */
  labels?: Record<string, string>;
  /**
   * Deadline of the operation, ms: nodes that have not answered by then are named in
   * `nodesMissing`. Each recipient's send deadline is half of it, so that its node can answer in
   * time. @default requestTimeoutMs
   */
  timeoutMs?: number;
}

export interface FleetBroadcastResult {
  /** `ok`: every live node answered. `partial`: some did not (named in `nodesMissing`). `unavailable`: the bus is down: only this node delivered. */
  status: 'ok' | 'partial' | 'unavailable';
  /** Nodes asked, this one included. */
  nodes: number;
  /** Recipients whose frame was flushed in time, on the nodes that answered. */
  sent: number;
  /** Recipients whose send failed or missed its deadline (each closed with 4003, as a local broadcast does). */
  failed: number;
  /** Live nodes that did not answer in time: what they delivered is unknown. */
  nodesMissing: string[];
}

export type FleetSendResult = 'sent' | 'failed' | 'gone' | 'unknown' | 'unavailable';
export type FleetCloseResult = 'closed' | 'gone' | 'unknown' | 'unavailable';

export interface FleetSendOptions {
  /** Deadline of the operation, ms; the owner's send deadline is half of it. @default requestTimeoutMs */
  timeoutMs?: number;
}

export interface FleetCloseOptions {
  /** @default 1000 */
  code?: number;
  /** @default 'normal_closure' */
  reason?: string;
  /** Sent before the close frame: a string as text, anything else as JSON. @default none */
  notice?: unknown;
  /** Deadline of the operation, ms. @default requestTimeoutMs */
  timeoutMs?: number;
}

export interface FleetUserSendResult extends FleetBroadcastResult {}

export interface FleetUserCloseResult {
  status: FleetBroadcastResult['status'];
  nodes: number;
  /** Connections of the user that are closing now (already closing ones included). */
  closed: number;
  failed: number;
  nodesMissing: string[];
}

export interface FleetHealth {
  /** `unavailable` while the bus is down, the subscriber is deaf or the membership key cannot be written. */
  status: 'ok' | 'unavailable';
  /** Live nodes at the last membership read. */
  nodes: number;
  /** Their connections at that read. */
  connections: number;
  /** Why it is `unavailable`. */
  reason?: string;
}

/**
 * What a node asks: to all (`fan`) or one node (`req`); what it answers (`ack`); its canary.
 * A request carries `until`, its sender's deadline (the sender's clock, ms since the epoch): a
 * node that gets it later drops it, since its sender has answered `unavailable` or `unknown` already.
 */
type Header =
  | { t: 'fan'; id: string; from: string; until: number; op: 'broadcast' | 'close'; route?: string; labels?: Record<string, string>; userId?: string; sendMs?: number; code?: number; reason?: string }
  | { t: 'req'; id: string; from: string; until: number; op: 'send' | 'close'; instance: string; connectionId: string; sendMs?: number; code?: number; reason?: string }
  | { t: 'ack'; id: string; from: string; sent?: number; failed?: number; result?: FleetSendResult | FleetCloseResult }
  | { t: 'canary'; from: string; seq: number };

type Ack = Extract<Header, { t: 'ack' }>;

/** The answers to one request, until all expected nodes answered or the deadline. */
class Pending {
  readonly acks = new Map<string, Ack>();
  readonly done: Promise<void>;
  private expected: Set<string> | null = null;
  private finish!: () => void;

  constructor() {
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
  }

  expect(nodeIds: Iterable<string>): void {
    this.expected = new Set(nodeIds);
    this.check();
  }

  add(ack: Ack): void {
    if (!this.acks.has(ack.from)) this.acks.set(ack.from, ack);
    this.check();
  }

  end(): void {
    this.finish();
  }

  missing(): string[] {
    return [...(this.expected ?? [])].filter((nodeId) => !this.acks.has(nodeId)).sort();
  }

  private check(): void {
    if (this.expected !== null && this.missing().length === 0) this.finish();
  }
}

const LIBRARY_VERSION: string = (() => {
  try {
    return (createRequire(import.meta.url)('ws-timeouts/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

export class FleetNode {
  readonly nodeId: string;
  readonly prefix: string;
  readonly bus: FleetBus;
  readonly membershipTtlMs: number;
  readonly requestTimeoutMs: number;
  private readonly registry: ConnectionRegistry;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: FleetMetrics | undefined;
  private readonly routeLabel: string;
  private readonly roleLabel: string;
  private readonly ownsBus: boolean;
  /** @internal its start time names this run of the node; session records and the sweeper read the members */
  readonly membership: Membership;
  /** This run of the node (`${nodeId}@${startedAt}`): the part of its fleet ids a restart changes. */
  private readonly instance: string;
  private readonly allChannel: string;
  private readonly inbox: string;
  private readonly pending = new Map<string, Pending>();
  private readonly stopStatus: () => void;
  private unsubscribes: Array<() => Promise<void>> = [];
  private subscribing: Promise<void> | null = null;
  private seq = 0;
  private left = false;
  /** The message of the last failed bus call, for health and logs. */
  private lastBusError = '';
  private refreshFailed = false;
  private canary = { seq: 0, awaiting: -1, misses: 0, deaf: false, timer: null as TimerHandle | null };

  /** @internal use {@link joinFleet} */
  constructor(options: JoinFleetOptions, bus: FleetBus, ownsBus: boolean) {
    this.registry = options.registry;
    this.bus = bus;
    this.ownsBus = ownsBus;
    this.nodeId = checkNodeId(options.nodeId ?? defaultNodeId());
    const prefix = options.prefix ?? FLEET_DEFAULTS.prefix;
    if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
      throw new RangeError(`joinFleet: prefix must be 1 to 100 characters of A-Z a-z 0-9 . _ : - (e.g. 'ws-timeouts'), got ${JSON.stringify(prefix)}`);
    }
    this.prefix = prefix;
    this.membershipTtlMs = checkDeadline('joinFleet', 'membershipTtlMs', options.membershipTtlMs ?? FLEET_DEFAULTS.membershipTtlMs);
    if (this.membershipTtlMs < 30) throw new RangeError(`joinFleet: membershipTtlMs must be at least 30 ms (it is refreshed every third of it), got ${this.membershipTtlMs}`);
    this.requestTimeoutMs = checkDeadline('joinFleet', 'requestTimeoutMs', options.requestTimeoutMs ?? FLEET_DEFAULTS.requestTimeoutMs);
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? options.registry.logger ?? defaultLogger();
    this.metrics = options.metrics ? new FleetMetrics(options.metrics) : undefined;
    this.routeLabel = options.routeLabel ?? FLEET_DEFAULTS.routeLabel;
    this.roleLabel = options.roleLabel ?? FLEET_DEFAULTS.roleLabel;
    this.allChannel = `${prefix}:all`;
    this.inbox = `${prefix}:to:${this.nodeId}`;
    this.membership = new Membership({
      bus,
      prefix,
      nodeId: this.nodeId,
      ttlMs: this.membershipTtlMs,
      version: options.version ?? LIBRARY_VERSION,
      clock: this.clock,
      counts: () => this.counts(),
      onTick: () => this.periodic(),
      onBusError: (op, error) => this.busError(op, error),
      onRefreshed: (ok) => {
        this.refreshFailed = !ok;
      },
    });
    this.instance = instanceOf(this.nodeId, this.membership.startedAt);
    this.stopStatus = bus.onStatus((status) => this.statusChanged(status));
  }

  /** @internal subscribes and writes the membership key once (both bounded by the bus's deadline) */
  async start(): Promise<void> {
    await this.waitForBus();
    await this.ensureSubscribed();
    await this.membership.start();
    this.logger.info('Joined the fleet', { nodeId: this.nodeId, prefix: this.prefix, busStatus: this.bus.status, nodes: this.membership.lastRead?.members.length ?? 0 });
  }

  /**
   * The fleet-unique id of a connection of this node: `${nodeId}@${startedAt}:${manager.id}`.
   * After a restart under the same node id, the ids of the earlier run answer `gone`.
   */
  idOf(manager: WebSocketTimeoutManager): string {
    return fleetConnectionId(this.instance, manager.id);
  }

  /** The live members now, read from the bus; the last known ones when the bus is down. */
  async members(): Promise<FleetMember[]> {
    try {
      return await this.membership.read();
    } catch (error) {
      this.busError('members', error);
      return this.membership.lastRead?.members ?? [];
    }
  }

  /** The fleet's health from the last membership read (no I/O). */
  health(): FleetHealth {
    const members = this.membership.lastRead?.members ?? [];
    const base = { nodes: members.length, connections: members.reduce((sum, m) => sum + m.connections, 0) };
    const reason =
      this.left ? 'this node left the fleet'
      : this.bus.status !== 'ready' ? `bus unavailable${this.lastBusError ? `: ${this.lastBusError}` : ''}`
      : this.canary.deaf ? `subscriber deaf: ${this.canary.misses} canaries in a row did not come back; resubscribed`
      : this.unsubscribes.length === 0 ? 'not subscribed to the fleet channels yet'
      : this.refreshFailed ? `membership key not refreshed${this.lastBusError ? `: ${this.lastBusError}` : ''}`
      : null;
    return reason === null ? { status: 'ok', ...base } : { status: 'unavailable', ...base, reason };
  }

  /**
   * Sends `data` (a string as text, anything else as JSON, serialised once here) to every
   * connection of the fleet that matches the filter: this node's directly, the others' through
   * the bus. Resolves once every live node answered or at the deadline, never rejects.
   */
  async broadcast(data: unknown, options: FleetBroadcastOptions = {}): Promise<FleetBroadcastResult> {
    const text = this.serialise(data, 'broadcast');
    if (text === undefined) return { status: 'ok', nodes: 0, sent: 0, failed: 0, nodesMissing: [] };
    const timeoutMs = this.deadline('broadcast', options.timeoutMs);
    const filter: Pick<Extract<Header, { t: 'fan' }>, 'route' | 'labels'> = {};
    if (options.route !== undefined) filter.route = String(options.route);
    if (options.labels !== undefined) filter.labels = { ...options.labels };
    return this.fanOut('broadcast', { op: 'broadcast', ...filter, sendMs: half(timeoutMs) }, text, timeoutMs);
  }

  /** Sends `data` to every connection of `userId`, on any node. Same result as {@link broadcast}. */
  async sendToUser(userId: string, data: unknown, options: FleetSendOptions = {}): Promise<FleetUserSendResult> {
    const text = this.serialise(data, 'sendToUser');
    if (text === undefined) return { status: 'ok', nodes: 0, sent: 0, failed: 0, nodesMissing: [] };
    const timeoutMs = this.deadline('sendToUser', options.timeoutMs);
    return this.fanOut('sendToUser', { op: 'broadcast', userId: String(userId), sendMs: half(timeoutMs) }, text, timeoutMs);
  }

  /** Closes every connection of `userId`, on any node, as {@link close} closes one. */
  async closeUser(userId: string, options: FleetCloseOptions = {}): Promise<FleetUserCloseResult> {
    const notice = options.notice === undefined ? '' : this.serialise(options.notice, 'closeUser');
    const timeoutMs = this.deadline('closeUser', options.timeoutMs);
    const result = await this.fanOut('closeUser', { op: 'close', userId: String(userId), code: options.code, reason: options.reason }, notice ?? '', timeoutMs);
    return { status: result.status, nodes: result.nodes, closed: result.sent, failed: result.failed, nodesMissing: result.nodesMissing };
  }

  /**
   * Sends `data` to the connection `fleetId` (from {@link idOf}), wherever it is: `sent`, `failed`
   * (its send failed or missed the deadline), `gone` (no live node holds it), `unknown` (its node
   * did not answer in time), `unavailable` (the bus is down). Never rejects.
   */
  async send(fleetId: string, data: unknown, options: FleetSendOptions = {}): Promise<FleetSendResult> {
    const text = this.serialise(data, 'send');
    if (text === undefined) return this.done('send', 'failed', { fleetId });
    const timeoutMs = this.deadline('send', options.timeoutMs);
    return this.remote('send', fleetId, { op: 'send', sendMs: half(timeoutMs) }, text, timeoutMs) as Promise<FleetSendResult>;
  }

  /**
   * Closes the connection `fleetId` wherever it is, as a local close: the notice first (if
   * given), then the close frame with `code` and `reason` (terminated after `closeTimeoutMs` if
   * the peer does not answer). `closed`: it is closing now (a connection already closing or
   * closed counts); `gone`: no live node holds it, which is success too; `unknown`: its node
   * did not answer in time; `unavailable`: the bus is down. Never rejects.
   */
  async close(fleetId: string, options: FleetCloseOptions = {}): Promise<FleetCloseResult> {
    const notice = options.notice === undefined ? '' : (this.serialise(options.notice, 'close') ?? '');
    const timeoutMs = this.deadline('close', options.timeoutMs);
    return this.remote('close', fleetId, { op: 'close', code: options.code, reason: options.reason }, notice, timeoutMs) as Promise<FleetCloseResult>;
  }

  /** Stops refreshing, deletes this node's key, unsubscribes, and closes a bus it created. Never rejects. */
  async leave(): Promise<void> {
    if (this.left) return;
    this.left = true;
    this.stopStatus();
    if (this.canary.timer !== null) this.clock.clearTimeout(this.canary.timer);
    for (const pending of this.pending.values()) pending.end();
    await this.membership.stop();
    await this.unsubscribe();
    if (this.ownsBus) await this.bus.close();
    this.logger.info('Left the fleet', { nodeId: this.nodeId });
  }

  // ---------------------------------------------------------------- operations

  /** Runs `op` here and on every other live node; sums the answers. */
  private async fanOut(
    op: string,
    request: Omit<Extract<Header, { t: 'fan' }>, 't' | 'id' | 'from' | 'until'>,
    body: string,
    timeoutMs: number,
  ): Promise<FleetBroadcastResult> {
    const header: Header = { t: 'fan', id: this.nextId(), from: this.nodeId, until: this.clock.now() + timeoutMs, ...request };
    const local = this.runFan(header, body);
    if (this.left || this.bus.status !== 'ready') {
      const { sent, failed } = await local;
      const others = (this.membership.lastRead?.members ?? []).map((m) => m.nodeId).filter((id) => id !== this.nodeId);
      return this.fanDone(op, 'unavailable', { nodes: 1 + others.length, sent, failed, nodesMissing: others.sort() });
    }
    const pending = this.track(header.id, timeoutMs);
    try {
      const [members] = await Promise.all([this.membership.read(), this.bus.publish(this.allChannel, encode(header, body))]);
      pending.expect(members.map((m) => m.nodeId).filter((id) => id !== this.nodeId));
    } catch (error) {
      this.busError(op, error);
      this.untrack(header.id, pending);
      const { sent, failed } = await local;
      return this.fanDone(op, 'unavailable', { nodes: 1, sent, failed, nodesMissing: [] });
    }
    const [mine] = await Promise.all([local, pending.done]);
    this.untrack(header.id, pending);
    let { sent, failed } = mine;
    for (const ack of pending.acks.values()) {
      sent += ack.sent ?? 0;
      failed += ack.failed ?? 0;
    }
    const nodesMissing = pending.missing();
    const nodes = 1 + new Set([...nodesMissing, ...pending.acks.keys()]).size;
    return this.fanDone(op, nodesMissing.length === 0 ? 'ok' : 'partial', { nodes, sent, failed, nodesMissing });
  }

  /** Asks the node holding `fleetId` to run `op` on it. */
  private async remote(
    op: 'send' | 'close',
    fleetId: string,
    request: Omit<Extract<Header, { t: 'req' }>, 't' | 'id' | 'from' | 'until' | 'instance' | 'connectionId'>,
    body: string,
    timeoutMs: number,
  ): Promise<FleetSendResult | FleetCloseResult> {
    const target = parseFleetConnectionId(fleetId);
    if (target === null) return this.done(op, 'gone', { fleetId });
    const header: Header = { t: 'req', id: this.nextId(), from: this.nodeId, until: this.clock.now() + timeoutMs, instance: target.instance, connectionId: target.connectionId, ...request };
    if (target.nodeId === this.nodeId) return this.done(op, await this.runRequest(header, body), { fleetId });
    if (this.left || this.bus.status !== 'ready') return this.done(op, 'unavailable', { fleetId });
    const pending = this.track(header.id, timeoutMs);
    try {
      const [[owner]] = await Promise.all([
        this.bus.getMany([memberKey(this.prefix, target.nodeId)]),
        this.bus.publish(`${this.prefix}:to:${target.nodeId}`, encode(header, body)),
      ]);
      if (owner === null || owner === undefined) {
        this.untrack(header.id, pending);
        return this.done(op, 'gone', { fleetId, reason: 'no live node has that id' });
      }
      pending.expect([target.nodeId]);
    } catch (error) {
      this.busError(op, error);
      this.untrack(header.id, pending);
      return this.done(op, 'unavailable', { fleetId });
    }
    await pending.done;
    this.untrack(header.id, pending);
    const result = pending.acks.get(target.nodeId)?.result ?? 'unknown';
    return this.done(op, result, { fleetId });
  }

  // ---------------------------------------------------------------- what this node does when asked

  private async runFan(header: Extract<Header, { t: 'fan' }>, body: string): Promise<{ sent: number; failed: number }> {
    const { route, labels, userId } = header;
    const matches = (m: WebSocketTimeoutManager): boolean =>
      (route === undefined || m.labels?.[this.routeLabel] === route) &&
      (userId === undefined || m.userId === userId) &&
      (labels === undefined || Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    try {
      if (header.op === 'broadcast') return await this.registry.broadcast(body, { filter: matches, timeoutMs: header.sendMs });
      let closed = 0;
      for (const manager of [...this.registry.managers()]) {
        if (!matches(manager)) continue;
        this.closeLocal(manager, header, body);
        closed++;
      }
      return { sent: closed, failed: 0 };
    } catch (error) {
      this.logger.error('Fleet request failed on this node', { nodeId: this.nodeId, op: header.op, requestId: header.id, error });
      return { sent: 0, failed: 0 };
    }
  }

  private async runRequest(header: Extract<Header, { t: 'req' }>, body: string): Promise<FleetSendResult | FleetCloseResult> {
    // An id of an earlier run of this node: its connection is gone, whatever holds its number now.
    if (header.instance !== this.instance) return 'gone';
    let manager: WebSocketTimeoutManager | undefined;
    for (const m of this.registry.managers()) {
      if (m.id === header.connectionId) {
        manager = m;
        break;
      }
    }
    if (header.op === 'close') {
      if (manager === undefined) return 'gone';
      this.closeLocal(manager, header, body);
      return 'closed';
    }
    if (manager === undefined || manager.state !== 'open') return 'gone';
    try {
      return (await manager.sendTextWithTimeout(body, header.sendMs)) ? 'sent' : 'failed';
    } catch (error) {
      this.logger.error('Fleet send failed on this node', { nodeId: this.nodeId, connectionId: manager.id, error });
      return 'failed';
    }
  }

  /** A local close: the notice (not awaited: the close frame queues behind it), then gracefulClose. */
  private closeLocal(manager: WebSocketTimeoutManager, request: { code?: number; reason?: string }, notice: string): void {
    if (manager.state !== 'open') return; // closing or closed already: that is what was asked
    if (notice !== '') void manager.sendTextWithTimeout(notice).catch(() => false);
    void manager.gracefulClose(request.code, request.reason);
  }

  /** A message from the bus. */
  private receive(message: string): void {
    const decoded = decode(message);
    if (decoded === null) {
      this.logger.warn('Fleet message ignored: not a fleet message', { nodeId: this.nodeId, length: message.length });
      return;
    }
    const [header, body] = decoded;
    switch (header.t) {
      case 'canary':
        if (header.from === this.nodeId) this.canaryBack(header.seq);
        return;
      case 'ack':
        this.pending.get(header.id)?.add(header);
        return;
      case 'fan':
        if (header.from === this.nodeId) return; // own echo: delivered locally already
        if (this.expired(header)) return;
        void this.runFan(header, body).then(({ sent, failed }) => this.answer(header, { sent, failed }));
        return;
      case 'req':
        if (this.expired(header)) return;
        void this.runRequest(header, body).then((result) => this.answer(header, { result }));
        return;
    }
  }

  /**
   * Whether a request arrived past its sender's deadline (Redis stalled, then thawed): then it is
   * dropped, logged and counted (result `expired`) and not answered, so that `unavailable` and
   * `unknown` mean "not run". The deadline is on the sender's clock: nodes' clocks must agree
   * within a small fraction of the deadline (see guides/fleet.md).
   */
  private expired(header: Extract<Header, { t: 'fan' | 'req' }>): boolean {
    const lateMs = this.clock.now() - header.until;
    if (!(lateMs >= 0)) return false;
    const op = header.t === 'req' ? header.op : header.userId === undefined ? 'broadcast' : header.op === 'close' ? 'closeUser' : 'sendToUser';
    this.metrics?.operations.inc({ op, result: 'expired' });
    this.logger.warn('Fleet request dropped: past its deadline, its sender has answered already', { nodeId: this.nodeId, op, from: header.from, requestId: header.id, lateMs });
    return true;
  }

  private answer(request: { id: string; from: string }, fields: Omit<Ack, 't' | 'id' | 'from'>): void {
    if (this.left) return;
    const ack: Ack = { t: 'ack', id: request.id, from: this.nodeId, ...fields };
    this.bus.publish(`${this.prefix}:to:${request.from}`, encode(ack, '')).catch((error: unknown) => this.busError('answer', error));
  }

  // ---------------------------------------------------------------- subscriptions, canary, status

  private async ensureSubscribed(): Promise<void> {
    if (this.left || this.unsubscribes.length > 0) return;
    this.subscribing ??= (async () => {
      try {
        const handler = (message: string) => this.receive(message);
        const all = await this.bus.subscribe(this.allChannel, handler);
        try {
          this.unsubscribes = [all, await this.bus.subscribe(this.inbox, handler)];
        } catch (error) {
          await all().catch(() => undefined);
          throw error;
        }
      } catch (error) {
        this.busError('subscribe', error);
      } finally {
        this.subscribing = null;
      }
    })();
    await this.subscribing;
  }

  private async unsubscribe(): Promise<void> {
    const unsubscribes = this.unsubscribes;
    this.unsubscribes = [];
    await Promise.all(unsubscribes.map((unsubscribe) => unsubscribe().catch(() => undefined)));
  }

  /** Every membership tick: subscribe if not yet, and send a canary. */
  private periodic(): void {
    if (this.left) return;
    void this.ensureSubscribed().then(() => this.sendCanary());
  }

  private sendCanary(): void {
    if (this.left || this.bus.status !== 'ready' || this.unsubscribes.length === 0 || this.canary.awaiting !== -1) return;
    const seq = ++this.canary.seq;
    this.canary.awaiting = seq;
    this.bus.publish(this.allChannel, encode({ t: 'canary', from: this.nodeId, seq }, '')).then(
      () => {
        this.canary.timer = this.clock.setTimeout(() => this.canaryMissed(seq), this.requestTimeoutMs);
      },
      (error: unknown) => {
        this.canary.awaiting = -1; // the bus refused it: a bus fault, not deafness
        this.busError('canary', error);
      },
    );
  }

  private canaryBack(seq: number): void {
    if (seq !== this.canary.awaiting) return;
    this.canary.awaiting = -1;
    if (this.canary.timer !== null) this.clock.clearTimeout(this.canary.timer);
    this.canary.timer = null;
    this.canary.misses = 0;
    if (this.canary.deaf) {
      this.canary.deaf = false;
      this.logger.info('Fleet subscriber hears again', { nodeId: this.nodeId });
    }
  }

  private canaryMissed(seq: number): void {
    this.canary.timer = null;
    if (seq !== this.canary.awaiting || this.left) return;
    this.canary.awaiting = -1;
    if (this.bus.status !== 'ready') return; // a bus fault, reported as such
    this.canary.misses++;
    if (this.canary.misses < FLEET_DEFAULTS.canaryMisses) return;
    this.canary.deaf = true;
    this.metrics?.deafSubscribers.inc();
    this.logger.error('Fleet subscriber deaf: resubscribing', { nodeId: this.nodeId, canariesMissed: this.canary.misses, channel: this.allChannel });
    void this.unsubscribe().then(() => this.ensureSubscribed());
  }

  private statusChanged(status: BusStatus): void {
    if (this.left) return;
    if (status === 'ready') {
      this.logger.info('Fleet bus ready', { nodeId: this.nodeId });
      // Back at once: the key may have expired, or Redis restarted empty.
      void this.ensureSubscribed().then(() => this.membership.refresh());
    } else {
      this.logger.warn('Fleet bus unavailable: fleet operations answer unavailable, local ones go on', { nodeId: this.nodeId, reason: this.lastBusError });
    }
  }

  /** Waits (at most requestTimeoutMs) for a bus that is still connecting. */
  private waitForBus(): Promise<void> {
    if (this.bus.status === 'ready') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.clock.clearTimeout(timer);
        stop();
        resolve();
      };
      const timer = this.clock.setTimeout(done, this.requestTimeoutMs);
      const stop = this.bus.onStatus((status) => {
        if (status === 'ready') done();
      });
    });
  }

  // ---------------------------------------------------------------- helpers

  private counts(): MemberCounts {
    const byRoute: Record<string, number> = {};
    const byRole: Record<string, number> = {};
    let connections = 0;
    for (const manager of this.registry.managers()) {
      connections++;
      const route = manager.labels?.[this.routeLabel] ?? NO_ROLE;
      const role = manager.labels?.[this.roleLabel] ?? NO_ROLE;
      byRoute[route] = (byRoute[route] ?? 0) + 1;
      byRole[role] = (byRole[role] ?? 0) + 1;
    }
    return { connections, byRoute, byRole };
  }

  private track(id: string, timeoutMs: number): Pending {
    const pending = new Pending();
    const timer = this.clock.setTimeout(() => pending.end(), timeoutMs);
    void pending.done.then(() => this.clock.clearTimeout(timer));
    this.pending.set(id, pending);
    return pending;
  }

  private untrack(id: string, pending: Pending): void {
    pending.end();
    this.pending.delete(id);
  }

  private nextId(): string {
    return `${this.nodeId}-${++this.seq}`;
  }

  private deadline(op: string, timeoutMs: number | undefined): number {
    return timeoutMs === undefined ? this.requestTimeoutMs : checkDeadline(`FleetNode.${op}`, 'timeoutMs', timeoutMs);
  }

  private serialise(data: unknown, op: string): string | undefined {
    try {
      const text = typeof data === 'string' ? data : JSON.stringify(data);
      if (text !== undefined) return text;
    } catch (error) {
      this.logger.error(`Fleet ${op} failed: data is not serialisable to JSON`, { nodeId: this.nodeId, op, error });
      return undefined;
    }
    this.logger.error(`Fleet ${op} failed: data is not serialisable to JSON`, { nodeId: this.nodeId, op, dataType: typeof data });
    return undefined;
  }

  private busError(op: string, error: unknown): void {
    this.lastBusError = error instanceof Error ? error.message : String(error);
    this.metrics?.busErrors.inc({ op });
    this.logger.debug('Fleet bus call failed', { nodeId: this.nodeId, op, error: this.lastBusError });
  }

  /** Records and logs the result of an operation, and returns it. */
  private done<R extends string>(op: string, result: R, meta: Record<string, unknown>): R {
    this.metrics?.operations.inc({ op, result });
    const fields = { nodeId: this.nodeId, op, result, ...meta };
    if (result === 'partial' || result === 'unknown') this.logger.warn('Fleet operation incomplete', fields);
    else this.logger.debug('Fleet operation', fields);
    return result;
  }

  /** {@link done} for a fan-out's result. */
  private fanDone(op: string, status: FleetBroadcastResult['status'], counts: Omit<FleetBroadcastResult, 'status'>): FleetBroadcastResult {
    return { status: this.done(op, status, counts), ...counts };
  }
}

/** Half of an operation's deadline: the send deadline of its recipients, so their node can answer in time. */
const half = (ms: number): number => Math.max(1, Math.floor(ms / 2));

function encode(header: Header, body: string): string {
  return `${JSON.stringify(header)}\n${body}`;
}

function decode(message: string): [Header, string] | null {
  const newline = message.indexOf('\n');
  if (newline < 0) return null;
  try {
    const header = JSON.parse(message.slice(0, newline)) as Header;
    return typeof header?.t === 'string' && typeof header.from === 'string' ? [header, message.slice(newline + 1)] : null;
  } catch {
    return null;
  }
}

/**
 * Joins this process's registry to the fleet: subscribes, writes its membership key, and
 * keeps both alive (they recover by themselves after a bus fault). Resolves once that was tried:
 * when the bus is down the node starts `unavailable` and joins when the bus comes back.
 * @throws {TypeError} When neither `bus` nor `redisUrl` (nor a registry) is given.
 * @throws {RangeError} For a bad `nodeId`, `prefix`, `membershipTtlMs` or `requestTimeoutMs`, naming it.
 */
export async function joinFleet(options: JoinFleetOptions): Promise<FleetNode> {
  if (typeof options?.registry?.managers !== 'function') {
    throw new TypeError('joinFleet: registry must be the ConnectionRegistry of this process');
  }
  if ((options.bus === undefined) === (options.redisUrl === undefined)) {
    throw new TypeError('joinFleet: give either bus (a FleetBus) or redisUrl (e.g. process.env.REDIS_URL), not both and not neither');
  }
  const requestTimeoutMs = checkDeadline('joinFleet', 'requestTimeoutMs', options.requestTimeoutMs ?? FLEET_DEFAULTS.requestTimeoutMs);
  const logger = options.logger ?? options.registry.logger;
  const bus = options.bus ?? new RedisBus({ url: options.redisUrl!, commandTimeoutMs: requestTimeoutMs, clock: options.clock, logger });
  let node: FleetNode;
  try {
    node = new FleetNode(options, bus, options.bus === undefined);
  } catch (error) {
    if (options.bus === undefined) await bus.close();
    throw error;
  }
  if (options.redisUrl !== undefined) logger.info('Joining the fleet', { nodeId: node.nodeId, redisUrl: redactRedisUrl(options.redisUrl) });
  await node.start();
  return node;
}
