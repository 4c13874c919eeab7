import { expect } from 'chai';
import { echoHandler, scansHandler, sendToScanners, type Scanners } from '../../examples/handlers.js';
import { connectHandler, createTestClock } from '../../lib/testing/index.js';

// The example server's WebSocket routes (examples/handlers.ts, mounted by examples/server.ts),
// tested as guides/testing.md shows: the very handlers, fake time, no port.
// The network-level acceptance test is server.spec.ts.

/** What `npm start` would read from the environment: 1 minute idle, 1 hour lifetime. */
const env = { WS_IDLE_TIMEOUT: '60', WS_CONNECTION_TIMEOUT: '3600' };

describe('examples/handlers.ts (npm start) with ws-timeouts/testing', () => {
  it('echoHandler sends each text message back unchanged and skips binary frames', async () => {
    const t = createTestClock();
    const { client } = connectHandler(echoHandler, { clock: t, env, path: '/ws/echo' });
    for (const text of ['hello', 'unicode ✓ 🚀', JSON.stringify({ a: 1 })]) {
      client.send(text);
      expect(await client.nextMessage()).to.equal(text);
    }
    client.send(Buffer.from([1, 2, 3]));
    client.send('after binary');
    expect(await client.nextMessage()).to.equal('after binary');
    expect(client.received).to.have.length(4);
  });

  it('echoHandler: a silent connection gets the connectionTimeout notice after WS_IDLE_TIMEOUT, then 4001', async () => {
    const t = createTestClock();
    const { client } = connectHandler(echoHandler, { clock: t, env, path: '/ws/echo' });
    await t.tickAsync(60_000 - 1); // pings are answered, but they are not activity
    expect(client.closeEvent).to.equal(null);
    await t.tickAsync(1_001); // past the deadline (the verdict comes within 1/16 of a 1 s tick)
    expect(client.receivedJson()).to.have.length(1);
    expect(client.receivedJson()[0]).to.include({ type: 'connectionTimeout', reason: 'idle', idleSeconds: 60 });
    expect(client.closeEvent).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
  });

  it('scansHandler: a scan reaches every open scanner; what a scanner sends gets no reply', async () => {
    const t = createTestClock();
    const scanners: Scanners = new Set();
    const gates = ['gate-a', 'gate-b'].map((userId) => connectHandler(scansHandler(scanners), { clock: t, env, path: '/ws/scans', userId }));
    expect(scanners.size).to.equal(2);

    gates[0]!.client.send('hello?'); // read and dropped
    const scan = { type: 'scan', ticketId: 'T-42', gate: 'A', status: 'valid' };
    expect(await sendToScanners(scanners, scan)).to.deep.equal({ scanners: 2, delivered: 2 });
    for (const { client } of gates) expect(client.receivedJson()).to.deep.equal([scan]);
  });

  it('scansHandler: a scanner leaves the set once it has closed, so scans go only to open ones', async () => {
    const t = createTestClock();
    const scanners: Scanners = new Set();
    const [gone, open] = [connectHandler(scansHandler(scanners), { clock: t, env }), connectHandler(scansHandler(scanners), { clock: t, env })];
    gone.client.close(1000);
    await gone.done;
    await t.flush();
    expect([...scanners]).to.deep.equal([open.manager]);
    expect(await sendToScanners(scanners, { type: 'scan', ticketId: 'T-43' })).to.deep.equal({ scanners: 1, delivered: 1 });
    expect(gone.client.received).to.deep.equal([]);
  });
});
