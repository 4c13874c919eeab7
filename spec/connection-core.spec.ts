// The rules of one connection as a table: each row gives a core its limits, plays events at
// times (ms after the connection was accepted) and asks one question at one time. No socket, no
// timer, no clock: `now` is an argument, so every row is exact.
import { expect } from 'chai';
import * as connection from '../lib/connection-core.js';
import { createCore, CoreState, type ConnectionCore, type CoreLimits, type Verdict } from '../lib/connection-core.js';

/** An epoch time like a real clock's, so the core's origin arithmetic is exercised. */
const T0 = 1_764_000_000_000;

type Event =
  | ['activity', number]
  | ['ping', number]
  | ['pingOnPhase', number]
  | ['pong', number]
  | ['noticeSent']
  | ['closing']
  | ['closed'];

interface Setup {
  limits?: Partial<CoreLimits>;
  lifetimeMs?: number;
  pingOffsetMs?: number;
  reconnectNoticeMs?: number;
  events?: Event[];
}

const LIMITS: CoreLimits = { idleTimeoutMs: 10_000, pingIntervalMs: 1_000, pongTimeoutMs: 500 };

function core(setup: Setup): ConnectionCore {
  const c = createCore({ ...LIMITS, ...setup.limits }, T0, setup.lifetimeMs ?? 0, setup.pingOffsetMs ?? 0, setup.reconnectNoticeMs ?? 0);
  for (const event of setup.events ?? []) {
    switch (event[0]) {
      case 'activity':
        connection.activity(c, T0 + event[1]);
        break;
      case 'ping':
        connection.pingSent(c, T0 + event[1]);
        break;
      case 'pingOnPhase':
        connection.pingSent(c, T0 + event[1], true);
        break;
      case 'pong':
        connection.pongReceived(c, T0 + event[1]);
        break;
      case 'noticeSent':
        connection.reconnectNoticeSent(c);
        break;
      case 'closing':
        connection.closing(c);
        break;
      case 'closed':
        connection.closed(c);
        break;
    }
  }
  return c;
}

