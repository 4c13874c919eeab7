/**
 * Which timers a test may fake, and a guard against fake timers that fake what must stay real.
 * `@sinonjs/fake-timers`' `install()` without a `toFake` list (and `sinon.useFakeTimers()`) fakes
 * `queueMicrotask`, `process.nextTick` and `setImmediate` too: the in-memory sockets and Node's
 * own I/O run on them, so every wait of the test hangs until the test runner's timeout, and a
 * test that hangs never reaches its own `uninstall()`, leaving `Date` faked for the tests after it.
 *
 * fake-timers marks each function it installs with the clock that installed it (`fn.clock`), so
 * every kit entry point checks the globals: it uninstalls such a clock (the test's own later
 * `uninstall()` is then a no-op) and throws an error that names the fix.
 */

/** What ws-timeouts needs faked; `nextTick`, `queueMicrotask` and `setImmediate` stay real. */
export const SAFE_TO_FAKE = ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] as const;

interface InstalledFakeClock {
  uninstall(): unknown;
}

const MUST_STAY_REAL: ReadonlyArray<readonly [name: string, current: () => unknown]> = [
  ['queueMicrotask', () => globalThis.queueMicrotask],
  ['process.nextTick', () => process.nextTick],
  ['setImmediate', () => globalThis.setImmediate],
];

function installerOf(fn: unknown): InstalledFakeClock | undefined {
  const clock = (fn as { clock?: Partial<InstalledFakeClock> } | undefined)?.clock;
  return typeof clock?.uninstall === 'function' ? (clock as InstalledFakeClock) : undefined;
}

/** Throws (after uninstalling the culprit) when fake timers fake `queueMicrotask`, `nextTick` or `setImmediate`. */
export function refuseUnsafeFakeTimers(caller: string): void {
  const faked = MUST_STAY_REAL.filter(([, current]) => installerOf(current()) !== undefined);
  if (faked.length === 0) return;
  const installers = new Set(faked.map(([, current]) => installerOf(current())!));
  for (const clock of installers) clock.uninstall();
  const toFake = SAFE_TO_FAKE.map((name) => `'${name}'`).join(', ');
  throw Object.assign(
    new Error(
      `ws-timeouts/testing: ${caller} found fake timers that fake ${faked.map(([name]) => name).join(', ')} ` +
        '(FakeTimers.install() or sinon.useFakeTimers() without a toFake list fakes them all). The in-memory sockets ' +
        "and Node's own I/O run on them, so the test would hang. That fake clock has been uninstalled, so Date and the " +
        `timers are real again. Use installTestClock() or createTestClock() from ws-timeouts/testing, or pass an explicit list: ` +
        `FakeTimers.install({ toFake: [${toFake}] }).`,
    ),
    { code: 'WS_TIMEOUTS_ERR_UNSAFE_FAKE_TIMERS' },
  );
}
