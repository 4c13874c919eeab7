import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { attachWebSockets, silentLogger, websocket, wsTimeouts, type WebSocketGateway } from '../lib/index.js';
import { closed, expectRefused, nextMessage, openClient } from './support/express-server.js';

/**
 * A self-signed certificate for 127.0.0.1, made with the `openssl` CLI: Node core can make key
 * pairs but not X.509 certificates, and this project adds no package for it. A P-256 key: an RSA
 * key took seconds to generate on a busy machine.
 */
function selfSignedCertificate(): { key: Buffer; cert: Buffer } | null {
  const openssl = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => existsSync(p));
  if (!openssl) return null;
  const dir = mkdtempSync(join(tmpdir(), 'ws-timeouts-tls-'));
  try {
    execFileSync(openssl, [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('Express integration over https (lib/express)', () => {
  let tls: { key: Buffer; cert: Buffer } | null;
  let server: Server;
  let gateway: WebSocketGateway;
  let port: number;

  before(async function () {
    tls = selfSignedCertificate();
    if (!tls) {
      console.warn('    skipped: no openssl CLI to make a self-signed certificate');
      this.skip();
    }
    const app = express();
    app.use(wsTimeouts({ idleTimeoutMs: 9_000 }, { env: {} }));
    app.get('/hello', (req, res) => res.json({ secure: req.secure }));
    app.get(
      '/ws/echo',
      (req, res, next) => (req.query.token === 'good' ? next() : void res.status(401).send('no token')),
      websocket(async (manager) => {
        await manager.sendJsonWithTimeout({ idleTimeoutMs: manager.config.idleTimeoutMs });
        for await (const m of manager) await manager.sendTextWithTimeout(String(m));
      }, { logger: silentLogger }),
    );
    server = createServer({ key: tls!.key, cert: tls!.cert }, app);
    gateway = attachWebSockets(server, app, { logger: silentLogger });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    if (!server) return;
    await gateway.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('accepts wss:// connections through the middleware chain on an https server', async () => {
    const ws = await openClient(`wss://127.0.0.1:${port}/ws/echo?token=good`, { ca: tls!.cert });
    expect(JSON.parse(await nextMessage(ws))).to.deep.equal({ idleTimeoutMs: 9_000 });
    ws.send('over tls');
    expect(await nextMessage(ws)).to.equal('over tls');
    ws.close();
    await closed(ws);
  });

  it('sends the 401 of a middleware over TLS and accepts nothing', async () => {
    const refusal = await expectRefused(`wss://127.0.0.1:${port}/ws/echo`, { ca: tls!.cert });
    expect(refusal).to.include({ statusCode: 401, body: 'no token' });
    expect(gateway.wss.clients.size).to.equal(0);
  });

  it('keeps plain https routes working on the same server', async () => {
    // fetch cannot take a CA here, so ask https.get with the certificate.
    const { get } = await import('node:https');
    const body = await new Promise<string>((resolve, reject) => {
      get(`https://127.0.0.1:${port}/hello`, { ca: tls!.cert }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });
    expect(JSON.parse(body)).to.deep.equal({ secure: true });
  });
});
