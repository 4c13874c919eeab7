/**
 * `WebSocketTimeoutManager`: one server socket's deadlines, receive queue, sends, heartbeat
 * and close. The rules live in ./deadlines.ts; this module does the I/O.
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
import { managerLogsConnections, type ConnectionObserver } from './connection-observer.js';
import * as rules from './deadlines.js';
import { withDefaults, type WithDefaults } from './defaults.js';
import { defaultLogger, type Logger } from './logger.js';
import { initSchedulerEntry, sharedScheduler, type Scheduler } from './scheduler.js';
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

type ResolvedOptions = Readonly<WithDefaults<ManagerOptions, typeof MANAGER_DEFAULTS>>;

/** Frozen options objects resolved so far: a registry's one object, shared by every manager, stays one object. */
const resolvedShared = new WeakMap<ManagerOptions, ResolvedOptions>();

/** `options` over {@link MANAGER_DEFAULTS}; a frozen object is resolved once, whatever the number of managers. */
function resolveOptions(options: ManagerOptions): ResolvedOptions {
  if (!Object.isFrozen(options)) return withDefaults(MANAGER_DEFAULTS, options);
  let resolved = resolvedShared.get(options);
  if (resolved === undefined) resolvedShared.set(options, (resolved = Object.freeze(withDefaults(MANAGER_DEFAULTS, options))));
  return resolved;
}

type Waiter = { resolve: (message: Message | null) => void; timer: TimerHandle };
/** A send waiting for room under `maxBufferedBytes`, or handed to the socket and not yet flushed. */
type Send = { text: string; timeoutMs: number; resolve: (sent: boolean) => void; timer: TimerHandle; settled: boolean };

const MANAGER = Symbol('ws-timeouts.manager');
const SOCKET_CLOSE = Symbol('ws-timeouts.socketClose');
type Tagged = ManagedSocket & { [MANAGER]?: WebSocketTimeoutManager; [SOCKET_CLOSE]?: ManagedSocket['close'] };

// Listeners are shared by every socket and find their manager through a symbol on the socket:
// no closure per connection, and `off()` removes exactly what `on()` added.
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
 * Stands in for the socket's own `close()` while a manager wraps it. `ws` emits nothing when the
 * peer's close frame arrives: it answers by calling `close()` on itself, and then waits 30 s
 * (its own `closeTimeout`) for the peer to end the connection. Seeing every `close()` lets the
 * manager bound each closing handshake, whoever started it, by `closeTimeoutMs`.
 */
function closeAndBound(this: Tagged, code?: number, reason?: string | Buffer): void {
  try {
    this[SOCKET_CLOSE]!.call(this, code, reason);
  } finally {
    this[MANAGER]?.handleClosing();
  }
}

let nextConnectionSeq = 0;
const noop = (): void => undefined;
/** Weight of a new sample in the smoothed RTT (TCP's SRTT uses 1/8). */
const RTT_SMOOTHING = 0.125;

export class WebSocketTimeoutManager implements rules.DeadlineState {
  readonly ws: ManagedSocket;
  readonly config: TimeoutConfig;
  readonly userId: string | undefined;
  readonly connectedAt: number;
  lastActivityAt: number;
  lastPingAt: number;
  pingOutstandingSince = -1;
  lastPongAt = -1;
  /** Round-trip time of the last answered ping, ms; -1 before the first. */
  lastRttMs = -1;
  /** Exponentially smoothed round-trip time, ms; -1 before the first. */
  smoothedRttMs = -1;
  readonly lifetimeMs: number;
  reconnectNoticeAt = -1;
  /** Free-form labels (e.g. `{ role: 'speaker' }`) for metrics and the registry. */
  labels: Record<string, string> | undefined;

  private readonly options: ResolvedOptions;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly seq: number;
  private queue: Message[] | null = null;
  private waiters: Waiter[] | null = null;
  /** Sends waiting for `bufferedAmount` to fall to `maxBufferedBytes`, oldest first. */
  private waiting: Send[] | null = null;
  private paused = false;
  private closed = false;
  private closing: Promise<CloseOutcome> | null = null;
  private finishClose: ((outcome: CloseOutcome) => void) | null = null;
  private closeTimer: TimerHandle = undefined;
  private closeBounded = false;
  private scheduler: Scheduler | null = null;
  private closedSignal: Promise<void> | null = null;
  private resolveClosed: (() => void) | null = null;
  // The scheduler's intrusive links (lib/scheduler.ts), set by initSchedulerEntry in the constructor.
  /** @internal */ declare schedulerNext: null;
  /** @internal */ declare schedulerPrev: null;
  /** @internal */ declare schedulerDueTick: number;

