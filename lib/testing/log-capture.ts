import type { Logger } from '../logger.js';

export interface LogEntry {
  level: 'error' | 'warn' | 'info' | 'debug';
  message: string;
  meta: Record<string, unknown>;
}

/** A logger that records every entry, for asserting on what was logged. */
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
