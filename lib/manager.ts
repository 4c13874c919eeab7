/**
 * `WebSocketTimeoutManager`: binds one server socket to its `ConnectionCore`. The rules (every
 * deadline, the ping phase, the close lifecycle's state) live in ./connection-core.ts; this
 * module does the I/O: socket listeners, the receive queue, sends, timers, logs and callbacks.
 * The core's fields are the manager's own (`initCore(this)`), so a connection is one object.
 */
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import {
  CloseCode,
  CloseReason,
  TIMEOUT_CLOSE_CODES,
  isSendableCloseCode,
  truncateCloseReason,
  type TimeoutReason,
} from './close-codes.js';
import { defaultTimeoutConfig, isTimeoutConfig, resolveTimeoutConfig, type TimeoutConfig } from './config.js';
import * as connection from './connection-core.js';
import { CoreState, initCore, type ConnectionCore } from './connection-core.js';
import { managerLogsConnections, type ConnectionObserver } from './connection-observer.js';
import { overDefaults, type WithDefaults } from './defaults.js';
import { defaultLogger, type Logger } from './logger.js';
import { pacerOf } from './close-pacer.js';
import type { ReconnectBudget } from './reconnect-budget.js';
import { sharedScheduler, type Scheduler } from './scheduler.js';
import { ReadyState, type ManagedSocket, type Message } from './socket.js';

/** How liveness is probed: protocol ping frames, or `"ping"`/`"pong"` text for peers that cannot see frames. */
export type HeartbeatMode = 'protocol' | 'application';

/**
 * What to do with a peer that reads too slowly — a send was not flushed within its deadline
 * (which includes any wait for `bufferedAmount` to fall to `maxBufferedBytes`): `'close'`
 * closes with 4003 `send_timeout`; `'refuse'` only makes that send resolve `false`.
 */
export type SlowConsumerPolicy = 'close' | 'refuse';

/** How `gracefulClose` ended: the peer answered, it had to be terminated, or it was already gone. */
export type CloseOutcome = 'closed' | 'terminated' | 'already_closed';

export interface ManagerOptions {
  /** Shown in every log line of this connection. */
  userId?: string;
  /** Connection id for logs. @default a process-unique `c<n>` */
  id?: string;
  /**
   * Log one line when the connection opens and one when it closes. A `ConnectionRegistry`'s
   * managers leave those lines to the registry, which logs them with the connection count.
   * @default true
   */
  logConnections?: boolean;
  /** Free-form labels (e.g. `{ role: 'speaker', route: '/ws/echo' }`), logged and used by metrics. */
  labels?: Record<string, string>;
  /** Overrides (ms) on top of the loaded `WS_*` config; a config from `loadTimeoutConfig` is used as is. */
  config?: Partial<TimeoutConfig>;
  /** The only source of time (inject a fake one in tests). @default systemClock */
  clock?: Clock;
  /** Where this connection's log lines go. @default the shared JSON winston logger (`defaultLogger()`) */
  logger?: Logger;
  /** @default 'protocol' */
  heartbeatMode?: HeartbeatMode;
  /** Messages held for `receiveWithTimeout` before the socket is paused (resumed once half are read). @default 1000 */
  maxQueuedMessages?: number;
  /**
   * While `bufferedAmount` exceeds this, further sends wait (in order, within their deadline)
   * until the peer has read enough; the socket never holds more than this plus one frame.
   * @default 1_048_576 (1 MiB)
   */
  maxBufferedBytes?: number;
  /** @default 'close' */
  slowConsumerPolicy?: SlowConsumerPolicy;
  /** Send the JSON `connectionTimeout` notice before an idle or lifetime close. @default true */
  timeoutNotice?: boolean;
  /** Up to this many ms are taken off each connection's lifetime at random, so a fleet does not reconnect at once. @default 0 */
  lifetimeJitterMs?: number;
  /** Send `{"type":"reconnectAdvised"}` this many ms before the lifetime close; 0 disables. @default 0 */
  reconnectNoticeMs?: number;
  /**
   * Paces lifetime closes: when the lifetime ends, the client gets `{"type":"reconnectAdvised",
   * "retryAfterMs":…}` at once and the 4002 close comes at its slot of this budget (share one
   * budget between every connection, e.g. through `ConnectionRegistry`'s `managerOptions`).
   * @default none // closed as soon as the lifetime ends
   */
  reconnectBudget?: ReconnectBudget;
  /** Random source for the jitter and a `'random'` ping phase, in [0, 1). @default Math.random */
  random?: () => number;
  /**
   * Where in the ping interval this connection's pings fall, as a fraction in [0, 1): the first
   * ping goes out `(1 - pingPhase) × pingIntervalMs` after connecting, and later pings keep that
   * phase even after a late tick. `'random'` draws it from `random`, so many sockets accepted
   * together do not all ping in the same tick (`ConnectionRegistry` sets it).
   * @default 0 // the first ping one full interval after connecting
   */
  pingPhase?: number | 'random';
  /** @internal the scheduler `start()` registers with (the registry's); default: one shared per clock and resolution */
  scheduler?: Scheduler;
  /** @internal told of timeouts, pongs and closes before the callbacks below (the registry's books) */
  observer?: ConnectionObserver;
  /**
   * When set, messages go to this callback instead of the receive queue
   * (then `receiveWithTimeout` only ever resolves `null`).
   */
  onMessage?: (message: Message, manager: WebSocketTimeoutManager) => void;
  /** Told why the manager is ending the connection, before the close starts. */
  onTimeout?: (reason: TimeoutReason, manager: WebSocketTimeoutManager) => void;
  /** Told once the socket has closed, whoever closed it. */
  onClose?: (code: number, reason: string, manager: WebSocketTimeoutManager) => void;
  /** Told the round-trip time (ms) of every answered ping (for metrics). */
  onPong?: (rttMs: number, manager: WebSocketTimeoutManager) => void;
  /** Told each time the shared scheduler checks this connection's deadlines (for metrics). */
  onCheck?: (manager: WebSocketTimeoutManager) => void;
}

