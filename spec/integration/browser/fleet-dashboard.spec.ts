import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { openClient, closed } from '../../support/express-server.js';
import { startExampleFleet, type ExampleFleet } from '../../support/example-fleet.js';
import { requireRedisServer } from '../../support/redis-server.js';
import { requireSystemTool } from '../../support/system-tool.js';

// The dashboard of a fleet node in Debian's chromium: two example nodes on a real redis-server.
// The page of node a must list both nodes with their connections, and its close button must
// close a connection held by node a through the fleet API.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('the example dashboard of a fleet node in chromium', function () {
  this.timeout(120_000);
  let fleet: ExampleFleet | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async function () {
    requireSystemTool(this, 'chromium', 'chromium', () => existsSync(CHROMIUM));
    requireRedisServer(this);
    fleet = await startExampleFleet(['a', 'b'], { WS_IDLE_TIMEOUT: '30', WS_FLEET_TTL: '1.5' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage();
    await page.goto(`${fleet.nodes.a!.httpUrl}/`);
  });

  after(async () => {
    await browser?.close();
    await fleet?.stop();
  });

  it('lists every node with its connections, and closes a row through the fleet API', async () => {
    const onB = await openClient(`${fleet!.nodes.b!.wsUrl}/ws/echo?user=held-by-b`);
    const onA = await openClient(`${fleet!.nodes.a!.wsUrl}/ws/echo?user=held-by-a`);
    // Membership is refreshed every 0.5 s, by each node for itself: each row shows its node's
    // connection once that node has published it and a has read it (node a's own row can lag b's).
    await page.waitForFunction(
      () => ['a', 'b'].every((node) => document.querySelector(`tr[data-node="${node}"] [data-field=connections]`)?.textContent === '1'),
      undefined,
      { timeout: 10_000 },
    );
    expect(await page.locator('#node-id').innerText()).to.equal('a');
    expect(await page.locator('tr[data-node="a"] td').first().innerText()).to.include('this node');
    expect(await page.locator('[data-testid=fleet-status]').innerText()).to.match(/2 node\(s\), 2 connection\(s\)/);
    expect(await page.locator('[data-testid=chart]').isVisible()).to.equal(true);

    const row = page.locator('tr[data-user="held-by-a"]');
    expect(await row.getAttribute('data-connection-id')).to.match(/^a@\d+:/);
    const close = closed(onA);
    await row.locator('button[data-close]').click();
    expect(await close).to.deep.equal({ code: 1000, reason: 'closed_by_operator' });
    await page.locator('[data-testid=events] li', { hasText: 'HTTP 200 closed' }).waitFor({ timeout: 3_000 });
    onB.close();
  });
});
