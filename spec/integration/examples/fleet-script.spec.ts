import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort, requireRedisServer } from '../../support/redis-server.js';

// `npm run fleet` as a user runs it: it must print three working node URLs, stop everything it
// started on SIGTERM, and exit 1 (stopping what did start) when a node cannot start.
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

interface Run {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Resolves once every process that writes to the output (npm, sh, the script) is gone. */
  outputClosed: Promise<void>;
}

function runFleet(env: Record<string, string>): Run {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(WS_|PORT$|REDIS_URL$|NODE_ID$|NODE_OPTIONS$)/.test(name)));
  const child = spawn('npm', ['run', 'fleet'], { cwd: ROOT, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const outputClosed = Promise.all([child.stdout!, child.stderr!].map((stream) => new Promise((resolve) => stream.once('close', resolve)))).then(() => undefined);
  return { child, output: () => out, exited, outputClosed };
}

async function outputMatches(run: Run, pattern: RegExp, timeoutMs = 90_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = run.output().match(pattern);
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`no ${pattern} in the output of npm run fleet:\n${run.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function refused(port: number): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}/health`).then(
    () => false,
    () => true,
  );
}

describe('npm run fleet (scripts/fleet.ts)', function () {
  this.timeout(120_000);
  let run: Run | undefined;
  let blocker: Server | undefined;

  before(function () {
    requireRedisServer(this);
  });
  afterEach(async () => {
    if (run && run.child.exitCode === null) process.kill(-run.child.pid!, 'SIGKILL');
    blocker?.close();
  });

  it('starts Redis and three nodes that see each other, prints their URLs, and stops them all on SIGTERM', async () => {
    run = runFleet({ PORT: '0', WS_FLEET_TTL: '1.5' });
    const redisPid = Number((await outputMatches(run, /pid (\d+), nothing saved/))[1]);
    await outputMatches(run, /Ctrl-C stops everything/);
    const ports = [...run.output().matchAll(/node [abc] {2}http:\/\/localhost:(\d+)\//g)].map((m) => Number(m[1]));
    expect(ports).to.have.length(3);
    for (const port of ports) {
      const deadline = Date.now() + 10_000;
      let fleet: { nodes: number } | undefined;
      while (fleet?.nodes !== 3 && Date.now() < deadline) {
        fleet = ((await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { fleet: { nodes: number } }).fleet;
        if (fleet.nodes !== 3) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(fleet, `node on port ${port}`).to.include({ nodes: 3 });
    }
    // SIGTERM to npm's process group (npm, sh, the script; the nodes have their own groups): the script stops the nodes, then Redis.
    process.kill(-run.child.pid!, 'SIGTERM');
    await run.outputClosed;
    expect(run.output().match(/"message":"Shutdown complete"/g), 'graceful shutdowns').to.have.length(3);
    for (const port of ports) expect(await refused(port), `port ${port} after the stop`).to.equal(true);
    expect(alive(redisPid), 'redis-server after the stop').to.equal(false);
  });

  it('exits 1 when a node cannot start, and stops Redis and the nodes that did', async () => {
    const port = await freePort();
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(port, '127.0.0.1', resolve)); // node a's port is taken
    run = runFleet({ PORT: String(port) });
    const redisPid = Number((await outputMatches(run, /pid (\d+), nothing saved/))[1]);
    expect(await run.exited).to.equal(1);
    await run.outputClosed;
    expect(run.output()).to.match(/node a exited/);
    expect(alive(redisPid), 'redis-server after the failure').to.equal(false);
    for (const other of [port + 1, port + 2]) expect(await refused(other), `port ${other}`).to.equal(true);
  });
});
