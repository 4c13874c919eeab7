import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { ConnectionRegistry, type RegistryOptions } from '../lib/registry.js';
import type { WebSocketTimeoutManager } from '../lib/manager.js';
import { silentLogger } from '../lib/logger.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { TimeoutConfig } from '../lib/config.js';
import { captureLogs } from '../lib/testing/log-capture.js';
import { startWsServer, type TestServer } from './support/ws-server.js';
import { rawClient } from './support/raw-client.js';
import { clientFrame } from '../reliability/support/util.js';

// Real sockets on 127.0.0.1 with short real timeouts; no fake timers anywhere in this file.
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

interface Client {
  ws: WebSocket;
  messages: string[];
  close: { code: number; reason: string } | null;
}

function openClient(url: string): Promise<Client> {
  const ws = new WebSocket(url);
  const client: Client = { ws, messages: [], close: null };
  ws.on('message', (data) => client.messages.push(data.toString()));
  ws.on('close', (code, reason) => (client.close = { code, reason: reason.toString() }));
  ws.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('error', reject);
  });
}

/** Opens `n` clients, at most 200 handshakes at a time (the listen backlog is 511). */
async function openClients(url: string, n: number): Promise<Client[]> {
  const clients: Client[] = [];
  for (let i = 0; i < n; i += 200) {
    clients.push(...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => openClient(url)))));
  }
  return clients;
}

const QUIET: Partial<TimeoutConfig> = {
  idleTimeoutMs: 0,
  connectionTimeoutMs: 0,
  pingIntervalMs: 5_000,
  pongTimeoutMs: 5_000,
  messageTimeoutMs: 2_000,
  closeTimeoutMs: 1_000,
  resolutionMs: 50,
};