  /**
   * @param options Options, or just the user id: `new WebSocketTimeoutManager(ws, 'user-1')`.
   * @throws {TypeError} When `options` is neither an options object nor a string.
   */
  constructor(ws: ManagedSocket, options: ManagerOptions | string = {}) {
    initSchedulerEntry(this);
    if (typeof options === 'string') options = { userId: options };
    else if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new TypeError(
        `WebSocketTimeoutManager: the second argument must be an options object (e.g. { userId, config }) or a user id string, got ${
          options === null ? 'null' : Array.isArray(options) ? 'an array' : `${typeof options} ${String(options)}`
        }`,
      );
    }
    this.ws = ws;
    this.options = resolveOptions(options);
    this.clock = this.options.clock;
    this.logger = this.options.logger ?? defaultLogger();
    this.userId = options.userId;
    this.labels = options.labels;
    this.seq = ++nextConnectionSeq;
    this.config = isTimeoutConfig(options.config)
      ? options.config
      : resolveTimeoutConfig(defaultTimeoutConfig(), options.config);
    const now = this.clock.now();
    this.connectedAt = now;
    this.lastActivityAt = now;
    this.lifetimeMs = this.jitteredLifetime();
    this.lastPingAt = now - this.pingOffset();
    const noticeMs = this.options.reconnectNoticeMs;
    if (noticeMs > 0 && this.lifetimeMs > noticeMs) this.reconnectNoticeAt = now + this.lifetimeMs - noticeMs;

