// Send and close by fleet connection id, under fake time: the owner acts, a connection no live
// node holds is `gone`, an owner that does not answer in time is `unknown`.
import { expect } from 'chai';
import { fleetConnectionId, instanceOf, parseFleetConnectionId } from '../../lib/fleet/ids.js';
import { settles } from '../support/settles.js';
import { createFleet, REQUEST_MS, type TestFleet } from './fleet-harness.js';

describe('fleet remote operations by connection id', () => {
  let f: TestFleet;
  afterEach(async () => f?.cleanup());

  it('fleet ids are `${nodeId}@${startedAt}:${connection id}`, unique across nodes', async () => {
    f = await createFleet(['a', 'b']);
    const onA = f.nodes.a!.connect().manager;
    const onB = f.nodes.b!.connect().manager;
    expect(f.nodes.a!.fleet.idOf(onA)).to.equal(`a@${f.t.now()}:${onA.id}`);
    expect(f.nodes.a!.fleet.idOf(onA)).to.not.equal(f.nodes.b!.fleet.idOf(onB));
  });

  it('reads back every id it gives: a run started at any clock time, a connection id holding a colon', () => {
    for (const startedAt of [1_700_000_000_000, 1_700_000_000_000.5, -5]) {
      const instance = instanceOf('web-1', startedAt);
      expect(parseFleetConnectionId(fleetConnectionId(instance, 'user:42')), String(startedAt)).to.deep.equal({ nodeId: 'web-1', instance, connectionId: 'user:42' });
    }
    expect(parseFleetConnectionId('web-1:c1'), 'no run').to.equal(null);
    expect(parseFleetConnectionId('web-1@1:'), 'no connection id').to.equal(null);
    expect(parseFleetConnectionId('web 1@1:c1'), 'not a node id').to.equal(null);
  });

  it('an id of an earlier run of a node is gone after a restart under the same node id, though its connection id is reused', async () => {
    f = await createFleet(['a', 'b']);
    const before = f.nodes.b!.connect({ id: 'c7' }).manager;
    const oldId = f.nodes.b!.fleet.idOf(before);
    await f.nodes.b!.fleet.leave();
    await f.t.tickAsync(1);
    const restarted = await f.join('b');
    const { client, manager } = restarted.connect({ id: 'c7' });
    expect(restarted.fleet.idOf(manager)).to.not.equal(oldId);
    expect(await f.nodes.a!.fleet.send(oldId, 'for the old connection')).to.equal('gone');
    expect(await f.nodes.a!.fleet.close(oldId)).to.equal('gone');
    expect(await restarted.fleet.send(oldId, 'asked of itself')).to.equal('gone');
    expect(client.received).to.deep.equal([]);
    expect(manager.state).to.equal('open');
    expect(await f.nodes.a!.fleet.send(restarted.fleet.idOf(manager), 'for the new one')).to.equal('sent');
    expect(client.received).to.deep.equal(['for the new one']);
  });

  it('send reaches a connection held by another node', async () => {
    f = await createFleet();
    const { client, manager } = f.nodes.b!.connect();
    expect(await f.nodes.a!.fleet.send(f.nodes.b!.fleet.idOf(manager), { n: 1 })).to.equal('sent');
    expect(client.received).to.deep.equal(['{"n":1}']);
  });

  it('close closes a connection held by another node as a local close: notice, then the close frame', async () => {
    f = await createFleet();
    const { client, manager } = f.nodes.b!.connect();
    const id = f.nodes.b!.fleet.idOf(manager);
    expect(await f.nodes.a!.fleet.close(id, { code: 4000, reason: 'kicked', notice: { type: 'kicked' } })).to.equal('closed');
    await f.t.flush();
    expect(client.received).to.deep.equal(['{"type":"kicked"}']);
    expect(client.closeFrame).to.deep.equal({ code: 4000, reason: 'kicked' });
    // Already closed: no live node holds it, which is success for a close.
    expect(await f.nodes.c!.fleet.close(id)).to.equal('gone');
  });

  it('a connection closing already counts as closed', async () => {
    f = await createFleet();
    const { client, manager } = f.nodes.b!.connect();
    client.answerClose = false;
    void manager.gracefulClose(4001, 'idle');
    expect(await f.nodes.a!.fleet.close(f.nodes.b!.fleet.idOf(manager))).to.equal('closed');
  });

  it('gone: the node is not a live member, the node does not hold it, or the id is not a fleet id', async () => {
    f = await createFleet();
    const { manager } = f.nodes.b!.connect();
    expect(await f.nodes.a!.fleet.send('nobody:c1', 'm')).to.equal('gone');
    expect(await f.nodes.a!.fleet.close('nobody:c1')).to.equal('gone');
    const run = parseFleetConnectionId(f.nodes.b!.fleet.idOf(manager))!.instance;
    expect(await f.nodes.a!.fleet.send(`${run}:no-such-connection`, 'm')).to.equal('gone');
    expect(await f.nodes.a!.fleet.send(`b:${manager.id}`, 'm'), 'no run').to.equal('gone');
    expect(await f.nodes.a!.fleet.send('not a fleet id', 'm')).to.equal('gone');
    await f.nodes.b!.fleet.leave();
    expect(await f.nodes.a!.fleet.close(`${run}:${manager.id}`)).to.equal('gone');
  });

  it('unknown: the owner is live but did not answer within the deadline', async () => {
    f = await createFleet();
    const { manager } = f.nodes.b!.connect();
    f.nodes.b!.bus.deafen();
    const startedAt = f.t.now();
    const pending = f.nodes.a!.fleet.close(f.nodes.b!.fleet.idOf(manager));
    expect(await settles(f.t, pending, 'the remote close', REQUEST_MS)).to.equal('unknown');
    expect(f.t.now() - startedAt).to.equal(REQUEST_MS);
  });

  it('a connection of this node is handled here, without the bus', async () => {
    f = await createFleet(['a', 'b']);
    const { client, manager } = f.nodes.a!.connect();
    f.network.takeDown();
    expect(await f.nodes.a!.fleet.send(f.nodes.a!.fleet.idOf(manager), 'local')).to.equal('sent');
    expect(client.received).to.deep.equal(['local']);
  });

  it('by user id: sendToUser and closeUser answer per node (see the broadcast spec); a user nobody holds sends 0', async () => {
    f = await createFleet();
    expect(await f.nodes.a!.fleet.sendToUser('nobody', 'm')).to.deep.equal({ status: 'ok', nodes: 3, sent: 0, failed: 0, nodesMissing: [] });
  });
});
