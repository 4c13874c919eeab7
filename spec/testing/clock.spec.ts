import { expect } from 'chai';
import { systemClock } from '../../lib/index.js';
import { DEFAULT_START } from '../../lib/testing/clock.js';
import { createTestClock, installTestClock, SAFE_TO_FAKE } from '../../lib/testing/index.js';

describe('createTestClock()', () => {
  it('starts at DEFAULT_START and touches no global', () => {
    const realNow = Date.now();
    const t = createTestClock();
    expect(t.now()).to.equal(DEFAULT_START);
    expect(t.clock.now()).to.equal(DEFAULT_START);
    expect(Date.now()).to.be.at.least(realNow);
  });

  it('fires each timer at its time, not a millisecond earlier', async () => {
    const t = createTestClock(0);
    const fired: number[] = [];
    t.clock.setTimeout(() => fired.push(t.now()), 1_000);
    await t.tickAsync(999);
    expect(fired).to.deep.equal([]);
    await t.tickAsync(1);
    expect(fired).to.deep.equal([1_000]);
  });

  it('settles the promise chains a timer starts between timers, so a later timer sees their effects', async () => {
    const t = createTestClock(0);
    const log: string[] = [];
    t.clock.setTimeout(() => {
      void (async () => {
        for (let i = 0; i < 50; i++) await Promise.resolve();
        log.push(`chain done at ${t.now()}`);
      })();
    }, 100);
    t.clock.setTimeout(() => log.push(`second timer at ${t.now()}`), 101);
    await t.tickAsync(200);
    expect(log).to.deep.equal(['chain done at 100', 'second timer at 101']);
  });

  it('returns only once a chain of any depth started by the last timer has settled', async () => {
    const t = createTestClock(0);
    let done = false;
    t.clock.setTimeout(() => {
      void (async () => {
        for (let i = 0; i < 10_000; i++) await null;
        done = true;
      })();
    }, 10);
    await t.tickAsync(10);
    expect(done).to.equal(true);
  });

  it('runs afterIo callbacks after the timer that queued them (fake-timers places them 1 ms later)', async () => {
    const t = createTestClock(0);
    const log: string[] = [];
    t.clock.setTimeout(() => {
      t.clock.afterIo(() => log.push(`afterIo at ${t.now()}`));
      log.push(`timer at ${t.now()}`);
    }, 5);
    await t.tickAsync(6);
    expect(log).to.deep.equal(['timer at 5', 'afterIo at 6']);
  });

  it('flush() runs pending promise callbacks without moving time', async () => {
    const t = createTestClock(0);
    let settled = false;
    void Promise.resolve().then(() => Promise.resolve()).then(() => (settled = true));
    await t.flush();
    expect(settled).to.equal(true);
    expect(t.now()).to.equal(0);
  });

  it('rejects a negative, NaN or infinite tick with a RangeError naming ms', async () => {
    const t = createTestClock();
    for (const ms of [-1, NaN, Infinity]) {
      let error: unknown;
      await t.tickAsync(ms).catch((err: unknown) => (error = err));
      expect(error, String(ms)).to.be.instanceOf(RangeError).with.property('message').that.matches(/ms must be/);
    }
  });
});

describe('installTestClock()', () => {
  it('fakes only setTimeout, setInterval and Date, so the default clock follows it and Node I/O keeps working', async () => {
    const t = installTestClock(0);
    try {
      expect([...SAFE_TO_FAKE]).to.deep.equal(['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date']);
      expect(Date.now()).to.equal(0);
      expect(systemClock.now()).to.equal(0);
      let fired = false;
      systemClock.setTimeout(() => (fired = true), 1_000);
      await t.tickAsync(1_000);
      expect(fired).to.equal(true);
      // Real: setImmediate, nextTick and queueMicrotask still run without ticking.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await new Promise<void>((resolve) => process.nextTick(resolve));
      await new Promise<void>((resolve) => queueMicrotask(resolve));
    } finally {
      t.uninstall();
    }
    expect(Date.now()).to.be.above(DEFAULT_START);
  });

  it('after an install a failing test never uninstalled, uninstalls it, so later tests get the real Date, and throws naming the fix', () => {
    const realDate = Date;
    const stale = installTestClock(0); // a test failed before its uninstall() and had no afterEach
    try {
      expect(() => installTestClock()).to.throw(Error, /never uninstalled.*afterEach/);
      expect(Date).to.equal(realDate);
      expect(Date.now()).to.be.above(0);
      installTestClock().uninstall(); // and the next install works
    } finally {
      stale.uninstall(); // a no-op once undone
    }
  });
});
