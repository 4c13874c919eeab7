/**
 * Fake time for tests, wired the safe way: `@sinonjs/fake-timers` fakes timers and `Date`,
 * never `nextTick`, `queueMicrotask` or real I/O, and time is advanced with async ticks so
 * promise chains settle between timers.
 */
import FakeTimers from '@sinonjs/fake-timers';
import type { Clock } from '../clock.js';

/** What ws-timeouts needs faked; `nextTick`, `queueMicrotask` and `setImmediate` stay real unless asked. */
export const SAFE_TO_FAKE = ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] as const;

export interface TestClock {
  /** Pass as the `clock` option of managers, registries and schedulers. */
  readonly clock: Clock;
  /** The underlying fake-timers clock. */
  readonly fake: FakeTimers.Clock;
  /** Current fake time, ms since the epoch. */
  now(): number;
  /** Advances time by `ms`, firing timers in order and letting promises settle between them. */
  tickAsync(ms: number): Promise<void>;
  /** Lets pending promise callbacks and microtasks run without moving time. */
  flush(): Promise<void>;
}

/** @default start 2023-11-09T03:20:00Z (1_699_500_000_000), the timestamp in seed 002's example */
export const DEFAULT_START = 1_699_500_000_000;

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

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => queueMicrotask(resolve));
}

function wrap(fake: FakeTimers.Clock): TestClock {
  return {
    clock: adapt(fake),
    fake,
    now: () => fake.now,
    async tickAsync(ms) {
      await fake.tickAsync(ms);
      await settle();
    },
    flush: settle,
  };
}

/** A private fake clock to inject (`{ clock }`): no global is touched. */
export function createTestClock(start: number = DEFAULT_START): TestClock {
  return wrap(FakeTimers.createClock(start));
}

/**
 * Installs fake timers on the globals with {@link SAFE_TO_FAKE}, for code that does not take a
 * `clock` (the library's default clock reads the globals at call time). Call `uninstall()` after.
 */
export function installTestClock(start: number = DEFAULT_START): TestClock & { uninstall(): void } {
  const fake = FakeTimers.install({ now: start, toFake: [...SAFE_TO_FAKE] });
  return { ...wrap(fake), uninstall: () => fake.uninstall() };
}
