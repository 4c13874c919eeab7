/** Small helpers shared by the reliability cases. */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { ServerOptions } from 'ws';
import type { ConnectionRegistry } from '../../lib/index.js';
import { startWsServer, type TestServer } from '../../spec/support/ws-server.js';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `everyMs` until it returns true; rejects with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 20): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function max(values: number[]): number {
  return values.reduce((a, b) => Math.max(a, b), -Infinity);
}

export function min(values: number[]): number {
  return values.reduce((a, b) => Math.min(a, b), Infinity);
}

/** A client-to-server frame (masked, as RFC 6455 requires), for peers that send what ws would not. */
export function clientFrame(opcode: number, payload: Buffer, { fin = true, declaredLength }: { fin?: boolean; declaredLength?: number } = {}): Buffer {
  const length = declaredLength ?? payload.length;
  let header: Buffer;
  if (length < 126) {
    header = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | length]);
  } else if (length < 65_536) {
    header = Buffer.alloc(4);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= mask[i & 3]!;
  return Buffer.concat([header, mask, masked]);
}

/** The close code of a close frame's payload (1005 when it has none). */
export function closeCodeOf(payload: Buffer): number {
  return payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
}

/** A ws server on 127.0.0.1 whose sockets join `registry`, labelled `kind` from their `?kind=`. */
export function serveRegistry(registry: ConnectionRegistry, options: ServerOptions = {}): Promise<TestServer> {
  return startWsServer((ws, req) => void registry.add(ws, { labels: { kind: queryParam(req, 'kind') ?? 'unknown' } }), options);
}

/** Stops the client fleet, closes every registered socket, then the server; any may be missing after a failed `before`. */
export async function tearDown(fleet: { stop(): Promise<void> } | undefined, registry: ConnectionRegistry | undefined, server: TestServer | undefined): Promise<void> {
  await fleet?.stop();
  await registry?.closeAll();
  await server?.close();
}

/** The query parameter `name` of an upgrade request. */
export function queryParam(req: IncomingMessage, name: string): string | null {
  return new URL(req.url ?? '/', 'http://x').searchParams.get(name);
}