describe('ConnectionRegistry over real ws sockets', function () {
  this.timeout(60_000);
  let server: TestServer | undefined;
  let registry: ConnectionRegistry;
  let clients: Client[] = [];
  let child: ChildProcess | undefined;

  async function serve(options: RegistryOptions, config: Partial<TimeoutConfig>): Promise<string> {
    registry = new ConnectionRegistry({
      logger: silentLogger,
      ...options,
      managerOptions: { onMessage: () => undefined, ...options.managerOptions },
      config: { ...QUIET, ...config },
    });
    server = await startWsServer((ws, ...rest: unknown[]) => {
      const req = rest[0] as { url?: string } | undefined;
      const kind = new URL(req?.url ?? '/', 'http://x').searchParams.get('kind') ?? 'client';
      registry.add(ws, { labels: { kind } });
    });
    return server.url;
  }

  afterEach(async () => {
    child?.kill();
    child = undefined;
    for (const client of clients) client.ws.terminate();
    clients = [];
    await registry?.stop();
    await server?.close();
    server = undefined;
  });

  it('ends a close the peer starts within closeTimeoutMs though the peer keeps the connection open, and counts no timeout', async () => {
    const logs = captureLogs();
    const closeTimeoutMs = 100;
    // The pong deadline (2 s) is far past the close bound: before the bound, it ended such peers, as a pong_timeout.
    await serve({ logger: logs.logger }, { pingIntervalMs: 50, pongTimeoutMs: 2_000, closeTimeoutMs, resolutionMs: 10 });
    const peer = await rawClient(server!.port);
    try {
      await until(() => registry.size === 1, 5_000, 'the connection');
      const [manager] = [...registry.managers()];
      // The peer sends its close frame, then stops reading (so it never sees the server's answer
      // and FIN, and never ends its side) and keeps sending text frames.
      peer.socket.pause();
      const started = Date.now();
      peer.socket.write(clientFrame(0x8, Buffer.from([0x03, 0xe8])));
      const talk = setInterval(() => peer.socket.writable && peer.socket.write(clientFrame(0x1, Buffer.from('still talking'))), 20);
      try {
        await manager!.whenClosed();
      } finally {
        clearInterval(talk);
      }
      const elapsed = Date.now() - started;
      expect(elapsed).to.be.at.least(closeTimeoutMs - 5);
      expect(elapsed).to.be.below(closeTimeoutMs + 1_000);
      expect(registry.size).to.equal(0);
      expect(registry.timeoutsByReason).to.deep.equal({ idle: 0, max_lifetime: 0, pong_timeout: 0, send_timeout: 0 });
      expect(logs.entries.filter((e) => e.message === 'WebSocket timeout')).to.deep.equal([]);
      const closed = logs.find('WebSocket closed')?.meta;
      expect(closed).to.include({ code: 1000 });
      expect(closed?.timeoutReason).to.equal(undefined);
      // The TCP connection is gone: the peer sees its end once it reads again.
      peer.socket.resume();
      await peer.closed;
    } finally {
      peer.socket.destroy();
    }
  });

  it('broadcasts to 1,000 sockets: 50 dead ones fail, are counted and dropped, the 900 live ones get it once', async () => {
    const url = await serve({}, {});
    clients = await openClients(url, 1_000);
    await until(() => registry.size === 1_000, 10_000, '1,000 connections');

    // 50 clients leave cleanly before the broadcast; 50 server-side sockets die underneath ws
    // (their 'close' has not been handled yet when the broadcast writes to them).
    for (const client of clients.slice(0, 50)) client.ws.close(1000);
    await until(() => registry.size === 950, 5_000, 'clean leavers');
    const managers = [...registry.managers()];
    const dead = managers.slice(0, 50);
    for (const manager of dead) (manager.ws as unknown as { _socket: { destroy(): void } })._socket.destroy();

    const started = Date.now();
    const result = await registry.broadcast({ type: 'scan', ticketId: 'T-1000' });
    expect(Date.now() - started).to.be.below(2_000);
    expect(result).to.deep.equal({ sent: 900, failed: 50 });

    const payload = JSON.stringify({ type: 'scan', ticketId: 'T-1000' });
    await until(() => clients.filter((c) => c.messages.length > 0).length === 900, 5_000, '900 deliveries');
    for (const client of clients.filter((c) => c.messages.length > 0)) expect(client.messages).to.deep.equal([payload]);
    for (const client of clients.slice(0, 50)) expect(client.messages).to.deep.equal([]);
    await until(() => registry.size === 900, 5_000, 'the dead to leave the registry');
    expect(registry.getSessionMetrics().closedSessions).to.equal(100);
  });

  it('cleans up 900 of 1,000 sessions in batches that yield to the event loop, while others connect and disconnect', async () => {
    // The registry's clock is the system clock, moved 1.2 s ahead at once below: every session has
    // then been quiet for 1.2 s by the registry's time, without the test sleeping through it.
    let aheadMs = 0;
    const clock: Clock = { ...systemClock, now: () => Date.now() + aheadMs };
    const heardFrom = new Set<WebSocketTimeoutManager>();
    const url = await serve({ batchSize: 50, clock, managerOptions: { onMessage: (_message, manager) => void heardFrom.add(manager) } }, {});
    clients = await openClients(url, 1_000);
    await until(() => registry.size === 1_000, 10_000, '1,000 connections');
    aheadMs = 1_200;
    const active = clients.slice(900);
    const speak = (): void => {
      for (const client of active) if (client.ws.readyState === WebSocket.OPEN) client.ws.send('still here');
    };
    speak();
    const chatter = setInterval(speak, 100);
    try {
      // The active clients have spoken since the jump once the registry has read a message from each.
      await until(() => heardFrom.size === 100, 5_000, 'a message from each active client');
      // Event-loop turns during the run: the run yields after each batch of 50, so I/O (and this
      // counter) runs at least once per batch boundary. No wall-clock bound: that is the bench's.
      let turns = 0;
      let counting = true;
      const count = (): void => {
        turns++;
        if (counting) setImmediate(count);
      };
      setImmediate(count);
      const run = registry.cleanupInactiveSessions(1_000);
      // Meanwhile: 50 newcomers arrive and 20 active clients leave.
      const newcomers = openClients(url, 50);
      for (const client of active.slice(0, 20)) client.ws.close(1000);
      expect(await run).to.equal(900);
      counting = false;
      expect(turns).to.be.at.least(1_000 / 50 - 1);
      clients.push(...(await newcomers));
      await until(() => registry.size === 130, 5_000, '130 sessions left');
    } finally {
      clearInterval(chatter);
    }
    await until(() => clients.slice(0, 900).every((c) => c.close !== null), 5_000, 'idle clients closed');
    for (const client of clients.slice(0, 900)) {
      expect(client.close).to.deep.equal({ code: 4001, reason: 'idle_timeout' });
      expect(JSON.parse(client.messages[0]!)).to.include({ type: 'connectionTimeout', reason: 'idle', message: 'Connection closed due to inactivity' });
    }
    for (const client of active.slice(20)) expect(client.close).to.equal(null);
    expect(registry.getSessionMetrics()).to.include({ sessionsCleaned: 900, cleanupErrors: 0, cleanupRuns: 1 });
  });

  it('terminates no healthy peer whose pong arrived during a 0.5 s event-loop stall, and still terminates silent ones', async () => {
    // pingInterval 0.1 s, pongTimeout 0.4 s, resolution 50 ms; healthy peers answer 50 ms after each ping.
    // The stall outlasts the pong timeout, so every ping outstanding at its start is overdue at its end.
    const STALL_MS = 500;
    const bigRtts = new Set<WebSocketTimeoutManager>();
    const answeredAfterStall = new Set<WebSocketTimeoutManager>();
    let stallEndedAt = Infinity;
    const onPong = (rttMs: number, manager: WebSocketTimeoutManager): void => {
      if (rttMs >= STALL_MS - 100) bigRtts.add(manager);
      if (Date.now() - rttMs >= stallEndedAt) answeredAfterStall.add(manager); // a ping sent after the stall
    };
    const url = await serve({ managerOptions: { onPong } }, { pingIntervalMs: 100, pongTimeoutMs: 400, resolutionMs: 50, closeTimeoutMs: 200 });
    child = spawn(process.execPath, [fileURLToPath(new URL('./support/registry-clients.mjs', import.meta.url)), url, '50', '5', '50'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.on('data', (data: Buffer) => data.toString().includes('"ready":true') && resolve());
      child!.once('exit', (code) => reject(new Error(`clients exited with ${code}`)));
    });
    await until(() => registry.size === 55, 5_000, '55 connections');
    const all = [...registry.managers()];
    const healthy = all.filter((m) => m.labels?.kind === 'healthy');
    const silent = all.filter((m) => m.labels?.kind === 'silent');
    // Past the first pings (their phases spread over the interval), well before any pong deadline.
    await until(() => silent.every((m) => m.pingOutstandingSince >= 0) && healthy.some((m) => m.pingOutstandingSince >= 0), 5_000, 'the first pings');
    const waiting = healthy.filter((m) => m.pingOutstandingSince >= 0);
    expect(waiting.length, 'healthy peers with a ping outstanding when the stall starts').to.be.at.least(1);
    expect(silent.every((m) => m.state === 'open')).to.equal(true);

    // The stall: synchronous work. The healthy peers' pongs arrive meanwhile, unread.
    const blockedUntil = Date.now() + STALL_MS;
    while (Date.now() < blockedUntil) {
      /* blocking the event loop on purpose */
    }
    stallEndedAt = Date.now();

    // The silent peers' pong deadlines passed during the stall: the deadline checks right after it
    // end them. Every healthy peer then answers a ping sent after the stall: the heartbeat goes on.
    await until(() => silent.every((m) => m.state === 'closed'), 5_000, 'the silent peers terminated');
    await until(() => healthy.every((m) => answeredAfterStall.has(m) || m.state !== 'open'), 5_000, 'a pong after the stall from every healthy peer');
    expect(healthy.filter((m) => m.state !== 'open').map((m) => m.id)).to.deep.equal([]);
    for (const manager of waiting) expect(bigRtts.has(manager), `${manager.id}'s pong from the stall was credited`).to.equal(true);
    expect(registry.timeoutsByReason.pong_timeout).to.equal(5);
    expect(registry.size).to.equal(50);
  });
});
