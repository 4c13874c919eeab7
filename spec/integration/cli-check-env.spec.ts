import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { bin?: Record<string, string> };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built `ws-timeouts` bin (the file package.json names, as `npx ws-timeouts` would) with
 * exactly `env` as its `WS_*` variables: none leak in from the test runner.
 */
function runBin(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const bin = PACKAGE.bin?.['ws-timeouts'];
  if (bin === undefined) throw new Error('package.json has no "bin" entry "ws-timeouts"');
  // Plain node, as a user's: no tsx loader from the runner's NODE_OPTIONS.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WS_') && !['NODE_OPTIONS', 'REDIS_URL', 'NODE_ID'].includes(k)));
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: ROOT, env: { ...base, ...env }, timeout: 15_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

/** The table's rows by variable: `[value, unit, source]`. */
function rows(stdout: string): Record<string, string[]> {
  const lines = stdout.split('\n').filter((line) => /^(WS_|REDIS_URL |NODE_ID )/.test(line));
  return Object.fromEntries(lines.map((line) => line.split(/ {2,}/)).map(([name, ...cells]) => [name!, cells]));
}

describe('npx ws-timeouts check-env (the built bin, as a child process)', () => {
  it('is a node script the package declares as its "ws-timeouts" bin', () => {
    const bin = PACKAGE.bin?.['ws-timeouts'];
    expect(bin).to.be.a('string');
    expect(readFileSync(new URL(`../../${bin}`, import.meta.url), 'utf8').split('\n')[0]).to.equal('#!/usr/bin/env node');
  });

  it('prints every value with its unit and source, and exits 0, for the defaults', async () => {
    const run = await runBin(['check-env']);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stderr).to.equal('');
    expect(run.stdout).to.match(/^variable +value +unit +source\n/);
    const table = rows(run.stdout);
    expect(table.WS_TIMEOUT_PROFILE).to.deep.equal(['(unset)', '-', 'default']);
    expect(table.WS_IDLE_TIMEOUT).to.deep.equal(['60', 's', 'default']);
    expect(table.WS_PING_INTERVAL).to.deep.equal(['25', 's', 'default']);
    expect(table.WS_TIMER_RESOLUTION![0]).to.equal('1');
    expect(table.WS_TIMER_RESOLUTION![2]).to.match(/^derived/);
    expect(table.WS_FLEET_RECONNECT_RATE).to.deep.equal(['200', '/s', 'default']);
    expect(table.WS_FLEET_RECONNECT_JITTER).to.deep.equal(['0.25', 's', 'default']);
    expect(table.REDIS_URL).to.deep.equal(['(unset)', '-', 'unset: one process, no fleet']);
    expect(Object.keys(table)).to.have.length(12);
    expect(run.stdout).to.include('The configuration is valid.');
  });

  it('says which values come from the profile, which from their variable, and derives the resolution', async () => {
    const run = await runBin(['check-env'], { WS_TIMEOUT_PROFILE: 'production', WS_PING_INTERVAL: '0.5', WS_IDLE_TIMEOUT: '0' });
    expect(run.code, run.stderr).to.equal(0);
    const table = rows(run.stdout);
    expect(table.WS_TIMEOUT_PROFILE).to.deep.equal(['"production"', '-', 'variable']);
    expect(table.WS_PONG_TIMEOUT).to.deep.equal(['90', 's', 'production profile']);
    expect(table.WS_PING_INTERVAL).to.deep.equal(['0.5', 's', 'variable']);
    expect(table.WS_IDLE_TIMEOUT).to.deep.equal(['0 (disabled)', 's', 'variable']);
    expect(table.WS_TIMER_RESOLUTION!.slice(0, 2)).to.deep.equal(['0.05', 's']);
  });

  it('exits 1 naming every problem on stderr: bad values, unknown profile, broken combinations', async () => {
    const run = await runBin(['check-env'], {
      WS_TIMEOUT_PROFILE: 'staging',
      WS_IDLE_TIMEOUT: '30s',
      WS_PONG_TIMEOUT: '-1',
      WS_PING_INTERVAL: '400',
      WS_CONNECTION_TIMEOUT: '300',
    });
    expect(run.code).to.equal(1);
    expect(run.stderr).to.include('Invalid ws-timeouts configuration (4 problems):');
    for (const fragment of ['WS_TIMEOUT_PROFILE="staging"', 'WS_IDLE_TIMEOUT="30s"', 'WS_PONG_TIMEOUT="-1"', 'WS_PING_INTERVAL/WS_CONNECTION_TIMEOUT=']) {
      expect(run.stderr).to.include(fragment);
    }
    const table = rows(run.stdout);
    expect(table.WS_IDLE_TIMEOUT).to.deep.equal(['"30s"', '-', 'variable (invalid)']);
    expect(table.WS_CONNECTION_TIMEOUT).to.deep.equal(['300', 's', 'variable']);
    expect(run.stdout).not.to.include('The configuration is valid.');
  });

  it('refuses an explicit resolution coarser than the shortest timeout', async () => {
    const run = await runBin(['check-env'], { WS_PING_INTERVAL: '0.5', WS_TIMER_RESOLUTION: '1' });
    expect(run.code).to.equal(1);
    expect(run.stderr).to.include('WS_TIMER_RESOLUTION/WS_PING_INTERVAL=');
  });

  it('names WS_* variables it does not read, without failing for them', async () => {
    const run = await runBin(['check-env'], { WS_IDLE_TIMOUT: '3' });
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stderr).to.include('Not read by ws-timeouts (misspelt?): WS_IDLE_TIMOUT');
  });

  it('lists the fleet variables once REDIS_URL is set (its password masked), with their units, and does not call them unknown', async () => {
    const run = await runBin(['check-env'], { REDIS_URL: 'redis://:s3cret@127.0.0.1:6390', NODE_ID: 'web-1', WS_FLEET_TTL: '4.5' });
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stderr).to.equal('');
    expect(run.stdout).to.not.include('s3cret');
    const table = rows(run.stdout);
    expect(table.REDIS_URL).to.deep.equal(['redis://:***@127.0.0.1:6390', '-', 'variable']);
    expect(table.NODE_ID).to.deep.equal(['web-1', '-', 'variable']);
    expect(table.WS_FLEET_PREFIX).to.deep.equal(['ws-timeouts', '-', 'default']);
    expect(table.WS_FLEET_TTL).to.deep.equal(['4.5', 's', 'variable']);
    expect(table.WS_FLEET_REQUEST_TIMEOUT).to.deep.equal(['1', 's', 'default']);
  });

  it('exits 1 naming the fleet problems with the timeout ones, all at once', async () => {
    const run = await runBin(['check-env'], { REDIS_URL: 'redis://h', WS_FLEET_REQUEST_TIMEOUT: '500', WS_FLEET_PREFIX: 'a b', WS_IDLE_TIMEOUT: 'x' });
    expect(run.code).to.equal(1);
    expect(run.stderr).to.include('(3 problems):');
    for (const fragment of ['WS_IDLE_TIMEOUT="x"', 'WS_FLEET_PREFIX="a b"', 'WS_FLEET_REQUEST_TIMEOUT="500": expected seconds from 0.001 to 60']) {
      expect(run.stderr).to.include(fragment);
    }
    expect(rows(run.stdout).WS_FLEET_REQUEST_TIMEOUT).to.deep.equal(['"500"', 's', 'variable (invalid)']);
  });

  it('without REDIS_URL, a fleet variable that is set is shown as not used, not as misspelt', async () => {
    const run = await runBin(['check-env'], { WS_FLEET_PREFIX: 'shop' });
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stderr).to.equal('');
    expect(rows(run.stdout).WS_FLEET_PREFIX).to.deep.equal(['shop', '-', 'not used (REDIS_URL is unset)']);
  });

  it('prints its usage for --help, and exits 2 with the usage for an unknown command', async () => {
    const help = await runBin(['--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include('Usage: ws-timeouts check-env');
    const bad = await runBin(['check-nev']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('Unknown arguments: check-nev').and.include('Usage: ws-timeouts check-env');
  });

  it('exits with its own code, without a crash, when its reader stops early (check-env | head)', async () => {
    const bin = PACKAGE.bin!['ws-timeouts']!;
    // `head -c 0` exits without reading, so the table is written into a closed pipe (EPIPE).
    const script = `"${process.execPath}" ${bin} check-env | head -c 0; echo "exit=\${PIPESTATUS[0]}" >&2`;
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WS_') && k !== 'NODE_OPTIONS'));
    const stderr = await new Promise<string>((resolve) => {
      execFile('bash', ['-c', script], { cwd: ROOT, env: { ...base, WS_IDLE_TIMEOUT: 'abc' }, timeout: 15_000 }, (_error, _stdout, err) => resolve(err));
    });
    expect(stderr).to.not.match(/EPIPE|Unhandled/);
    expect(stderr).to.match(/exit=1$/m);
  });
});
