import { expect } from 'chai';
import WebSocket from 'ws';
import { WebSocketTimeoutManager, type ManagerOptions } from '../lib/manager.js';
import { silentLogger } from '../lib/logger.js';
import { startWsServer, type TestServer } from './support/ws-server.js';
import { rawClient } from './support/raw-client.js';
import { SHORT_TIMEOUTS } from './support/short-timeouts.js';

// Real sockets on 127.0.0.1 with short real timeouts; no fake timers anywhere in this file.
function opened(url: string, options?: WebSocket.ClientOptions): Promise<WebSocket> {
  const ws = new WebSocket(url, options);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closeEvent(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

describe('WebSocketTimeoutManager over real ws sockets', () => {
  let server: TestServer;
  let managers: WebSocketTimeoutManager[];

  async function serve(handler: (manager: WebSocketTimeoutManager) => Promise<void> | void, options: ManagerOptions = {}) {
    managers = [];
    server = await startWsServer((ws) => {
      const manager = new WebSocketTimeoutManager(ws, { logger: silentLogger, ...options, config: { ...SHORT_TIMEOUTS, ...options.config } });
      managers.push(manager);
      void handler(manager);
    });
  }

  afterEach(async () => server?.close());

  describe('the basic manual loop', () => {
    async function basicLoop(timeoutManager: WebSocketTimeoutManager): Promise<void> {
      try {
        for (;;) {
          const message = await timeoutManager.receiveWithTimeout();
          if (message === null) {
            if (!(await timeoutManager.handleHeartbeat())) break; // connection lost
            continue;
          }
          if (message === 'pong') {
            timeoutManager.updateActivity();
            continue;
          }
          const response = { type: 'response', data: 'processed' };
          if (!(await timeoutManager.sendJsonWithTimeout(response))) break;
          if (timeoutManager.isConnectionTimeout()) break;
        }
      } finally {
        await timeoutManager.gracefulClose();
      }
    }

    // The manual loop judges a pong as soon as its receive times out: with the client in this
    // process, a pause of the whole process longer than the pong timeout would end a healthy
    // client. Tests that keep a client give it a pong timeout no scheduling pause reaches.
    const PATIENT = { config: { pongTimeoutMs: 10_000 } };

    it('answers each message and keeps a ping-answering client through many heartbeats', async () => {
      await serve(basicLoop, PATIENT);
      const client = await opened(server.url);
      await new Promise((r) => setTimeout(r, 400));
      client.send('hello');
      const reply = await new Promise((resolve) => client.once('message', (data) => resolve(JSON.parse(data.toString()))));
      expect(reply).to.deep.equal({ type: 'response', data: 'processed' });
      // Pings go out every 50 ms; the first answered one may come late on a busy machine.
      while (managers[0]!.lastRttMs < 0) await new Promise((r) => setTimeout(r, 20));
      expect(managers[0]!.state).to.equal('open');
      client.close();
      await closeEvent(client);
    });

    it('terminates a client with autoPong: false after ping interval + pong timeout', async () => {
      await serve(basicLoop);
      const started = Date.now(); // before the server accepts: its deadlines run from then
      const client = await opened(server.url, { autoPong: false });
      const { code } = await closeEvent(client);
      expect(code).to.equal(1006); // no close frame: the peer was terminated
      expect(Date.now() - started).to.be.at.least(SHORT_TIMEOUTS.pingIntervalMs! + SHORT_TIMEOUTS.pongTimeoutMs!);
    });

    it('ends the loop with a normal close once the lifetime is over', async () => {
      await serve(basicLoop, { config: { ...PATIENT.config, connectionTimeoutMs: 150 } });
      const client = await opened(server.url);
      await new Promise((r) => setTimeout(r, 200));
      client.send('one more');
      expect(await closeEvent(client)).to.deep.equal({ code: 1000, reason: 'normal_closure' });
    });
  });

  describe('the advanced manual loop', () => {
    it('uses a per-endpoint message timeout and a custom receive timeout', async () => {
      const seen: string[] = [];
      await serve(
        async (timeoutManager) => {
          try {
            while (timeoutManager.state === 'open') {
              const message = await timeoutManager.receiveWithTimeout(10_000);
              if (message === null) continue;
              seen.push(String(message));
              await timeoutManager.sendTextWithTimeout(`processed:${String(message)}`);
            }
          } finally {
            await timeoutManager.gracefulClose();
          }
        },
        { config: { messageTimeoutMs: 5_000 } },
      );
      expect(managers).to.have.length(0);
      const client = await opened(server.url);
      expect(managers[0]!.config.messageTimeoutMs).to.equal(5_000);
      client.send('job');
      const reply = await new Promise((resolve) => client.once('message', (data) => resolve(data.toString())));
      expect(reply).to.equal('processed:job');
      client.close(1000);
      await closeEvent(client);
      expect(seen).to.deep.equal(['job']);
    });
  });

  it('does not lose a message sent before anyone called receive', async () => {
    await serve(() => undefined);
    const client = await opened(server.url);
    client.send('first');
    await new Promise((r) => setTimeout(r, 50));
    expect(await managers[0]!.receiveWithTimeout(1_000)).to.equal('first');
    client.close();
  });

  it("terminates a peer that never answers the close frame after closeTimeoutMs ('terminated')", async () => {
    await serve(() => undefined);
    const peer = await rawClient(server.port);
    await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    const outcome = await managers[0]!.gracefulClose(1000);
    expect(outcome).to.equal('terminated');
    expect(Date.now() - started).to.be.at.least(SHORT_TIMEOUTS.closeTimeoutMs! - 5);
    expect(peer.frames.map((f) => f.opcode)).to.include(0x8);
    await peer.closed;
  });

  it('resolves a send to a paused client false within the message timeout and closes it with 4003', async () => {
    await serve(() => undefined);
    const client = await opened(server.url);
    client.pause();
    await new Promise((r) => setTimeout(r, 20));
    // Far more than the kernel's socket buffers take (a few MB), so the frame cannot be flushed.
    const text = 'x'.repeat(32 * 1024 * 1024);
    const started = Date.now();
    const sent = await managers[0]!.sendTextWithTimeout(text);
    expect(sent).to.equal(false);
    // Not before the deadline; the upper bound only catches a send that waits for the peer
    // (encoding and writing 32 MiB takes a second or two on a loaded machine).
    expect(Date.now() - started).to.be.within(SHORT_TIMEOUTS.messageTimeoutMs! - 5, SHORT_TIMEOUTS.messageTimeoutMs! + 5_000);
    client.resume();
    const { code } = await closeEvent(client);
    expect([4003, 1006]).to.include(code);
  });

  it('closes an idle client with the JSON notice and 4001 in automatic mode', async () => {
    await serve((manager) => void manager.start(), { config: { idleTimeoutMs: 100 } });
    const client = await opened(server.url);
    const notice = new Promise((resolve) => client.once('message', (data) => resolve(JSON.parse(data.toString()))));
    expect(await closeEvent(client)).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
    expect(await notice).to.include({ type: 'connectionTimeout', reason: 'idle', idleSeconds: 0.1 });
  });
});
