import { expect } from 'chai';
import { until } from '../../support/express-server.js';
import { envExampleDefault, openSocket, runToExit, startExample, type RunningExample, type TestSocket } from '../../support/run-example.js';

// Acceptance: the example started as its README says (`node --import tsx examples/idle-handler/server.ts`),
// probed over HTTP and WebSocket with short real timeouts.
const SCRIPT = 'examples/idle-handler/server.ts';

describe('examples/idle-handler', function () {
  this.timeout(30_000);
  let app: RunningExample;
  const sockets: TestSocket[] = [];

  before(async () => {
    // CONNECTION_IDLE_TIMEOUT_SECONDS=0.6: 600 ms without a message closes a connection; a sweep every 200 ms.
    app = await startExample(SCRIPT, { CONNECTION_IDLE_TIMEOUT_SECONDS: '0.6', TIMEOUT_CHECK_INTERVAL_SECONDS: '0.2', WS_TIMER_RESOLUTION: '0.05' });
  });

  after(async () => {
    for (const socket of sockets) socket.ws.terminate();
    await app?.stop('SIGKILL');
  });

  async function join(role?: string): Promise<TestSocket> {
    const socket = await openSocket(`${app.wsUrl}/ws${role ? `?role=${role}` : ''}`);
    sockets.push(socket);
    return socket;
  }

  it("relays a speaker's message to every listener and to no other speaker", async () => {
    const speaker = await join('speaker');
    const other = await join('speaker');
    const listeners = [await join('listener'), await join()]; // listener is the default role
    speaker.ws.send('hola');
    for (const listener of listeners) expect(await listener.waitForMessages(1)).to.deep.equal(['hola']);
    expect(other.messages).to.deep.equal([]);
    for (const socket of [speaker, other, ...listeners]) socket.ws.close(1000);
    await Promise.all([speaker, other, ...listeners].map((s) => s.closed));
  });

  it('refuses a role other than speaker or listener with 400, before the upgrade', async () => {
    let error: unknown;
    await openSocket(`${app.wsUrl}/ws?role=admin`).catch((err) => (error = err));
    expect((error as { statusCode?: number }).statusCode).to.equal(400);
  });

  it('sends the connectionTimeout notice, closes with 4001, then runs the disconnect handler', async () => {
    const listener = await join('listener');
    expect(await listener.closed).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
    const [notice] = listener.json();
    expect(notice).to.deep.equal({
      type: 'connectionTimeout',
      reason: 'idle',
      message: 'Connection closed due to inactivity',
      idleSeconds: 0.6,
      timestamp: notice!.timestamp,
    });
    expect(notice!.timestamp).to.be.within(Date.now() - 2_000, Date.now());
    const isHandlerLine = (l: Record<string, unknown>): boolean => l.message === 'Disconnect handler: connection cleaned up' && l.timeoutReason === 'idle';
    await until(() => app.logs().some(isHandlerLine), 5_000);
    const lines = app.logs();
    const closedAt = lines.findIndex((l) => l.message === 'WebSocket closed' && l.totalConnections === 0 && l.timeoutReason === 'idle');
    const handlerAt = lines.findIndex(isHandlerLine);
    expect(closedAt).to.be.at.least(0);
    expect(handlerAt).to.be.above(closedAt);
    expect(lines[handlerAt]).to.include({ role: 'listener', code: 4001 });
  });

  it('counts timeouts by role and reason, connections the sweeps examined, idle detected, and as closed only the idle ones', async () => {
    const speaker = await join('speaker');
    await speaker.closed;
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).to.include('ws_timeouts_timeouts_total{reason="idle",role="listener"} 1');
    expect(text).to.include('ws_timeouts_timeouts_total{reason="idle",role="speaker"} 1');
    expect(text).to.include('ws_timeouts_idle_detected_total 2');
    // Four connections closed by their clients earlier: ordinary disconnects, not counted.
    expect(text).to.include('ws_timeouts_connections_closed_total 2');
    expect(Number(/ws_timeouts_connections_checked_total (\d+)/.exec(text)?.[1])).to.be.at.least(1);
    expect(Number(/ws_timeouts_cleanup_runs_total (\d+)/.exec(text)?.[1])).to.be.at.least(1);
  });

  it('closes every connection with 1001 going_away on SIGTERM and exits 0', async () => {
    const listener = await join('listener');
    const code = await app.stop('SIGTERM');
    expect(await listener.closed).to.deep.equal({ code: 1001, reason: 'going_away' });
    expect(code).to.equal(0);
  });

  it('lists its variables in .env.example with the defaults it logs at start-up', async () => {
    const defaults = await startExample(SCRIPT);
    await defaults.stop('SIGTERM');
    const settings = defaults.logs().find((l) => l.message === 'idle-handler listening')!;
    expect(Number(envExampleDefault('CONNECTION_IDLE_TIMEOUT_SECONDS'))).to.equal(settings.idleSeconds);
    expect(Number(envExampleDefault('TIMEOUT_CHECK_INTERVAL_SECONDS'))).to.equal(settings.checkIntervalSeconds);
  });

  it('refuses a bad CONNECTION_IDLE_TIMEOUT_SECONDS on stderr and exits 1 before listening', async () => {
    const run = await runToExit(SCRIPT, { CONNECTION_IDLE_TIMEOUT_SECONDS: '-1' });
    expect(run.code).to.equal(1);
    expect(run.stderr).to.include('CONNECTION_IDLE_TIMEOUT_SECONDS="-1": expected a positive number of seconds');
    expect(run.stdout).to.not.include('listening');
  });
});