/** The defaults of {@link ManagerOptions}, declared once: each `@default` above names the same value. */
const MANAGER_DEFAULTS = Object.freeze({
  logConnections: true,
  clock: systemClock,
  heartbeatMode: 'protocol',
  maxQueuedMessages: 1000,
  maxBufferedBytes: 1_048_576,
  slowConsumerPolicy: 'close',
  timeoutNotice: true,
  lifetimeJitterMs: 0,
  reconnectNoticeMs: 0,
  random: Math.random,
  pingPhase: 0,
} satisfies ManagerOptions);

/**
 * Everything a manager reads from its options, defaults merged, config resolved and scheduler
 * chosen: kept in one object, so a registry's managers share it and each manager holds one link.
 */
type ResolvedOptions = Readonly<
  WithDefaults<ManagerOptions, typeof MANAGER_DEFAULTS> & { config: TimeoutConfig; logger: Logger; scheduler: Scheduler }
>;

/** Frozen options objects resolved so far: a registry's one object, shared by every manager, stays one object. */
const resolvedShared = new WeakMap<ManagerOptions, ResolvedOptions>();

/** `options` over {@link MANAGER_DEFAULTS}; a frozen object is resolved once, whatever the number of managers. */
function resolveOptions(options: ManagerOptions): ResolvedOptions {
  if (!Object.isFrozen(options)) return resolve(options);
  let resolved = resolvedShared.get(options);
  if (resolved === undefined) resolvedShared.set(options, (resolved = resolve(options)));
  return resolved;
}

/**
 * The prototype of every resolved options object: it holds the defaults, so each object holds
 * only the options given. A copy of every key per connection (`{ ...defaults, ...options }`)
 * also got a hidden class of its own, about 600 B for each connection that passes its own
 * options object (bench/heap-breakdown.ts --mode manual). Never frozen: a frozen prototype's
 * properties could not be shadowed by assignment.
 */
const RESOLVED_DEFAULTS: typeof MANAGER_DEFAULTS = Object.assign({}, MANAGER_DEFAULTS);

function resolve(options: ManagerOptions): ResolvedOptions {
  const merged = overDefaults(RESOLVED_DEFAULTS, options);
  const config = isTimeoutConfig(options.config) ? options.config : resolveTimeoutConfig(defaultTimeoutConfig(), options.config);
  return Object.freeze(
    Object.assign(merged, {
      config,
      logger: options.logger ?? defaultLogger(),
      scheduler: options.scheduler ?? sharedScheduler(merged.clock, config.resolutionMs),
    }),
  );
}

type Resolve = (message: Message | null) => void;
/** A `receiveWithTimeout` call waiting behind the oldest one. */
type Waiter = { resolve: Resolve; deadline: number };
/** A waiting receive's deadline when it has none (`Infinity`). */
const NO_DEADLINE = -1;
/** A send waiting for room under `maxBufferedBytes`, or handed to the socket and not yet flushed. */
type Send = { text: string; timeoutMs: number; resolve: (sent: boolean) => void; timer: TimerHandle; settled: boolean };

/**
 * The receive and send queues and the close lifecycle's I/O, allocated on first use: a socket
 * served by `onMessage` that never waits for room under `maxBufferedBytes` pays for none of it
 * until it closes, and holds one field for all of it. The common case, one
 * receive waiting and nothing queued, holds five fields and no array: an array keeps the
 * backing store it grew (17 slots, about 150 B) after it is emptied, so emptied arrays are dropped.
 */
interface IoState {
  /** Messages no `receiveWithTimeout` has taken yet; null when none. */
  messages: Message[] | null;
  /** The oldest waiting `receiveWithTimeout` call; null when none waits. */
  resolve: Resolve | null;
  /**
   * Its deadline, in ms after the connection was accepted (a small integer, which V8 keeps
   * unboxed, where an epoch time would cost a heap number), or {@link NO_DEADLINE}.
   */
  deadline: number;
  /** Resolves the earliest receive deadline at its time, once it is within two ticks (see `scheduleCheck`). */
  timer: TimerHandle;
  /** The rest, allocated on first use: one waiting receive never needs it. */
  extras: IoExtras | null;
}

/** The I/O state a socket in the manual loop seldom needs. */
interface IoExtras {
  /** The receives waiting behind the oldest, oldest first; null when at most one waits. */
  waiters: Waiter[] | null;
  /** Sends waiting for `bufferedAmount` to fall to `maxBufferedBytes`, oldest first; null when none. */
  sends: Send[] | null;
  /** The socket was paused because `messages` reached `maxQueuedMessages`. */
  paused: boolean;
  /** Allocated by `gracefulClose`, a bounded closing handshake or `whenClosed`. */
  closing: Closing | null;
}

/** The I/O of the close lifecycle. */
interface Closing {
  /** `gracefulClose`'s one promise; null until it is called. */
  outcome: Promise<CloseOutcome> | null;
  finish: ((outcome: CloseOutcome) => void) | null;
  /** Terminates a closing handshake that outlives `closeTimeoutMs`. */
  timer: TimerHandle;
  signal: Promise<void> | null;
  resolveSignal: (() => void) | null;
}

const MANAGER = Symbol('ws-timeouts.manager');
const SOCKET_CLOSE = Symbol('ws-timeouts.socketClose');
const SOCKET_EMIT = Symbol('ws-timeouts.socketEmit');
type Emit = (event: string | symbol, ...args: unknown[]) => boolean;
type Tagged = ManagedSocket & {
  emit?: Emit;
  listenerCount?: (event: string) => number;
  [MANAGER]?: WebSocketTimeoutManager;
  [SOCKET_CLOSE]?: ManagedSocket['close'];
  [SOCKET_EMIT]?: Emit;
};

/**
 * Stands in for the socket's own `emit()` while a manager wraps it: the manager hears
 * 'message', 'pong', 'close' and 'error' first, then the socket's listeners do. Four listeners
 * would each take a slot in the socket's event table, about 200 B per connection — as much as
 * the manager itself (bench/heap-breakdown.ts); one shared function costs one property.
 */
