/**
 * The timeout configuration: the `WS_*` environment variables (seconds), parsed with envalid,
 * three named profiles, the cross-field rules, and one frozen
 * {@link TimeoutConfig} in milliseconds that the rest of the library reads.
 *
 * Parsing never exits the process and never prints: every problem (bad values, unknown profile,
 * broken cross-field rules, bad code overrides) is collected and thrown at once in one
 * {@link ConfigError}.
 *
 * An empty (or whitespace-only) variable counts as unset, as in dotenv files where `WS_IDLE_TIMEOUT=`
 * is a common way to leave a line in place without giving it a value.
 */
import { cleanEnv, EnvError, makeValidator, type ReporterOptions } from 'envalid';
import { ConfigError, type ConfigProblem } from './errors.js';
import { RECONNECT_BUDGET_DEFAULTS, RECONNECT_BUDGET_LIMITS } from './reconnect-budget.js';

/** The named presets selected with `WS_TIMEOUT_PROFILE`. */
export type TimeoutProfile = 'development' | 'production' | 'high-latency';

/** What is declared about one timeout field: everything else (type, env names, tables, docs) derives from it. */
interface FieldSpec {
  /** Its environment variable, read in seconds (fractions allowed, rounded to whole ms). */
  readonly env: string;
  /** Its value in ms when no profile is selected ({@link DEFAULT_TIMEOUT_CONFIG}). */
  readonly default: number;
  /** Its value in ms in each of the {@link TIMEOUT_PROFILES}. */
  readonly profiles: Readonly<Record<TimeoutProfile, number>>;
  /** Whether 0 disables it; otherwise it must be > 0. */
  readonly zeroDisables: boolean;
  /** One line for the envalid spec (`desc`). */
  readonly doc: string;
}

/**
 * Every timeout field, declared once, in order (also the order problems are reported in). The
 * TSDoc of each entry is the TSDoc of the {@link TimeoutConfig} field of the same name.
 */
const TIMEOUT_FIELDS = {
  /**
   * How often the manual loop's heartbeat runs: the default wait of `receiveWithTimeout`.
   * Env `WS_HEARTBEAT_INTERVAL` (seconds). Must be > 0.
   * @default 30000
   */
  heartbeatIntervalMs: {
    env: 'WS_HEARTBEAT_INTERVAL',
    default: 30_000,
    profiles: { development: 15_000, production: 60_000, 'high-latency': 120_000 },
    zeroDisables: false,
    doc: "seconds between heartbeat checks of the manual loop (receiveWithTimeout's default wait)",
  },
  /**
   * Maximum connection lifetime. Env `WS_CONNECTION_TIMEOUT` (seconds). `0` disables the limit.
   * @default 300000
   */
  connectionTimeoutMs: {
    env: 'WS_CONNECTION_TIMEOUT',
    default: 300_000,
    profiles: { development: 120_000, production: 600_000, 'high-latency': 1_200_000 },
    zeroDisables: true,
    doc: 'maximum connection lifetime in seconds; 0 disables',
  },
  /**
   * Deadline for one send to be flushed to the socket. Env `WS_MESSAGE_TIMEOUT` (seconds). Must be > 0.
   * @default 1000
   */
  messageTimeoutMs: {
    env: 'WS_MESSAGE_TIMEOUT',
    default: 1_000,
    profiles: { development: 500, production: 2_000, 'high-latency': 5_000 },
    zeroDisables: false,
    doc: 'seconds one send may take to be flushed',
  },
  /**
   * No application message (in or out) for this long closes the socket. Env `WS_IDLE_TIMEOUT`
   * (seconds). `0` disables idle expiry.
   * @default 60000
   */
  idleTimeoutMs: {
    env: 'WS_IDLE_TIMEOUT',
    default: 60_000,
    profiles: { development: 30_000, production: 120_000, 'high-latency': 300_000 },
    zeroDisables: true,
    doc: 'seconds without an application message before the socket is closed; 0 disables',
  },
  /**
   * How often a ping is sent. Env `WS_PING_INTERVAL` (seconds). Must be > 0.
   * @default 25000
   */
  pingIntervalMs: {
    env: 'WS_PING_INTERVAL',
    default: 25_000,
    profiles: { development: 10_000, production: 30_000, 'high-latency': 60_000 },
    zeroDisables: false,
    doc: 'seconds between pings',
  },
  /**
   * A ping unanswered for this long means the peer is gone (the socket is terminated).
   * Env `WS_PONG_TIMEOUT` (seconds). Must be > 0.
   * @default 60000
   */
  pongTimeoutMs: {
    env: 'WS_PONG_TIMEOUT',
    default: 60_000,
    profiles: { development: 30_000, production: 90_000, 'high-latency': 180_000 },
    zeroDisables: false,
    doc: 'seconds a ping may stay unanswered before the peer is declared gone',
  },
  /**
   * How long a closing handshake may take, whoever starts it, before the socket is terminated:
   * `gracefulClose` waits this long for the peer's close frame; when the peer closes first, `ws`
   * would wait 30 s (its own `closeTimeout`) for the peer to end the TCP connection, the manager
   * terminates it after this instead (logging `WebSocket close handshake did not finish in time,
   * terminating`) and the close keeps the peer's code. Env `WS_CLOSE_TIMEOUT` (seconds). Must be > 0.
   * @default 5000
   */
  closeTimeoutMs: {
    env: 'WS_CLOSE_TIMEOUT',
    default: 5_000,
    profiles: { development: 5_000, production: 5_000, 'high-latency': 5_000 },
    zeroDisables: false,
    doc: "seconds gracefulClose waits for the peer's close frame before terminating",
  },
  /**
   * The shared scheduler's tick: pings go out on ticks, and idle, lifetime and pong timeouts
   * fire at their deadline, no later than a sixteenth of a tick after it.
   * Env `WS_TIMER_RESOLUTION` (seconds). Must be > 0 and not greater than the smallest enabled
   * tick-driven timeout (ping interval, pong timeout, idle, lifetime).
   *
   * When neither `WS_TIMER_RESOLUTION` nor a `resolutionMs` option gives it, it is derived from
   * the other values: a tenth of the smallest enabled tick-driven timeout, rounded down to whole
   * ms, at least 1 ms and at most 1000 ms (so 1 s for the defaults and the three profiles, 50 ms
   * for `WS_PING_INTERVAL=0.5`). A derived resolution is derived again when an override
   * (`resolveTimeoutConfig`, `wsTimeouts(overrides)`) changes a timeout; a given one is kept, and
   * an error if it is coarser than the new smallest timeout.
   * @default 1000 (derived)
   */
  resolutionMs: {
    env: 'WS_TIMER_RESOLUTION',
    default: 1_000,
    profiles: { development: 1_000, production: 1_000, 'high-latency': 1_000 },
    zeroDisables: false,
    doc: 'seconds per tick of the shared scheduler; pings wait for a tick, timeouts fire within 1/16 tick of their deadline',
  },
} as const satisfies Record<string, FieldSpec>;

