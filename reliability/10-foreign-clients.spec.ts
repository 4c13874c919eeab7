import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { startExample, type ExampleServer } from '../spec/support/example-server.js';
import { requireSystemTool } from '../spec/support/system-tool.js';
import { kill, track } from './support/children.js';
import { ms, reliabilityCase } from './support/report.js';
import { sleep } from './support/util.js';

// PYTHON3_PATH and CHROMIUM_PATH point elsewhere (a spec fakes their absence).
const PYTHON = process.env.PYTHON3_PATH ?? '/usr/bin/python3';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const PYTHON_CLIENT = fileURLToPath(new URL('./clients/python_client.py', import.meta.url));
const IDLE_MS = 2_500;
const PING_MS = 300;
// Long enough that a browser or interpreter slowed by a busy machine still answers in time, short
// enough that a peer that did not answer would be terminated (ping + pong) before the idle close.
const PONG_MS = 1_500;
const ENV = {
  WS_IDLE_TIMEOUT: String(IDLE_MS / 1000),
  WS_PING_INTERVAL: String(PING_MS / 1000),
  WS_PONG_TIMEOUT: String(PONG_MS / 1000),
  WS_TIMER_RESOLUTION: '0.05',
  WS_CLOSE_TIMEOUT: '1',
};

const report = reliabilityCase('Foreign clients', {
  load: 'Python `websockets` (Debian python3-websockets, /usr/bin/python3) and headless Chromium (Debian chromium + playwright-core) on the example server’s /ws/echo at the same time',
  faults: `clients that only answer pings after one echo: idle timeout ${IDLE_MS / 1000} s, ping every ${PING_MS / 1000} s, pong timeout ${PONG_MS / 1000} s`,
});

interface ClientResult {
  client: string;
  echo: string;
  messages: Array<{ at: number; data: string }>;
  code: number | null;
  reason: string | null;
  /** Seconds since connecting. */
  closedAt: number;
}

function runPython(url: string): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(PYTHON, [PYTHON_CLIENT, url], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => kill(child), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`python client exited ${code}: ${err}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!) as ClientResult);
    });
  });
}

async function runChromium(browser: Browser, httpUrl: string, user: string): Promise<ClientResult> {
  const page = await browser.newPage();
  try {
    await page.goto(`${httpUrl}/health`);
    const result = await page.evaluate(
      (name) =>
        new Promise<Omit<ClientResult, 'client'>>((resolve, reject) => {
          const started = performance.now();
          const ws = new WebSocket(`ws://${location.host}/ws/echo?user=${name}`);
          const messages: Array<{ at: number; data: string }> = [];
          let echo = '';
          ws.onerror = () => reject(new Error('WebSocket error in the page'));
          ws.onopen = () => ws.send('hello from chromium');
          ws.onmessage = (event) => {
            if (!echo) echo = String(event.data);
            else messages.push({ at: (performance.now() - started) / 1000, data: String(event.data) });
          };
          ws.onclose = (event) => resolve({ echo, messages, code: event.code, reason: event.reason, closedAt: (performance.now() - started) / 1000 });
        }),
      user,
    );
    return { client: `chromium ${browser.version()}`, ...result };
  } finally {
    await page.close();
  }
}

/** Sum of the server's rtt histogram count: one per answered ping. */
async function pongsAnswered(httpUrl: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('ws_timeouts_rtt_seconds_count'));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe(report.name, function () {
  let server: ExampleServer | undefined;
  let browser: Browser | undefined;

  before(async function () {
    requireSystemTool(this, 'python3-websockets', 'python3-websockets', () => spawnSync(PYTHON, ['-c', 'import websockets']).status === 0);
    requireSystemTool(this, 'chromium', 'chromium', () => existsSync(CHROMIUM));
    server = await startExample(ENV);
    track(server.proc, { group: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.kill();
  });

  it('keeps both alive through several ping intervals by their pongs, then sends them the idle notice and 4001', async () => {
    const pongsBefore = await pongsAnswered(server!.httpUrl);
    const seen = new Map<string, number>();
    let polling = true;
    // While they run: the dashboard's view shows each connection's last round-trip time (a pong arrived).
    const poll = (async () => {
      while (polling) {
        const view = (await (await fetch(`${server!.httpUrl}/api/connections`)).json()) as { connections: Array<{ user: string; lastRttMs: number | null }> };
        for (const c of view.connections) if (c.lastRttMs !== null) seen.set(c.user, c.lastRttMs);
        await sleep(200);
      }
    })();
    const [python, browserResult] = await Promise.all([runPython(`${server!.wsUrl}/ws/echo?user=python`), runChromium(browser!, server!.httpUrl, 'chromium')]);
    polling = false;
    await poll;
    const pongs = (await pongsAnswered(server!.httpUrl)) - pongsBefore;

    for (const r of [python, browserResult]) {
      expect(r.echo, r.client).to.match(/^hello from /);
      expect(r.code, r.client).to.equal(4001);
      expect(r.reason, r.client).to.equal('idle_timeout');
      expect(r.messages, r.client).to.have.length(1);
      expect(JSON.parse(r.messages[0]!.data), r.client).to.include({ type: 'connectionTimeout', reason: 'idle', idleSeconds: IDLE_MS / 1000 });
      // Alive past ping + pong timeout: had a ping gone unanswered, it would have been terminated (1006) by ~1.8 s.
      // The upper bound only catches a missing idle close; a loaded machine slows the clients' own start.
      expect(r.closedAt * 1000, r.client).to.be.within(IDLE_MS - 100, IDLE_MS + 5_000);
    }
    expect(seen.has('python'), 'a pong from python reached the server').to.equal(true);
    expect(seen.has('chromium'), 'a pong from chromium reached the server').to.equal(true);
    const intervals = Math.floor(IDLE_MS / PING_MS);
    // Several rounds each, not one per interval: no ping goes out while one is unanswered, so a
    // client slowed by a busy machine answers fewer of them.
    expect(pongs).to.be.at.least(2 * 2);
    report.figure(
      `${python.client}: idle notice then 4001 idle_timeout at ${ms(python.closedAt * 1000)}; ${browserResult.client}: same at ${ms(browserResult.closedAt * 1000)}; ` +
        `both alive through ${intervals} ping intervals (${pongs} pongs answered in all; last RTT ${seen.get('python')} ms / ${seen.get('chromium')} ms)`,
    );
  });
});
