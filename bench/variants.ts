/**
 * The server side of every comparison, each written the way its own docs write it.
 *
 * - `raw`: plain ws, no heartbeat: the limit a wrapper can approach but never pass.
 * - `rawAck`: plain ws whose echo learns each send's result, as `sendJsonWithTimeout` must: a
 *   promise resolved by `ws.send`'s callback. What reporting the result costs, without the library.
 * - `recipe`: the ws README heartbeat, verbatim in shape: `isAlive` + one `setInterval` over
 *   `wss.clients` that pings every socket in the same tick.
 * - `timers`: one Node timer per socket, the way graphql-ws `useServer` keeps sockets alive (and
 *   engine.io does in spirit): a `setInterval` per socket, and per ping a `setTimeout` that
 *   terminates unless a `once('pong')` listener clears it.
 * - `manual`: ws-timeouts, the manual loop: `receiveWithTimeout` / `sendJsonWithTimeout` on a
 *   started `WebSocketTimeoutManager` (what `websocket()` hands a route handler).
 * - `auto`: ws-timeouts, the registry's automatic mode: `registry.add(ws)`, `onMessage` + send.
 * - `accuracy`: ws-timeouts with short idle and pong timeouts, recording how late each fires.
 * - `socketio`: socket.io 4, what many pick instead: engine.io's own heartbeat (a ping packet
 *   every `pingInterval`, two timers per socket), websocket transport only (no HTTP long-polling),
 *   on its own HTTP server (`listenSocketIo`), its clients `socket.io-client` in the client process.
 *
 * Every variant has an `'error'` listener. Where an app would echo, raw, recipe and timers use
 * one shared listener function (no closure per socket), the cheapest way to write it, so the
 * heap and CPU figures of ws-timeouts are compared against the leanest baseline.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import type { Message, TimeoutConfig, WebSocketTimeoutManager } from '../lib/index.js';

/**
 * The library as the bench loads it: the compiled JavaScript (`tsc`, what `npm run build`
 * ships), not the tsx-transformed sources, whose name-keeping helper costs a property
 * definition per closure created on the hot path.
 */
export type Library = typeof import('../lib/index.js');

export type Variant = 'raw' | 'rawAck' | 'recipe' | 'timers' | 'manual' | 'auto' | 'accuracy' | 'socketio';

/** The client library a variant's peers use: plain `ws`, or `socket.io-client` for socket.io. */
export type ClientKind = 'ws' | 'socket.io';
export const clientKind = (variant: Variant): ClientKind => (variant === 'socketio' ? 'socket.io' : 'ws');

export interface VariantSpec {
  variant: Variant;
  /** Heartbeat period: the recipe's interval, the per-socket keepAlive, ws-timeouts' ping interval and pong timeout. */
  heartbeatMs?: number;
  /** ws-timeouts scheduler resolution. @default the library default (1 s) */
  resolutionMs?: number;
  /** accuracy: the idle timeout of `/idle` sockets and the ping interval / pong timeout of `/pong` sockets. */
  accuracy?: { idleTimeoutMs: number; pingIntervalMs: number; pongTimeoutMs: number };
}

export interface Counters {
  /** Application messages handled (echoed). */
  messages: number;
  /** accuracy: how late each timeout fired after its deadline, ms, by reason. */
  lateMs: Record<string, number[]>;
  /** ws-timeouts: connections it ended, by reason. */
  timeouts: Record<string, number>;
  /** ws-timeouts: round-trip times of answered pings, ms. */
  rttMs: number[];
}

type AliveSocket = WebSocket & { isAlive?: boolean };

function onError(): void {
  // A dropped client (ECONNRESET) during teardown; 'close' follows.
}

/** ws-timeouts config for a heartbeat period, the environment ignored so runs are comparable. */
function wsTimeoutsConfig(lib: Library, spec: VariantSpec, extra: Partial<TimeoutConfig> = {}): TimeoutConfig {
  const heartbeat = spec.heartbeatMs === undefined ? {} : { pingIntervalMs: spec.heartbeatMs, pongTimeoutMs: spec.heartbeatMs };
  const resolution = spec.resolutionMs === undefined ? {} : { resolutionMs: spec.resolutionMs };
  return lib.loadTimeoutConfig({}, { ...heartbeat, ...resolution, ...extra });
}

/**
 * socket.io 4 on an HTTP server of its own on 127.0.0.1, engine.io's ping interval and ping timeout
 * both `spec.heartbeatMs` (as ws-timeouts' ping interval and pong timeout), the websocket transport
 * only. Echoes as the other variants do, through one shared listener (socket.io calls it with the
 * socket as `this`). Returns the port and a count of connected clients.
 */
export async function listenSocketIo(spec: VariantSpec, counters: Counters): Promise<{ port: number; clients: () => number }> {
  const { Server } = await import('socket.io');
  type SocketIo = import('socket.io').Socket;
  const httpServer = createServer();
  const heartbeatMs = spec.heartbeatMs ?? 25_000;
  const io = new Server(httpServer, { transports: ['websocket'], pingInterval: heartbeatMs, pingTimeout: heartbeatMs, serveClient: false });
  function echo(this: SocketIo, data: string): void {
    counters.messages++;
    this.send(JSON.stringify(JSON.parse(data)));
  }
  io.on('connection', (socket) => socket.on('message', echo));
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen({ host: '127.0.0.1', port: 0, backlog: 2048 }, resolve);
  });
  return { port: (httpServer.address() as AddressInfo).port, clients: () => io.engine.clientsCount };
}

