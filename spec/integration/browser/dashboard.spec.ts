import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startExample, type ExampleServer } from '../../support/example-server.js';
import { requireSystemTool } from '../../support/system-tool.js';

// The dashboard in a real browser: Debian's chromium driven by playwright-core (no downloaded
// browsers). The page opens its own WebSocket and must see its row appear, count down and vanish
// when the server closes it for idleness. CHROMIUM_PATH points elsewhere (a spec fakes its absence).
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('the example dashboard in chromium (examples/public)', function () {
  this.timeout(60_000);
  let server: ExampleServer | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async function () {
    requireSystemTool(this, 'chromium', 'chromium', () => existsSync(CHROMIUM));
    server = await startExample({
      WS_IDLE_TIMEOUT: '2',
      WS_PING_INTERVAL: '0.3',
      WS_PONG_TIMEOUT: '1',
      WS_TIMER_RESOLUTION: '0.05',
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage();
    await page.goto(`${server.httpUrl}/`);
  });

  after(async () => {
    await browser?.close();
    await server?.kill();
  });

  it('explains itself and shows the active timeout settings', async () => {
    expect(await page.title()).to.include('live connections');
    expect(await page.locator('.intro').innerText()).to.include('4001');
    await page.locator('[data-testid=config] dd').first().waitFor();
    expect(await page.locator('[data-testid=config]').innerText()).to.match(/idle timeout\s*2 s/);
    expect(await page.locator('[data-testid=status]').innerText()).to.match(/live/);
  });

  it("shows the page's own WebSocket as a row, then removes it after the idle timeout", async () => {
    const user = `browser-${Date.now() % 100_000}`;
    // 0 s: the page opens an echo socket and stays silent.
    await page.evaluate((name) => {
      const ws = new WebSocket(`ws://${location.host}/ws/echo?user=${name}`);
      const w = window as unknown as { testClose: Promise<{ code: number; reason: string }> };
      w.testClose = new Promise((resolve) => ws.addEventListener('close', (e) => resolve({ code: e.code, reason: e.reason })));
      return new Promise((resolve, reject) => {
        ws.addEventListener('open', resolve);
        ws.addEventListener('error', reject);
      });
    }, user);
    const openedAt = Date.now();

    // ~1 s: the next poll shows its row: route, user, state, an idle countdown under 2 s.
    const row = page.locator(`tr[data-user="${user}"]`);
    await row.waitFor({ state: 'attached', timeout: 5_000 });
    const cells = await row.locator('td').allInnerTexts();
    expect(cells[1]).to.equal('/ws/echo');
    expect(cells[2]).to.equal(user);
    expect(cells[6]).to.equal('open');
    const idle = Number.parseFloat((await row.locator('[data-field=idle]').innerText()).trim());
    expect(idle).to.be.within(0, 2);

    // pings every 0.3 s: a round-trip time appears in the row while it waits.
    await page.waitForFunction((name) => /\d+ ms$/.test(document.querySelector(`tr[data-user="${name}"] [data-field=rtt]`)?.textContent ?? ''), user, { timeout: 5_000 });

    // 2 s: idle -> close 4001; the next poll drops the row.
    await row.waitFor({ state: 'detached', timeout: 6_000 });
    expect(Date.now() - openedAt).to.be.greaterThan(1_500);
    expect(await page.evaluate(() => (window as unknown as { testClose: Promise<unknown> }).testClose)).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
    await page.waitForFunction(() => Number(document.querySelector('[data-reason=idle] strong')?.textContent) >= 1, undefined, { timeout: 3_000 });
  });

  it('opens, uses and closes a connection with the page buttons', async () => {
    await page.fill('#user', 'clicker');
    await page.click('#open-echo');
    const row = page.locator('tr[data-user="clicker"]');
    await row.waitFor({ state: 'attached', timeout: 5_000 });
    await page.locator('#send-echo:not([disabled])').waitFor();
    await page.click('#send-echo');
    await page.locator('[data-testid=events] li', { hasText: 'echo received: hello' }).waitFor({ timeout: 3_000 });
    await page.click('#close-echo');
    await page.locator('[data-testid=events] li', { hasText: 'echo: closed 1000' }).waitFor({ timeout: 3_000 });
    await row.waitFor({ state: 'detached', timeout: 5_000 });
  });
});
