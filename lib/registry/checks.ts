/** The registry's argument checks: each error names the option, echoes the value and gives the range. */

export function checkPositiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`ConnectionRegistry: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

export function checkMs(name: string, value: unknown, { allowZero }: { allowZero: boolean }): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0) || value > 2 ** 31 - 1) {
    const range = allowZero ? 'from 0 to 2147483647' : 'from 1 to 2147483647';
    throw new RangeError(`ConnectionRegistry: ${name} must be a number of milliseconds ${range}, got ${String(value)}`);
  }
  return value;
}

export function checkSessionCount(name: string, value: unknown): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new RangeError(`ConnectionRegistry: ${name} must be a non-negative number of sessions, got ${String(value)}`);
  }
  return value;
}