/** Wires `spec.variant` onto `wss` (a bench process ends by exiting, so nothing is torn down). */
export function attachVariant(lib: Library, wss: WebSocketServer, spec: VariantSpec, counters: Counters): void {
  const { ConnectionRegistry, WebSocketTimeoutManager, silentLogger } = lib;
  // The app's echo, shared by raw, recipe and timers: same parse and serialise as the
  // ws-timeouts variants do through sendJsonWithTimeout.
  function echo(this: WebSocket, data: RawData): void {
    counters.messages++;
    this.send(JSON.stringify(JSON.parse(data.toString())));
  }

  switch (spec.variant) {
    case 'raw': {
      wss.on('connection', (ws) => {
        ws.on('error', onError);
        ws.on('message', echo);
      });
      return;
    }

    case 'rawAck': {
      function echoAcked(this: WebSocket, data: RawData): void {
        counters.messages++;
        const text = JSON.stringify(JSON.parse(data.toString()));
        void new Promise<boolean>((resolve) => this.send(text, (err) => resolve(!err)));
      }
      wss.on('connection', (ws) => {
        ws.on('error', onError);
        ws.on('message', echoAcked);
      });
      return;
    }

    case 'recipe': {
      // The ws README "How to detect and close broken connections?" server, as written there.
      function heartbeat(this: AliveSocket): void {
        this.isAlive = true;
      }
      wss.on('connection', function connection(ws: AliveSocket) {
        ws.isAlive = true;
        ws.on('error', onError);
        ws.on('pong', heartbeat);
        ws.on('message', echo);
      });
      const interval = setInterval(function ping() {
        wss.clients.forEach(function each(ws: AliveSocket) {
          if (ws.isAlive === false) return ws.terminate();
          ws.isAlive = false;
          ws.ping();
        });
      }, spec.heartbeatMs ?? 30_000);
      wss.on('close', function close() {
        clearInterval(interval);
      });
      return;
    }

    case 'timers': {
      // One interval per socket, and per ping a pong deadline timer and a once('pong') listener.
      const keepAlive = spec.heartbeatMs ?? 12_000;
      wss.on('connection', (ws) => {
        ws.on('error', onError);
        ws.on('message', echo);
        let pongWait: NodeJS.Timeout | null = null;
        const pingInterval = setInterval(() => {
          if (ws.readyState !== ws.OPEN) return;
          pongWait = setTimeout(() => ws.terminate(), keepAlive);
          ws.once('pong', () => {
            if (pongWait) {
              clearTimeout(pongWait);
              pongWait = null;
            }
          });
          ws.ping();
        }, keepAlive);
        ws.once('close', () => {
          if (pongWait) clearTimeout(pongWait);
          clearInterval(pingInterval);
        });
      });
      return;
    }

    case 'manual': {
      const config = wsTimeoutsConfig(lib, spec);
      const serve = async (manager: WebSocketTimeoutManager): Promise<void> => {
        try {
          for (;;) {
            const message = await manager.receiveWithTimeout();
            if (message === null) {
              if (!(await manager.handleHeartbeat())) break;
              continue;
            }
            counters.messages++;
            if (!(await manager.sendJsonWithTimeout(JSON.parse(String(message))))) break;
          }
        } finally {
          await manager.gracefulClose();
        }
      };
      wss.on('connection', (ws) => {
        void serve(new WebSocketTimeoutManager(ws, { config, logger: silentLogger }).start());
      });
      return;
    }

    case 'auto': {
      const registry = new ConnectionRegistry({
        config: wsTimeoutsConfig(lib, spec),
        logger: silentLogger,
        managerOptions: {
          onTimeout: (reason) => void (counters.timeouts[reason] = (counters.timeouts[reason] ?? 0) + 1),
          // Per pong: only when asked (BENCH_RTT=1), so the measured path stays the plain one.
          ...(process.env.BENCH_RTT ? { onPong: (rttMs: number) => void counters.rttMs.push(rttMs) } : {}),
          onMessage: (message: Message, manager: WebSocketTimeoutManager) => {
            counters.messages++;
            void manager.sendJsonWithTimeout(JSON.parse(String(message)));
          },
        },
      });
      wss.on('connection', (ws) => registry.add(ws));
      return;
    }

    case 'accuracy': {
      const a = spec.accuracy ?? { idleTimeoutMs: 2_000, pingIntervalMs: 1_000, pongTimeoutMs: 1_000 };
      const registry = new ConnectionRegistry({
        config: wsTimeoutsConfig(lib, spec),
        logger: silentLogger,
        managerOptions: {
          onTimeout: (reason, m) => {
            const deadline =
              reason === 'idle'
                ? m.lastActivityAt + m.config.idleTimeoutMs
                : reason === 'pong_timeout'
                  ? m.pingOutstandingSince + m.config.pongTimeoutMs
                  : NaN;
            (counters.lateMs[reason] ??= []).push(Date.now() - deadline);
          },
        },
      });
      // Idle sockets never ping within the run; pong sockets never idle out.
      const idle = { idleTimeoutMs: a.idleTimeoutMs, pingIntervalMs: 60_000, pongTimeoutMs: 60_000 };
      const pong = { idleTimeoutMs: 0, pingIntervalMs: a.pingIntervalMs, pongTimeoutMs: a.pongTimeoutMs };
      wss.on('connection', (ws, req: IncomingMessage) => {
        registry.add(ws, { config: req.url === '/pong' ? pong : idle });
      });
      return;
    }

    case 'socketio':
      throw new Error('bench: socket.io runs on its own HTTP server: listenSocketIo(), not attachVariant()');
  }
}
