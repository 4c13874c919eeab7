import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';

export interface TestServer {
  port: number;
  url: string;
  wss: WebSocketServer;
  http: Server;
  close(): Promise<void>;
}

/**
 * A ws server on 127.0.0.1 and an ephemeral port that hands each socket and its upgrade request
 * to `onConnection`; `close()` terminates every socket. The backlog takes a fleet's burst of connects.
 */
export async function startWsServer(onConnection: (ws: WebSocket, req: IncomingMessage) => void, options: ServerOptions = {}): Promise<TestServer> {
  const http = createServer();
  const wss = new WebSocketServer({ ...options, server: http });
  wss.on('connection', onConnection);
  await new Promise<void>((resolve) => http.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, resolve));
  const { port } = http.address() as AddressInfo;
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    wss,
    http,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
