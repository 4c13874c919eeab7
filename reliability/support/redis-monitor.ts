/**
 * Redis MONITOR read from a plain socket. ioredis' own `monitor()` switches to monitoring mode a
 * microtask after MONITOR's `+OK`, so a command line arriving in the same chunk is taken for a
 * reply to nothing ("Command queue state error"); here every line after the `+OK` is a command.
 */
import { connect } from 'node:net';

/** One command as Redis executed it: its arguments, and `lua` or the client's address as source. */
export type MonitoredCommand = { args: string[]; source: string };

export type RedisMonitor = {
  /** Why the monitor stopped before `stop()` (socket error, early close, an error reply), if it did. */
  failure(): Error | undefined;
  stop(): void;
};

/** Resolves once Redis acknowledged MONITOR; `onCommand` then sees every command in Redis' order. */
export function monitorRedis(url: string, onCommand: (command: MonitoredCommand) => void): Promise<RedisMonitor> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let failure: Error | undefined;
  let stopped = false;
  let pending = '';
  let acknowledged = false;
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      failure ??= error;
      socket.destroy();
      if (!acknowledged) reject(error);
    };
    socket.setEncoding('latin1');
    socket.on('error', fail);
    socket.on('close', () => {
      if (!stopped) fail(new Error('the MONITOR connection closed before stop()'));
    });
    socket.on('connect', () => socket.write('MONITOR\r\n'));
    socket.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\r\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('-')) return fail(new Error(`MONITOR: ${line.slice(1)}`));
        if (!acknowledged) {
          acknowledged = line === '+OK';
          if (!acknowledged) return fail(new Error(`MONITOR answered ${JSON.stringify(line)}`));
          resolve({
            failure: () => failure,
            stop: () => {
              stopped = true;
              socket.destroy();
            },
          });
          continue;
        }
        try {
          onCommand(parseMonitorLine(line));
        } catch (error) {
          return fail(error as Error);
        }
      }
    });
  });
}

const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b', '"': '"', '\\': '\\' };

/** `+<time> [<db> <source>] "arg" "arg" …`, each argument quoted and escaped as Redis' sdscatrepr does. */
export function parseMonitorLine(line: string): MonitoredCommand {
  const open = line.indexOf('[');
  const close = line.indexOf(']', open);
  if (!line.startsWith('+') || open < 0 || close < 0) throw new Error(`not a MONITOR line: ${JSON.stringify(line)}`);
  const source = line.slice(open + 1, close).split(' ')[1] ?? '';
  const args: string[] = [];
  let i = close + 1;
  while ((i = line.indexOf('"', i)) >= 0) {
    let arg = '';
    for (i++; line[i] !== '"'; i++) {
      if (i >= line.length) throw new Error(`unterminated argument in ${JSON.stringify(line)}`);
      if (line[i] !== '\\') arg += line[i];
      else if (line[++i] !== 'x') arg += ESCAPES[line[i]!] ?? line[i];
      else {
        arg += String.fromCharCode(parseInt(line.slice(i + 1, i + 3), 16));
        i += 2;
      }
    }
    args.push(arg);
    i++;
  }
  return { args, source };
}