/**
 * The fleet's reconnect budget (see `ReconnectBudget`): not timeouts of a connection, so declared
 * here, next to the timeout fields, rather than among them. Read by {@link loadReconnectBudgetOptions};
 * a bad value is one more problem of {@link loadTimeoutConfig}, reported with the timeouts' ones.
 */
export const RECONNECT_RATE = Object.freeze({
  /** Its environment variable, in closes per second (fractions allowed). */
  env: 'WS_FLEET_RECONNECT_RATE',
  /** Closes per second across the fleet when the variable is unset. */
  default: 200,
  /** The largest accepted rate, closes per second. */
  max: RECONNECT_BUDGET_LIMITS.maxRate,
  doc: 'closes per second the clients see across the fleet, from lifetime expiries and drains (fractions allowed); > 0',
});

/** How much the delay from a close to its client seeing it may vary (`ReconnectBudgetOptions.jitterMs`). */
export const RECONNECT_JITTER = Object.freeze({
  /** Its environment variable, in seconds (fractions allowed). */
  env: 'WS_FLEET_RECONNECT_JITTER',
  /** Seconds when the variable is unset. */
  default: RECONNECT_BUDGET_DEFAULTS.jitterMs / 1000,
  /** The largest accepted value, seconds. */
  max: RECONNECT_BUDGET_LIMITS.maxJitterMs / 1000,
  doc: 'seconds by which the delay from a close to its client seeing it may vary; the budget paces for it; 0 to 60',
});

/**
 * Every timeout of one connection, in milliseconds (whole numbers). Produced frozen by
 * {@link loadTimeoutConfig}, {@link resolveTimeoutConfig} and {@link defaultTimeoutConfig}.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- an interface, so its fields are documented one by one
export interface TimeoutConfig extends TimeoutFieldValues {}

/** A number per declared field, each with the TSDoc of its {@link TIMEOUT_FIELDS} entry. */
type TimeoutFieldValues = { readonly [F in keyof typeof TIMEOUT_FIELDS]: number };

type Field = keyof TimeoutConfig;

/** Field order: also the order problems are reported in. */
const FIELDS = Object.freeze(Object.keys(TIMEOUT_FIELDS) as Field[]);

/** The only fields for which 0 means "disabled". */
const DISABLEABLE: ReadonlySet<Field> = new Set(FIELDS.filter((f) => TIMEOUT_FIELDS[f].zeroDisables));

/**
 * The timeouts the scheduler tick enforces; the resolution must not be coarser than any enabled one.
 * On a tie, the first in this order is the one a problem names.
 */
const TICK_DRIVEN: readonly Field[] = Object.freeze(['pingIntervalMs', 'pongTimeoutMs', 'idleTimeoutMs', 'connectionTimeoutMs'] as const);

/** One value per field, in field order. */
function perField<T>(value: (field: Field) => T): Record<Field, T> {
  return Object.fromEntries(FIELDS.map((field) => [field, value(field)])) as Record<Field, T>;
}

/** Largest delay Node timers honour (2^31-1 ms ≈ 24.8 days); larger ones fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_TIMER_SECONDS = MAX_TIMER_MS / 1000;

/** The variable that selects a profile. */
export const PROFILE_ENV = 'WS_TIMEOUT_PROFILE';

const PROFILE_NAMES: readonly TimeoutProfile[] = Object.freeze(['development', 'production', 'high-latency'] as const);

/**
 * The environment variable (seconds) behind each field: `WS_HEARTBEAT_INTERVAL`,
 * `WS_CONNECTION_TIMEOUT`, `WS_MESSAGE_TIMEOUT`, `WS_IDLE_TIMEOUT`, `WS_PING_INTERVAL`,
 * `WS_PONG_TIMEOUT`, `WS_CLOSE_TIMEOUT` and `WS_TIMER_RESOLUTION` (each field's doc in
 * {@link TimeoutConfig} names its variable). The profile itself is selected with `WS_TIMEOUT_PROFILE`.
 */
