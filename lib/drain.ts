/**
 * The rolling drain: a node that is going away closes its connections at its reconnect
 * budget's pace, not all in one instant, so their clients reconnect to the other nodes spread
 * out. And the check, at start-up, that the pace fits the shutdown timeout.
 */
import { pacerOf } from './close-pacer.js';
import { CloseCode, CloseReason } from './close-codes.js';
import type { Logger } from './logger.js';
import type { WebSocketTimeoutManager } from './manager.js';
import { ReconnectBudget } from './reconnect-budget.js';

/** Notices sent before the drain yields to the event loop. */
const NOTICE_BATCH = 100;

export interface DrainOptions {
  budget: ReconnectBudget;
  /**
   * Every close must have started this many ms from now (the shutdown timeout less the close
   * handshake's `closeTimeoutMs`). When the budget is too slow for that, the pace is raised to fit
   * and a warning is logged: a drain that outlives its deadline would cut the rest off at once.
   */
  withinMs: number;
  logger: Logger;
}

/**
 * Closes every open connection of `managers` at the budget's pace: each gets
 * `{"type":"reconnectAdvised","reason":"going_away","retryAfterMs":…}` now, then `1001
 * going_away` at its slot, the first the budget's `jitterMs` from now. Connections already
 * waiting for a lifetime close keep that slot.
 * Whatever is still open `withinMs` from now (a node running late, a lifetime slot past that
 * time) is closed then, at once, with a warning.
 * Resolves once every one has closed (each close is bounded by its `closeTimeoutMs`). Never rejects.
 */
export async function drainConnections(managers: Iterable<WebSocketTimeoutManager>, options: DrainOptions): Promise<void> {
  const { budget, withinMs, logger } = options;
  const open = Array.from(managers).filter((manager) => manager.state === 'open');
  if (open.length === 0) return;
  const clock = budget.clock;
  // The notices go out first, a burst at both ends: the first close comes a jitter allowance after
  // them, or the first closes would reach their clients late and together, behind the notices.
  const startAt = clock.now() + budget.jitterMs;
  const fitMs = Math.max(0, withinMs - budget.jitterMs) / open.length;
  const spacingMs = budget.spacingMs();
  const nodeRate = budget.nodeRate();
  if (spacingMs > fitMs) {
    logger.warn('Drain: the reconnect budget cannot close every connection within the shutdown timeout; closing faster', {
      connections: open.length,
      reconnectRate: budget.rate,
      nodeRate,
      neededRate: round(1000 / fitMs),
      withinMs,
    });
  } else {
    logger.info(`Draining ${open.length} connection(s)`, { connections: open.length, reconnectRate: budget.rate, nodeRate, drainMs: round(budget.jitterMs + open.length * spacingMs) });
  }
  const pacer = pacerOf(budget);
  const close = (manager: WebSocketTimeoutManager, at = clock.now()): void => {
    if (manager.state !== 'open') return;
    // closeAt: when the close was made, on the budget's clock (what its windows count).
    logger.debug('Drain: closing', { connectionId: manager.id, userId: manager.userId, ...manager.labels, closeAt: at });
    void manager.gracefulClose(CloseCode.GoingAway, CloseReason.going_away);
  };
  for (let start = 0; start < open.length; start += NOTICE_BATCH) {
    // Thousands of notices would hold the event loop (and the first closes) for a while: let I/O run between batches.
    if (start > 0) await new Promise<void>((resolve) => clock.afterIo(resolve));
    for (const manager of open.slice(start, start + NOTICE_BATCH)) {
      if (manager.state !== 'open') continue;
      pacer.schedule(manager, 'going_away', (at) => close(manager, at), fitMs, startAt);
    }
  }
  // An overloaded node runs late, and a connection waiting for a lifetime slot may have one past
  // the deadline: what is still open when the time for closes is up is closed at once.
  const lastCall = clock.setTimeout(() => {
    const left = open.filter((manager) => manager.state === 'open');
    if (left.length === 0) return;
    logger.warn('Drain: the time for closes is up, closing the remaining connections at once', { remaining: left.length, withinMs });
    for (const manager of left) close(manager);
  }, Math.max(0, withinMs));
  await Promise.all(open.map((manager) => manager.whenClosed()));
  clock.clearTimeout(lastCall);
}