function emitToManager(this: Tagged, event: string | symbol, a?: unknown, b?: unknown): boolean {
  // Looked up first: a 'close' unwraps the socket.
  const emit: Emit = this[SOCKET_EMIT] ?? Object.getPrototypeOf(this).emit;
  const manager = this[MANAGER];
  if (manager !== undefined) {
    if (event === 'message') manager.handleMessage(a as Buffer, b as boolean);
    else if (event === 'pong') manager.handlePong();
    else if (event === 'close') manager.handleClose(a as number, b as Buffer);
    else if (event === 'error') {
      manager.handleError(a as Error);
      // The manager listens: an error with no other listener must not throw, as it would in emit().
      if (this.listenerCount!('error') === 0) return true;
    }
  }
  // Forwarded with the arguments it got, and without a rest array on every message.
  switch (arguments.length) {
    case 1:
      return emit.call(this, event);
    case 2:
      return emit.call(this, event, a);
    case 3:
      return emit.call(this, event, a, b);
    default:
      return emit.apply(this, arguments as unknown as [string, ...unknown[]]);
  }
}

// Sockets without an `emit()` (a `ManagedSocket` of the user's own) get listeners instead:
// shared by every socket, they find their manager through a symbol on the socket.
function onSocketMessage(this: Tagged, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
  this[MANAGER]?.handleMessage(data, isBinary);
}
function onSocketPong(this: Tagged): void {
  this[MANAGER]?.handlePong();
}
function onSocketClose(this: Tagged, code: number, reason: Buffer): void {
  this[MANAGER]?.handleClose(code, reason);
}
function onSocketError(this: Tagged, err: Error): void {
  this[MANAGER]?.handleError(err);
}

/**
 * Hooks `ws` up to `manager`: its `close()` (see {@link closeAndBound}) and its events. The
 * socket's own `close()` and `emit()` are kept aside only when they are its own properties;
 * usually they are its class's methods, found again on its prototype (two properties fewer per socket).
 */
function wrapSocket(ws: Tagged, manager: WebSocketTimeoutManager): void {
  ws[MANAGER] = manager;
  if (ws.close !== closeAndBound) {
    if (Object.hasOwn(ws, 'close')) ws[SOCKET_CLOSE] = ws.close;
    ws.close = closeAndBound;
  }
  if (ws.emit === emitToManager) return;
  if (typeof ws.emit === 'function' && typeof ws.listenerCount === 'function') {
    if (Object.hasOwn(ws, 'emit')) ws[SOCKET_EMIT] = ws.emit;
    ws.emit = emitToManager;
    return;
  }
  ws.on('message', onSocketMessage);
  ws.on('pong', onSocketPong);
  ws.on('close', onSocketClose);
  ws.on('error', onSocketError);
}

/** Gives `ws` back its own `close()` and `emit()` (or removes the listeners). */
function unwrapSocket(ws: Tagged): void {
  delete ws[MANAGER];
  restore(ws, 'close', closeAndBound, SOCKET_CLOSE);
  if (ws.emit === emitToManager) return restore(ws, 'emit', emitToManager, SOCKET_EMIT);
  ws.off('message', onSocketMessage);
  ws.off('pong', onSocketPong);
  ws.off('close', onSocketClose);
  ws.off('error', onSocketError);
}

function restore(ws: Tagged, name: 'close' | 'emit', wrapper: unknown, saved: typeof SOCKET_CLOSE | typeof SOCKET_EMIT): void {
  const socket = ws as unknown as Record<string | symbol, unknown>;
  if (socket[name] !== wrapper) return;
  delete socket[name];
  if (!Object.hasOwn(socket, saved)) return; // its class's method shows through again
  socket[name] = socket[saved];
  delete socket[saved];
}

/**
 * Stands in for the socket's own `close()` while a manager wraps it. `ws` emits nothing when the
 * peer's close frame arrives: it answers by calling `close()` on itself, and then waits 30 s
 * (its own `closeTimeout`) for the peer to end the connection. Seeing every `close()` lets the
 * manager bound each closing handshake, whoever started it, by `closeTimeoutMs`.
 */
function closeAndBound(this: Tagged, code?: number, reason?: string | Buffer): void {
  try {
    (this[SOCKET_CLOSE] ?? (Object.getPrototypeOf(this).close as ManagedSocket['close'])).call(this, code, reason);
  } finally {
    this[MANAGER]?.handleClosing();
  }
}

/**
 * Off: not started, or stopped. On: `start()` was called; each check finds what is due and
 * schedules the next. Ended: a timeout was judged (or a ping could not be sent): no more checks,
 * and `start()` does not judge the connection again while its close is under way.
 */
const Enforcement = Object.freeze({ Off: 0, On: 1, Ended: 2 } as const);
type EnforcementValue = (typeof Enforcement)[keyof typeof Enforcement];

/** `new Promise(captureResolve)` hands out its resolve in `captured`, without an executor closure per call. */
let captured: unknown = null;
function captureResolve(resolve: unknown): void {
  captured = resolve;
}

let nextConnectionSeq = 0;
const noop = (): void => undefined;

export class WebSocketTimeoutManager {
  readonly ws: ManagedSocket;
  private readonly options: ResolvedOptions;
  /**
   * This connection's sequence number (its default id) times 4, plus its {@link Enforcement}:
   * one small integer for both, a field fewer on every connection.
   */
  private seqAndEnforcement: number;
  private io: IoState | null = null;
  // The scheduler's intrusive links (lib/scheduler.ts). Declared as class fields: V8 sizes an
  // object by the fields its class declares and its constructor assigns, and only then do the
  // core's fields (written by initCore) fit in the object too rather than spill into a separate
  // property array, about 40 B more per connection (bench:heap shows it as 'hidden').
  /** @internal */ schedulerNext = null;
  /** @internal */ schedulerPrev = null;
  /** @internal */ schedulerDueTick = -1;

