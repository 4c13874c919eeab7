/**
 * Bench processes and the control channel between them.
 *
 * The orchestrator (bench/run.ts) forks the server and the client as separate Node processes
 * (`--import tsx`) and drives them over the IPC channel with request/answer calls. Every child
 * dies with its parent: the orchestrator kills them on exit, error or signal, and a child exits
 * by itself when the IPC channel closes or its time limit passes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

type Handler = (args: any) => unknown;

interface Request {
  id: number;
  cmd: string;
  args: unknown;
}

interface Answer {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export interface Worker {
  readonly name: string;
  readonly pid: number;
  /** Runs `cmd` in the child; rejects on its error, its exit, or after `timeoutMs`. */
  call<T = unknown>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T>;
  /** Asks the child to exit, then kills it if it has not within a second. */
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
let cleanupInstalled = false;

/** Kills every child still running (sync: usable from an 'exit' handler). */
export function killAllWorkers(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', killAllWorkers);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killAllWorkers();
      process.exit(130);
    });
  }
}

/**
 * Forks `file` (a TypeScript module that calls {@link serveCommands}) and waits until it is ready.
 * @param nodeArgs extra Node flags, e.g. `--expose-gc`
 */
export async function startWorker(name: string, file: URL, nodeArgs: string[] = []): Promise<Worker> {
  installCleanup();
  // BENCH_NODE_ARGS adds flags to every bench process, e.g. `--cpu-prof --cpu-prof-dir=prof`.
  const execArgv = ['--import', 'tsx', ...nodeArgs, ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];
  // Started through sh so the soft open-file limit is first raised to the hard one (9,000 sockets
  // need more than the usual 1,024); `exec` keeps the pid, so kill() reaches node itself, and the
  // 'ipc' channel is inherited as with fork().
  const raiseLimit = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"';
  const child = spawn('/bin/sh', ['-c', raiseLimit, 'sh', process.execPath, ...execArgv, fileURLToPath(file)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, BENCH_WORKER: name },
  });
  children.add(child);
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  const failAll = (error: Error): void => {
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    pending.clear();
  };

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: did not start within 30 s`)), 30_000);
    child.once('message', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name}: exited during start-up (code ${code}, signal ${signal})`));
    });
  });

  child.on('message', (raw) => {
    const answer = raw as Answer;
    const p = pending.get(answer.id);
    if (!p) return;
    pending.delete(answer.id);
    clearTimeout(p.timer);
    if (answer.ok) p.resolve(answer.result);
    else p.reject(new Error(`${name}: ${answer.error}`));
  });
  child.on('exit', (code, signal) => {
    children.delete(child);
    failAll(new Error(`${name}: exited (code ${code}, signal ${signal})`));
  });

  return {
    name,
    pid: child.pid!,
    call<T>(cmd: string, args: unknown = {}, timeoutMs = 120_000): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: ${cmd} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
        child.send({ id, cmd, args } satisfies Request);
      });
    },
    async stop(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 1_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * The child side: answers the orchestrator's calls with `handlers`, and exits when the
 * orchestrator goes away or after `maxLifetimeMs` (so nothing outlives a crashed run).
 */
export function serveCommands(handlers: Record<string, Handler>, maxLifetimeMs = 15 * 60_000): void {
  if (!process.send) throw new Error('bench worker: must be started by bench/run.ts (no IPC channel)');
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => {
    console.error(`bench worker ${process.env.BENCH_WORKER}: time limit reached, exiting`);
    process.exit(2);
  }, maxLifetimeMs).unref();
  process.on('message', (raw) => {
    const { id, cmd, args } = raw as Request;
    const handler = handlers[cmd];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command ${cmd}`);
        return handler(args);
      })
      .then(
        (result) => process.send?.({ id, ok: true, result } satisfies Answer),
        (err: unknown) => process.send?.({ id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies Answer),
      );
  });
  process.send({ ready: true });
}

/**
 * The open-file limit every bench process gets: the hard limit (Linux `/proc`), to which
 * startWorker raises the soft one; Infinity when it cannot be read.
 */
export function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const hard = line?.split(/\s{2,}/)[2];
    return hard && /^\d+$/.test(hard) ? Number(hard) : Infinity;
  } catch {
    return Infinity;
  }
}
