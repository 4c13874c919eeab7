/**
 * Fake time for tests, wired the safe way: `@sinonjs/fake-timers` fakes timers and `Date`,
 * never `nextTick`, `queueMicrotask`, `setImmediate` or real I/O, and time is advanced with
 * async ticks so promise chains settle between timers and after the last one.
 *
 * `@sinonjs/fake-timers` is an optional peer dependency: it is loaded on the first call of
 * {@link createTestClock} or {@link installTestClock}, never by importing `ws-timeouts/testing`,
 * so the socket pair works without it.
 */
import { createRequire } from 'node:module';
import type * as FakeTimers from '@sinonjs/fake-timers';
import type { Clock } from '../clock.js';
import { refuseUnsafeFakeTimers, SAFE_TO_FAKE } from './fake-timers-safety.js';

export interface TestClock {
  /** Pass as the `clock` option of managers, registries, schedulers, `createSocketPair` and `connectHandler`. */
  readonly clock: Clock;
  /** The underlying fake-timers clock (`setSystemTime`, `countTimers`, ...). */
  readonly fake: FakeTimers.Clock;
  /** Current fake time, ms since the epoch. */
  now(): number;
  /**
   * Advances time by `ms`: fires every timer due, in order, lets promise callbacks run between
   * timers, and returns only once every promise chain started by them has settled.
   */
  tickAsync(ms: number): Promise<void>;
  /** Lets pending promise callbacks, microtasks and in-memory socket frames run without moving time. */
  flush(): Promise<void>;
}

/** Where a test clock starts unless told otherwise: 2023-11-09T03:20:00Z (1_699_500_000_000). */
export const DEFAULT_START = 1_699_500_000_000;

// Captured at import: the real one, even if a test later fakes it against our advice.
const realSetImmediate = globalThis.setImmediate;

let fakeTimers: typeof FakeTimers | undefined;

function loadFakeTimers(): typeof FakeTimers {
  if (fakeTimers) return fakeTimers;
  try {
    fakeTimers = createRequire(import.meta.url)('@sinonjs/fake-timers') as typeof FakeTimers;
  } catch (err) {
    throw Object.assign(
      new Error(
        'ws-timeouts/testing: createTestClock() and installTestClock() need @sinonjs/fake-timers, ' +
          'an optional peer dependency. Install it in your project: npm i -D @sinonjs/fake-timers',
      ),
      { code: 'WS_TIMEOUTS_ERR_FAKE_TIMERS_MISSING', cause: err },
    );
  }
  return fakeTimers;
}

function adapt(fake: FakeTimers.Clock): Clock {
  return {
    now: () => fake.now,
    setTimeout: (fn, ms) => fake.setTimeout(fn, ms),
    clearTimeout: (handle) => fake.clearTimeout(handle as FakeTimers.TimerId),
    afterIo: (fn) => {
      fake.setImmediate(fn);
    },
  };
}

/**
 * Runs every queued microtask and promise callback, however long the chain: the microtask
 * queue is always drained before a macrotask (here a real `setImmediate`) runs.
 */
function settle(): Promise<void> {
  return new Promise((resolve) => realSetImmediate(resolve));
}

function wrap(fake: FakeTimers.Clock): TestClock {
  return {
    clock: adapt(fake),
    fake,
    now: () => fake.now,
    async tickAsync(ms) {
      refuseUnsafeFakeTimers('tickAsync()');
      if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
        throw new RangeError(`tickAsync(ms): ms must be a finite number of milliseconds >= 0, got ${String(ms)}`);
      }
      await fake.tickAsync(ms);
      await settle();
    },
    async flush() {
      refuseUnsafeFakeTimers('flush()');
      await settle();
    },
  };
}

/** A private fake clock to inject (`{ clock: t.clock }`): no global is touched. */
export function createTestClock(start: number = DEFAULT_START): TestClock {
  refuseUnsafeFakeTimers('createTestClock()');
  return wrap(loadFakeTimers().createClock(start));
}

let installed: (TestClock & { uninstall(): void }) | undefined;

/** @internal the clock of the `installTestClock()` in force, if any (`connectHandler` uses it) */
export function installedTestClock(): Clock | undefined {
  return installed?.clock;
}

/**
 * Installs fake timers on the globals with {@link SAFE_TO_FAKE}, for code that does not take a
 * `clock` (the library's default clock reads the globals at call time). Call `uninstall()` in
 * `afterEach`: installing again before that throws, after undoing the install left in force.
 */
export function installTestClock(start: number = DEFAULT_START): TestClock & { uninstall(): void } {
  refuseUnsafeFakeTimers('installTestClock()');
  if (installed) {
    // A test failed before its uninstall(): undo its install, so the tests after this one get the real Date.
    installed.uninstall();
    throw new Error(
      'installTestClock(): the previous installTestClock() was never uninstalled, so Date and the timers stayed faked. ' +
        'It is uninstalled now; call uninstall() in afterEach (it runs even when a test fails) or in a finally block.',
    );
  }
  const fake = loadFakeTimers().install({ now: start, toFake: [...SAFE_TO_FAKE] });
  const testClock: TestClock & { uninstall(): void } = {
    ...wrap(fake),
    uninstall: () => {
      if (installed === testClock) installed = undefined;
      fake.uninstall();
    },
  };
  installed = testClock;
  return testClock;
}