  /**
   * @param options Options, or just the user id: `new WebSocketTimeoutManager(ws, 'user-1')`.
   * @throws {TypeError} When `options` is neither an options object nor a string.
   */
  constructor(ws: ManagedSocket, options: ManagerOptions | string = {}) {
    if (typeof options === 'string') options = { userId: options };
    else if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new TypeError(
        `WebSocketTimeoutManager: the second argument must be an options object (e.g. { userId, config }) or a user id string, got ${
          options === null ? 'null' : Array.isArray(options) ? 'an array' : `${typeof options} ${String(options)}`
        }`,
      );
    }
    this.ws = ws;
    const resolved = (this.options = resolveOptions(options));
    this.seqAndEnforcement = ++nextConnectionSeq * 4 + Enforcement.Off;
    // The connection's core lives in this object's own fields: one object per connection, not two.
    initCore(this, resolved.clock.now(), jitteredLifetime(resolved), pingOffset(resolved), resolved.reconnectNoticeMs);

    wrapSocket(ws, this);
    if (ws.readyState === ReadyState.CLOSED) this.handleClose(1006, Buffer.alloc(0));
    else if (managerLogsConnections(resolved)) this.logger.info('WebSocket connected', this.logMeta());
  }

  /** @internal the rules of this connection: what the registry's snapshot and cleanup ask */
  get core(): ConnectionCore {
    return this as unknown as ConnectionCore;
  }

  /** Connection id used in logs. */
  get id(): string {
    return this.options.id ?? `c${Math.floor(this.seqAndEnforcement / 4)}`;
  }

  /** Shown in every log line of this connection. */
  get userId(): string | undefined {
    return this.options.userId;
  }

  /** Free-form labels (e.g. `{ role: 'speaker' }`) for metrics and the registry. */
  get labels(): Record<string, string> | undefined {
    return this.options.labels;
  }

  /** The resolved timeout config (ms) this connection runs on. */
  get config(): TimeoutConfig {
    return this.options.config;
  }

  get state(): 'open' | 'closing' | 'closed' {
    const state = this.core.current;
    if (state === CoreState.Closed) return 'closed';
    return state === CoreState.Closing || this.ws.readyState === ReadyState.CLOSING ? 'closing' : 'open';
  }

  /** When the connection was accepted, ms since the epoch. */
  get connectedAt(): number {
    return connection.connectedAt(this.core);
  }

  /** Last inbound or outbound application message, ms since the epoch. Ping/pong never move it. */
  get lastActivityAt(): number {
    return connection.lastActivityAt(this.core);
  }

  /** When the last ping went out, ms since the epoch. */
  get lastPingAt(): number {
    return connection.lastPingAt(this.core);
  }

  /** When the ping now awaiting its pong went out, ms since the epoch; -1 when none is outstanding. */
  get pingOutstandingSince(): number {
    return connection.pingOutstandingSince(this.core);
  }

  /** When the last pong arrived, ms since the epoch; -1 before the first. */
  get lastPongAt(): number {
    return connection.lastPongAt(this.core);
  }

  /** Round-trip time of the last answered ping, ms; -1 before the first. */
  get lastRttMs(): number {
    return this.core.rttMs;
  }

  /** Exponentially smoothed round-trip time, ms; -1 before the first. */
  get smoothedRttMs(): number {
    return connection.smoothedRttMs(this.core);
  }

  /** This connection's lifetime (`connectionTimeoutMs` minus its jitter), ms; 0 is unlimited. */
  get lifetimeMs(): number {
    return this.core.lifetime;
  }

  /** When the reconnect notice is due, ms since the epoch; -1 when it is off or was sent. */
  get reconnectNoticeAt(): number {
    return connection.reconnectNoticeAt(this.core);
  }

  /** Messages waiting for `receiveWithTimeout`. */
  get queuedMessages(): number {
    return this.io?.messages?.length ?? 0;
  }

  private get clock(): Clock {
    return this.options.clock;
  }

  private get logger(): Logger {
    return this.options.logger;
  }

  /** Whether the scheduler judges this connection's deadlines. */
  private get enforcement(): EnforcementValue {
    return (this.seqAndEnforcement % 4) as EnforcementValue;
  }

  private set enforcement(value: EnforcementValue) {
    this.seqAndEnforcement += value - this.enforcement;
  }

  /** `gracefulClose` was called (whether or not the connection has closed since). */
  private get closeRequested(): boolean {
    return this.io?.extras?.closing?.outcome != null;
  }

  private get closed(): boolean {
    return this.core.current === CoreState.Closed;
  }

  private ioState(): IoState {
    return (this.io ??= { messages: null, resolve: null, deadline: NO_DEADLINE, timer: undefined, extras: null });
  }

  private ioExtras(): IoExtras {
    return (this.ioState().extras ??= { waiters: null, sends: null, paused: false, closing: null });
  }

  // ---------------------------------------------------------------- receiving

  /**
   * The next message (string for text, Buffer for binary), or `null` when `timeoutMs` passes
   * first or the connection is closed. Messages that arrived earlier are queued, never lost.
   * @param timeoutMs @default config.heartbeatIntervalMs; `Infinity` waits until a message or close
   */
  receiveWithTimeout(timeoutMs: number = this.config.heartbeatIntervalMs): Promise<Message | null> {
    checkTimeout('timeoutMs', timeoutMs);
    const messages = this.io?.messages;
    if (messages != null) {
      const queued = messages.shift()!;
      if (messages.length === 0) this.io!.messages = null;
      this.resumeIfDrained();
      return Promise.resolve(queued);
    }
    if (this.closed) return Promise.resolve(null);
    const promise = new Promise<Message | null>(captureResolve);
    const resolve = captured as Resolve;
    captured = null; // holds no settled promise alive
    // Rounded up: a receive never times out early.
    const now = this.clock.now();
    const deadline = timeoutMs === Infinity ? NO_DEADLINE : Math.ceil(connection.age(this.core, now) + timeoutMs);
    const queues = this.ioState();
    if (queues.resolve === null) {
      queues.resolve = resolve;
      queues.deadline = deadline;
    } else {
      (this.ioExtras().waiters ??= []).push({ resolve, deadline });
    }
    if (deadline !== NO_DEADLINE) this.scheduleCheck(now);
    return promise;
  }

  /** The earliest deadline of the waiting receives (epoch ms), or -1 when none has one. */
  private receiveDeadlineAt(): number {
    const queues = this.io;
    if (queues === null || queues.resolve === null) return -1;
    let earliest = queues.deadline === NO_DEADLINE ? Infinity : queues.deadline;
    const waiters = queues.extras?.waiters;
    if (waiters != null) for (const w of waiters) if (w.deadline !== NO_DEADLINE && w.deadline < earliest) earliest = w.deadline;
    return earliest === Infinity ? -1 : connection.connectedAt(this.core) + earliest;
  }

  /** Takes the oldest waiting receive off the queue (the next one moves up), or null when none waits. */
  private takeWaiter(): Resolve | null {
    const queues = this.io;
    if (queues === null || queues.resolve === null) return null;
    const resolve = queues.resolve;
    const extras = queues.extras;
    const next = extras?.waiters?.shift();
    queues.resolve = next?.resolve ?? null;
    queues.deadline = next?.deadline ?? NO_DEADLINE;
    if (extras?.waiters?.length === 0) extras.waiters = null;
    return resolve;
  }

  /** Resolves with `null` every waiting receive whose deadline has passed by `now`. */
  private expireReceives(now: number): void {
    const queues = this.io;
    if (queues === null || queues.resolve === null) return;
    const age = connection.age(this.core, now);
    const extras = queues.extras;
    const waiters = extras?.waiters ?? null;
    if (waiters !== null) {
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i]!;
        if (w.deadline !== NO_DEADLINE && age >= w.deadline) {
          waiters.splice(i, 1);
          w.resolve(null);
        }
      }
      if (waiters.length === 0) extras!.waiters = null;
    }
    if (queues.deadline !== NO_DEADLINE && age >= queues.deadline) this.takeWaiter()!(null);
  }

  /** Yields every message until the connection closes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    for (;;) {
      const message = await this.receiveWithTimeout(Infinity);
      if (message === null) return;
      yield message;
    }
  }

  /** @internal called by the socket's 'message' listener */
  handleMessage(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    const message: Message = isBinary ? toBuffer(data) : data.toString();
    if (this.options.heartbeatMode === 'application' && !isBinary) {
      if (message === 'pong') return this.handlePong();
      if (message === 'ping') return void this.trySend('pong');
    }
    connection.activity(this.core, this.clock.now());
    // The scheduler may still hold the receive's deadline: that check finds nothing due.
    const waiter = this.takeWaiter();
    if (waiter !== null) {
      waiter(message);
    } else if (this.options.onMessage) {
      this.options.onMessage(message, this);
    } else {
      const queues = this.ioState();
      const messages = (queues.messages ??= []);
      messages.push(message);
      if (messages.length >= this.options.maxQueuedMessages && this.ws.pause && !queues.extras?.paused) {
        // Backpressure: stop reading from the peer rather than let the queue grow.
        this.ioExtras().paused = true;
        this.ws.pause();
      }
    }
  }

  private resumeIfDrained(): void {
    const queues = this.io!;
    if (queues.extras?.paused && (queues.messages?.length ?? 0) <= this.options.maxQueuedMessages / 2) {
      queues.extras.paused = false;
      this.ws.resume?.();
    }
  }

  // ---------------------------------------------------------------- sending

  /**
   * Sends `data` as JSON. Resolves `true` once the frame is handed to the OS within
   * `timeoutMs`; `false` on deadline, closed socket, unserialisable data or send error. Never rejects.
   * While `bufferedAmount` is over `maxBufferedBytes` the send waits its turn (in order, within
   * the same deadline) instead of growing the socket's buffer.
   * @param timeoutMs @default config.messageTimeoutMs
   */
  sendJsonWithTimeout(data: unknown, timeoutMs?: number): Promise<boolean> {
    let text: string | undefined;
    try {
      text = JSON.stringify(data);
    } catch (err) {
      this.logger.error('WebSocket send failed: data is not serialisable to JSON', this.logMeta({ error: err }));
    }
    if (text === undefined) return Promise.resolve(false);
    return this.sendTextWithTimeout(text, timeoutMs);
  }

  /** Sends a text frame; same contract as {@link sendJsonWithTimeout}. */
  sendTextWithTimeout(text: string, timeoutMs: number = this.config.messageTimeoutMs): Promise<boolean> {
    checkTimeout('timeoutMs', timeoutMs);
    if (this.core.current !== CoreState.Open || this.ws.readyState !== ReadyState.OPEN) return Promise.resolve(false);
    connection.activity(this.core, this.clock.now());
    const promise = new Promise<boolean>(captureResolve);
    const send: Send = { text, timeoutMs, resolve: captured as Send['resolve'], timer: undefined, settled: false };
    captured = null;
    if (this.waitingSends() === null && this.ws.bufferedAmount <= this.options.maxBufferedBytes) {
      this.write(send);
    } else {
      // A burst over the limit is not yet a slow consumer: a peer that reads drains it within the
      // deadline. Until then the text waits here (a broadcast's one string is shared by every
      // recipient), so the socket holds at most the limit plus one frame.
      (this.ioExtras().sends ??= []).push(send);
      this.startDeadline(send);
    }
    return promise;
  }

  private waitingSends(): Send[] | null {
    return this.io?.extras?.sends ?? null;
  }

  private write(send: Send): void {
    const done = (err?: Error | null): void => {
      if (err && !send.settled) this.logger.warn('WebSocket send failed', this.logMeta({ error: err }));
      this.settle(send, !err);
      if (this.waitingSends() !== null) this.sendWaiting();
    };
    try {
      this.ws.send(send.text, done);
    } catch (err) {
      done(err as Error);
    }
    // Nothing left buffered: the frame is already with the OS and its callback follows on
    // the next tick, so no deadline can be missed. Only a frame still queued needs a timer
    // (a Node timer per send is a measurable share of a small echo: bench/, figure 1).
    // An empty frame is excluded because the testing double counts payload bytes only.
    if (send.settled || send.timer !== undefined || (this.ws.bufferedAmount === 0 && send.text.length > 0)) return;
    this.startDeadline(send);
  }

  /** The deadline covers the wait for room under the limit and the flush: a peer that misses it reads too slowly. */
  private startDeadline(send: Send): void {
    send.timer = this.clock.setTimeout(() => {
      if (send.settled) return;
      this.settle(send, false);
      const waiting = this.waitingSends();
      const i = waiting?.indexOf(send) ?? -1;
      if (i >= 0) waiting!.splice(i, 1);
      const ending = this.closeRequested || this.closed;
      if (!ending) {
        this.slowConsumer({
          messageTimeoutMs: send.timeoutMs,
          bufferedAmount: this.ws.bufferedAmount,
          maxBufferedBytes: this.options.maxBufferedBytes,
          waitingSends: waiting?.length ?? 0,
        });
      }
      // Once the connection is closing, the sends behind this one can never go out.
      if (this.closeRequested || this.closed || this.waitingSends()?.length === 0) this.failWaiting();
    }, send.timeoutMs);
  }

  private settle(send: Send, sent: boolean): void {
    if (send.settled) return;
    send.settled = true;
    // Most sends never needed a deadline timer (see `write`).
    if (send.timer !== undefined) this.clock.clearTimeout(send.timer);
    send.resolve(sent);
  }

  /** Hands waiting sends to the socket, in order, while it holds no more than the limit. */
  private sendWaiting(): void {
    const waiting = this.waitingSends();
    if (waiting === null) return;
    if (this.core.current !== CoreState.Open || this.ws.readyState !== ReadyState.OPEN) return this.failWaiting();
    while (waiting.length > 0 && this.ws.bufferedAmount <= this.options.maxBufferedBytes) this.write(waiting.shift()!);
    const extras = this.io!.extras!;
    if (waiting.length === 0 && extras.sends === waiting) extras.sends = null;
  }

  /** Waiting sends can no longer go out (the connection is closing or closed): each resolves `false` now. */
  private failWaiting(): void {
    const extras = this.io?.extras;
    if (extras == null) return;
    const waiting = extras.sends?.splice(0) ?? [];
    extras.sends = null;
    for (const send of waiting) this.settle(send, false);
  }

  /** Fire-and-forget send for notices and heartbeat text; false when it could not be queued. */
  private trySend(text: string): boolean {
    if (this.ws.readyState !== ReadyState.OPEN) return false;
    try {
      this.ws.send(text, this.waitingSends() === null ? noop : () => this.sendWaiting());
      return true;
    } catch {
      return false;
    }
  }

  private slowConsumer(meta: Record<string, unknown>): void {
    this.logger.warn('WebSocket slow consumer', this.logMeta({ reason: 'send_timeout', cause: 'send_deadline', ...meta }));
    if (this.options.slowConsumerPolicy === 'close' && !this.closeRequested && !this.closed) {
      this.notifyTimeout('send_timeout');
      void this.gracefulClose(CloseCode.SendTimeout, CloseReason.send_timeout);
    }
  }

  // ---------------------------------------------------------------- activity and deadlines

  /** Marks application activity now (inbound and outbound messages do this by themselves). */
  updateActivity(): void {
    connection.activity(this.core, this.clock.now());
  }

  /** No application message for `idleTimeoutMs` (always false when idle is disabled). */
  isIdle(): boolean {
    return connection.isIdle(this.core, this.clock.now());
  }

  /** A ping has gone unanswered for `pongTimeoutMs`. */
  isPongTimeout(): boolean {
    return connection.isPongOverdue(this.core, this.clock.now());
  }

  /** No ping is outstanding and `pingIntervalMs` has passed since the last one. */
  shouldPing(): boolean {
    return connection.shouldPing(this.core, this.clock.now());
  }

  /** Milliseconds since the connection was accepted. */
  connectionAge(): number {
    return connection.age(this.core, this.clock.now());
  }

  /** The connection has lived `connectionTimeoutMs` (minus its jitter); false when disabled. */
  isConnectionTimeout(): boolean {
    return connection.isLifetimeOver(this.core, this.clock.now());
  }

  /**
   * One heartbeat step for the manual loop: terminates a peer whose pong is overdue, pings when
   * due. Resolves `false` once the peer is gone, `true` while the connection is usable.
   */
  async handleHeartbeat(): Promise<boolean> {
    if (this.core.current !== CoreState.Open || this.ws.readyState !== ReadyState.OPEN) return false;
    const now = this.clock.now();
    if (connection.isPongOverdue(this.core, now)) {
      this.expire('pong_timeout');
      return false;
    }
    if (!connection.shouldPing(this.core, now)) return true;
    connection.pingSent(this.core, now);
    return this.sendPing();
  }

  private sendPing(): boolean {
    if (this.options.heartbeatMode === 'application') return this.trySend('ping');
    try {
      this.ws.ping();
      return true;
    } catch (err) {
      this.logger.warn('WebSocket ping failed', this.logMeta({ error: err }));
      return false;
    }
  }

  /** @internal a pong frame (or `"pong"` text in application mode) arrived */
  handlePong(): void {
    const rtt = connection.pongReceived(this.core, this.clock.now());
    if (rtt < 0) return;
    // The check waited for the pong deadline; now it is the next ping (or an earlier deadline).
    this.scheduleCheck();
    const { observer, onPong } = this.options;
    if (!(observer?.pong || onPong)) return;
    try {
      observer?.pong?.(this, rtt);
      onPong?.(rtt, this);
    } catch (err) {
      this.logger.error('onPong callback threw', this.logMeta({ error: err }));
    }
  }

  // ---------------------------------------------------------------- automatic mode

  /**
   * Enforces idle, lifetime and pong timeouts (and sends pings) by itself, on the shared
   * scheduler: on expiry the notice is sent, the socket closed with its code and `onTimeout` told.
   */
  start(): this {
    if (this.core.current !== CoreState.Open || this.enforcement !== Enforcement.Off) return this;
    this.enforcement = Enforcement.On;
    this.scheduleCheck();
    return this;
  }

  /** Stops automatic enforcement; the manual methods keep working. */
  stop(): void {
    if (this.enforcement === Enforcement.Off) return;
    this.enforcement = Enforcement.Off;
    this.scheduleCheck();
  }

  /**
   * Has the scheduler call `onDue` by the next deadline: the connection's own (while enforcing),
   * or two ticks before the earliest receive deadline (one tick of margin for a late tick). A
   * receive is resolved at its deadline by a timer armed only then: a Node timer per
   * `receiveWithTimeout` costs each waiting socket about 250 B (bench/heap-breakdown.ts --mode
   * manual), and a receive that the scheduler resolved would wait for the next whole tick. A
   * timeout shorter than two ticks gets its timer at once. The connection's own deadlines are
   * judged at their time too (`scheduleExact`), all but the next ping: pings wait for a whole
   * tick, where the pings of many sockets go out together.
   * @param now the time, when the caller has just read it: one clock read fewer per receive
   */
  private scheduleCheck(now?: number): void {
    const scheduler = this.options.scheduler;
    let wakeAt = Infinity;
    const receiveAt = this.receiveDeadlineAt();
    if (receiveAt >= 0) {
      const lead = 2 * scheduler.resolutionMs;
      if (receiveAt - (now ?? this.clock.now()) <= lead) this.armReceiveTimer(receiveAt);
      else wakeAt = receiveAt - lead;
    }
    // A callback may have stopped enforcement during this check.
    if (this.enforcement === Enforcement.On) {
      const at = connection.nextCheckAt(this.core);
      if (at <= wakeAt) return at === connection.nextPingAt(this.core) ? scheduler.schedule(this, at) : scheduler.scheduleExact(this, at);
    }
    if (wakeAt !== Infinity) scheduler.schedule(this, wakeAt);
    else scheduler.cancel(this);
  }

  private armReceiveTimer(at: number): void {
    const queues = this.io!;
    this.clock.clearTimeout(queues.timer);
    queues.timer = this.clock.setTimeout(() => {
      queues.timer = undefined;
      this.expireReceives(this.clock.now());
      this.scheduleCheck();
    }, at - this.clock.now());
  }

  /** @internal called by the scheduler when a deadline may have passed */
  onDue(now: number, stalled: boolean): void {
    // Read again: the tick's time may be a slice of work old.
    if (this.io?.resolve) this.expireReceives(this.clock.now());
    const core = this.core;
    if (this.enforcement !== Enforcement.On || core.current !== CoreState.Open) return this.scheduleCheck();
    // Closing without a close() the manager saw (e.g. ws got the peer's FIN): no verdict on a
    // connection that is already ending, only the bound on its end.
    if (this.ws.readyState === ReadyState.CLOSING) return this.handleClosing();
    if (this.options.onCheck) {
      try {
        this.options.onCheck(this);
      } catch (err) {
        // Never let a metrics callback stop this socket's enforcement.
        this.logger.error('onCheck callback threw', this.logMeta({ error: err }));
      }
    }
    for (let verdict = connection.due(core, now, stalled); verdict !== null; verdict = connection.due(core, now, stalled)) {
      if (verdict === 'ping') {
        connection.pingSent(core, now, true);
        if (!this.sendPing()) return this.endEnforcement();
        break; // the last verdict in precedence: nothing else can be due at this `now`
      } else if (verdict === 'reconnect_notice') {
        connection.reconnectNoticeSent(core);
        this.trySend(
          JSON.stringify({
            type: 'reconnectAdvised',
            reason: 'max_lifetime',
            closeInSeconds: (connection.connectedAt(core) + core.lifetime - now) / 1000,
            timestamp: now,
          }),
        );
      } else {
        this.expire(verdict);
        return this.endEnforcement();
      }
    }
    this.scheduleCheck();
  }

  /** No more verdicts for this connection; waiting receives still time out. */
  private endEnforcement(): void {
    if (this.enforcement === Enforcement.On) this.enforcement = Enforcement.Ended;
    this.scheduleCheck();
  }

  private expire(reason: Exclude<TimeoutReason, 'send_timeout'>): void {
    this.logger.warn('WebSocket timeout', this.logMeta({ reason, ...this.timeoutMeta(reason) }));
    this.notifyTimeout(reason);
    if (reason === 'pong_timeout') {
      // A peer that stopped answering pings gets no close frame: it would never read it.
      this.terminate();
      return;
    }
    const close = (): void => {
      if (this.options.timeoutNotice) this.sendTimeoutNotice(reason);
      void this.gracefulClose(TIMEOUT_CLOSE_CODES[reason], CloseReason[reason]);
    };
    if (reason === 'max_lifetime' && this.options.reconnectBudget) pacerOf(this.options.reconnectBudget).schedule(this, reason, close);
    else close();
  }

  /** Best effort (the close follows at once), but a notice the peer never got is logged. */
  private sendTimeoutNotice(reason: 'idle' | 'max_lifetime'): void {
    const logFailure = (error?: Error | null): void => {
      if (error) this.logger.warn('Timeout notice not sent', this.logMeta({ reason, error }));
    };
    try {
      this.ws.send(JSON.stringify(this.timeoutNotice(reason)), logFailure);
    } catch (error) {
      logFailure(error as Error);
    }
  }

  private timeoutNotice(reason: 'idle' | 'max_lifetime'): Record<string, unknown> {
    const timestamp = this.clock.now();
    return reason === 'idle'
      ? {
          type: 'connectionTimeout',
          reason,
          message: 'Connection closed due to inactivity',
          idleSeconds: this.config.idleTimeoutMs / 1000,
          timestamp,
        }
      : {
          type: 'connectionTimeout',
          reason,
          message: 'Connection closed: maximum lifetime reached',
          lifetimeSeconds: this.lifetimeMs / 1000,
          timestamp,
        };
  }

  private timeoutMeta(reason: TimeoutReason): Record<string, number> {
    switch (reason) {
      case 'idle':
        return { idleTimeoutMs: this.config.idleTimeoutMs, idleMs: connection.idleFor(this.core, this.clock.now()) };
      case 'max_lifetime':
        return { connectionTimeoutMs: this.config.connectionTimeoutMs, lifetimeMs: this.lifetimeMs };
      case 'pong_timeout':
        return { pingIntervalMs: this.config.pingIntervalMs, pongTimeoutMs: this.config.pongTimeoutMs };
      case 'send_timeout':
        return { messageTimeoutMs: this.config.messageTimeoutMs };
    }
  }

  private notifyTimeout(reason: TimeoutReason): void {
    try {
      this.options.observer?.timedOut(this, reason);
      this.options.onTimeout?.(reason, this);
    } catch (err) {
      this.logger.error('onTimeout callback threw', this.logMeta({ reason, error: err }));
    }
  }

  // ---------------------------------------------------------------- closing

  /**
   * Sends a close frame and waits up to `closeTimeoutMs` for the peer's; terminates a peer that
   * does not answer. Idempotent (every call gets the first call's promise) and never rejects;
   * a peer that is already gone resolves `'already_closed'`.
   */
  gracefulClose(code: number = CloseCode.NormalClosure, reason: string = CloseReason.normal_closure): Promise<CloseOutcome> {
    const closing = this.closingState();
    if (closing.outcome) return closing.outcome;
    if (this.closed) return (closing.outcome = Promise.resolve('already_closed'));
    this.stop();
    if (!isSendableCloseCode(code)) {
      this.logger.warn('gracefulClose: invalid close code, using 1000', this.logMeta({ code }));
      code = CloseCode.NormalClosure;
    }
    closing.outcome = new Promise<CloseOutcome>((resolve) => {
      closing.finish = resolve;
    });
    if (this.ws.readyState === ReadyState.OPEN) {
      try {
        this.ws.close(code, truncateCloseReason(String(reason)));
      } catch (err) {
        this.logger.warn('WebSocket close frame failed, terminating', this.logMeta({ error: err }));
        this.terminate();
      }
    } else if (this.ws.readyState === ReadyState.CONNECTING) {
      this.terminate();
    }
    this.boundClosingHandshake(true);
    return closing.outcome;
  }

  private closingState(): Closing {
    return (this.ioExtras().closing ??= { outcome: null, finish: null, timer: undefined, signal: null, resolveSignal: null });
  }

  /** @internal the socket's `close()` was called: by `gracefulClose`, by other code, or by ws on the peer's close frame */
  handleClosing(): void {
    if (this.ws.readyState === ReadyState.CLOSING) this.boundClosingHandshake(this.closeRequested);
  }

  /**
   * Terminates the connection if it has not closed `closeTimeoutMs` after its closing handshake
   * started, and ends automatic enforcement: a connection that is closing gets no idle, lifetime
   * or pong verdict, so a peer that closed is never counted as a timeout. The first call sets
   * the deadline; a later `gracefulClose` keeps it.
   */
  private boundClosingHandshake(byGracefulClose: boolean): void {
    if (!connection.closing(this.core)) return;
    this.stop();
    const closing = this.closingState();
    closing.timer = this.clock.setTimeout(() => {
      this.logger.warn(
        byGracefulClose
          ? 'WebSocket peer did not answer the close frame, terminating'
          : 'WebSocket close handshake did not finish in time, terminating',
        this.logMeta({ closeTimeoutMs: this.config.closeTimeoutMs }),
      );
      closing.finish?.('terminated');
      closing.finish = null;
      this.terminate();
    }, this.config.closeTimeoutMs);
  }

  /** Drops the connection at once, without a close frame. Safe on any state. */
  terminate(): void {
    try {
      this.ws.terminate();
    } catch (err) {
      this.logger.debug('WebSocket terminate failed', this.logMeta({ error: err }));
    }
  }

  /** Resolves once the socket has closed (immediately if it already has). */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    const closing = this.closingState();
    return (closing.signal ??= new Promise((resolve) => {
      closing.resolveSignal = resolve;
    }));
  }

  /** @internal the socket closed, whoever closed it */
  handleClose(code: number, reasonBuffer: Buffer): void {
    if (!connection.closed(this.core)) return;
    unwrapSocket(this.ws);
    for (let waiter = this.takeWaiter(); waiter !== null; waiter = this.takeWaiter()) waiter(null);
    this.stop();
    this.options.scheduler.cancel(this);
    if (this.io !== null) this.clock.clearTimeout(this.io.timer);
    this.failWaiting();
    const closing = this.io?.extras?.closing ?? null;
    if (closing !== null) {
      this.clock.clearTimeout(closing.timer);
      closing.finish?.('closed');
      closing.finish = null;
      closing.resolveSignal?.();
    }
    const reason = reasonBuffer.toString();
    if (managerLogsConnections(this.options)) {
      this.logger.info('WebSocket closed', this.logMeta({ code, reason, durationMs: connection.age(this.core, this.clock.now()) }));
    }
    try {
      this.options.observer?.closed(this, code, reason);
      this.options.onClose?.(code, reason, this);
    } catch (err) {
      this.logger.error('onClose callback threw', this.logMeta({ error: err }));
    }
  }

  /** @internal the socket reported an error; 'close' follows, so only log it */
  handleError(err: Error): void {
    this.logger.warn('WebSocket error', this.logMeta({ error: err, errorCode: (err as { code?: string }).code }));
  }

  private logMeta(extra?: Record<string, unknown>): Record<string, unknown> {
    return { connectionId: this.id, userId: this.userId, ...this.labels, ...extra };
  }
}

/** This connection's ping offset in the interval: see {@link ManagerOptions.pingPhase}. */
function pingOffset({ pingPhase: phase, random, config }: ResolvedOptions): number {
  if (phase === 'random') return Math.floor(random() * config.pingIntervalMs);
  if (typeof phase !== 'number' || !(phase >= 0 && phase < 1)) {
    throw new RangeError(`pingPhase must be a fraction in [0, 1) of pingIntervalMs, or 'random'; got ${String(phase)}`);
  }
  return Math.floor(phase * config.pingIntervalMs);
}

/** `connectionTimeoutMs` minus a random part of `lifetimeJitterMs`, so a fleet does not reconnect at once. */
function jitteredLifetime({ config, lifetimeJitterMs, random }: ResolvedOptions): number {
  const lifetime = config.connectionTimeoutMs;
  const jitter = Math.min(lifetimeJitterMs, lifetime - 1);
  if (lifetime === 0 || jitter <= 0) return lifetime;
  return lifetime - Math.floor(random() * jitter);
}

function checkTimeout(name: string, value: number): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative number of milliseconds (or Infinity), got ${String(value)}`);
  }
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
