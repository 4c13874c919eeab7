import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface TestServer {
  port: number;
  url: string;
  wss: WebSocketServer;
  http: Server;
  close(): Promise<void>;
}

/** A ws server on 127.0.0.1 and an ephemeral port; `close()` terminates every socket. */
export async function startWsServer(onConnection: (ws: WebSocket) => void): Promise<TestServer> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  wss.on('connection', onConnection);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
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
