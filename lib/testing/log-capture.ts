import type { Logger } from '../logger.js';

/** One recorded log call. */
export interface LogEntry {
  level: 'error' | 'warn' | 'info' | 'debug';
  message: string;
  meta: Record<string, unknown>;
}

/**
 * A logger that records every entry, for asserting on what was logged: pass `logger` as the
 * `logger` option of a manager, registry or `connectHandler`, then look in `entries` or use
 * `find('WebSocket timeout')` (the first entry with that message).
 */
export function captureLogs(): { logger: Logger; entries: LogEntry[]; find(message: string): LogEntry | undefined } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (message: string, meta: Record<string, unknown> = {}): void => {
      entries.push({ level, message, meta });
    };
  return {
    logger: { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') },
    entries,
    find: (message) => entries.find((e) => e.message === message),
  };
}
