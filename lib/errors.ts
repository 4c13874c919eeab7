/**
 * Typed errors. Each has a stable string `code` (listed in the README) so callers can branch
 * without matching messages.
 */

/** One problem found in the timeout configuration. */
export interface ConfigProblem {
  /** The variable or option at fault: `WS_IDLE_TIMEOUT`, or `idleTimeoutMs` for a code override. */
  readonly name: string;
  /** The value as given (a string for env values). */
  readonly value: unknown;
  /** Why it was rejected and what would be accepted. */
  readonly reason: string;
}

/**
 * Formats configuration problems for a person: a heading with the count, then one indented line
 * per problem, `name=value: reason` with the value as JSON (so `"30s"` shows its quotes).
 *
 * ```text
 * my-app cannot start (2 problems):
 *   WS_IDLE_TIMEOUT="30s": not a number (the unit is always seconds: ...); expected 0 (disabled) or ...
 *   PORT="http": expected a whole number from 0 to 65535
 * ```
 *
 * Print it instead of letting a {@link ConfigError} escape as a stack trace:
 * `console.error(formatConfigProblems(err.problems, 'my-app cannot start')); process.exit(1);`
 * Problems of the application's own settings can be added to the same list.
 *
 * @param problems The problems, e.g. `ConfigError.problems`, in the order to show them.
 * @param heading The first line, before the count. @default 'Invalid WebSocket timeout configuration'
 */
export function formatConfigProblems(problems: readonly ConfigProblem[], heading = 'Invalid WebSocket timeout configuration'): string {
  const count = `${problems.length} problem${problems.length === 1 ? '' : 's'}`;
  return `${heading} (${count}):\n${problems.map((p) => `  ${p.name}=${JSON.stringify(p.value)}: ${p.reason}`).join('\n')}`;
}

/**
 * Every problem in a configuration, reported at once. Thrown by `loadTimeoutConfig` and
 * `loadFleetSettings`; its message is {@link formatConfigProblems} of its `problems`, under a
 * heading that names which configuration they are in.
 */
export class ConfigError extends Error {
  readonly code = 'WS_TIMEOUTS_ERR_CONFIG';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], heading?: string) {
    super(formatConfigProblems(problems, heading));
    this.name = 'ConfigError';
    this.problems = Object.freeze([...problems]);
  }
}

/** A session store operation failed. */
export class SessionStoreError extends Error {
  readonly code: string = 'WS_TIMEOUTS_ERR_SESSION_STORE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SessionStoreError';
  }
}

/** A cleanup run could not complete. */
export class SessionCleanupError extends SessionStoreError {
  override readonly code: string = 'WS_TIMEOUTS_ERR_SESSION_CLEANUP';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SessionCleanupError';
  }
}
