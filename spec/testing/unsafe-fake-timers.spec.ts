import { expect } from 'chai';
import * as FakeTimers from '@sinonjs/fake-timers';
import { connectHandler, createSocketPair, createTestClock, installTestClock } from '../../lib/testing/index.js';

// A plain FakeTimers.install() fakes queueMicrotask, process.nextTick and setImmediate too: the
// in-memory sockets and Node's own I/O stop, every wait of the test hangs, and a test that hangs
// never reaches its own uninstall(), leaving Date faked for the tests after it.
const realSetImmediate = setImmediate;
const realDate = Date;
const STILL_WAITING = Symbol('still waiting');

/** What `promise` settled with within one real macrotask, else STILL_WAITING: a wait that would hang fails at once. */
function settledNow<T>(promise: Promise<T>): Promise<T | typeof STILL_WAITING> {
  return Promise.race([promise, new Promise<typeof STILL_WAITING>((resolve) => realSetImmediate(() => resolve(STILL_WAITING)))]);
}

const UNSAFE = /fakes? .*(queueMicrotask|process\.nextTick|setImmediate).*installTestClock\(\).*toFake: \['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'\]/s;

describe('ws-timeouts/testing under a plain FakeTimers.install()', () => {
  let fake: ReturnType<typeof FakeTimers.install> | undefined;

  afterEach(() => {
    fake?.uninstall(); // a no-op once the kit has uninstalled it
    fake = undefined;
  });

  function expectUninstalled(): void {
    expect(Date, 'Date is real again').to.equal(realDate);
    expect(Date.now()).to.be.above(0);
    expect(setImmediate).to.equal(realSetImmediate);
  }

  const synchronous: Array<[string, () => unknown]> = [
    ['createSocketPair()', () => createSocketPair()],
    ['connectHandler()', () => connectHandler(() => undefined)],
    ['createTestClock()', () => createTestClock()],
    ['installTestClock()', () => installTestClock().uninstall()],
  ];
  for (const [name, call] of synchronous) {
    it(`${name} throws an error that names the fix, and uninstalls the fake clock so Date is real again`, () => {
      fake = FakeTimers.install();
      let error: unknown;
      try {
        call();
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(Error).with.property('code', 'WS_TIMEOUTS_ERR_UNSAFE_FAKE_TIMERS');
      expect((error as Error).message).to.match(UNSAFE);
      expectUninstalled();
    });
  }

  // Fake timers installed after the pair or the clock was made: the waits would hang.
  const waits: Array<[string, () => () => Promise<unknown>]> = [
    [
      'client.nextMessage()',
      () => {
        const { client } = createSocketPair();
        return () => client.nextMessage();
      },
    ],
    [
      'client.nextJson()',
      () => {
        const { client } = createSocketPair();
        return () => client.nextJson();
      },
    ],
    [
      'client.waitForClose()',
      () => {
        const { client } = createSocketPair();
        return () => client.waitForClose();
      },
    ],
    [
      'testClock.tickAsync()',
      () => {
        const t = createTestClock();
        return () => t.tickAsync(1_000);
      },
    ],
    [
      'testClock.flush()',
      () => {
        const t = createTestClock();
        return () => t.flush();
      },
    ],
  ];
  for (const [name, prepare] of waits) {
    it(`${name} rejects at once with an error that names the fix, and uninstalls the fake clock`, async () => {
      const wait = prepare();
      fake = FakeTimers.install();
      const outcome = await settledNow(wait().then(() => 'resolved', (err: unknown) => err));
      expect(outcome).to.be.instanceOf(Error).with.property('code', 'WS_TIMEOUTS_ERR_UNSAFE_FAKE_TIMERS');
      expect((outcome as Error).message).to.match(UNSAFE);
      expectUninstalled();
    });
  }

  it('lets an explicit toFake list that keeps them real through', async () => {
    fake = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const { server, client } = createSocketPair();
    server.send('hello');
    expect(await settledNow(client.nextMessage())).to.equal('hello');
    expect(Date.now()).to.equal(0);
  });
});