export const TIMEOUT_ENV: Readonly<Record<Field, string>> = Object.freeze(perField((f) => TIMEOUT_FIELDS[f].env));

/** True when `ms` is the value that disables `field` (0 for the lifetime and idle timeouts). */
export function isDisabled(field: Field, ms: number): boolean {
  return ms === 0 && DISABLEABLE.has(field);
}

/** Every config this module produced (frozen and valid), so hot paths can skip re-validation. */
const produced = new WeakSet<object>();

/** The produced configs whose `resolutionMs` was derived rather than given: overrides derive it again. */
const derivedResolution = new WeakSet<object>();

/** Freezes a config (fields in declaration order), registers it as produced by this module, and returns it. */
function seal(values: Readonly<Record<Field, number>>, resolutionDerived: boolean): TimeoutConfig {
  const config: TimeoutConfig = Object.freeze(perField((f) => values[f]));
  produced.add(config);
  if (resolutionDerived) derivedResolution.add(config);
  return config;
}

/** A derived resolution is this fraction of the smallest tick-driven timeout (1 s of 10 s in `development`)... */
const DERIVED_RESOLUTION_DIVISOR = 10;
/** ...and never coarser than the historical default tick. */
const MAX_DERIVED_RESOLUTION_MS = 1_000;

/** The smallest enabled tick-driven timeout, skipping fields in `unknown`; undefined if none is known. */
function smallestTickDriven(c: Readonly<Record<Field, number>>, unknown: ReadonlySet<Field> = new Set()): Field | undefined {
  let smallest: Field | undefined;
  for (const f of TICK_DRIVEN) {
    if (unknown.has(f) || isDisabled(f, c[f])) continue;
    if (smallest === undefined || c[f] < c[smallest]) smallest = f;
  }
  return smallest;
}

/** The resolution used when none is given: see {@link TimeoutConfig.resolutionMs}. */
function deriveResolution(c: Readonly<Record<Field, number>>): number {
  const smallest = smallestTickDriven(c);
  if (smallest === undefined) return MAX_DERIVED_RESOLUTION_MS;
  return Math.min(MAX_DERIVED_RESOLUTION_MS, Math.max(1, Math.floor(c[smallest] / DERIVED_RESOLUTION_DIVISOR)));
}

/**
 * The configuration used when `WS_TIMEOUT_PROFILE` is unset and no `WS_*` variable is set: each
 * field's `@default` in {@link TimeoutConfig} (the "default" column of the README's configuration
 * table). Frozen.
 */
export const DEFAULT_TIMEOUT_CONFIG: TimeoutConfig = seal(perField((f) => TIMEOUT_FIELDS[f].default), true);

/**
 * The three presets selected with `WS_TIMEOUT_PROFILE` (in ms), as listed in the README's
 * configuration table. Single `WS_*` variables override the selected profile's values. All frozen.
 */
export const TIMEOUT_PROFILES: Readonly<Record<TimeoutProfile, TimeoutConfig>> = Object.freeze(
  Object.fromEntries(PROFILE_NAMES.map((profile) => [profile, seal(perField((f) => TIMEOUT_FIELDS[f].profiles[profile]), true)])) as Record<
    TimeoutProfile,
    TimeoutConfig
  >,
);

// ---------------------------------------------------------------------------------------------
// Per-field rules (shared by env values in seconds and code overrides in ms)
// ---------------------------------------------------------------------------------------------

type Unit = 's' | 'ms';

/** "what is valid", in the unit the user wrote. */
function validRange(field: Field, unit: Unit): string {
  const range = unit === 's' ? `a number of seconds from 0.001 to ${MAX_TIMER_SECONDS}` : `a number of milliseconds from 1 to ${MAX_TIMER_MS}`;
  return DISABLEABLE.has(field) ? `expected 0 (disabled) or ${range}` : `expected ${range}`;
}

function disableHint(field: Field): string {
  return DISABLEABLE.has(field) ? '; to disable it, use 0' : '';
}

/**
 * Checks one number already known to be a finite, non-negative amount of `unit`, and returns
 * its whole milliseconds, or a reason.
 */
function checkAmount(field: Field, amount: number, unit: Unit): { ms: number } | { reason: string } {
  const ms = Math.round(unit === 's' ? amount * 1000 : amount);
  if (amount === 0 && !DISABLEABLE.has(field)) {
    return {
      reason:
        `0 is not allowed: this timeout cannot be disabled (0 disables only ` +
        `${TIMEOUT_ENV.idleTimeoutMs} and ${TIMEOUT_ENV.connectionTimeoutMs}); ${validRange(field, unit)}`,
    };
  }
  if (amount > 0 && ms === 0) {
    return { reason: `${amount} ${unit} is less than 1 ms once rounded to whole milliseconds; ${validRange(field, unit)}` };
  }
  if (ms > MAX_TIMER_MS) {
    return {
      reason:
        `too large: ${amount} ${unit} exceeds the longest delay a Node timer supports ` +
        `(2^31-1 ms = ${MAX_TIMER_SECONDS} s, about 24.8 days; longer delays fire after 1 ms)` +
        `${disableHint(field)}; ${validRange(field, unit)}`,
    };
  }
  return { ms };
}

