// test/room.spec.ts — run with: npx mocha --import=tsx test/room.spec.ts
import { expect } from 'chai';
import type { WebSocketHandler } from '../../lib/index.js';
import { connectHandler, createTestClock, type ConnectHandlerOptions } from '../../lib/testing/index.js';

// The handler your app mounts: app.get('/ws/rooms/:room', auth, websocket(roomHandler))
const roomHandler: WebSocketHandler = async (manager, req) => {
  await manager.sendJsonWithTimeout({ type: 'welcome', room: req.params.room });
  for await (const message of manager) {
    const sent = await manager.sendJsonWithTimeout({ type: 'message', text: String(message) });
    if (!sent) break; // missed WS_MESSAGE_TIMEOUT: the slow peer is being closed with 4003
  }
};

describe('roomHandler', () => {
  // The request your route sees, and your deployment's WS_* values (seconds, as strings).
  function connect(options: ConnectHandlerOptions = {}) {
    const t = createTestClock();
    const connection = connectHandler(roomHandler, {
      clock: t,
      path: '/ws/rooms/lobby',
      params: { room: 'lobby' },
      env: { WS_IDLE_TIMEOUT: '300', WS_CONNECTION_TIMEOUT: '3600' },
      ...options,
    });
    return { t, ...connection };
  }

  it('closes an idle connection after 5 minutes: notice, then 4001', async () => {
    const { t, client } = connect();
    expect(await client.nextJson()).to.deep.equal({ type: 'welcome', room: 'lobby' });

    await t.tickAsync(5 * 60_000 - 1); // 4:59.999: still open
    expect(client.closeEvent).to.equal(null);
    await t.tickAsync(1_001); // past the deadline (the verdict comes within 1/16 of a 1 s tick)
    // nextJson() reads the next unread message: here the notice that arrived during the tick.
    expect(await client.nextJson()).to.include({ type: 'connectionTimeout', reason: 'idle' });
    expect(client.closeEvent).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
  });

  it('terminates a peer that stops answering pings, without a close frame', async () => {
    const { t, client, manager } = connect({ autoPong: false });
    await t.tickAsync(25_000 + 60_000 + 1_000); // WS_PING_INTERVAL + WS_PONG_TIMEOUT + one tick
    expect(manager.state).to.equal('closed');
    expect(client.closeFrame).to.equal(null);
    expect(client.closeEvent).to.deep.equal({ code: 1006, reason: '' });
  });

  it('closes a peer that reads too slowly with 4003', async () => {
    const { t, client } = connect();
    await client.nextJson();
    client.stopReading(); // its TCP buffers are full
    client.send('hello?'); // so the reply cannot be flushed...
    await t.tickAsync(1_000); // ...within WS_MESSAGE_TIMEOUT (1 s)
    client.startReading();
    expect(await client.waitForClose()).to.deep.equal({ code: 4003, reason: 'send_timeout' });
  });
});
// ---- end of the guide example ----

// The example above is guides/testing.md's, character for character but for the two import paths:
// if one changes without the other, this fails.
describe('the example of guides/testing.md', () => {
  it('is this spec file, verbatim but for the import paths', async () => {
    const { readFile } = await import('node:fs/promises');
    const guide = await readFile(new URL('../../guides/testing.md', import.meta.url), 'utf8');
    const block = /```ts\n([\s\S]*?)```/.exec(guide)?.[1];
    expect(block, 'a ```ts block in guides/testing.md').to.be.a('string');
    const self = await readFile(new URL(import.meta.url), 'utf8');
    const example = self
      .slice(0, self.indexOf('// ---- end of the guide example ----'))
      .replace("from '../../lib/index.js'", "from 'ws-timeouts'")
      .replace("from '../../lib/testing/index.js'", "from 'ws-timeouts/testing'");
    expect(block).to.equal(example);
  });
});
