/**
 * The fleet's settings: their defaults, and the environment variables they are read from, each
 * checked here once. No ioredis behind this file, so `ws-timeouts check-env` lists the fleet's
 * variables without loading the bus.
 *
 * | variable | unit | default | `joinFleet` option |
 * | --- | --- | --- | --- |
 * | `REDIS_URL` | URL | unset: no fleet | `redisUrl` |
 * | `NODE_ID` | name | `joinFleet`'s `${hostname}-${pid}` (or the app's) | `nodeId` |
 * | `WS_FLEET_PREFIX` | name | `ws-timeouts` | `prefix` |
 * | `WS_FLEET_TTL` | seconds | 15 | `membershipTtlMs` |
 * | `WS_FLEET_REQUEST_TIMEOUT` | seconds | 1 | `requestTimeoutMs` |
 *
 * Seconds in the environment (fractions allowed), like the `WS_*` timeouts; ms in code.
 */
import { ConfigError, type ConfigProblem } from '../errors.js';
import { NODE_ID_PATTERN } from './ids.js';
import type { JoinFleetOptions } from './node.js';

/** The defaults, declared once. */
export const FLEET_DEFAULTS = Object.freeze({
  prefix: 'ws-timeouts',
  membershipTtlMs: 15_000,
  requestTimeoutMs: 1_000,
  routeLabel: 'route',
  roleLabel: 'role',
  /** Canaries missed in a row before the subscriber is called deaf. */
  canaryMisses: 2,
});

/** What a key and channel prefix may be. */
export const PREFIX_PATTERN = /^[A-Za-z0-9._:-]{1,100}$/;

/** The environment variable of each setting. */
export const FLEET_ENV = Object.freeze({
  redisUrl: 'REDIS_URL',
  nodeId: 'NODE_ID',
  prefix: 'WS_FLEET_PREFIX',
  membershipTtlMs: 'WS_FLEET_TTL',
  requestTimeoutMs: 'WS_FLEET_REQUEST_TIMEOUT',
});

/**
 * The accepted seconds of the two durations. The upper bounds are far above any sane value and
 * catch milliseconds written where seconds are read (`WS_FLEET_TTL=15000` would be 4 hours).
 */
const SECONDS = Object.freeze({
  membershipTtlMs: { min: 0.03, max: 3_600, why: 'the node key is refreshed every third of it' },
  requestTimeoutMs: { min: 0.001, max: 60, why: 'every fleet operation waits this long for the other nodes' },
});

/** The `joinFleet` options the environment gives; `nodeId` only when `NODE_ID` is set. */
export type FleetSettings = Required<Pick<JoinFleetOptions, 'redisUrl' | 'prefix' | 'membershipTtlMs' | 'requestTimeoutMs'>> & Pick<JoinFleetOptions, 'nodeId'>;

/** One fleet variable as `check-env` shows it. */
export interface FleetSettingValue {
  readonly variable: string;
  /** As read (`REDIS_URL` with its password masked), or the default; `(unset)` when there is none. */
  readonly value: string;
  readonly unit: 's' | '-';
  /** `variable`, `variable (invalid)`, `default`, `unset`, or `not used` (set, but `REDIS_URL` is not). */
  readonly source: string;
}

export interface FleetSettingsExplained {
  /** The settings {@link loadFleetSettings} returns: `null` without `REDIS_URL` or with a problem. */
  readonly settings: FleetSettings | null;
  readonly values: readonly FleetSettingValue[];
  /** Every problem, in the order of {@link FLEET_ENV}; none without `REDIS_URL`. */
  readonly problems: readonly ConfigProblem[];
}

