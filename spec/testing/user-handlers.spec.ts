import { expect } from 'chai';
import { CloseCode, type WebSocketHandler } from '../../lib/index.js';
import { captureLogs, connectHandler, createTestClock, installTestClock } from '../../lib/testing/index.js';

// Written the way a user of the library tests their own handlers: only the public entry points,
// fake time, no port. Each story covers minutes or hours of fake time; that this costs few
// wake-ups (hence few real milliseconds) is counted, not timed, in spec/scheduler.spec.ts.

/** A chat-room route: `app.get('/ws/rooms/:room', auth, websocket(roomHandler))`. */
const roomHandler: WebSocketHandler = async (manager, req) => {
  const room = req.params.room;
  await manager.sendJsonWithTimeout({ type: 'welcome', room, user: manager.userId });
  for await (const message of manager) {
    const sent = await manager.sendJsonWithTimeout({ type: 'message', room, text: String(message) });
    if (!sent) break; // deadline missed (4003 under the default policy) or closed
  }
};

/** A dashboard route that pushes a snapshot every 10 s with its own `setInterval`. */
const dashboardHandler: WebSocketHandler = async (manager) => {
  const timer = setInterval(() => void manager.sendJsonWithTimeout({ type: 'snapshot', at: Date.now() }), 10_000);
  await manager.whenClosed();
  clearInterval(timer);
};

describe('testing your own handlers with ws-timeouts/testing', () => {
  it('idle 5 minutes: sends the connectionTimeout notice, then closes with 4001', async () => {
    const t = createTestClock();
    const { client, request } = connectHandler(roomHandler, {
      clock: t,
      path: '/ws/rooms/lobby',
      route: '/ws/rooms/:room',
      params: { room: 'lobby' },
      userId: 'alice',
      env: { WS_IDLE_TIMEOUT: '300', WS_CONNECTION_TIMEOUT: '3600' },
    });
    expect(request.wsTimeouts?.idleTimeoutMs).to.equal(300_000);
    expect(await client.nextJson()).to.deep.equal({ type: 'welcome', room: 'lobby', user: 'alice' });

    // 4 min: the user talks once, which restarts the idle countdown.
    await t.tickAsync(240_000);
    client.send('hi');
    expect(await client.nextJson()).to.include({ type: 'message', text: 'hi' });

    // 4 min + 5 min - 1 s: still open (pongs kept flowing, but they are not activity).
    await t.tickAsync(299_000);
    expect(client.closeEvent).to.equal(null);

    // + 1 s and one scheduler tick: the notice, then the close.
    await t.tickAsync(2_000);
    expect(client.receivedJson().at(-1)).to.deep.include({ type: 'connectionTimeout', reason: 'idle', idleSeconds: 300 });
    expect(client.closeEvent).to.deep.equal({ code: CloseCode.IdleTimeout, reason: 'idle_timeout' });
  });

  it('silent peer: terminated after ping interval + pong timeout, with no close frame', async () => {
    // The handler uses setInterval itself, so fake the globals (setTimeout, setInterval, Date only).
    const t = installTestClock();
    try {
      const logs = captureLogs();
      const { client, manager } = connectHandler(dashboardHandler, { logger: logs.logger });
      expect(manager.config).to.include({ pingIntervalMs: 25_000, pongTimeoutMs: 60_000 });

      // 0 s: the peer vanishes (a phone in a tunnel). Snapshots keep "succeeding" into its
      // TCP buffers, so neither idle nor the send deadline notice anything.
      client.vanish();

      // 25 s: a ping goes out. 84 s: unanswered for 59 s, still open.
      await t.tickAsync(25_000 + 60_000 - 1_000);
      expect(manager.state).to.equal('open');

      // 86 s: past the 60 s pong timeout and one scheduler tick: terminated, no close frame.
      await t.tickAsync(2_000);
      expect(manager.state).to.equal('closed');
      expect(client.closeFrame).to.equal(null);
      expect(logs.find('WebSocket timeout')?.meta).to.include({ reason: 'pong_timeout' });
    } finally {
      t.uninstall();
    }
  });

  it('lifetime 2 hours with up to 10 minutes of jitter: sends the notice, then closes with 4002', async () => {
    const t = createTestClock();
    const { client, manager } = connectHandler(roomHandler, {
      clock: t,
      params: { room: 'lobby' },
      // The default 1 s resolution: the scheduler sleeps until the next deadline (each ping),
      // so two fake hours are ~290 wake-ups, not 7,200.
      env: { WS_CONNECTION_TIMEOUT: '7200', WS_IDLE_TIMEOUT: '0' },
      managerOptions: { lifetimeJitterMs: 600_000, random: () => 0.5 },
    });
    // 2 h minus half of the 10 minutes of jitter.
    expect(manager.lifetimeMs).to.equal(6_900_000);

    await t.tickAsync(6_900_000 - 1_000);
    expect(client.closeEvent).to.equal(null);

    // + 1 s and one 25 s tick: the notice, then the close.
    await t.tickAsync(26_000);
    expect(client.receivedJson().at(-1)).to.include({ type: 'connectionTimeout', reason: 'max_lifetime', lifetimeSeconds: 6_900 });
    expect(client.closeEvent).to.deep.equal({ code: CloseCode.MaxLifetime, reason: 'max_lifetime' });
  });

  it('slow consumer: the send resolves false at its deadline and the peer is closed with 4003', async () => {
    const t = createTestClock();
    const { client, manager, done } = connectHandler(roomHandler, { clock: t, params: { room: 'lobby' }, config: { messageTimeoutMs: 1_000 } });
    await client.nextJson();

    // The client stops reading; its next message makes the handler answer into full buffers.
    client.stopReading();
    client.send('are you there?');
    await t.tickAsync(999);
    expect(manager.state).to.equal('open');
    await t.tickAsync(1);

    // The handler's send resolved false, so its loop ended; the close frame waits unread.
    await done;
    expect(manager.state).to.equal('closing');

    // Once the client reads again it gets the reply that was stuck, then the close frame.
    client.startReading();
    expect(await client.waitForClose()).to.deep.equal({ code: CloseCode.SendTimeout, reason: 'send_timeout' });
    expect(client.receivedJson().at(-1)).to.include({ type: 'message', text: 'are you there?' });
  });
});
