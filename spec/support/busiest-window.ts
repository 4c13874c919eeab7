/**
 * The most of `times` (ms) any half-open window [a, a + windowMs) holds: what a rate limit of
 * "at most N per window" is checked against. The worst window starts at one of the times.
 */
export function busiestWindow(times: readonly number[], windowMs = 1000): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  let end = 0;
  for (let start = 0; start < sorted.length; start++) {
    while (end < sorted.length && sorted[end]! < sorted[start]! + windowMs) end++;
    most = Math.max(most, end - start);
  }
  return most;
}
