import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Application } from 'express';
import WebSocket from 'ws';
import { attachWebSockets, type AttachWebSocketsOptions, type WebSocketGateway } from '../../lib/index.js';

export interface ExpressTestServer {
  port: number;
  http: Server;
  gateway: WebSocketGateway;
  /** `http://127.0.0.1:<port>` */
  httpUrl: string;
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string;
  /** TCP connections the server still holds (upgraded or not). */
  connections(): Promise<number>;
  /** Resolves once the server holds no TCP connection, or rejects after `ms`. */
  drained(ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** `app` on a real HTTP server on 127.0.0.1 and an ephemeral port, with the gateway attached. */
export async function startExpress(app: Application, options: AttachWebSocketsOptions = {}): Promise<ExpressTestServer> {
  const http = createServer(app);
  const gateway = attachWebSockets(http, app, options);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  const connections = () => new Promise<number>((resolve, reject) => http.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  return {
    port,
    http,
    gateway,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    connections,
    async drained(ms = 2000) {
      const until = Date.now() + ms;
      for (;;) {
        const n = await connections();
        if (n === 0) return;
        if (Date.now() > until) throw new Error(`the server still holds ${n} connection(s) after ${ms} ms`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async close() {
      for (const ws of gateway.wss.clients) ws.terminate();
      await gateway.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

export interface Refusal {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Opens a ws client that must be refused: resolves with the HTTP response it got instead. */
export function expectRefused(url: string, options: WebSocket.ClientOptions = {}): Promise<Refusal> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.on('open', () => {
      ws.terminate();
      reject(new Error(`expected ${url} to be refused, but the WebSocket opened`));
    });
    ws.on('error', (err) => reject(err));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body }));
    });
  });
}

/** Opens a ws client and waits for 'open'. */
export function openClient(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected HTTP ${res.statusCode}`)));
  });
}

/** Resolves with the next message (as text) of `ws`. */
export function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.once('message', (data) => resolve(data.toString())));
}

/** Resolves with the close code and reason `ws` sees. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** Polls `condition` on the real clock (what travels over a real socket) until it holds, or throws after `ms`. */
export async function until(condition: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
