/**
 * Settings for the example services: their own variables checked with envalid, the library's `WS_*`
 * config loaded on top, all before anything listens. Examples are applications, so a bad value
 * prints every problem on stderr in one message and exits 1 (the library itself never exits).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { EnvError, cleanEnv, makeValidator, port, type CleanedEnv, type ValidatorSpec } from 'envalid';
import { ConfigError, formatConfigProblems, loadTimeoutConfig, type ConfigProblem, type TimeoutConfig } from '../../lib/index.js';

/** A number above 0 (fractions allowed) of `unit`; with `msPerUnit`, also at least 1 ms once converted. */
export const positive = (unit: string, msPerUnit = 0) =>
  makeValidator<number>((input) => {
    const text = String(input).trim();
    const value = Number(text);
    if (text === '' || !Number.isFinite(value) || value <= 0) {
      throw new EnvError(`expected a positive number of ${unit} (fractions allowed, e.g. 0.5), got "${text}"`);
    }
    if (msPerUnit > 0 && value * msPerUnit < 1) throw new EnvError(`${text} ${unit} is under 1 ms`);
    return value;
  });

/** Positive durations: `minutes({ default: 30 })`, `seconds({ default: 120 })`. */
export const minutes = positive('minutes', 60_000);
export const seconds = positive('seconds', 1_000);

const PORT = { PORT: port({ default: 3000, desc: 'HTTP port' }) };

export interface SettingsSpec<S> {
  /** The example's own variables, as envalid validators (`PORT` is always there). */
  vars: S;
  /**
   * The variable the idle timeout comes from, and its milliseconds per unit
   * (`['SESSION_TIMEOUT_MINUTES', 60_000]`); problems with the idle timeout then name it.
   * Without it (as in session-cleanup) there is no idle timeout unless `WS_IDLE_TIMEOUT` is set.
   */
  idleTimeoutFrom?: readonly [name: keyof S & string, msPerUnit: number];
}

/**
 * Loads `.env` from the working directory into `process.env` when there is one (`cp .env.example
 * .env`, then uncomment what you change); a variable already set in the environment wins. Node's
 * own parser (`process.loadEnvFile`), no dependency; the library itself never reads files.
 * Returns the file's absolute path when it was loaded.
 */
export function loadDotEnv(file = '.env'): string | undefined {
  const path = resolve(file);
  if (!existsSync(path)) return undefined;
  process.loadEnvFile(path);
  return path;
}

/**
 * Checks `PORT` and `spec.vars`, then loads the `WS_*` config (no lifetime limit unless
 * `WS_CONNECTION_TIMEOUT` is set). Reading `process.env`, it loads `.env` first. An empty or
 * whitespace-only variable counts as unset (its default), as it does for `WS_*`. On any
 * problem, prints them all on stderr (`<app>: invalid configuration (n problems): ...`) and exits 1.
 */
export function readSettingsOrExit<S extends Record<string, ValidatorSpec<unknown>>>(
  app: string,
  spec: SettingsSpec<S>,
  env: NodeJS.ProcessEnv = process.env,
): { vars: CleanedEnv<typeof PORT & S>; config: TimeoutConfig } {
  if (env === process.env) loadDotEnv();
  const problems: ConfigProblem[] = [];
  const problem = (name: string, value: unknown, reason: string | undefined) => problems.push({ name, value, reason: String(reason) });
  // Empty counts as unset, the rule lib/config.ts applies to WS_* (`SESSION_TIMEOUT_MINUTES=` in a .env).
  const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value?.trim()));
  const vars = cleanEnv(set, { ...PORT, ...spec.vars }, {
    reporter: ({ errors }) => {
      for (const [name, error] of Object.entries(errors)) problem(name, env[name], (error as Error | undefined)?.message);
    },
  });
  if (problems.length === 0) {
    const [idleVar, msPerUnit] = spec.idleTimeoutFrom ?? [];
    try {
      // 0 turns a limit off; undefined leaves it to its WS_* variable (empty counts as unset there too).
      const offUnlessSet = (value: string | undefined) => (value?.trim() ? undefined : 0);
      const config = loadTimeoutConfig(env, {
        idleTimeoutMs: idleVar ? (vars[idleVar] as number) * msPerUnit! : offUnlessSet(env.WS_IDLE_TIMEOUT),
        connectionTimeoutMs: offUnlessSet(env.WS_CONNECTION_TIMEOUT),
      });
      return { vars: vars as CleanedEnv<typeof PORT & S>, config };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      // The idle timeout came from idleVar: say so wherever a problem names it.
      const named = (text: string) => (idleVar ? text.replaceAll('idleTimeoutMs', `${idleVar} (idleTimeoutMs)`) : text);
      for (const p of err.problems) problem(named(p.name), p.value, named(p.reason));
    }
  }
  console.error(formatConfigProblems(problems, `${app}: invalid configuration`));
  process.exit(1);
}
