/**
 * A throwaway `redis-server` for one suite: its own free port on 127.0.0.1, nothing saved to
 * disk, stopped by its pid. Fault tests kill, stop (SIGSTOP) and restart it on the same port.
 * Never the machine's default port 6379.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { Context } from 'mocha';
import { requireSystemTool } from './system-tool.js';

const BINARY = 'redis-server';

/** Skips the suite (one line naming the Debian package), or fails under CI, when redis-server is missing. */
export function requireRedisServer(context: Context): void {
  requireSystemTool(context, BINARY, 'redis-server', () => spawnSync(BINARY, ['--version']).status === 0);
}

/** A port nothing listens on now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export class RedisServer {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    private readonly ownProcessGroup: boolean,
  ) {}

  /**
   * Starts a server on a free port and resolves once it accepts connections. With
   * `ownProcessGroup`, a Ctrl-C in the terminal does not reach it: the caller stops it (last).
   */
  static async start(port?: number, { ownProcessGroup = false } = {}): Promise<RedisServer> {
    const server = new RedisServer(port ?? (await freePort()), ownProcessGroup);
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** (Re)starts the server on the same port, empty; resolves once it is ready (at most 10 s). */
  async restart(): Promise<void> {
    if (this.running) throw new Error(`redis-server already runs on port ${this.port}`);
    const child = spawn(BINARY, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: this.ownProcessGroup,
    });
    this.child = child;
    process.once('exit', () => child.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => fail(new Error(`redis-server on port ${this.port} not ready after 10 s:\n${output}`)), 10_000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) done();
      };
      const onExit = (code: number | null): void => fail(new Error(`redis-server on port ${this.port} exited (${code}):\n${output}`));
      const cleanup = (): void => {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        child.stdout!.resume(); // keep draining its log so it never blocks on a full pipe
      };
      const done = (): void => {
        cleanup();
        resolve();
      };
      const fail = (err: Error): void => {
        cleanup();
        child.kill('SIGKILL');
        reject(err);
      };
      child.stdout!.on('data', onData);
      child.stderr!.resume();
      child.once('exit', onExit);
    });
  }

  /** Kills the server (SIGKILL by default) and resolves once it has exited. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT'); // a stopped process would not exit on SIGTERM
    child.kill(signal);
    await exited;
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  /** Thaws a paused server (SIGCONT). */
  resume(): void {
    this.child?.kill('SIGCONT');
  }
}
