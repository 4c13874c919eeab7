// Fleet broadcast under fake time: serialised once, delivered at most once to every matching
// socket of every node, own echo ignored, an honest per-node result.
import { expect } from 'chai';
import { settles } from '../support/settles.js';
import { createFleet, REQUEST_MS, type TestFleet } from './fleet-harness.js';

describe('fleet broadcast', () => {
  let f: TestFleet;
  afterEach(async () => f?.cleanup());

  it('reaches every socket of the route on every node exactly once, and counts them per node', async () => {
    f = await createFleet();
    const scans = ['a', 'a', 'b', 'c'].map((id) => f.nodes[id]!.connect({ labels: { route: '/ws/scans' } }).client);
    const echo = f.nodes.b!.connect({ labels: { route: '/ws/echo' } }).client;
    const result = await f.nodes.a!.fleet.broadcast({ type: 'scan', ticket: 7 }, { route: '/ws/scans' });
    await f.t.tickAsync(REQUEST_MS); // anything late or doubled would arrive by now
    expect(result).to.deep.equal({ status: 'ok', nodes: 3, sent: 4, failed: 0, nodesMissing: [] });
    for (const client of scans) expect(client.received).to.deep.equal(['{"type":"scan","ticket":7}']);
    expect(echo.received).to.deep.equal([]);
  });

  it('filters by labels, and sends strings as they are', async () => {
    f = await createFleet();
    const speaker = f.nodes.b!.connect({ labels: { role: 'speaker', room: '1' } }).client;
    const other = f.nodes.c!.connect({ labels: { role: 'speaker', room: '2' } }).client;
    const result = await f.nodes.a!.fleet.broadcast('plain text', { labels: { role: 'speaker', room: '1' } });
    expect(result).to.include({ status: 'ok', sent: 1 });
    expect(speaker.received).to.deep.equal(['plain text']);
    expect(other.received).to.deep.equal([]);
  });

  it('serialises the data once, on the sending node', async () => {
    f = await createFleet();
    for (const id of ['a', 'b', 'c']) f.nodes[id]!.connect();
    let serialised = 0;
    const data = { toJSON: () => (serialised++, { n: 1 }) };
    expect(await f.nodes.a!.fleet.broadcast(data)).to.include({ status: 'ok', sent: 3 });
    expect(serialised).to.equal(1);
  });

  it('names a node that did not answer within the deadline, and does not count its sockets as delivered', async () => {
    f = await createFleet();
    for (const id of ['a', 'b', 'c']) f.nodes[id]!.connect();
    f.nodes.c!.bus.deafen(); // c hears nothing: it neither delivers nor answers
    const pending = f.nodes.a!.fleet.broadcast('m');
    await f.t.tickAsync(REQUEST_MS - 1);
    await f.t.flush();
    let settled = false;
    void pending.then(() => (settled = true));
    await f.t.flush();
    expect(settled, 'resolved before the deadline').to.equal(false);
    await f.t.tickAsync(1);
    expect(await settles(f.t, pending, 'the broadcast')).to.deep.equal({ status: 'partial', nodes: 3, sent: 2, failed: 0, nodesMissing: ['c'] });
  });

  it('resolves as soon as every live node answered', async () => {
    f = await createFleet();
    f.nodes.b!.connect();
    expect(await settles(f.t, f.nodes.a!.fleet.broadcast('m'), 'the broadcast')).to.include({ status: 'ok', nodes: 3, sent: 1 });
  });

  it('sendToUser reaches every connection of the user on every node', async () => {
    f = await createFleet();
    const alice = [f.nodes.a!.connect({ userId: 'alice' }).client, f.nodes.c!.connect({ userId: 'alice' }).client];
    const bob = f.nodes.b!.connect({ userId: 'bob' }).client;
    expect(await f.nodes.b!.fleet.sendToUser('alice', { hi: 1 })).to.deep.equal({ status: 'ok', nodes: 3, sent: 2, failed: 0, nodesMissing: [] });
    for (const client of alice) expect(client.received).to.deep.equal(['{"hi":1}']);
    expect(bob.received).to.deep.equal([]);
  });

  it('closeUser closes every connection of the user on every node, notice first', async () => {
    f = await createFleet();
    const alice = [f.nodes.a!.connect({ userId: 'alice' }).client, f.nodes.c!.connect({ userId: 'alice' }).client];
    const bob = f.nodes.b!.connect({ userId: 'bob' }).client;
    const result = await f.nodes.b!.fleet.closeUser('alice', { code: 4010, reason: 'logged_out', notice: { type: 'loggedOut' } });
    expect(result).to.deep.equal({ status: 'ok', nodes: 3, closed: 2, failed: 0, nodesMissing: [] });
    await f.t.flush();
    for (const client of alice) {
      expect(client.received).to.deep.equal(['{"type":"loggedOut"}']);
      expect(client.closeFrame).to.deep.equal({ code: 4010, reason: 'logged_out' });
    }
    expect(bob.closeFrame).to.equal(null);
  });
});