const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;
const WITH_UNIT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*(?:ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)$/i;

/** Parses one `WS_*` value (seconds) into whole ms, or throws envalid's `EnvError` with the reason. */
function parseSeconds(field: Field, input: string): number {
  const text = String(input).trim();
  if (/^[+-]?nan$/i.test(text)) {
    throw new EnvError(`NaN is not a number; ${validRange(field, 's')}`);
  }
  if (/^[+-]?inf(?:inity)?$/i.test(text)) {
    throw new EnvError(`${text} is not a finite duration${disableHint(field)}; ${validRange(field, 's')}`);
  }
  if (!DECIMAL.test(text)) {
    const hint = WITH_UNIT.test(text) ? ' (the unit is always seconds: write the number alone, e.g. "30" or "0.5")' : '';
    throw new EnvError(`not a number${hint}; ${validRange(field, 's')}`);
  }
  const seconds = Number(text);
  if (seconds < 0) {
    throw new EnvError(`must not be negative${disableHint(field)}; ${validRange(field, 's')}`);
  }
  if (!Number.isFinite(seconds)) {
    throw new EnvError(`too large: ${text} s is beyond any timer (max ${MAX_TIMER_SECONDS} s)${disableHint(field)}; ${validRange(field, 's')}`);
  }
  const checked = checkAmount(field, seconds === 0 ? 0 : seconds, 's'); // -0 reads as 0
  if ('reason' in checked) throw new EnvError(checked.reason);
  return checked.ms;
}

/** Validates one code value (ms): whole ms or a reason. Fractions are rounded like env values. */
function checkMilliseconds(field: Field, value: unknown): { ms: number } | { reason: string } {
  if (typeof value !== 'number') {
    return { reason: `must be a number of milliseconds, got ${value === null ? 'null' : typeof value}; ${validRange(field, 'ms')}` };
  }
  if (Number.isNaN(value)) return { reason: `NaN is not a number; ${validRange(field, 'ms')}` };
  if (value === Infinity || value === -Infinity) {
    return { reason: `${value} is not a finite duration${disableHint(field)}; ${validRange(field, 'ms')}` };
  }
  if (value < 0) return { reason: `must not be negative${disableHint(field)}; ${validRange(field, 'ms')}` };
  return checkAmount(field, value === 0 ? 0 : value, 'ms');
}

// ---------------------------------------------------------------------------------------------
// envalid specs
// ---------------------------------------------------------------------------------------------

const secondsValidators = new Map(FIELDS.map((field) => [field, makeValidator<number>((input) => parseSeconds(field, input))]));

const profileValidator = makeValidator<TimeoutProfile>((input) => {
  const text = String(input).trim();
  if ((PROFILE_NAMES as readonly string[]).includes(text)) return text as TimeoutProfile;
  throw new EnvError(`unknown profile; expected one of ${PROFILE_NAMES.map((p) => `"${p}"`).join(', ')} (or leave it unset for the defaults)`);
});

const rateValidator = makeValidator<number>((input) => {
  const text = String(input).trim();
  const valid = `expected a number of closes per second greater than 0 and at most ${RECONNECT_RATE.max} (fractions allowed: 0.5 is one close every 2 s)`;
  if (!DECIMAL.test(text)) throw new EnvError(`not a number; ${valid}`);
  const rate = Number(text);
  if (!(rate > 0) || rate > RECONNECT_RATE.max) throw new EnvError(`out of range; ${valid}`);
  return rate;
});

const jitterValidator = makeValidator<number>((input) => {
  const text = String(input).trim();
  const valid = `expected seconds from 0 to ${RECONNECT_JITTER.max} (fractions allowed, e.g. 0.25)`;
  if (!DECIMAL.test(text)) throw new EnvError(`not a number; ${valid}`);
  const seconds = Number(text);
  if (!(seconds >= 0) || seconds > RECONNECT_JITTER.max) throw new EnvError(`out of range; ${valid}`);
  return Math.round(seconds * 1000);
});

/** Every variable optional (`default: undefined`): unset ones take the profile's value. */
const ENV_SPECS = {
  [PROFILE_ENV]: profileValidator({
    default: undefined,
    desc: `timeout preset: ${PROFILE_NAMES.join(', ')}; unset means the defaults`,
  }),
  ...Object.fromEntries(
    FIELDS.map((field) => [TIMEOUT_ENV[field], secondsValidators.get(field)!({ default: undefined, desc: TIMEOUT_FIELDS[field].doc })]),
  ),
  [RECONNECT_RATE.env]: rateValidator({ default: undefined, desc: RECONNECT_RATE.doc }),
  [RECONNECT_JITTER.env]: jitterValidator({ default: undefined, desc: RECONNECT_JITTER.doc }),
};

// ---------------------------------------------------------------------------------------------
// Where each value came from (for naming problems) and the cross-field rules
// ---------------------------------------------------------------------------------------------

/** How a value is named and shown in a problem. */
interface Origin {
  /** `WS_IDLE_TIMEOUT` or `idleTimeoutMs`. */
  readonly name: string;
  /** The value in the unit of its name: a seconds string for env names, a number of ms for fields. */
  readonly value: unknown;
  /** `WS_IDLE_TIMEOUT=600 s` / `idleTimeoutMs=600000 ms`, with where it came from when not given. */
  readonly shown: string;
}

