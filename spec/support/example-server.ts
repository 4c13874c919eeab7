import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SERVER = fileURLToPath(new URL('../../examples/server.ts', import.meta.url));
/** What `node --import tsx` loads (the package's main entry), by path: another cwd has no node_modules. */
const TSX_LOADER = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;

export interface ExampleServer {
  proc: ChildProcess;
  port: number;
  httpUrl: string;
  wsUrl: string;
  /** Everything written to stdout and stderr so far. */
  stdout(): string;
  stderr(): string;
  /** The JSON log lines on stdout so far. */
  logs(): Array<Record<string, unknown>>;
  /** Resolves with how the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the whole process group if anything in it still runs (for cleanup). */
  kill(): Promise<void>;
  /** The pid of the server process itself (from its "listening" log line), under npm, sh and tsx. */
  serverPid(): number;
  /** Whether any process of the group `npm start` began (npm, sh, tsx, node) is still alive. */
  groupAlive(): boolean;
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Runs the example exactly as the README says — `npm start` in the project root — with `PORT`
 * set to a free port, `HOST=127.0.0.1`, the given `WS_*` variables and no inherited ones.
 * With `cwd`, runs `node --import tsx <root>/examples/server.ts` in that directory instead (where
 * it looks for `.env`). With `waitForListening` (the default) resolves once the "listening" log
 * line appears.
 */
export async function startExample(
  env: Record<string, string> = {},
  { waitForListening = true, cwd = undefined as string | undefined, startTimeoutMs = 20_000 } = {},
): Promise<ExampleServer> {
  const port = await freePort();
  // Not NODE_OPTIONS either: the runner's `--import tsx` would be resolved from `cwd`.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('WS_') && !['PORT', 'HOST', 'NODE_OPTIONS', 'REDIS_URL', 'NODE_ID'].includes(name)));
  const [command, args] = cwd === undefined ? ['npm', ['start']] : [process.execPath, ['--import', TSX_LOADER, SERVER]];
  const proc = spawn(command, args, {
    cwd: cwd ?? ROOT,
    env: { ...inherited, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so cleanup can reach tsx and node behind npm
  });
  // Detached, so a run that ends without killing it (a failed case) would leave it running.
  const killOnExit = (): void => {
    try {
      process.kill(-proc.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', killOnExit);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const logs = () =>
    out
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => {
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  const server: ExampleServer = {
    proc,
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    stdout: () => out,
    stderr: () => err,
    logs,
    exited,
    async kill() {
      process.off('exit', killOnExit);
      // The whole group: npm may be gone while the server it started still runs (npm and sh do
      // not pass SIGTERM on), and that server would keep our pipes, and mocha, alive.
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
      proc.stdout!.destroy();
      proc.stderr!.destroy();
    },
    serverPid() {
      const line = logs().find((entry) => entry.message === 'Example server listening');
      if (typeof line?.pid !== 'number') throw new Error('the example server has not logged its pid yet');
      return line.pid;
    },
    groupAlive() {
      try {
        process.kill(-proc.pid!, 0);
        return true;
      } catch {
        return false;
      }
    },
  };
  if (!waitForListening) return server;
  const deadline = Date.now() + startTimeoutMs;
  while (!logs().some((entry) => entry.message === 'Example server listening')) {
    if (proc.exitCode !== null) throw new Error(`the example server exited with ${proc.exitCode}:\n${err}\n${out}`);
    if (Date.now() > deadline) {
      await server.kill();
      throw new Error(`the example server did not start in ${startTimeoutMs / 1000} s:\n${err}\n${out}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return server;
}