export interface DrainBudgetInput {
  /** Connections the node is expected to hold at most (e.g. the gateway's `maxConnections`). */
  connections: number;
  /** Closes per second across the fleet (`WS_FLEET_RECONNECT_RATE`). */
  rate: number;
  /** Nodes sharing the rate. @default 1 */
  nodes?: number;
  /** The shutdown deadline, ms (`installGracefulShutdown`'s `timeoutMs`). @default 10_000 */
  timeoutMs?: number;
  /** How long the last close's handshake may take, ms (`WS_CLOSE_TIMEOUT`). @default 5_000 */
  closeTimeoutMs?: number;
  /** The budget's `jitterMs` (see `ReconnectBudgetOptions`). @default 250 */
  jitterMs?: number;
}

export interface DrainBudgetReport {
  /** Whether `connections` can be drained at the budget's pace within the timeout. */
  ok: boolean;
  connections: number;
  /** This node's share of the rate: closes per 1 s + `jitterMs`. */
  nodeRate: number;
  /** How long closing every connection at that pace takes, ms: `jitterMs` after the notices, then one close per spacing. */
  drainMs: number;
  /** The time the drain has: the shutdown timeout less one close handshake, ms. */
  availableMs: number;
  /** The share of the rate per node that would fit (closes per 1 s + `jitterMs`, as `nodeRate`). */
  neededRate: number;
  /** One sentence for the log, saying what to change when `ok` is false. */
  message: string;
}

/**
 * Whether a node with `connections` open can drain them at its share of `rate` within the
 * shutdown timeout. Call it at start-up and log the message when `ok` is false, so a config that
 * cannot drain in time is found before a deploy, not during one (the drain then closes faster
 * than the budget to meet its deadline).
 * @throws {RangeError} When a value is not a valid number (each is named).
 */
export function checkDrainBudget(input: DrainBudgetInput): DrainBudgetReport {
  const { connections, nodes = 1, timeoutMs = 10_000, closeTimeoutMs = 5_000 } = input;
  const count = (name: string, value: number, min: number): void => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
      throw new RangeError(`checkDrainBudget: ${name} must be a finite number >= ${min}, got ${String(value)}`);
    }
  };
  count('connections', connections, 0);
  count('nodes', nodes, 1);
  count('timeoutMs', timeoutMs, 0);
  count('closeTimeoutMs', closeTimeoutMs, 0);
  // The budget the node will drain with, so the arithmetic is its own.
  const budget = new ReconnectBudget({ rate: input.rate, nodes: () => nodes, jitterMs: input.jitterMs });
  const nodeRate = budget.nodeRate();
  // As drainConnections does it: the first close a jitter allowance after the notices.
  const drainMs = round(budget.jitterMs + connections * budget.spacingMs());
  const availableMs = Math.max(0, timeoutMs - closeTimeoutMs);
  const forCloses = availableMs - budget.jitterMs;
  const neededRate = forCloses <= 0 ? Infinity : round((connections / forCloses) * budget.windowMs());
  const ok = drainMs <= availableMs;
  const pace = `${round(nodeRate)} per ${budget.windowMs()} ms`;
  const message = ok
    ? `${connections} connection(s) drain in ${drainMs} ms at ${pace}, within the ${availableMs} ms the shutdown timeout leaves`
    : `${connections} connection(s) take ${drainMs} ms to drain at ${pace}, more than the ${availableMs} ms ` +
      `the shutdown timeout (${timeoutMs} ms) leaves after one close handshake (${closeTimeoutMs} ms): the drain would close ` +
      `faster than the budget; raise WS_FLEET_RECONNECT_RATE to at least ${Math.ceil(neededRate * Math.floor(nodes))}, ` +
      `raise the shutdown timeout, or lower the connections per node`;
  return { ok, connections, nodeRate, drainMs, availableMs, neededRate, message };
}

const round = (n: number): number => Math.round(n * 1000) / 1000;
