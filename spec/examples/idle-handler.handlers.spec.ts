import { expect } from 'chai';
import { listenerHandler, listenerRoute, speakerHandler, speakerRoute } from '../../examples/idle-handler/handlers.js';
import { ConnectionRegistry, TimeoutMetrics, type DisconnectInfo } from '../../lib/index.js';
import { captureLogs, connectHandler, createTestClock, type TestClock } from '../../lib/testing/index.js';

// The live-translation routes (examples/idle-handler/handlers.ts, mounted by its server.ts),
// tested as guides/testing.md shows: fake time, no port, through a registry as the
// server's `attachWebSockets(server, app, { registry })` does. Acceptance: idle-handler.spec.ts.

/** CONNECTION_IDLE_TIMEOUT_SECONDS=120 as server.ts reads it: the idle timeout; no lifetime limit. */
const config = { idleTimeoutMs: 120_000, connectionTimeoutMs: 0 };

describe('examples/idle-handler/handlers.ts with ws-timeouts/testing', () => {
  let t: TestClock;
  let metrics: TimeoutMetrics;
  let registry: ConnectionRegistry;
  let disconnects: Array<{ role: string | undefined } & DisconnectInfo>;
  let logs: ReturnType<typeof captureLogs>;

  beforeEach(() => {
    t = createTestClock();
    metrics = new TimeoutMetrics();
    disconnects = [];
    logs = captureLogs();
    registry = new ConnectionRegistry({
      config,
      clock: t.clock,
      logger: logs.logger,
      metrics,
      onDisconnect: (manager, info) => void disconnects.push({ role: manager.labels?.role, ...info }),
    });
  });

  afterEach(() => registry.stopCleanupScheduler());

  /** `ws /ws?role=…`: the route server.ts picks for that role, with its options. */
  function join(role: 'speaker' | 'listener') {
    const [handler, managerOptions] = role === 'speaker' ? [speakerHandler(registry), speakerRoute] : [listenerHandler, listenerRoute];
    return connectHandler(handler, { clock: t, registry, config, managerOptions, path: '/ws', query: { role } });
  }

  it("relays a speaker's text to every listener and to no other speaker", async () => {
    const [speaker, other, ...listeners] = [join('speaker'), join('speaker'), join('listener'), join('listener')];
    speaker.client.send('hola');
    await t.flush();
    for (const { client } of listeners) expect(client.received).to.deep.equal(['hola']);
    expect(other.client.received).to.deep.equal([]);
    expect(speaker.client.received).to.deep.equal([]);
  });

  it('keeps a silent listener open while a speaker talks to it: a relayed message is activity', async () => {
    const [speaker, listener] = [join('speaker'), join('listener')];
    for (let i = 0; i < 5; i++) {
      await t.tickAsync(100_000);
      speaker.client.send(`line ${i}`);
    }
    await t.flush();
    expect(listener.manager.state).to.equal('open');
    expect(listener.client.received).to.have.length(5);
  });

  it('idle for CONNECTION_IDLE_TIMEOUT_SECONDS: the notice, 4001, then the disconnect handler with the role', async () => {
    const { client } = join('listener');
    const idleAt = t.now() + 120_000;
    await t.tickAsync(120_000 - 1);
    expect(client.closeEvent).to.equal(null);
    await t.tickAsync(1_001); // past the deadline (the verdict comes within 1/16 of a 1 s tick)
    const [notice, ...more] = client.receivedJson() as Array<{ timestamp: number }>;
    expect(more).to.deep.equal([]);
    expect(notice).to.deep.equal({ type: 'connectionTimeout', reason: 'idle', message: 'Connection closed due to inactivity', idleSeconds: 120, timestamp: notice!.timestamp });
    expect(notice!.timestamp).to.be.within(idleAt, t.now());
    expect(client.closeEvent).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
    expect(disconnects).to.deep.equal([{ role: 'listener', code: 4001, reason: 'idle_timeout', timeoutReason: 'idle' }]);
    expect(await metrics.register.metrics()).to.include('ws_timeouts_timeouts_total{reason="idle",role="listener"} 1');
  });

  /** A counter's value now. */
  async function count(counter: 'connectionsChecked' | 'connectionsClosed' | 'idleDetected'): Promise<number> {
    return (await metrics[counter].get()).values[0]?.value ?? 0;
  }

  it('counts in ConnectionsChecked the connections each sweep examined, and in ConnectionsClosed only those closed for inactivity', async () => {
    const [speaker, listener, leaver] = [join('speaker'), join('listener'), join('speaker')];
    leaver.client.close(1000); // an ordinary disconnect: not the sweep's doing
    await t.tickAsync(1_000);
    registry.startCleanupScheduler(60_000); // TIMEOUT_CHECK_INTERVAL_SECONDS=60, as server.ts starts it
    await t.tickAsync(60_000); // one sweep; meanwhile every socket was pinged (scheduler visits)
    expect(await count('connectionsChecked')).to.equal(2);
    expect(await count('connectionsClosed')).to.equal(0);
    await t.tickAsync(60_000); // both silent for 121 s: closed for inactivity
    expect([speaker.client.closeEvent, listener.client.closeEvent]).to.deep.equal([
      { code: 4001, reason: 'idle_timeout' },
      { code: 4001, reason: 'idle_timeout' },
    ]);
    expect(await count('idleDetected')).to.equal(2);
    expect(await count('connectionsClosed')).to.equal(2);
    expect(await count('connectionsChecked')).to.equal(2); // the second sweep found nothing open
  });

  it('logs a timeout notice that could not be sent, with the connection id, role and reason, and still closes with 4001', async () => {
    const { server, client, manager } = join('listener');
    server.send = (_data: unknown, cb?: (err?: Error) => void) => queueMicrotask(() => cb?.(new Error('write EPIPE')));
    await t.tickAsync(120_000 + 1_000);
    const failed = logs.find('Timeout notice not sent');
    expect(failed?.level).to.equal('warn');
    expect(failed?.meta).to.include({ connectionId: manager.id, role: 'listener', reason: 'idle' });
    expect((failed?.meta.error as Error).message).to.equal('write EPIPE');
    expect(client.closeEvent).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
  });
});
