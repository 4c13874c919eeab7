/**
 * A TCP proxy in front of a redis-server, for the fault a process outside can not cause in
 * Redis itself: a subscriber that went deaf. `deafen()` drops everything Redis sends to the
 * connections that have subscribed so far, while they stay open and look healthy — as if Redis
 * had forgotten their subscriptions — until the client sends a command on that connection again
 * (an UNSUBSCRIBE/SUBSCRIBE makes the subscription again). New connections are not affected.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

interface Link {
  client: Socket;
  upstream: Socket;
  subscriber: boolean;
  deaf: boolean;
}

export class RedisProxy {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly links: Set<Link>,
  ) {}

  /** Listens on a free port of 127.0.0.1 and forwards every connection to `targetPort`. */
  static async start(targetPort: number): Promise<RedisProxy> {
    const links = new Set<Link>();
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      const link: Link = { client, upstream, subscriber: false, deaf: false };
      links.add(link);
      client.on('data', (chunk: Buffer) => {
        link.deaf = false; // the client speaks again: whatever it (re)subscribes to is heard
        if (/subscribe/i.test(chunk.toString('latin1'))) link.subscriber = true;
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!link.deaf) client.write(chunk);
      });
      const end = (): void => {
        links.delete(link);
        client.destroy();
        upstream.destroy();
      };
      for (const socket of [client, upstream]) {
        socket.on('error', end);
        socket.on('close', end);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new RedisProxy(server, (server.address() as { port: number }).port, links);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Makes every subscriber connection open now deaf; returns how many there were. */
  deafen(): number {
    let count = 0;
    for (const link of this.links) {
      if (!link.subscriber) continue;
      link.deaf = true;
      count++;
    }
    return count;
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    for (const link of this.links) {
      link.client.destroy();
      link.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
