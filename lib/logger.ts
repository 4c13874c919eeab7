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
const URL_QUERY = /(\/[^\s?"/]*)\?[^\s"]*/g; // from the last `/` only: linear on `////…`
/** A query string after anything else (`rooms?user=alice`): a `?` followed by `name=`. */
const BARE_QUERY = /\?(?=[^\s"'?#=&]+=)[^\s"']*/g;
/**
 * A header whose whole value is a credential, in free text (`Authorization: Digest username=…,
 * response=…`, `Cookie: a=1; b=2`): its value has spaces, commas and semicolons of any scheme,
 * so everything up to the end of the line goes.
 */
const SENSITIVE_HEADER = /\b((?:proxy-)?authorization|(?:set-)?cookie)(["']?\s*[=:]\s*)[^\r\n]*/gi;
/**
 * `token=…`, `myToken: …`, `password=…` inside free text, such as an error message that quotes
 * a request: the value is dropped, the name kept. The name's prefix is bounded so that a long
 * `a-a-a-…` stays linear.
 */
const SENSITIVE_PAIR = /\b([\w-]{0,40}?(?:token|secret|password|passwd|api[-_]?key|session[-_]?id))(["']?\s*[=:]\s*["']?)[^\s"'&;,)]+/gi;
/** A credential quoted without its header name. */
const AUTH_SCHEME = /\b(Bearer|Basic|Digest|Negotiate|NTLM)\s+[\w.~+/=-]+/g;

function redactString(value: string): string {
  return value
    .replace(URL_QUERY, `$1?${REDACTED}`)
    .replace(BARE_QUERY, `?${REDACTED}`)
    .replace(SENSITIVE_HEADER, `$1$2${REDACTED}`)
    .replace(SENSITIVE_PAIR, `$1$2${REDACTED}`)
    .replace(AUTH_SCHEME, `$1 ${REDACTED}`);
}

/** Objects nested deeper than this are logged as a marker: never unredacted, never endless (cycles). */
const MAX_DEPTH = 8;

/** An error as plain fields (its own are not enumerable, so JSON would drop them), redacted. */
function redactError(error: Error, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = { name: error.name, message: redactString(error.message) };
  const { code, cause } = error as Error & { code?: unknown };
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  if (error.stack !== undefined) out.stack = redactString(error.stack);
  if (cause !== undefined) out.cause = redactValue(cause, depth + 1);
  return out;
}

/** Replaces sensitive keys and strips query strings and credentials from text values, at any depth. */
function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[nested too deep]';
  if (value instanceof Error) return redactError(value, depth);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = SENSITIVE_KEY.test(key) ? REDACTED : redactValue(v, depth + 1);
  return out;
}

/** A winston format that applies the redaction rules to every field of a log entry. */
export const redact = winston.format((info) => {
  // `logger.error(err)` hands winston the error itself, whose message, stack and cause are not
  // enumerable: JSON would drop them (an empty line). Make them fields, redacted below.
  if (info instanceof Error) {
    for (const key of ['message', 'stack', 'cause']) {
      const value: unknown = info[key];
      if (value !== undefined) Object.defineProperty(info, key, { value, enumerable: true, writable: true, configurable: true });
    }
  }
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