describe('ConnectionCore', () => {
  describe('due(now, stalled): the verdict', () => {
    type Row = [given: string, setup: Setup, at: number, stalled: boolean, verdict: Verdict | null];
    const noIdle = { idleTimeoutMs: 0 };
    const rows: Row[] = [
      // ping
      ['open, just accepted', {}, 0, false, null],
      ['open, one interval after accepting', {}, 1_000, false, 'ping'],
      ['open, 1 ms before the first ping', {}, 999, false, null],
      ['ping phase 300 ms: first ping 700 ms after accepting', { pingOffsetMs: 300 }, 700, false, 'ping'],
      ['ping phase 300 ms, 1 ms earlier', { pingOffsetMs: 300 }, 699, false, null],
      ['ping outstanding: no second ping, however late', { limits: { pongTimeoutMs: 5_000 }, events: [['ping', 1_000]] }, 2_500, false, null],
      ['pong received: next ping one interval after the last', { events: [['ping', 1_000], ['pong', 1_050]] }, 1_999, false, null],
      ['pong received, one interval after the ping', { events: [['ping', 1_000], ['pong', 1_050]] }, 2_000, false, 'ping'],
      // ping phase kept after a late tick
      ['late ping on phase: next one on the phase', { events: [['pingOnPhase', 1_250], ['pong', 1_260]] }, 2_000, false, 'ping'],
      ['late ping on phase, 1 ms before the phase', { events: [['pingOnPhase', 1_250], ['pong', 1_260]] }, 1_999, false, null],
      ['ping 2.25 intervals late on phase: next on the phase', { events: [['pingOnPhase', 3_250], ['pong', 3_260]] }, 4_000, false, 'ping'],
      ['late manual ping: next one a full interval later', { events: [['ping', 1_250], ['pong', 1_260]] }, 2_000, false, null],
      ['late manual ping, a full interval later', { events: [['ping', 1_250], ['pong', 1_260]] }, 2_250, false, 'ping'],
      // pong
      ['ping unanswered for pongTimeoutMs - 1', { events: [['ping', 1_000]] }, 1_499, false, null],
      ['ping unanswered for pongTimeoutMs', { events: [['ping', 1_000]] }, 1_500, false, 'pong_timeout'],
      ['ping unanswered for pongTimeoutMs, after a stall: input gets one more turn', { events: [['ping', 1_000]] }, 1_500, true, null],
      ['pong answered: no verdict, even after a stall', { events: [['ping', 1_000], ['pong', 1_499]] }, 1_600, true, null],
      ['a pong with no ping outstanding changes nothing', { events: [['pong', 500]] }, 1_000, false, 'ping'],
      // idle
      ['no message for idleTimeoutMs - 1', {}, 9_999, false, 'ping'],
      ['no message for idleTimeoutMs', {}, 10_000, false, 'idle'],
      ['a message moves the idle deadline', { events: [['activity', 5_000]] }, 10_000, false, 'ping'],
      ['a message, then idleTimeoutMs of silence', { events: [['activity', 5_000]] }, 15_000, false, 'idle'],
      ['pings and pongs are not activity', { events: [['ping', 9_000], ['pong', 9_010]] }, 10_000, false, 'idle'],
      ['idle disabled (0)', { limits: { ...noIdle, pingIntervalMs: 1e9 } }, 1e8, false, null],
      // lifetime
      ['lifetime - 1 ms', { limits: noIdle, lifetimeMs: 5_000, events: [['ping', 4_000], ['pong', 4_001]] }, 4_999, false, null],
      ['lifetime reached', { limits: noIdle, lifetimeMs: 5_000, events: [['ping', 4_000], ['pong', 4_001]] }, 5_000, false, 'max_lifetime'],
      ['lifetime 0 is unlimited', { limits: { ...noIdle, pingIntervalMs: 1e9 } }, 1e8, false, null],
      // reconnect notice
      ['notice 2 s before a 5 s lifetime, 1 ms early', { limits: noIdle, lifetimeMs: 5_000, reconnectNoticeMs: 2_000, events: [['ping', 2_000], ['pong', 2_001]] }, 2_999, false, null],
      ['notice 2 s before a 5 s lifetime', { limits: noIdle, lifetimeMs: 5_000, reconnectNoticeMs: 2_000, events: [['ping', 2_000], ['pong', 2_001]] }, 3_000, false, 'reconnect_notice'],
      ['notice sent: not again', { limits: noIdle, lifetimeMs: 5_000, reconnectNoticeMs: 2_000, events: [['ping', 3_000], ['pong', 3_001], ['noticeSent']] }, 3_500, false, null],
      ['notice no shorter than the lifetime: never', { limits: { ...noIdle, pingIntervalMs: 1e9 }, lifetimeMs: 5_000, reconnectNoticeMs: 5_000 }, 4_999, false, null],
      ['notice without a lifetime: never', { limits: { ...noIdle, pingIntervalMs: 1e9 }, reconnectNoticeMs: 2_000 }, 1e8, false, null],
      // precedence: a gone peer first, a ping last
      ['pong overdue, lifetime and idle passed', { lifetimeMs: 10_000, events: [['ping', 10_000]] }, 10_500, false, 'pong_timeout'],
      ['lifetime and idle passed', { lifetimeMs: 10_000 }, 10_000, false, 'max_lifetime'],
      ['idle, notice and ping due', { lifetimeMs: 20_000, reconnectNoticeMs: 15_000 }, 10_000, false, 'idle'],
      ['notice and ping due', { lifetimeMs: 20_000, reconnectNoticeMs: 19_000 }, 1_000, false, 'reconnect_notice'],
      // the close lifecycle: a closing or closed connection gets no verdict
      ['closing, everything overdue', { lifetimeMs: 1_000, events: [['ping', 1_000], ['closing']] }, 20_000, false, null],
      ['closed, everything overdue', { lifetimeMs: 1_000, events: [['ping', 1_000], ['closed']] }, 20_000, false, null],
      ['closing then closed', { events: [['closing'], ['closed']] }, 20_000, false, null],
    ];
    for (const [given, setup, at, stalled, verdict] of rows) {
      it(`${given} — at +${at}${stalled ? ' (stalled)' : ''} → ${verdict ?? 'nothing'}`, () => {
        expect(connection.due(core(setup), T0 + at, stalled)).to.equal(verdict);
      });
    }
  });

  describe('nextCheckAt(): the earliest time due() can answer', () => {
    type Row = [given: string, setup: Setup, nextCheck: number];
    const rows: Row[] = [
      ['just accepted: the first ping', {}, 1_000],
      ['ping phase 300 ms', { pingOffsetMs: 300 }, 700],
      ['ping outstanding: its pong deadline', { events: [['ping', 1_000]] }, 1_500],
      ['pong deadline later than the next ping time: the pong deadline (no ping while one is outstanding)', { limits: { pongTimeoutMs: 5_000 }, events: [['ping', 1_000]] }, 6_000],
      ['pong received: the next ping time', { limits: { pongTimeoutMs: 5_000 }, events: [['ping', 1_000], ['pong', 3_000]] }, 2_000],
      ['idle before the next ping', { limits: { idleTimeoutMs: 600 } }, 600],
      ['a message moves the idle check', { limits: { idleTimeoutMs: 600 }, events: [['activity', 300]] }, 900],
      ['lifetime first', { lifetimeMs: 800 }, 800],
      ['reconnect notice first', { lifetimeMs: 5_000, reconnectNoticeMs: 4_500 }, 500],
      ['late ping on phase', { events: [['pingOnPhase', 1_250], ['pong', 1_251]] }, 2_000],
    ];
    for (const [given, setup, nextCheck] of rows) {
      it(`${given} → +${nextCheck}`, () => {
        expect(connection.nextCheckAt(core(setup))).to.equal(T0 + nextCheck);
      });
    }

    it('is exact: due() answers nothing 1 ms before it, and something at it', () => {
      for (const setup of rows.map((row) => row[1])) {
        const c = core(setup);
        expect(connection.due(c, connection.nextCheckAt(c) - 1), JSON.stringify(setup)).to.equal(null);
        expect(connection.due(c, connection.nextCheckAt(c)), JSON.stringify(setup)).to.not.equal(null);
      }
    });
  });

  describe('remaining(now): what a dashboard shows', () => {
    it('idle, lifetime, pong and ping time left; null for what is off', () => {
      const c = core({ lifetimeMs: 60_000, events: [['activity', 2_000], ['ping', 3_000]] });
      expect(connection.remaining(c, T0 + 3_200)).to.deep.equal({ idleMs: 8_800, lifetimeMs: 56_800, pongMs: 300, pingMs: null });
      connection.pongReceived(c, T0 + 3_300);
      expect(connection.remaining(c, T0 + 3_400)).to.deep.equal({ idleMs: 8_600, lifetimeMs: 56_600, pongMs: null, pingMs: 600 });
      expect(connection.remaining(core({ limits: { idleTimeoutMs: 0 } }), T0)).to.deep.equal({ idleMs: null, lifetimeMs: null, pongMs: null, pingMs: 1_000 });
    });

    it('0 once a deadline has passed, never negative', () => {
      expect(connection.remaining(core({ lifetimeMs: 1_000 }), T0 + 50_000)).to.include({ idleMs: 0, lifetimeMs: 0, pingMs: 0 });
    });
  });

  describe('idleFor / isIdleFor: what the registry cleanup asks', () => {
    type Row = [given: string, events: Event[], at: number, maxAgeMs: number, idle: boolean];
    const rows: Row[] = [
      ['silent for maxAgeMs', [], 3_000, 3_000, true],
      ['silent for maxAgeMs - 1', [], 2_999, 3_000, false],
      ['a message since', [['activity', 1_000]], 3_000, 3_000, false],
      ['maxAgeMs 0 closes nothing', [], 1e9, 0, false],
    ];
    for (const [given, events, at, maxAgeMs, idle] of rows) {
      it(`${given} → ${idle}`, () => {
        const c = core({ events });
        expect(connection.isIdleFor(c, T0 + at, maxAgeMs)).to.equal(idle);
        expect(connection.idleFor(c, T0 + at)).to.equal(at - Math.max(0, ...events.map((e) => e[1] as number)));
      });
    }
  });

  describe('events', () => {
    it('pongReceived answers the round-trip time and smooths it by 1/8; -1 without an outstanding ping', () => {
      const c = core({});
      expect(connection.pongReceived(c, T0 + 10)).to.equal(-1);
      expect(connection.lastPongAt(c)).to.equal(T0 + 10);
      expect(c.rttMs).to.equal(-1);
      connection.pingSent(c, T0 + 1_000);
      expect(connection.pingOutstandingSince(c)).to.equal(T0 + 1_000);
      expect(connection.remaining(c, T0 + 1_000).pongMs, 'the pong deadline: T0 + 1,500').to.equal(500);
      expect(connection.nextPingAt(c), 'while a ping is outstanding').to.equal(-1);
      expect(connection.pongReceived(c, T0 + 1_080)).to.equal(80);
      expect([c.rttMs, connection.smoothedRttMs(c), connection.pingOutstandingSince(c), connection.remaining(c, T0 + 1_080).pongMs]).to.deep.equal([80, 80, -1, null]);
      expect(connection.nextPingAt(c)).to.equal(T0 + 1_000 + c.config.pingIntervalMs);
      connection.pingSent(c, T0 + 2_000);
      connection.pongReceived(c, T0 + 2_160);
      expect([c.rttMs, connection.smoothedRttMs(c)]).to.deep.equal([160, 90]);
    });

    it('state: open → closing → closed; each step reports whether it changed anything', () => {
      const c = core({});
      expect(c.current).to.equal(CoreState.Open);
      expect(connection.closing(c)).to.equal(true);
      expect(connection.closing(c)).to.equal(false);
      expect(c.current).to.equal(CoreState.Closing);
      expect(connection.closed(c)).to.equal(true);
      expect(connection.closed(c)).to.equal(false);
      expect(connection.closing(c)).to.equal(false);
      expect(c.current).to.equal(CoreState.Closed);
    });

    it('a connection may close without a closing handshake', () => {
      const c = core({});
      expect(connection.closed(c)).to.equal(true);
      expect(c.current).to.equal(CoreState.Closed);
    });

    it('times read back as epoch ms, whatever clock the first core saw', () => {
      const early = createCore(LIMITS, 5, 0);
      connection.activity(early, 17);
      expect([connection.connectedAt(early), connection.lastActivityAt(early)]).to.deep.equal([5, 17]);
      const c = core({ lifetimeMs: 5_000, reconnectNoticeMs: 1_000, pingOffsetMs: 250 });
      expect([connection.connectedAt(c), connection.lastActivityAt(c), connection.lastPingAt(c), connection.reconnectNoticeAt(c), c.lifetime]).to.deep.equal([T0, T0, T0 - 250, T0 + 4_000, 5_000]);
      expect(connection.age(c, T0 + 1_234)).to.equal(1_234);
    });
  });
});
