/**
 * The example server (`npm start`): an echo route with every timeout enforced.
 * PORT (default 3000) and every WS_* variable; a bad value exits non-zero before listening.
 */
import { createServer } from 'node:http';
import express from 'express';
import { WebSocketServer } from 'ws';
import { ConfigError, WebSocketTimeoutManager, loadTimeoutConfig } from '../lib/index.js';

let config;
try {
  config = loadTimeoutConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(1);
}

const app = express();
app.get('/health', (_req, res) => res.json({ status: 'healthy' }));
const server = createServer(app);
const wss = new WebSocketServer({ server, path: '/ws/echo' });
wss.on('connection', async (ws) => {
  const manager = new WebSocketTimeoutManager(ws, { config }).start();
  for await (const message of manager) {
    if (!(await manager.sendTextWithTimeout(String(message)))) break;
  }
});

const port = Number(process.env.PORT ?? 3000);
server.listen(port, () => console.log(`ws-timeouts example listening on http://localhost:${port}`));
