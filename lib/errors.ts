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

/** Every problem in a configuration, reported at once. Thrown by `loadTimeoutConfig`. */
export class ConfigError extends Error {
  readonly code = 'WS_TIMEOUTS_ERR_CONFIG';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(
      `Invalid WebSocket timeout configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  ${p.name}=${JSON.stringify(p.value)}: ${p.reason}`).join('\n'),
    );
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
