import { expect } from 'chai';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type RequestHandler } from 'express';
import * as prom from 'prom-client';
import { TimeoutMetrics, metricsHandler } from '../lib/metrics.js';
import { ConnectionRegistry } from '../lib/registry.js';
import { silentLogger } from '../lib/logger.js';
import { createSocketPair } from '../lib/testing/socket-pair.js';
import { createTestClock } from '../lib/testing/clock.js';

/** Serves `handler` at GET /metrics on an ephemeral port; resolves the base URL and a close function. */
async function serve(handler: RequestHandler): Promise<{ url: string; close(): Promise<void> }> {
  const app = express();
  app.get('/metrics', handler);
  app.use(((err, _req, res, _next) => res.status(500).json({ error: (err as Error).message })) as express.ErrorRequestHandler);
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('TimeoutMetrics', () => {
  it('registers its metrics in a new prom-client Registry by default, never the global one', () => {
    const metrics = new TimeoutMetrics();
    expect(metrics.register).to.not.equal(prom.register);
    expect(metrics.register.getSingleMetric('ws_timeouts_timeouts_total')).to.not.equal(undefined);
    expect(prom.register.getSingleMetric('ws_timeouts_timeouts_total')).to.equal(undefined);
  });

  it("registers in the user's own Registry, beside the user's metrics, under the given prefix", async () => {
    const register = new prom.Registry();
    const requests = new prom.Counter({ name: 'app_requests_total', help: 'requests', registers: [register] });
    requests.inc();
    const metrics = new TimeoutMetrics({ register, prefix: 'chat_' });
    metrics.timeout('idle', 'speaker');
    const text = await register.metrics();
    expect(text).to.include('app_requests_total 1');
    expect(text).to.include('chat_timeouts_total{reason="idle",role="speaker"} 1');
    expect(text).to.include('chat_idle_detected_total 1');
  });

  it('names the prefix when its metrics are already registered in that Registry', () => {
    const register = new prom.Registry();
    new TimeoutMetrics({ register });
    expect(() => new TimeoutMetrics({ register })).to.throw(/prefix 'ws_timeouts_' are already registered/);
    expect(() => new TimeoutMetrics({ register, prefix: 'other_' })).to.not.throw();
  });

  it('rejects a prefix that is not a valid metric name, naming it', () => {
    expect(() => new TimeoutMetrics({ prefix: 'ws-timeouts' })).to.throw(TypeError, /prefix.*"ws-timeouts"/);
  });

  it('exposes every counter, gauge and histogram of the contract', async () => {
    const text = await new TimeoutMetrics().register.metrics();
    for (const name of [
      'ws_timeouts_timeouts_total counter',
      'ws_timeouts_connections_checked_total counter',
      'ws_timeouts_idle_detected_total counter',
      'ws_timeouts_connections_closed_total counter',
      'ws_timeouts_cleanup_runs_total counter',
      'ws_timeouts_cleanup_errors_total counter',
      'ws_timeouts_active_connections gauge',
      'ws_timeouts_rtt_seconds histogram',
      'ws_timeouts_session_duration_seconds histogram',
    ]) {
      expect(text).to.include(`# TYPE ${name}`);
    }
  });

  it('gets the round-trip time of every answered ping and the duration of every closed session from the registry', async () => {
    const t = createTestClock();
    const metrics = new TimeoutMetrics();
    const registry = new ConnectionRegistry({
      clock: t.clock,
      logger: silentLogger,
      metrics,
      managerOptions: { pingPhase: 0 },
      config: { idleTimeoutMs: 0, connectionTimeoutMs: 0, pingIntervalMs: 30_000, pongTimeoutMs: 60_000, resolutionMs: 100 },
    });
    const { server, client } = createSocketPair({ autoPong: false });
    registry.add(server);
    expect((await metrics.activeConnections.get()).values[0]!.value).to.equal(1);
    await t.tickAsync(30_001);
    expect(client.pings).to.equal(1);
    // 30 s: ping; the pong comes back 40 ms later.
    await t.tickAsync(40);
    client.pong();
    await t.tickAsync(60_000 - 30_041);
    client.close(1000);
    await t.flush();
    const rtt = (await metrics.rtt.get()).values;
    expect(rtt.find((v) => v.metricName === 'ws_timeouts_rtt_seconds_sum')!.value).to.be.closeTo(0.04, 1e-9);
    expect(rtt.find((v) => v.metricName === 'ws_timeouts_rtt_seconds_count')!.value).to.equal(1);
    const duration = (await metrics.sessionDuration.get()).values;
    expect(duration.find((v) => v.metricName === 'ws_timeouts_session_duration_seconds_sum')!.value).to.equal(60);
    expect((await metrics.activeConnections.get()).values[0]!.value).to.equal(0);
    expect((await metrics.connectionsClosed.get()).values[0]!.value).to.equal(0); // the client closed it: not the sweep
  });

  it("counts a timeout under the connection's roleLabel label, not under a label named role", async () => {
    const t = createTestClock();
    const metrics = new TimeoutMetrics();
    const registry = new ConnectionRegistry({
      clock: t.clock,
      logger: silentLogger,
      metrics,
      roleLabel: 'kind',
      config: { idleTimeoutMs: 1_000, connectionTimeoutMs: 0, resolutionMs: 100 },
    });
    // A `role` label too: ignoring roleLabel would count "listener" instead of "speaker".
    registry.add(createSocketPair().server, { labels: { kind: 'speaker', role: 'listener' } });
    registry.add(createSocketPair().server, { labels: { role: 'listener' } });
    await t.tickAsync(1_100);
    const text = await metrics.register.metrics();
    expect(text).to.include('ws_timeouts_timeouts_total{reason="idle",role="speaker"} 1');
    expect(text).to.include('ws_timeouts_timeouts_total{reason="idle",role="none"} 1');
    expect(text).not.to.include('role="listener"');
  });
});

describe('metricsHandler()', () => {
  it('serves Prometheus text with the registry content type', async () => {
    const metrics = new TimeoutMetrics();
    metrics.timeout('pong_timeout', undefined);
    const server = await serve(metricsHandler(metrics));
    try {
      const res = await fetch(`${server.url}/metrics`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.equal(metrics.register.contentType);
      expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
      expect(await res.text()).to.include('ws_timeouts_timeouts_total{reason="pong_timeout",role="none"} 1');
    } finally {
      await server.close();
    }
  });

  it('passes a collection failure to next(err)', async () => {
    const metrics = new TimeoutMetrics();
    metrics.register.metrics = () => Promise.reject(new Error('collect failed'));
    const server = await serve(metricsHandler(metrics));
    try {
      const res = await fetch(`${server.url}/metrics`);
      expect(res.status).to.equal(500);
      expect(await res.json()).to.deep.equal({ error: 'collect failed' });
    } finally {
      await server.close();
    }
  });

  it('rejects something that is not a TimeoutMetrics', () => {
    expect(() => metricsHandler({} as TimeoutMetrics)).to.throw(TypeError, /TimeoutMetrics/);
  });
});
