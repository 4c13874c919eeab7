/**
 * The library's only door to time.
 *
 * Every deadline, timer and timestamp in ws-timeouts goes through a `Clock`. The default
 * `systemClock` looks the globals up at call time (not at import time), so
 * `@sinonjs/fake-timers` installed after this module was loaded still drives the library.
 */

/** An opaque timer handle, as returned by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

export interface Clock {
  /** Milliseconds since the epoch (what `Date.now()` returns). */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds. The timer never keeps the process alive. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /**
   * Runs `fn` after pending I/O has been read (Node's check phase, `setImmediate`).
   * The scheduler judges pong deadlines here, so a pong that arrived during an
   * event-loop stall is seen before the peer is declared gone.
   */
  afterIo(fn: () => void): void;
}

function unref(handle: unknown): unknown {
  (handle as { unref?: () => void } | undefined)?.unref?.();
  return handle;
}

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => unref(globalThis.setTimeout(fn, ms)),
  clearTimeout: (handle: TimerHandle) => globalThis.clearTimeout(handle as NodeJS.Timeout),
  afterIo: (fn: () => void) => {
    globalThis.setImmediate(fn);
  },
});
