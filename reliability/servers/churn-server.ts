/**
 * The server of the churn case, in its own process (`node --expose-gc --import tsx`), so its
 * heap is measured alone. Express + `attachWebSockets` + a `ConnectionRegistry`, one echo route.
 *
 * The parent drives it over IPC: `{ op: 'measure' }` answers the heap after a full GC and what is
 * still tracked; `{ op: 'stop' }` stops listening, closes the gateway and the IPC channel, and
 * then nothing may keep the process alive: it must exit by itself (no `process.exit`, and the
 * parent runs it without any `--exit`-like help). What would keep it alive is reported first.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getHeapSpaceStatistics } from 'node:v8';
import express from 'express';
import { attachWebSockets, ConnectionRegistry, websocket, type Logger } from '../../lib/index.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run me with --expose-gc');

// Counts lines instead of writing them: 10,000 cycles would otherwise be 30,000 lines on a pipe.
const logged: Record<string, number> = { error: 0, warn: 0, info: 0, debug: 0 };
const count = (level: string) => () => void logged[level]!++;
const logger: Logger = { error: count('error'), warn: count('warn'), info: count('info'), debug: count('debug') };

const registry = new ConnectionRegistry({
  logger,
  config: { pingIntervalMs: 1_000, pongTimeoutMs: 3_000, closeTimeoutMs: 500, messageTimeoutMs: 2_000, resolutionMs: 50, idleTimeoutMs: 10_000, connectionTimeoutMs: 0 },
});
const app = express();
app.get(
  '/ws/echo',
  websocket(async (manager) => {
    for await (const message of manager) {
      if (!(await manager.sendTextWithTimeout(typeof message === 'string' ? message : message.toString('latin1')))) break;
    }
  }),
);
const server: Server = createServer(app);
const gateway = attachWebSockets(server, app, { registry, logger, wss: { perMessageDeflate: false, maxPayload: 1024 * 1024 } });

function connections(): Promise<number> {
  return new Promise((resolve) => server.getConnections((err, n) => resolve(err ? -1 : n)));
}

async function measure(): Promise<Record<string, unknown>> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const memory = process.memoryUsage();
  return {
    heapUsed: memory.heapUsed,
    // Compiled code grows as the JIT optimises more of the server; it is not held by connections.
    codeSpace: getHeapSpaceStatistics()
      .filter((space) => space.space_name.startsWith('code'))
      .reduce((sum, space) => sum + space.space_used_size, 0),
    arrayBuffers: memory.arrayBuffers,
    rss: memory.rss,
    registrySize: registry.size,
    gatewaySize: gateway.size,
    pendingUpgrades: gateway.pending,
    wsClients: gateway.wss.clients.size,
    scheduled: registry.scheduler.size,
    tcpConnections: await connections(),
    closedSessions: registry.getSessionMetrics().closedSessions,
    logged,
  };
}

process.on('message', (message: { op: string }) => {
  if (message.op === 'measure') {
    void measure().then((result) => process.send?.({ event: 'measure', ...result }));
  } else if (message.op === 'stop') {
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    void Promise.all([stopped, gateway.close()]).then(async () => {
      await registry.stop();
      // 'close' is emitted on the next tick; libuv releases the listening handle in its close
      // phase, after this loop iteration's immediates: look in the next iteration.
      await new Promise((resolve) => setTimeout(resolve, 0));
      process.send?.({
        event: 'stopping',
        upgradeListeners: server.listenerCount('upgrade'),
        requestListeners: server.listenerCount('request'),
        scheduled: registry.scheduler.size,
        // What keeps the loop alive besides the IPC channel that closes next.
        resources: process.getActiveResourcesInfo(),
      });
      process.disconnect();
    });
  }
});

server.listen(0, '127.0.0.1', () => {
  process.send?.({ event: 'listening', port: (server.address() as AddressInfo).port });
});
