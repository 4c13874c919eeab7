/**
 * `ws-timeouts check-env`: resolves the `WS_*` variables of an environment exactly as the library
 * does, prints every value with its unit and where it came from, and names every problem, so an
 * operator can check a deployment's variables without starting a server. The fleet's variables
 * (`ws-timeouts/fleet`) are listed too: all of them once `REDIS_URL` is set, else the ones set.
 */
import { PROFILE_ENV, RECONNECT_JITTER, RECONNECT_RATE, TIMEOUT_ENV, explainTimeoutConfig, isDisabled, type TimeoutValueOrigin } from '../config.js';
import { formatConfigProblems } from '../errors.js';
import { FLEET_ENV, explainFleetSettings } from '../fleet/settings.js';

/** Where output goes (`process.stdout`, `process.stderr`, or a test's buffer). */
export interface TextSink {
  write(text: string): unknown;
}

function sourceText(value: TimeoutValueOrigin, profile: string | undefined): string {
  switch (value.source) {
    case 'profile':
      return `${profile} profile`;
    case 'derived':
      return 'derived: a tenth of the shortest ping/pong/idle/lifetime timeout, at most 1 s';
    default:
      return value.source; // 'default', 'variable' ('option' needs code: never from the environment)
  }
}

/** Left-aligned columns, two spaces apart. */
function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/**
 * Prints the resolved configuration of `env` as a table on `out`; on `err`, the variables the
 * library does not read and every problem.
 *
 * @returns The exit code: 0 when the configuration is valid, 1 when it has a problem.
 */
export function checkEnv(env: Record<string, string | undefined>, out: TextSink, err: TextSink): number {
  const explained = explainTimeoutConfig(env);
  const rows: string[][] = [['variable', 'value', 'unit', 'source']];
  rows.push([
    PROFILE_ENV,
    explained.profileRaw === undefined ? '(unset)' : JSON.stringify(explained.profileRaw),
    '-',
    explained.profileRaw === undefined ? 'default' : explained.profile ? 'variable' : 'variable (invalid)',
  ]);
  for (const value of explained.values) {
    if (value.ms === undefined) {
      const why = value.source === 'variable' ? 'variable (invalid)' : `${value.source} (unknown: see the problems)`;
      rows.push([value.variable, value.source === 'variable' ? JSON.stringify(value.raw) : '?', '-', why]);
      continue;
    }
    const disabled = isDisabled(value.field, value.ms) ? ' (disabled)' : '';
    rows.push([value.variable, `${value.ms / 1000}${disabled}`, 's', sourceText(value, explained.profile)]);
  }
  const budgetRow = (variable: string, value: number | undefined, unit: string): void => {
    const set = Boolean(env[variable]?.trim());
    rows.push([variable, value === undefined ? JSON.stringify(env[variable]) : String(value), unit, set ? (value === undefined ? 'variable (invalid)' : 'variable') : 'default']);
  };
  budgetRow(RECONNECT_RATE.env, explained.reconnectRate, '/s');
  budgetRow(RECONNECT_JITTER.env, explained.reconnectJitterMs === undefined ? undefined : explained.reconnectJitterMs / 1000, 's');
  const fleet = explainFleetSettings(env);
  const fleetOn = env[FLEET_ENV.redisUrl]?.trim();
  for (const value of fleet.values) {
    if (fleetOn || value.variable === FLEET_ENV.redisUrl || env[value.variable]?.trim()) rows.push([value.variable, value.value, value.unit, value.source]);
  }
  out.write(table(rows));

  const known = new Set<string>([PROFILE_ENV, ...Object.values(TIMEOUT_ENV), RECONNECT_RATE.env, RECONNECT_JITTER.env, ...Object.values(FLEET_ENV)]);
  const ignored = Object.keys(env).filter((name) => name.startsWith('WS_') && !known.has(name)).sort();
  if (ignored.length > 0) err.write(`Not read by ws-timeouts (misspelt?): ${ignored.join(', ')}\n`);

  const problems = [...explained.problems, ...fleet.problems];
  if (problems.length > 0) {
    // The fleet's and the reconnect budget's variables too: not only timeouts.
    err.write(`${formatConfigProblems(problems, 'Invalid ws-timeouts configuration')}\n`);
    return 1;
  }
  out.write('The configuration is valid.\n');
  return 0;
}