    const tagged = ws as Tagged;
    tagged[MANAGER] = this;
    if (ws.close !== closeAndBound) {
      tagged[SOCKET_CLOSE] = ws.close;
      ws.close = closeAndBound;
    }
    ws.on('message', onSocketMessage);
    ws.on('pong', onSocketPong);
    ws.on('close', onSocketClose);
    ws.on('error', onSocketError);
    if (ws.readyState === ReadyState.CLOSED) this.handleClose(1006, Buffer.alloc(0));
    else if (managerLogsConnections(this.options)) this.logger.info('WebSocket connected', this.logMeta());
  }

  /** Connection id used in logs. */
  get id(): string {
    return this.options.id ?? `c${this.seq}`;
  }

  get state(): 'open' | 'closing' | 'closed' {
    if (this.closed) return 'closed';
    return this.closing || this.ws.readyState === ReadyState.CLOSING ? 'closing' : 'open';
  }

  /** Messages waiting for `receiveWithTimeout`. */
  get queuedMessages(): number {
    return this.queue?.length ?? 0;
  }

  // ---------------------------------------------------------------- receiving

  /**
   * The next message (string for text, Buffer for binary), or `null` when `timeoutMs` passes
   * first or the connection is closed. Messages that arrived earlier are queued, never lost.
   * @param timeoutMs @default config.heartbeatIntervalMs; `Infinity` waits until a message or close
   */
  receiveWithTimeout(timeoutMs: number = this.config.heartbeatIntervalMs): Promise<Message | null> {
    checkTimeout('timeoutMs', timeoutMs);
    const queued = this.queue?.shift();
    if (queued !== undefined) {
      this.resumeIfDrained();
      return Promise.resolve(queued);
    }
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter: Waiter = { resolve, timer: undefined };
      if (timeoutMs !== Infinity) {
        waiter.timer = this.clock.setTimeout(() => {
          const i = this.waiters?.indexOf(waiter) ?? -1;
          if (i >= 0) this.waiters!.splice(i, 1);
          resolve(null);
        }, timeoutMs);
      }
      (this.waiters ??= []).push(waiter);
    });
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
    this.lastActivityAt = this.clock.now();
    const waiter = this.waiters?.shift();
    if (waiter) {
      this.clock.clearTimeout(waiter.timer);
      waiter.resolve(message);
    } else if (this.options.onMessage) {
      this.options.onMessage(message, this);
    } else {
      (this.queue ??= []).push(message);
      if (!this.paused && this.queue.length >= this.options.maxQueuedMessages && this.ws.pause) {
        // Backpressure: stop reading from the peer rather than let the queue grow.
        this.paused = true;
        this.ws.pause();
      }
    }
  }

  private resumeIfDrained(): void {
    if (this.paused && this.queue!.length <= this.options.maxQueuedMessages / 2) {
      this.paused = false;
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
    if (this.closed || this.closing || this.ws.readyState !== ReadyState.OPEN) return Promise.resolve(false);
    this.lastActivityAt = this.clock.now();
    return new Promise((resolve) => {
      const send: Send = { text, timeoutMs, resolve, timer: undefined, settled: false };
      if (this.waiting === null && this.ws.bufferedAmount <= this.options.maxBufferedBytes) return this.write(send);
      // A burst over the limit is not yet a slow consumer: a peer that reads drains it within the
      // deadline. Until then the text waits here (a broadcast's one string is shared by every
      // recipient), so the socket holds at most the limit plus one frame.
      (this.waiting ??= []).push(send);
      this.startDeadline(send);
    });
  }

  private write(send: Send): void {
    const done = (err?: Error | null): void => {
      if (err && !send.settled) this.logger.warn('WebSocket send failed', this.logMeta({ error: err }));
      this.settle(send, !err);
      if (this.waiting !== null) this.sendWaiting();
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
      const i = this.waiting?.indexOf(send) ?? -1;
      if (i >= 0) this.waiting!.splice(i, 1);
      if (!this.closing && !this.closed) {
        this.slowConsumer({
          messageTimeoutMs: send.timeoutMs,
          bufferedAmount: this.ws.bufferedAmount,
          maxBufferedBytes: this.options.maxBufferedBytes,
          waitingSends: this.waiting?.length ?? 0,
        });
      }
      // Once the connection is closing, the sends behind this one can never go out.
      if (this.closing || this.closed || this.waiting?.length === 0) this.failWaiting();
    }, send.timeoutMs);
  }

  private settle(send: Send, sent: boolean): void {
    if (send.settled) return;
    send.settled = true;
    this.clock.clearTimeout(send.timer);
    send.resolve(sent);
  }

  /** Hands waiting sends to the socket, in order, while it holds no more than the limit. */
  private sendWaiting(): void {
    const waiting = this.waiting;
    if (waiting === null) return;
    if (this.closed || this.closing || this.ws.readyState !== ReadyState.OPEN) return this.failWaiting();
    while (waiting.length > 0 && this.ws.bufferedAmount <= this.options.maxBufferedBytes) this.write(waiting.shift()!);
    if (waiting.length === 0 && this.waiting === waiting) this.waiting = null;
  }

  /** Waiting sends can no longer go out (the connection is closing or closed): each resolves `false` now. */
  private failWaiting(): void {
    const waiting = this.waiting?.splice(0) ?? [];
    this.waiting = null;
    for (const send of waiting) this.settle(send, false);
  }

  /** Fire-and-forget send for notices and heartbeat text; false when it could not be queued. */
  private trySend(text: string): boolean {
    if (this.ws.readyState !== ReadyState.OPEN) return false;
    try {
      this.ws.send(text, this.waiting === null ? noop : () => this.sendWaiting());
      return true;
    } catch {
      return false;
    }
  }

  private slowConsumer(meta: Record<string, unknown>): void {
    this.logger.warn('WebSocket slow consumer', this.logMeta({ reason: 'send_timeout', cause: 'send_deadline', ...meta }));
    if (this.options.slowConsumerPolicy === 'close' && !this.closing && !this.closed) {
      this.notifyTimeout('send_timeout');
      void this.gracefulClose(CloseCode.SendTimeout, CloseReason.send_timeout);
    }
  }

  // ---------------------------------------------------------------- activity and deadlines

  /** Marks application activity now (inbound and outbound messages do this by themselves). */
  updateActivity(): void {
    this.lastActivityAt = this.clock.now();
  }

  /** No application message for `idleTimeoutMs` (always false when idle is disabled). */
  isIdle(): boolean {
    return rules.isIdle(this, this.config, this.clock.now());
  }

  /** A ping has gone unanswered for `pongTimeoutMs`. */
  isPongTimeout(): boolean {
    return rules.isPongOverdue(this, this.config, this.clock.now());
  }

  /** No ping is outstanding and `pingIntervalMs` has passed since the last one. */
  shouldPing(): boolean {
    return rules.shouldPing(this, this.config, this.clock.now());
  }

  /** Milliseconds since the connection was accepted. */
  connectionAge(): number {
    return this.clock.now() - this.connectedAt;
  }

  /** The connection has lived `connectionTimeoutMs` (minus its jitter); false when disabled. */
  isConnectionTimeout(): boolean {
    return rules.isLifetimeExceeded(this, this.clock.now());
  }

  /**
   * One heartbeat step for the manual loop: terminates a peer whose pong is overdue, pings when
   * due. Resolves `false` once the peer is gone, `true` while the connection is usable.
   */
  async handleHeartbeat(): Promise<boolean> {
    if (this.closed || this.closing || this.ws.readyState !== ReadyState.OPEN) return false;
    if (this.isPongTimeout()) {
      this.expire('pong_timeout');
      return false;
    }
    const now = this.clock.now();
    if (rules.shouldPing(this, this.config, now)) return this.sendPing(now);
    return true;
  }

  private sendPing(now: number): boolean {
    this.lastPingAt = now;
    this.pingOutstandingSince = now;
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
    const now = this.clock.now();
    this.lastPongAt = now;
    if (this.pingOutstandingSince < 0) return;
    const rtt = now - this.pingOutstandingSince;
    this.pingOutstandingSince = -1;
    this.lastRttMs = rtt;
    this.smoothedRttMs = this.smoothedRttMs < 0 ? rtt : this.smoothedRttMs + RTT_SMOOTHING * (rtt - this.smoothedRttMs);
    const { observer, onPong } = this.options;
    if (observer?.pong || onPong) {
      try {
        observer?.pong?.(this, rtt);
        onPong?.(rtt, this);
      } catch (err) {
        this.logger.error('onPong callback threw', this.logMeta({ error: err }));
      }
    }
  }

  // ---------------------------------------------------------------- automatic mode

  /**
   * Enforces idle, lifetime and pong timeouts (and sends pings) by itself, on the shared
   * scheduler: on expiry the notice is sent, the socket closed with its code and `onTimeout` told.
   */
  start(): this {
    if (this.closed || this.closeBounded || this.scheduler) return this;
    this.scheduler = this.options.scheduler ?? sharedScheduler(this.clock, this.config.resolutionMs);
    this.scheduler.schedule(this, rules.nextCheckAt(this, this.config));
    return this;
  }

  /** Stops automatic enforcement; the manual methods keep working. */
  stop(): void {
    this.scheduler?.cancel(this);
    this.scheduler = null;
  }

  /** @internal called by the scheduler when a deadline may have passed */
  onDue(now: number, stalled: boolean): void {
    if (this.closed || this.closing) return;
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
    for (let decision = rules.decide(this, this.config, now); decision; decision = rules.decide(this, this.config, now)) {
      if (decision === 'pong_timeout' && stalled) {
        // After an event-loop stall, give pending input one more turn to be read before judging.
        this.scheduler?.schedule(this, now);
        return;
      }
      if (decision === 'ping') {
        // Stay on this connection's ping phase even when the tick ran late: after a stall,
        // every overdue socket pings in the same tick, but their next pings spread out again.
        const late = now - this.lastPingAt - this.config.pingIntervalMs;
        if (!this.sendPing(now)) return;
        this.lastPingAt = now - (late % this.config.pingIntervalMs);
      } else if (decision === 'reconnect_notice') {
        this.reconnectNoticeAt = -1;
        this.trySend(
          JSON.stringify({
            type: 'reconnectAdvised',
            reason: 'max_lifetime',
            closeInSeconds: (this.connectedAt + this.lifetimeMs - now) / 1000,
            timestamp: now,
          }),
        );
      } else {
        return this.expire(decision);
      }
    }
    this.scheduler?.schedule(this, rules.nextCheckAt(this, this.config));
  }

  private expire(reason: Exclude<TimeoutReason, 'send_timeout'>): void {
    this.logger.warn('WebSocket timeout', this.logMeta({ reason, ...this.timeoutMeta(reason) }));
    this.notifyTimeout(reason);
    if (reason === 'pong_timeout') {
      // A peer that stopped answering pings gets no close frame: it would never read it.
      this.terminate();
      return;
    }
    if (this.options.timeoutNotice) this.sendTimeoutNotice(reason);
    void this.gracefulClose(TIMEOUT_CLOSE_CODES[reason], CloseReason[reason]);
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
        return { idleTimeoutMs: this.config.idleTimeoutMs, idleMs: this.clock.now() - this.lastActivityAt };
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

  private pingOffset(): number {
    const { pingPhase: phase, random } = this.options;
    if (phase === 'random') return Math.floor(random() * this.config.pingIntervalMs);
    if (typeof phase !== 'number' || !(phase >= 0 && phase < 1)) {
      throw new RangeError(`pingPhase must be a fraction in [0, 1) of pingIntervalMs, or 'random'; got ${String(phase)}`);
    }
    return Math.floor(phase * this.config.pingIntervalMs);
  }

  private jitteredLifetime(): number {
    const lifetime = this.config.connectionTimeoutMs;
    const { lifetimeJitterMs, random } = this.options;
    const jitter = Math.min(lifetimeJitterMs, lifetime - 1);
    if (lifetime === 0 || jitter <= 0) return lifetime;
    return lifetime - Math.floor(random() * jitter);
  }

  // ---------------------------------------------------------------- closing

  /**
   * Sends a close frame and waits up to `closeTimeoutMs` for the peer's; terminates a peer that
   * does not answer. Idempotent (every call gets the first call's promise) and never rejects;
   * a peer that is already gone resolves `'already_closed'`.
   */
  gracefulClose(code: number = CloseCode.NormalClosure, reason: string = CloseReason.normal_closure): Promise<CloseOutcome> {
    if (this.closing) return this.closing;
    if (this.closed) return (this.closing = Promise.resolve('already_closed'));
    this.stop();
    if (!isSendableCloseCode(code)) {
      this.logger.warn('gracefulClose: invalid close code, using 1000', this.logMeta({ code }));
      code = CloseCode.NormalClosure;
    }
    this.closing = new Promise<CloseOutcome>((resolve) => {
      this.finishClose = resolve;
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
    return this.closing;
  }

  /** @internal the socket's `close()` was called: by `gracefulClose`, by other code, or by ws on the peer's close frame */
  handleClosing(): void {
    if (this.ws.readyState === ReadyState.CLOSING) this.boundClosingHandshake(this.closing !== null);
  }

  /**
   * Terminates the connection if it has not closed `closeTimeoutMs` after its closing handshake
   * started, and ends automatic enforcement: a connection that is closing gets no idle, lifetime
   * or pong verdict, so a peer that closed is never counted as a timeout. The first call sets
   * the deadline; a later `gracefulClose` keeps it.
   */
  private boundClosingHandshake(byGracefulClose: boolean): void {
    if (this.closed || this.closeBounded) return;
    this.closeBounded = true;
    this.stop();
    this.closeTimer = this.clock.setTimeout(() => {
      this.logger.warn(
        byGracefulClose
          ? 'WebSocket peer did not answer the close frame, terminating'
          : 'WebSocket close handshake did not finish in time, terminating',
        this.logMeta({ closeTimeoutMs: this.config.closeTimeoutMs }),
      );
      this.finishClose?.('terminated');
      this.finishClose = null;
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
    return (this.closedSignal ??= new Promise((resolve) => {
      this.resolveClosed = resolve;
    }));
  }

  /** @internal the socket closed, whoever closed it */
  handleClose(code: number, reasonBuffer: Buffer): void {
    if (this.closed) return;
    this.closed = true;
    this.stop();
    this.clock.clearTimeout(this.closeTimer);
    const ws = this.ws as Tagged;
    ws.off('message', onSocketMessage);
    ws.off('pong', onSocketPong);
    ws.off('close', onSocketClose);
    ws.off('error', onSocketError);
    delete ws[MANAGER];
    if (ws.close === closeAndBound) {
      const own = ws[SOCKET_CLOSE]!;
      delete (ws as Partial<Tagged>).close;
      if (ws.close !== own) ws.close = own; // it was the socket's own property, not its class's method
      delete ws[SOCKET_CLOSE];
    }
    const waiters = this.waiters;
    this.waiters = null;
    for (const waiter of waiters ?? []) {
      this.clock.clearTimeout(waiter.timer);
      waiter.resolve(null);
    }
    this.failWaiting();
    this.finishClose?.('closed');
    this.finishClose = null;
    this.resolveClosed?.();
    const reason = reasonBuffer.toString();
    if (managerLogsConnections(this.options)) {
      this.logger.info('WebSocket closed', this.logMeta({ code, reason, durationMs: this.clock.now() - this.connectedAt }));
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