/** `url` with its password masked, for logs, errors and `check-env`. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '[unparsable Redis URL]';
  }
}

/** Like {@link loadFleetSettings}, but never throws: every value with its source, and every problem. */
export function explainFleetSettings(env: Record<string, string | undefined> = process.env): FleetSettingsExplained {
  const read = (name: string): string | undefined => env[name]?.trim() || undefined;
  const redisUrl = read(FLEET_ENV.redisUrl);
  const problems: ConfigProblem[] = [];
  const values: FleetSettingValue[] = [];
  const show = (variable: string, shown: string, unit: FleetSettingValue['unit'], invalid: boolean): void => {
    const set = read(variable) !== undefined;
    const source = !set ? 'default' : redisUrl === undefined ? 'not used (REDIS_URL is unset)' : invalid ? 'variable (invalid)' : 'variable';
    values.push({ variable, value: shown, unit, source });
  };

  if (redisUrl === undefined) {
    values.push({ variable: FLEET_ENV.redisUrl, value: '(unset)', unit: '-', source: 'unset: one process, no fleet' });
  } else {
    const protocol = URL.canParse(redisUrl) ? new URL(redisUrl).protocol : '';
    const invalid = protocol !== 'redis:' && protocol !== 'rediss:';
    if (invalid) problems.push({ name: FLEET_ENV.redisUrl, value: redactRedisUrl(redisUrl), reason: 'expected a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379' });
    values.push({ variable: FLEET_ENV.redisUrl, value: redactRedisUrl(redisUrl), unit: '-', source: invalid ? 'variable (invalid)' : 'variable' });
  }

  const nodeId = read(FLEET_ENV.nodeId);
  const badNodeId = nodeId !== undefined && !NODE_ID_PATTERN.test(nodeId);
  if (badNodeId) problems.push({ name: FLEET_ENV.nodeId, value: env[FLEET_ENV.nodeId], reason: 'expected 1 to 64 letters, digits, ".", "_" or "-" (no ":"), e.g. web-1' });
  show(FLEET_ENV.nodeId, nodeId ?? '(unset: <hostname>-<pid>, or the app\'s default)', '-', badNodeId);

  const prefix = read(FLEET_ENV.prefix) ?? FLEET_DEFAULTS.prefix;
  const badPrefix = !PREFIX_PATTERN.test(prefix);
  if (badPrefix) problems.push({ name: FLEET_ENV.prefix, value: env[FLEET_ENV.prefix], reason: 'expected 1 to 100 letters, digits, ".", "_", ":" or "-", e.g. ws-timeouts' });
  show(FLEET_ENV.prefix, prefix, '-', badPrefix);

  const durations = { membershipTtlMs: 0, requestTimeoutMs: 0 };
  for (const field of ['membershipTtlMs', 'requestTimeoutMs'] as const) {
    const variable = FLEET_ENV[field];
    const { min, max, why } = SECONDS[field];
    const text = read(variable);
    const seconds = text === undefined ? FLEET_DEFAULTS[field] / 1000 : /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
    const invalid = !(seconds >= min && seconds <= max);
    if (invalid) {
      const unit = text !== undefined && /^\d+(\.\d+)?\s*[a-z]+$/i.test(text) ? ' (the unit is always seconds: write the number alone)' : '';
      problems.push({ name: variable, value: env[variable], reason: `expected seconds from ${min} to ${max}, fractions allowed, e.g. 0.5${unit}; ${why}` });
    }
    durations[field] = Math.round(seconds * 1000);
    show(variable, invalid ? JSON.stringify(env[variable]) : String(seconds), 's', invalid);
  }

  if (redisUrl === undefined) return { settings: null, values, problems: [] };
  if (problems.length > 0) return { settings: null, values, problems };
  const settings: FleetSettings = { redisUrl, prefix, ...durations };
  if (nodeId !== undefined) settings.nodeId = nodeId;
  return { settings, values, problems };
}

/**
 * The fleet settings of an environment, as `joinFleet` options: `null` when `REDIS_URL` is unset
 * (the app runs alone, and no other fleet variable is read).
 *
 * ```ts
 * const settings = loadFleetSettings(process.env);
 * const fleet = settings && (await joinFleet({ registry, ...settings }));
 * ```
 * @throws {ConfigError} Naming every problem at once (`err.problems`), the password of `REDIS_URL` masked.
 */
export function loadFleetSettings(env: Record<string, string | undefined> = process.env): FleetSettings | null {
  const { settings, problems } = explainFleetSettings(env);
  if (problems.length > 0) throw new ConfigError(problems, 'Invalid fleet configuration');
  return settings;
}