function seconds(ms: number): string {
  return String(ms / 1000);
}

function envOrigin(field: Field, ms: number, raw: string | undefined, source: string): Origin {
  const name = TIMEOUT_ENV[field];
  if (raw !== undefined) return { name, value: raw, shown: `${name}=${raw.trim()} s` };
  return { name, value: seconds(ms), shown: `${name}=${seconds(ms)} s (${source})` };
}

function codeOrigin(field: Field, ms: number, source?: string): Origin {
  return { name: field, value: ms, shown: `${field}=${ms} ms${source ? ` (${source})` : ''}` };
}

function crossProblem(a: Origin, b: Origin, reason: string): ConfigProblem {
  return { name: `${a.name}/${b.name}`, value: { [a.name]: a.value, [b.name]: b.value }, reason };
}

/**
 * The cross-field rules, on values that are individually valid. A rule is skipped when any of
 * its fields is in `unknown` (invalid, or unknowable because the profile was invalid).
 */
function crossFieldProblems(
  c: Readonly<Record<Field, number>>,
  origin: (field: Field) => Origin,
  unknown: ReadonlySet<Field>,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const known = (...fields: Field[]) => fields.every((f) => !unknown.has(f));

  // 1. idle < lifetime when both are enabled.
  if (known('idleTimeoutMs', 'connectionTimeoutMs') && c.idleTimeoutMs > 0 && c.connectionTimeoutMs > 0 && c.idleTimeoutMs >= c.connectionTimeoutMs) {
    const idle = origin('idleTimeoutMs');
    const life = origin('connectionTimeoutMs');
    problems.push(
      crossProblem(
        idle,
        life,
        `${idle.shown} must be less than ${life.shown} when both are enabled, otherwise the connection reaches ` +
          `its maximum lifetime before it can ever be idle that long; lower ${idle.name}, raise ${life.name}, ` +
          `or set either to 0 to disable it`,
      ),
    );
  }

  // 2. ping interval < lifetime when the lifetime is enabled.
  if (known('pingIntervalMs', 'connectionTimeoutMs') && c.connectionTimeoutMs > 0 && c.pingIntervalMs >= c.connectionTimeoutMs) {
    const ping = origin('pingIntervalMs');
    const life = origin('connectionTimeoutMs');
    problems.push(
      crossProblem(
        ping,
        life,
        `${ping.shown} must be less than ${life.shown} when the lifetime limit is enabled, otherwise no ping is ` +
          `ever sent before the connection reaches its maximum lifetime; lower ${ping.name}, or raise ${life.name} ` +
          `(0 disables it)`,
      ),
    );
  }

  // 3. resolution <= every tick-driven timeout (ping, pong, enabled idle and lifetime): name the smallest.
  if (known('resolutionMs')) {
    const smallest = smallestTickDriven(c, unknown);
    if (smallest !== undefined && c.resolutionMs > c[smallest]) {
      const res = origin('resolutionMs');
      const low = origin(smallest);
      problems.push(
        crossProblem(
          res,
          low,
          `${res.shown} must not be greater than ${low.shown}, the smallest of the ping interval, pong timeout and ` +
            `enabled idle/lifetime timeouts: deadlines are checked once per tick, so a timeout shorter than one tick ` +
            `would fire up to a whole tick late; lower ${res.name} or raise ${low.name}`,
        ),
      );
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Overrides
// ---------------------------------------------------------------------------------------------

const FIELD_SET: ReadonlySet<string> = new Set(FIELDS);

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The field a mistyped key most likely meant (`idleTimeout`, `WS_IDLE_TIMEOUT`, `idleTimoutMs`...). */
function suggestField(key: string): Field | undefined {
  const byEnv = FIELDS.find((f) => TIMEOUT_ENV[f] === key.toUpperCase());
  if (byEnv) return byEnv;
  const lower = key.toLowerCase();
  let best: Field | undefined;
  let bestDistance = Infinity;
  for (const f of FIELDS) {
    const d = Math.min(editDistance(lower, f.toLowerCase()), editDistance(`${lower}ms`, f.toLowerCase()));
    if (d < bestDistance) [best, bestDistance] = [f, d];
  }
  return bestDistance <= 3 ? best : undefined;
}

/**
 * Validates code overrides: unknown keys and bad values become problems named by the key.
 * Keys whose value is `undefined` are ignored (as with an options spread).
 */
function readOverrides(overrides: unknown): { values: Partial<Record<Field, number>>; problems: ConfigProblem[] } {
  const values: Partial<Record<Field, number>> = {};
  const problems: ConfigProblem[] = [];
  if (overrides === undefined || overrides === null) return { values, problems };
  if (typeof overrides !== 'object' || Array.isArray(overrides)) {
    problems.push({ name: 'overrides', value: overrides, reason: `must be an object of millisecond fields (${FIELDS.join(', ')})` });
    return { values, problems };
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (!FIELD_SET.has(key)) {
      const guess = suggestField(key);
      problems.push({
        name: key,
        value,
        reason: `unknown option${guess ? `; did you mean "${guess}"?` : ''} Valid options (milliseconds): ${FIELDS.join(', ')}`,
      });
      continue;
    }
    if (value === undefined) continue;
    const field = key as Field;
    const checked = checkMilliseconds(field, value);
    if ('reason' in checked) problems.push({ name: field, value, reason: checked.reason });
    else values[field] = checked.ms;
  }
  return { values, problems };
}

function hasOverrides(overrides: unknown): boolean {
  return overrides !== undefined && overrides !== null && (typeof overrides !== 'object' || Object.keys(overrides).length > 0);
}

/** What a base (the environment, or a config) is, before code overrides are laid over it. */
interface Base {
  /** Every field's value; meaningless for fields in `unknown`. */
  readonly values: Readonly<Record<Field, number>>;
  /** Fields whose value is invalid or cannot be known. */
  readonly unknown: ReadonlySet<Field>;
  /** Whether its resolution follows the timeouts (neither `WS_TIMER_RESOLUTION` nor `resolutionMs` gave it). */
  readonly derivesResolution: boolean;
  /** How a value that no override set is named in a problem. */
  readonly origin: (field: Field, ms: number) => Origin;
}

/** A base with code overrides laid over it, and every problem of the overrides and the result. */
interface Merged {
  readonly values: Record<Field, number>;
  readonly unknown: ReadonlySet<Field>;
  /** The fields the overrides set to a valid value. */
  readonly overridden: Partial<Record<Field, number>>;
  /** The fields the overrides gave a value, valid or not. */
  readonly given: ReadonlySet<Field>;
  readonly resolutionDerived: boolean;
  /** The overrides' own problems, then the cross-field ones. */
  readonly problems: readonly ConfigProblem[];
}

/**
 * The one place code overrides (ms) are parsed and merged: a valid override wins over the base
 * (and makes a field that was invalid in the base known again), a derived resolution is derived
 * again unless the overrides give one, and the cross-field rules run on the result.
 */
function mergeOverrides(base: Base, overrides: unknown): Merged {
  const fromCode = readOverrides(overrides);
  const values = { ...base.values };
  const unknown = new Set(base.unknown);
  const given = new Set<Field>();
  for (const [field, ms] of Object.entries(fromCode.values) as [Field, number][]) {
    values[field] = ms;
    unknown.delete(field);
    given.add(field);
  }
  for (const { name } of fromCode.problems) {
    if (FIELD_SET.has(name)) {
      unknown.add(name as Field);
      given.add(name as Field);
    }
  }
  const resolutionDerived = base.derivesResolution && !given.has('resolutionMs');
  if (resolutionDerived) {
    values.resolutionMs = deriveResolution(values);
    if (TICK_DRIVEN.some((f) => unknown.has(f))) unknown.add('resolutionMs');
    else unknown.delete('resolutionMs');
  }
  const origin = (field: Field): Origin =>
    fromCode.values[field] !== undefined ? codeOrigin(field, values[field]) : base.origin(field, values[field]);
  return {
    values,
    unknown,
    overridden: fromCode.values,
    given,
    resolutionDerived,
    problems: [...fromCode.problems, ...crossFieldProblems(values, origin, unknown)],
  };
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/** Where one value of a resolved configuration came from. */
export type TimeoutValueSource =
  /** {@link DEFAULT_TIMEOUT_CONFIG}: no profile and no variable. */
  | 'default'
  /** The table of the profile named by `WS_TIMEOUT_PROFILE`. */
  | 'profile'
  /** Its own `WS_*` variable. */
  | 'variable'
  /** A code override (milliseconds). */
  | 'option'
  /** `resolutionMs` only: derived from the tick-driven timeouts (see {@link TimeoutConfig.resolutionMs}). */
  | 'derived';

/** One field of {@link explainTimeoutConfig}'s answer. */
export interface TimeoutValueOrigin {
  readonly field: keyof TimeoutConfig;
  /** Its `WS_*` variable. */
  readonly variable: string;
  /**
   * The value in ms, or `undefined` when it is invalid or cannot be known (it would come from an
   * invalid profile, or be derived from an invalid timeout); the problem is in `problems`.
   */
  readonly ms: number | undefined;
  readonly source: TimeoutValueSource;
  /** The variable's raw text when `source` is `'variable'` (or when it was set but overridden or invalid). */
  readonly raw: string | undefined;
}

/** What {@link explainTimeoutConfig} found: every value with its origin, and every problem. */
export interface TimeoutConfigExplanation {
  /** The profile named by `WS_TIMEOUT_PROFILE`, if it is set and valid. */
  readonly profile: TimeoutProfile | undefined;
  /** The raw `WS_TIMEOUT_PROFILE` text, if set. */
  readonly profileRaw: string | undefined;
  /** One entry per field, in {@link TIMEOUT_ENV} order. */
  readonly values: readonly TimeoutValueOrigin[];
  /** Every problem, as a {@link ConfigError} would list them; empty when the config is valid. */
  readonly problems: readonly ConfigProblem[];
  /** The config {@link loadTimeoutConfig} returns, or `undefined` when there are problems. */
  readonly config: TimeoutConfig | undefined;
  /** `WS_FLEET_RECONNECT_RATE` (closes per second) or its default; `undefined` when it is invalid. */
  readonly reconnectRate: number | undefined;
  /** `WS_FLEET_RECONNECT_JITTER` in ms, or its default; `undefined` when it is invalid. */
  readonly reconnectJitterMs: number | undefined;
}

/**
 * Does what {@link loadTimeoutConfig} does but never throws: answers every value with where it
 * came from (default, profile, variable, option or derived) and every problem. For tools that
 * show a deployment's configuration, such as `npx ws-timeouts check-env`.
 *
 * @param env The environment to read. @default process.env
 * @param overrides Values in milliseconds that win over the environment.
 */
export function explainTimeoutConfig(
  env: Record<string, string | undefined> = process.env,
  overrides?: Partial<TimeoutConfig>,
): TimeoutConfigExplanation {
  // Only our variables, with empty values dropped (empty = unset).
  const raw: Record<string, string> = {};
  for (const name of Object.keys(ENV_SPECS)) {
    const value: unknown = env[name];
    if (value === undefined || value === null) continue;
    const text = typeof value === 'string' ? value : String(value);
    if (text.trim() !== '') raw[name] = text;
  }

  let envErrors: Partial<Record<string, Error>> = {};
  const cleaned = cleanEnv(raw, ENV_SPECS, {
    reporter: ({ errors }: ReporterOptions<typeof ENV_SPECS>) => {
      envErrors = { ...errors };
    },
  }) as unknown as Readonly<Record<string, unknown>>;
  // envalid's strict proxy throws on reading a variable that failed, so read only those that passed.
  const read = (name: string): unknown => (envErrors[name] ? undefined : cleaned[name]);

  const problems: ConfigProblem[] = [];
  const problem = (name: string) => {
    const error = envErrors[name];
    if (error) problems.push({ name, value: raw[name], reason: error.message });
  };

  problem(PROFILE_ENV);
  const profile = read(PROFILE_ENV) as TimeoutProfile | undefined;
  const profileValid = !envErrors[PROFILE_ENV];
  const base = profile ? TIMEOUT_PROFILES[profile] : DEFAULT_TIMEOUT_CONFIG;
  const source = profile ? `${profile} profile` : 'default'; // with an unknown profile, such values are never shown

  const fromEnv: Partial<Record<Field, number>> = {};
  const unknown = new Set<Field>();
  for (const field of FIELDS) {
    const name = TIMEOUT_ENV[field];
    problem(name);
    const ms = read(name);
    if (typeof ms === 'number') fromEnv[field] = ms;
    // Invalid, or it would come from a profile we could not read.
    if (envErrors[name] || (typeof ms !== 'number' && !profileValid)) unknown.add(field);
  }

  problem(RECONNECT_RATE.env);
  const reconnectRate = envErrors[RECONNECT_RATE.env] ? undefined : ((read(RECONNECT_RATE.env) as number | undefined) ?? RECONNECT_RATE.default);
  problem(RECONNECT_JITTER.env);
  const reconnectJitterMs = envErrors[RECONNECT_JITTER.env] ? undefined : ((read(RECONNECT_JITTER.env) as number | undefined) ?? RECONNECT_BUDGET_DEFAULTS.jitterMs);

  // Code wins over env, env over the profile. A bad env value overridden by valid code stays
  // reported, but the field takes part in the cross-field rules with the code value.
  const merged = mergeOverrides(
    {
      values: { ...base, ...fromEnv },
      unknown,
      derivesResolution: raw[TIMEOUT_ENV.resolutionMs] === undefined,
      origin: (field, ms) => envOrigin(field, ms, fromEnv[field] !== undefined ? raw[TIMEOUT_ENV[field]] : undefined, source),
    },
    overrides,
  );
  problems.push(...merged.problems);
  const { values } = merged;

  const sourceOf = (field: Field): TimeoutValueSource => {
    if (merged.given.has(field)) return 'option';
    if (raw[TIMEOUT_ENV[field]] !== undefined) return 'variable';
    if (field === 'resolutionMs' && merged.resolutionDerived) return 'derived';
    return raw[PROFILE_ENV] !== undefined ? 'profile' : 'default';
  };
  let config: TimeoutConfig | undefined;
  if (problems.length === 0) {
    const unchanged = Object.keys(fromEnv).length === 0 && Object.keys(merged.overridden).length === 0;
    config = unchanged ? base : seal(values, merged.resolutionDerived);
  }
  return Object.freeze({
    profile,
    profileRaw: raw[PROFILE_ENV],
    values: Object.freeze(
      FIELDS.map((field) =>
        Object.freeze({
          field,
          variable: TIMEOUT_ENV[field],
          ms: merged.unknown.has(field) ? undefined : values[field],
          source: sourceOf(field),
          raw: raw[TIMEOUT_ENV[field]],
        }),
      ),
    ),
    problems: Object.freeze(problems),
    config,
    reconnectRate,
    reconnectJitterMs,
  });
}

/**
 * Reads the `WS_*` variables (seconds, fractions allowed, rounded to whole ms) on top of the
 * profile named by `WS_TIMEOUT_PROFILE` (or {@link DEFAULT_TIMEOUT_CONFIG} when it is unset),
 * applies the code `overrides` (ms) on top, checks every value and the cross-field rules, and
 * returns one frozen config.
 *
 * - An unset, empty or whitespace-only variable takes the profile's value.
 * - 0 disables only `WS_IDLE_TIMEOUT` and `WS_CONNECTION_TIMEOUT`; every other value must be > 0.
 * - Values above 2^31-1 ms (≈ 24.8 days) are rejected: Node timers cannot wait that long.
 * - Without `WS_TIMER_RESOLUTION` or a `resolutionMs` override, the resolution is derived from the
 *   timeouts (see {@link TimeoutConfig.resolutionMs}), so short timeouts need no resolution.
 * - With nothing set and no overrides, the profile (or default) object itself is returned.
 *
 * Never prints and never exits the process. {@link explainTimeoutConfig} answers the same without
 * throwing, with where each value came from.
 *
 * @param env The environment to read (only `WS_TIMEOUT_PROFILE` and the {@link TIMEOUT_ENV} names are looked at). @default process.env
 * @param overrides Values in milliseconds that win over the environment; unknown keys are rejected.
 * @returns A frozen config, for which {@link isTimeoutConfig} is true.
 * @throws {ConfigError} With every problem at once: problems from the environment name the variable
 *   and echo its raw string; problems from `overrides` name the field; cross-field problems name both
 *   sides, e.g. `WS_IDLE_TIMEOUT/WS_CONNECTION_TIMEOUT`.
 */
export function loadTimeoutConfig(env: Record<string, string | undefined> = process.env, overrides?: Partial<TimeoutConfig>): TimeoutConfig {
  const { config, problems } = explainTimeoutConfig(env, overrides);
  if (config === undefined) throw new ConfigError(problems);
  return config;
}

/**
 * Reads the reconnect budget's variables: `WS_FLEET_RECONNECT_RATE`, closes per second across the
 * fleet (fractions allowed; default 200), and `WS_FLEET_RECONNECT_JITTER`, seconds (default 0.25),
 * as `ReconnectBudget` options: `new ReconnectBudget({ ...loadReconnectBudgetOptions(), nodes })`.
 * @param env The environment to read. @default process.env
 * @throws {ConfigError} Naming both variables when both are bad: the rate must be greater than 0
 *   and at most 1,000,000, the jitter from 0 to 60 s.
 */
export function loadReconnectBudgetOptions(env: Record<string, string | undefined> = process.env): { rate: number; jitterMs: number } {
  const { reconnectRate, reconnectJitterMs, problems } = explainTimeoutConfig(env);
  if (reconnectRate === undefined || reconnectJitterMs === undefined) {
    throw new ConfigError(problems.filter((p) => p.name === RECONNECT_RATE.env || p.name === RECONNECT_JITTER.env));
  }
  return { rate: reconnectRate, jitterMs: reconnectJitterMs };
}

/**
 * Merges code `overrides` (milliseconds) onto `base` and validates the result with the same
 * per-field and cross-field rules as {@link loadTimeoutConfig}; problems name the field
 * (`idleTimeoutMs`). Unknown keys are rejected; keys whose value is `undefined` are ignored.
 *
 * @param base A config, normally from {@link loadTimeoutConfig} or {@link defaultTimeoutConfig}.
 *   A base not produced by this module is validated too.
 * @param overrides Values in milliseconds to apply.
 * @returns `base` itself (the same object) when `overrides` is undefined or empty; otherwise a new frozen config.
 * @throws {ConfigError} With every problem at once.
 */
export function resolveTimeoutConfig(base: TimeoutConfig, overrides?: Partial<TimeoutConfig>): TimeoutConfig {
  if (!hasOverrides(overrides)) return base;
  if (typeof base !== 'object' || base === null) {
    throw new ConfigError([{ name: 'base', value: base, reason: `must be a TimeoutConfig object (${FIELDS.join(', ')})` }]);
  }

  // A base this module produced is valid; any other is checked field by field.
  const baseProblems: ConfigProblem[] = [];
  const unknown = new Set<Field>();
  const trusted = isTimeoutConfig(base);
  const values = perField((field) => {
    if (trusted) return base[field];
    const value = (base as unknown as Record<string, unknown>)[field];
    const checked = checkMilliseconds(field, value);
    if ('ms' in checked) return checked.ms;
    baseProblems.push({ name: field, value, reason: `in the base config: ${checked.reason}` });
    unknown.add(field);
    return NaN;
  });
  // A derived resolution follows the overridden timeouts; a given one (here or in the base) is kept.
  const merged = mergeOverrides(
    { values, unknown, derivesResolution: derivedResolution.has(base), origin: (field, ms) => codeOrigin(field, ms, 'base config') },
    overrides,
  );
  // A field the overrides give is not taken from the base, so its base value does not matter.
  const problems = [...baseProblems.filter((p) => !merged.given.has(p.name as Field)), ...merged.problems];
  if (problems.length > 0) throw new ConfigError(problems);
  if (Object.keys(merged.overridden).length === 0 && trusted) return base; // only undefined-valued keys
  return seal(merged.values, merged.resolutionDerived);
}

/**
 * True only for configs produced by this module ({@link loadTimeoutConfig},
 * {@link resolveTimeoutConfig}, {@link defaultTimeoutConfig}, {@link DEFAULT_TIMEOUT_CONFIG},
 * {@link TIMEOUT_PROFILES}): frozen and already validated, so callers may skip re-validation.
 * A look-alike plain object is not one.
 */
export function isTimeoutConfig(value: unknown): value is TimeoutConfig {
  return typeof value === 'object' && value !== null && produced.has(value);
}

let cachedDefault: TimeoutConfig | undefined;

/**
 * `loadTimeoutConfig(process.env)`, computed on first call and cached for the life of the
 * process (later changes to `process.env` are not seen). A failed load is not cached: the
 * {@link ConfigError} is thrown again on the next call.
 *
 * @throws {ConfigError} When the process environment is invalid.
 */
export function defaultTimeoutConfig(): TimeoutConfig {
  cachedDefault ??= loadTimeoutConfig(process.env);
  return cachedDefault;
}
