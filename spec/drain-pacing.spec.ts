import { expect } from 'chai';
import type { Clock } from '../lib/clock.js';
import { pacerOf } from '../lib/close-pacer.js';
import type { WebSocketTimeoutManager } from '../lib/manager.js';
import { ReconnectBudget } from '../lib/reconnect-budget.js';
import { busiestWindow } from './support/busiest-window.js';

/** A clock whose timers run only when the test says, as late as it likes: an event loop that stalls. */
function lateClock() {
  let now = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let seq = 0;
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.set(++seq, { at: now + ms, fn });
      return seq;
    },
    clearTimeout: (handle) => void timers.delete(handle as number),
    afterIo: (fn) => fn(),
  };
  return {
    clock,
    /** Runs the next timer `lateMs` after it was due. False when none is left. */
    runNext(lateMs = 0): boolean {
      const next = [...timers.entries()].sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) return false;
      timers.delete(next[0]);
      now = Math.max(now, next[1].at + lateMs);
      next[1].fn();
      return true;
    },
  };
}

/** Just what the pacer uses of a manager; it never closes by itself. */
const fakeManager = () =>
  ({ state: 'open', sendJsonWithTimeout: () => Promise.resolve(true), whenClosed: () => new Promise<void>(() => undefined) }) as unknown as WebSocketTimeoutManager;

describe('close pacing when timers fire late (lib/close-pacer)', () => {
  it('after a stall, catches up four closes at a time at most, at twice the pace at most, never over the rate in any 1-s window', () => {
    const { clock, runNext } = lateClock();
    const budget = new ReconnectBudget({ jitterMs: 0, rate: 10, clock }); // slots 100 ms apart
    const closedAt: number[] = [];
    for (let i = 0; i < 40; i++) pacerOf(budget).schedule(fakeManager(), 'going_away', () => closedAt.push(clock.now()));
    runNext(700); // the first timer runs 700 ms late: 7 slots are overdue
    while (runNext(1)); // then every timer 1 ms late
    expect(closedAt).to.have.length(40);
    expect(closedAt.slice(1, 5), 'the first four overdue closes when the late timer fires').to.deep.equal([800, 800, 800, 800]);
    expect(closedAt[5], 'the next one half a spacing later (the timer 1 ms late)').to.equal(851);
    expect(Math.max(...closedAt.map((t) => closedAt.filter((u) => u === t).length)), 'closes made together').to.be.at.most(4);
    expect(busiestWindow(closedAt)).to.be.at.most(10);
    // A budget in full use has no room to catch up entirely: the rest is delayed, at most by the stall.
    expect(closedAt[39]! - 3_900).to.be.within(1, 700 + 40);
  });

  it('keeps the pace when every timer is late by δ: the closes fall behind by at most δ per second of draining', () => {
    const { clock, runNext } = lateClock();
    const budget = new ReconnectBudget({ jitterMs: 0, rate: 200, clock });
    const closedAt: number[] = [];
    for (let i = 0; i < 1_000; i++) pacerOf(budget).schedule(fakeManager(), 'going_away', () => closedAt.push(clock.now()));
    while (runNext(7)); // each timer 7 ms late, on a 5 ms grid: one close per wakeup would fall behind for good
    expect(busiestWindow(closedAt)).to.be.at.most(200);
    expect(closedAt[999]! - 4_995).to.be.at.most(7 * 6);
  });

  it('catching up with a jitter allowance, keeps 1-s windows to the planned pace and leaves the allowance to delivery', () => {
    const { clock, runNext } = lateClock();
    const budget = new ReconnectBudget({ rate: 200, jitterMs: 250, clock }); // 200 per 1.25 s: 160 per second planned
    const closedAt: number[] = [];
    for (let i = 0; i < 1_000; i++) pacerOf(budget).schedule(fakeManager(), 'going_away', () => closedAt.push(clock.now()));
    runNext(700); // a stall: 112 slots overdue
    while (runNext(1));
    expect(closedAt).to.have.length(1_000);
    expect(busiestWindow(closedAt, 1_000), 'closes made in any 1-s window').to.be.at.most(160);
    expect(busiestWindow(closedAt, 1_250), 'closes made in any 1.25-s window').to.be.at.most(200);
  });
});
