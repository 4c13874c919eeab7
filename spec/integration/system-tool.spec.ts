import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MOCHA = fileURLToPath(new URL('../../node_modules/mocha/bin/mocha.js', import.meta.url));
/** The two files whose cases need Debian packages, run without the reliability hooks (no RELIABILITY.md rewrite). */
const FILES = ['spec/integration/browser/dashboard.spec.ts', 'reliability/10-foreign-clients.spec.ts'];

/** Runs those files on a machine that looks like it lacks chromium and python3-websockets. */
function runWithoutTools(ci: string | undefined): { status: number | null; output: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, CHROMIUM_PATH: '/nonexistent/chromium', PYTHON3_PATH: '/nonexistent/python3' };
  delete env.CI;
  if (ci !== undefined) env.CI = ci;
  const run = spawnSync(process.execPath, [MOCHA, '--no-config', '--no-color', '--import=tsx', '--extension', 'ts', '--timeout', '20000', ...FILES], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
  });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

// `npm test` on a fresh machine: the cases that need chromium or python3-websockets say which
// package to install instead of failing deep in a hook; in CI a missing package is a failure.
describe('cases that need a Debian package, on a machine without it', function () {
  this.timeout(120_000);

  it('are skipped with one line naming the package to install', () => {
    const { status, output } = runWithoutTools(undefined);
    expect(status, output).to.equal(0);
    expect(output.match(/skipped: .*/g), output).to.deep.equal([
      'skipped: chromium is missing; install the Debian package: apt-get install chromium',
      'skipped: python3-websockets is missing; install the Debian package: apt-get install python3-websockets',
    ]);
    expect(output).to.match(/\b0 passing\b/).and.match(/\b4 pending\b/).and.not.match(/failing/);
  });

  it('fail under CI=true, naming the package', () => {
    const { status, output } = runWithoutTools('true');
    expect(status, output).to.equal(2);
    expect(output).to.match(/2 failing/).and.not.match(/skipped:/);
    expect(output).to.include('chromium is missing and CI is set, so this fails instead of skipping: .ci/run installs it (apt-get install chromium)');
    expect(output).to.include('python3-websockets is missing and CI is set, so this fails instead of skipping: .ci/run installs it (apt-get install python3-websockets)');
  });
});
