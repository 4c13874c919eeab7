import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { busiestWindow } from '../spec/support/busiest-window.js';
import { startExample, type ExampleServer } from '../spec/support/example-server.js';
import { Fleet } from './support/fleet.js';
import { ms, reliabilityCase } from './support/report.js';
import { max, min, waitFor } from './support/util.js';

const CLIENTS = 1_000;
const RATE = 200;
/** The budget's default jitter allowance: the node paces RATE per 1 s + this, 160 per second. */
const JITTER_MS = 250;
const NODE_PACE = Math.ceil((RATE * 1000) / (1000 + JITTER_MS));
/** The example server's shutdown timeout (examples/server.ts). */
const SHUTDOWN_TIMEOUT_MS = 10_000;

const report = reliabilityCase('Rolling drain', {
  load: `${CLIENTS.toLocaleString('en')} WebSocket clients (in their own process) on the example server (a child process), WS_FLEET_RECONNECT_RATE=${RATE}`,
  faults: 'SIGTERM to the server while every client is connected',
});


describe(report.name, () => {
  let fleet: Fleet | undefined;
  let server: ExampleServer | undefined;
  let cwd: string | undefined;

  before(async function () {
    this.timeout(60_000);
    cwd = mkdtempSync(join(tmpdir(), 'ws-timeouts-drain-')); // no .env there
    // At debug level the node logs each drain close as it makes it ("Drain: closing", timestamped).
    server = await startExample({ WS_FLEET_RECONNECT_RATE: String(RATE), WS_CLOSE_TIMEOUT: '2', LOG_LEVEL: 'debug' }, { cwd, waitForListening: false });
    await waitFor('the example server to listen', async () => {
      try {
        return (await fetch(`${server!.httpUrl}/health`)).ok;
      } catch {
        return false;
      }
    }, 20_000, 50);
    fleet = await Fleet.start();
    await fleet.open('drain', `${server.wsUrl}/ws/echo`, CLIENTS, { concurrency: 50 });
    await waitFor(`${CLIENTS} connections on the server`, async () => {
      const health = (await (await fetch(`${server!.httpUrl}/health`)).json()) as { sessions: { activeSessions: number } };
      return health.sessions.activeSessions === CLIENTS;
    });
  });

  after(async () => {
    await fleet?.stop();
    await server?.kill();
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  it(`closes at most ${RATE} per second as the clients see them (their busiest 1-s window), each after its reconnectAdvised, and exits 0 within the shutdown timeout`, async function () {
    this.timeout(30_000);
    const signalled = Date.now();
    server!.proc.kill('SIGTERM');
    const exit = await server!.exited;
    const exitMs = Date.now() - signalled;
    const stats = await fleet!.stats('drain');

    expect(exit, server!.stderr()).to.deep.equal({ code: 0, signal: null });
    expect(exitMs).to.be.below(SHUTDOWN_TIMEOUT_MS);
    expect(stats.closed).to.equal(CLIENTS);
    expect(stats.codes).to.deep.equal({ 1001: CLIENTS });
    expect(stats.advisedBeforeClose, 'clients that saw reconnectAdvised before their close').to.equal(CLIENTS);

    const made = server!
      .logs()
      .filter((line) => line.message === 'Drain: closing')
      .map((line) => Number(line.closeAt));
    const madeBusiest = busiestWindow(made);
    const lastCall = server!.logs().filter((line) => String(line.message).startsWith('Drain: the time for closes is up')).length;
    const planned = busiestWindow(stats.plannedCloseTimes);
    const seen = busiestWindow(stats.closeTimes);
    const spreadMs = max(stats.closeTimes) - min(stats.closeTimes);
    const lateness = stats.closeTimes.map((t, i) => t - stats.plannedCloseTimes[i]!);
    report.figure(
      `node: ${made.length} closes made over ${ms(max(made) - min(made))}, at most ${madeBusiest} in any 1-s window (planned: at most ${planned})${lastCall ? ', its time for closes ran out' : ''}; ` +
        `clients: closes seen over ${ms(spreadMs)}, at most ${seen} in any 1-s window (the node's plus delivery jitter: each close seen ` +
        `${ms(min(lateness))}–${ms(max(lateness))} after its planned time); ${stats.advisedBeforeClose}/${CLIENTS} advised before their 1001; ` +
        `node exited 0 ${ms(exitMs)} after SIGTERM (timeout ${ms(SHUTDOWN_TIMEOUT_MS)})`,
    );
    expect(made, 'one "Drain: closing" line per connection').to.have.length(CLIENTS);
    expect(planned, 'closes the node planned in its busiest 1-s window').to.be.at.most(NODE_PACE);
    expect(madeBusiest, 'closes the node made in its busiest 1-s window').to.be.at.most(NODE_PACE);
    // What the budget is for: the clients' own busiest second. The node spaces its closes for
    // delivery delays that vary by up to the budget's jitter allowance.
    expect(seen, 'closes the clients saw in their busiest 1-s window').to.be.at.most(RATE);
    expect(spreadMs, 'the clients see the closes spread over the drain').to.be.at.least(((CLIENTS - RATE) / RATE) * 1000);
  });
});
