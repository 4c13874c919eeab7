import type { TestClock } from '../../lib/testing/clock.js';

/**
 * What `promise` settles to, awaited on a fake clock without the risk of hanging: pending
 * callbacks run first, then fake time moves 1 ms at a time (a fake `setImmediate` runs 1 ms
 * later) for up to `withinMs`. Still pending after that, it fails with a message naming `what`.
 * A plain `await` of a promise that a regression leaves pending, on a fake clock that nobody
 * moves, would hang the spec until mocha's timeout and say nothing about what it waited for.
 */
export async function settles<T>(t: TestClock, promise: Promise<T>, what: string, withinMs = 0): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  // Handled here so that a rejection waiting for the caller is not reported as unhandled meanwhile.
  watched.catch(() => undefined);
  await t.flush();
  for (let ms = 0; !settled && ms < withinMs; ms++) await t.tickAsync(1);
  if (!settled) {
    throw new Error(`${what} is still pending ${withinMs > 0 ? `after ${withinMs} ms of fake time` : 'while fake time stands still'}`);
  }
  return watched;
}
