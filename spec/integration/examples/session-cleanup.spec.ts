import { expect } from 'chai';
import { envExampleDefault, openSocket, runToExit, startExample, type RunningExample, type TestSocket } from '../../support/run-example.js';

// Acceptance: the example started as its README says (`node --import tsx examples/session-cleanup/server.ts`),
// probed over HTTP and WebSocket with short real timeouts.
const SCRIPT = 'examples/session-cleanup/server.ts';

/** What the service's health probes read. */
interface HealthBody {
  status: string;
  services: { session_manager: { status: string; reasons: string[]; metrics: Record<string, unknown> } };
}

describe('examples/session-cleanup', function () {
  this.timeout(30_000);
  let app: RunningExample;
  const sockets: TestSocket[] = [];
  // The busy session chatters every 50 ms against a 1.2 s timeout until the end of the suite: a
  // stall of the test process (a loaded CI machine) must not make it idle.
  let chatter: NodeJS.Timeout | undefined;

  before(async () => {
    // Sessions idle for 0.02 minutes (1.2 s) go on the next cleanup, every 0.005 minutes (300 ms).
    app = await startExample(SCRIPT, {
      SESSION_TIMEOUT_MINUTES: '0.02',
      SESSION_CLEANUP_INTERVAL_MINUTES: '0.005',
      SESSION_CLEANUP_BATCH_SIZE: '2',
      WS_TIMER_RESOLUTION: '0.05',
    });
  });

  after(async () => {
    clearInterval(chatter);
    for (const socket of sockets) socket.ws.terminate();
    await app?.stop('SIGKILL');
  });

  async function connect(): Promise<TestSocket> {
    const socket = await openSocket(`${app.wsUrl}/ws/session`);
    sockets.push(socket);
    await socket.waitForMessages(1);
    return socket;
  }

  it('logs its settings and starts the cleanup scheduler at start-up', () => {
    expect(app.logs().find((l) => l.message === 'Started session cleanup scheduler')).to.include({ intervalMs: 300, sessionTimeoutMs: 1_200, batchSize: 2 });
  });

  it('gives each connection a session and acknowledges its messages', async () => {
    const socket = await connect();
    expect(socket.json()[0]).to.have.keys('type', 'sessionId');
    socket.ws.send('touch');
    await socket.waitForMessages(2);
    expect(socket.json()[1]).to.deep.equal({ type: 'ack' });
    socket.ws.close(1000);
    await socket.closed;
  });

  it('cleans up idle sessions on the schedule (notice, then 4001) and keeps a busy one, logging each run', async () => {
    const idle = [await connect(), await connect(), await connect()];
    const busy = await connect();
    chatter = setInterval(() => busy.ws.send('touch'), 50);
    for (const socket of idle) {
      expect(await socket.closed).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      expect(socket.json()[1]).to.include({ type: 'connectionTimeout', reason: 'idle', idleSeconds: 1.2 });
    }
    expect(busy.ws.readyState).to.equal(busy.ws.OPEN);
    // A run logs once its closes have completed, just after the clients saw them.
    const runs = () => app.logs().filter((l) => l.message === 'Session cleanup completed');
    const cleaned = () => runs().reduce((sum, l) => sum + Number(l.cleanupCount), 0);
    for (let i = 0; i < 100 && cleaned() < 3; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(cleaned()).to.equal(3);
    for (const run of runs()) {
      expect(run).to.include.keys('cleanupCount', 'durationMs', 'memoryFreedMb', 'errorsEncountered', 'sessionsChecked');
      expect(JSON.stringify(run)).to.not.match(/sessionId/);
    }
  });

  it('reports the session metrics in /health as services.session_manager: {status, metrics}', async () => {
    const res = await fetch(`${app.url}/health`);
    expect(res.status).to.equal(200);
    const body = (await res.json()) as HealthBody;
    expect(body.status).to.equal('healthy');
    const { status, metrics } = body.services.session_manager;
    expect(status).to.equal('healthy');
    expect(metrics).to.include({ activeSessions: 1, sessionsCleaned: 3, cleanupErrors: 0, cleanupSchedulerRunning: true });
    expect(metrics.cleanupRuns).to.be.at.least(2);
    expect(metrics.lastCleanupTime).to.be.a('number');
    expect(metrics).to.include.keys('expiredSessions', 'averageSessionDurationMs', 'memoryUsageMb', 'timeoutsByReason');
  });

  it('closes every connection with 1001 going_away on SIGTERM and exits 0', async () => {
    const last = sockets.at(-1)!;
    const code = await app.stop('SIGTERM');
    expect(await last.closed).to.deep.equal({ code: 1001, reason: 'going_away' });
    expect(code).to.equal(0);
    expect(app.logs().find((l) => l.message === 'Sessions left in the store')).to.include({ sessions: 0 });
  });

  it('reports degraded in /health above SESSION_MAX_MEMORY_MB', async () => {
    const small = await startExample(SCRIPT, { SESSION_MAX_MEMORY_MB: '0.001' });
    const socket = await openSocket(`${small.wsUrl}/ws/session`);
    try {
      await socket.waitForMessages(1);
      const body = (await (await fetch(`${small.url}/health`)).json()) as HealthBody;
      expect(body.status).to.equal('degraded');
      expect(body.services.session_manager.status).to.equal('degraded');
      expect(body.services.session_manager.reasons[0]).to.match(/^memoryUsageMb [\d.]+ > 0\.001$/);
    } finally {
      socket.ws.terminate();
      await small.stop('SIGTERM');
    }
  });

  it('lists its variables in .env.example with the defaults it logs at start-up', async () => {
    const defaults = await startExample(SCRIPT);
    await defaults.stop('SIGTERM');
    const settings = defaults.logs().find((l) => l.message === 'session-cleanup listening')!;
    expect(Number(envExampleDefault('SESSION_TIMEOUT_MINUTES')) * 60_000).to.equal(settings.sessionTimeoutMs);
    expect(Number(envExampleDefault('SESSION_CLEANUP_INTERVAL_MINUTES')) * 60_000).to.equal(settings.cleanupIntervalMs);
    expect(Number(envExampleDefault('SESSION_CLEANUP_BATCH_SIZE'))).to.equal(settings.batchSize);
    expect(Number(envExampleDefault('SESSION_MAX_MEMORY_MB'))).to.equal(settings.maxMemoryMb);
  });

  it('refuses bad SESSION_CLEANUP_BATCH_SIZE and SESSION_CLEANUP_INTERVAL_MINUTES together on stderr and exits 1', async () => {
    const run = await runToExit(SCRIPT, { SESSION_CLEANUP_BATCH_SIZE: '0', SESSION_CLEANUP_INTERVAL_MINUTES: 'soon' });
    expect(run.code).to.equal(1);
    expect(run.stderr).to.include('invalid configuration (2 problems)');
    expect(run.stderr).to.include('SESSION_CLEANUP_BATCH_SIZE="0": expected a whole number of at least 1');
    expect(run.stderr).to.include('SESSION_CLEANUP_INTERVAL_MINUTES="soon"');
    expect(run.stdout).to.not.include('listening');
  });
});
