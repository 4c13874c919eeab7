import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The default value `.env.example` shows for `name` (its `# NAME=value` line), or undefined. */
export function envExampleDefault(name: string): string | undefined {
  return new RegExp(`^# ${name}=(.*)$`, 'm').exec(readFileSync(join(ROOT, '.env.example'), 'utf8'))?.[1];
}

let emptyDir: string | undefined;
/** A working directory without a `.env`, made once and removed when the run ends. */
function directoryWithoutDotEnv(): string {
  if (emptyDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'ws-timeouts-examples-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    emptyDir = dir;
  }
  return emptyDir;
}

export interface RunOptions {
  /** Working directory, where the example looks for `.env`. @default an empty directory: a developer's `.env` never leaks in */
  cwd?: string;
  /** @default 20000 */
  timeoutMs?: number;
}
/**
 * tsx's loader: the example runs as `node --import tsx <script>`, one process, so a signal reaches
 * the server itself (the tsx CLI runs the script in a child that a SIGKILL of the CLI would orphan).
 */
const TSX_LOADER = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;

/** A port that was free a moment ago (the OS picks it; the server then binds it by PORT). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export interface RunningExample {
  port: number;
  url: string;
  wsUrl: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The JSON log lines written so far. */
  logs(): Array<Record<string, unknown>>;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function run(script: string, env: Record<string, string>, cwd = directoryWithoutDotEnv()) {
  // A clean environment: no WS_* or example variable leaks in from the test runner, nor its
  // NODE_OPTIONS (an `--import tsx` there would be resolved from cwd; TSX_LOADER is loaded already).
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(WS_|SESSION_|CONNECTION_|TIMEOUT_|PORT$|LOG_LEVEL$|NODE_OPTIONS$)/.test(k)));
  const child = spawn(process.execPath, ['--import', TSX_LOADER, resolve(ROOT, script)], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** Starts `node --import tsx <script>` on a free port and resolves once it logs that it listens. */
export async function startExample(script: string, env: Record<string, string> = {}, { cwd, timeoutMs = 20_000 }: RunOptions = {}): Promise<RunningExample> {
  const port = await freePort();
  const { child, exited, stdout, stderr } = run(script, { PORT: String(port), ...env }, cwd);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not listen within ${timeoutMs} ms:\n${stderr()}`)), timeoutMs);
    const check = (): void => {
      if (!/"message":"[^"]*listening"/.test(stdout())) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve();
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before listening:\n${stderr()}`));
    });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    child,
    stdout,
    stderr,
    logs: () =>
      stdout()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    exited,
    stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs `node --import tsx <script>` to its exit (for configurations it must refuse). */
export async function runToExit(script: string, env: Record<string, string>, { cwd, timeoutMs = 20_000 }: RunOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { child, exited, stdout, stderr } = run(script, env, cwd);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await exited;
  clearTimeout(timer);
  return { code, stdout: stdout(), stderr: stderr() };
}

export interface TestSocket {
  ws: WebSocket;
  messages: string[];
  json(): Array<Record<string, unknown>>;
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves once `n` messages have arrived. */
  waitForMessages(n: number, timeoutMs?: number): Promise<string[]>;
}

/** Opens a WebSocket client that records what it receives; rejects on a failed handshake (with the status). */
export function openSocket(url: string): Promise<TestSocket> {
  const ws = new WebSocket(url);
  ws.on('error', () => undefined); // a failed handshake rejects below; never an unhandled 'error'
  const messages: string[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data) => {
    messages.push(data.toString());
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const socket: TestSocket = {
    ws,
    messages,
    json: () => messages.map((m) => JSON.parse(m) as Record<string, unknown>),
    closed,
    waitForMessages(n, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`expected ${n} message(s), got ${messages.length}: ${messages.join(' | ')}`)), timeoutMs);
        const check = (): void => {
          if (messages.length >= n) {
            clearTimeout(timer);
            resolve(messages);
          } else waiters.push(check);
        };
        check();
      });
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(socket));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`handshake refused: ${res.statusCode}`), { statusCode: res.statusCode }));
      ws.terminate();
    });
    ws.once('error', reject);
  });
}
