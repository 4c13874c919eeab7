import type { Context } from 'mocha';

/** Whether this run is CI's (`.ci/run` runs with `CI=true`; other CI systems set `CI=1`). */
function isCi(): boolean {
  const value = process.env.CI ?? '';
  return value !== '' && value !== 'false' && value !== '0';
}

/**
 * For a `before` hook of cases that drive a program from a Debian package (chromium,
 * python3-websockets, redis-server). When `probe()` finds it missing, the cases are skipped with
 * one line naming the package to install; under CI they fail instead, because `.ci/run` installs
 * these packages and a skip there would hide a broken install step.
 */
export function requireSystemTool(context: Context, name: string, debianPackage: string, probe: () => boolean): void {
  if (probe()) return;
  const install = `apt-get install ${debianPackage}`;
  if (isCi()) throw new Error(`${name} is missing and CI is set, so this fails instead of skipping: .ci/run installs it (${install})`);
  console.warn(`    skipped: ${name} is missing; install the Debian package: ${install}`);
  context.skip();
}
