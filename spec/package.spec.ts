import { expect } from 'chai';

// Imports the built package by its own name, the way a user does after `npm install ws-timeouts`.
describe('the built package', () => {
  it('exports the manager, config loader, close codes and errors from "ws-timeouts"', async () => {
    const pkg = await import('ws-timeouts');
    expect(pkg.WebSocketTimeoutManager).to.be.a('function');
    expect(pkg.loadTimeoutConfig({}).idleTimeoutMs).to.equal(60_000);
    expect(pkg.CloseCode.IdleTimeout).to.equal(4001);
    expect(new pkg.ConfigError([])).to.be.instanceOf(Error);
  });

  it('exports the testing kit from "ws-timeouts/testing"', async () => {
    const testing = await import('ws-timeouts/testing');
    expect(testing.createSocketPair).to.be.a('function');
    expect(testing.createTestClock).to.be.a('function');
  });
});
