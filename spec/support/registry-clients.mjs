// WebSocket clients in their own process, for spec/registry.real.spec.ts: they keep answering
// pings while the server's event loop is blocked.
//
//   node spec/support/registry-clients.mjs <url> <healthy> <silent> <pongDelayMs>
//
// Healthy clients answer every ping with a pong `pongDelayMs` later; silent ones never answer.
// Prints one JSON line `{"ready":true}` once every client is open. Exits when stdin closes.
import WebSocket from 'ws';

const [url, healthyArg, silentArg, delayArg] = process.argv.slice(2);
const healthy = Number(healthyArg);
const silent = Number(silentArg);
const pongDelayMs = Number(delayArg);

function open(kind) {
  const ws = new WebSocket(`${url}?kind=${kind}`, { autoPong: false });
  ws.on('error', () => undefined);
  if (kind === 'healthy') ws.on('ping', () => setTimeout(() => ws.readyState === WebSocket.OPEN && ws.pong(), pongDelayMs));
  return new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
}

await Promise.all([
  ...Array.from({ length: healthy }, () => open('healthy')),
  ...Array.from({ length: silent }, () => open('silent')),
]);
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
