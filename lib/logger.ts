/**
 * Structured logging. The library logs through any object with winston's leveled methods;
 * the default is a JSON winston logger whose redaction format keeps tokens, query strings
 * and headers out of every line, whoever wrote the line.
 */
import winston from 'winston';

export interface Logger {
  error(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
  debug(message: string, meta?: Record<string, unknown>): unknown;
}

const SENSITIVE_KEY = /token|secret|password|passwd|authorization|cookie|api[-_]?key|headers?$|query|session[-_]?id/i;
const REDACTED = '[redacted]';

/** A query string after a URL path. */
const URL_QUERY = /(\/[^\s?"]*)\?[^\s"]*/g;
/**
 * `token=…`, `password: …`, `Authorization: Bearer …` inside free text, such as an error message
 * that quotes a request: the value is dropped, the name kept.
 */
const SENSITIVE_PAIR =
  /\b((?:access[-_]?|refresh[-_]?|id[-_]?)?token|secret|password|passwd|authorization|cookie|api[-_]?key|session[-_]?id)(["']?\s*[=:]\s*["']?)(?:(?:Bearer|Basic)\s+)?[^\s"'&;,)]+/gi;
const AUTH_SCHEME = /\b(Bearer|Basic)\s+[\w.~+/=-]+/g;

function redactString(value: string): string {
  return value.replace(URL_QUERY, '$1?[redacted]').replace(SENSITIVE_PAIR, '$1$2[redacted]').replace(AUTH_SCHEME, '$1 [redacted]');
}

/** Replaces sensitive keys and strips query strings and credentials from text values, at any depth. */
function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactString(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return { name: value.name, message: redactValue(value.message, depth + 1) };
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = SENSITIVE_KEY.test(key) ? REDACTED : redactValue(v, depth + 1);
  return out;
}

/** A winston format that applies the redaction rules to every field of a log entry. */
export const redact = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level') continue;
    info[key] = SENSITIVE_KEY.test(key) ? REDACTED : redactValue(info[key], 0);
  }
  return info;
});

export interface CreateLoggerOptions {
  /** Lowest level written. @default process.env.LOG_LEVEL ?? 'info' */
  level?: string;
  /** Extra winston transports; the default writes JSON lines to stdout. */
  transports?: winston.transport[];
  silent?: boolean;
}

/** A JSON winston logger with redaction and timestamps. */
export function createLogger(options: CreateLoggerOptions = {}): winston.Logger {
  return winston.createLogger({
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    silent: options.silent,
    format: winston.format.combine(redact(), winston.format.timestamp(), winston.format.json()),
    transports: options.transports ?? [new winston.transports.Console()],
  });
}

let shared: winston.Logger | undefined;

/** The logger used when none is injected: created on first use, shared by every instance. */
export function defaultLogger(): Logger {
  shared ??= createLogger();
  return shared;
}

/** A logger that drops everything (for tests and benchmarks). */
export const silentLogger: Logger = Object.freeze({
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
});
