import { expect } from 'chai';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type RequestHandler } from 'express';
import { checkHealth, healthHandler, sessionHealth } from '../lib/health.js';
import { ConnectionRegistry, ESTIMATED_SESSION_BYTES, type SessionMetrics } from '../lib/registry.js';
import { silentLogger } from '../lib/logger.js';
import { createSocketPair } from '../lib/testing/socket-pair.js';
import { createTestClock } from '../lib/testing/clock.js';

async function get(handler: RequestHandler): Promise<{ status: number; headers: Headers; body: any }> {
  const app = express();
  app.get('/health', handler);
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/health`);
    return { status: res.status, headers: res.headers, body: await res.json() };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('health', () => {
  function registryWith(sessions: number, options: { degradedThreshold?: number } = {}) {
    const t = createTestClock();
    const registry = new ConnectionRegistry({
      clock: t.clock,
      logger: silentLogger,
      ...options,
      config: { idleTimeoutMs: 0, connectionTimeoutMs: 0, resolutionMs: 100 },
    });
    for (let i = 0; i < sessions; i++) registry.add(createSocketPair().server);
    return registry;
  }

  describe('healthHandler()', () => {
    it('answers 200 {status: "healthy", sessions} with the session metrics, never cached', async () => {
      const res = await get(healthHandler(registryWith(2)));
      expect(res.status).to.equal(200);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(res.body.status).to.equal('healthy');
      expect(res.body.reasons).to.deep.equal([]);
      expect(res.body.sessions).to.include({ activeSessions: 2, expiredSessions: 0, cleanupRuns: 0, lastCleanupTime: null });
      expect(res.body.sessions.timeoutsByReason).to.deep.equal({ idle: 0, max_lifetime: 0, pong_timeout: 0, send_timeout: 0 });
    });

    it("answers degraded, still with 200, from the registry's degradedThreshold on, and says why", async () => {
      const res = await get(healthHandler(registryWith(3, { degradedThreshold: 2 })));
      expect(res.status).to.equal(200);
      expect(res.body.status).to.equal('degraded');
      expect(res.body.reasons).to.deep.equal(['activeSessions 3 >= 2']);
    });

    it('answers degradedStatusCode (e.g. 503) when degraded, if set', async () => {
      const res = await get(healthHandler(registryWith(3), { degradedThreshold: 2, degradedStatusCode: 503 }));
      expect(res.status).to.equal(503);
      expect(res.body.status).to.equal('degraded');
    });

    it('is degraded above maxMemoryMb of estimated session memory', async () => {
      const registry = registryWith(100);
      const mb = (100 * ESTIMATED_SESSION_BYTES) / 1_048_576;
      const res = await get(healthHandler(registry, { maxMemoryMb: mb / 2 }));
      expect(res.body.status).to.equal('degraded');
      expect(res.body.reasons[0]).to.match(/^memoryUsageMb [\d.]+ > [\d.]+$/);
    });

    it('answers the services shape health probes read with service: {status, services: {<service>: {status, reasons, metrics}}}', async () => {
      const res = await get(healthHandler(registryWith(3), { degradedThreshold: 3, service: 'session_manager' }));
      expect(res.status).to.equal(200);
      expect(res.body).to.have.keys('status', 'services');
      expect(res.body.status).to.equal('degraded');
      expect(res.body.services).to.have.keys('session_manager');
      const service = res.body.services.session_manager;
      expect(service).to.have.keys('status', 'reasons', 'metrics');
      expect(service).to.deep.include({ status: 'degraded', reasons: ['activeSessions 3 >= 3'] });
      expect(service.metrics).to.include({ activeSessions: 3, cleanupRuns: 0 });
    });

    it('rejects bad options at creation, naming the option and value', () => {
      const registry = registryWith(0);
      expect(() => healthHandler(registry, { degradedThreshold: -1 })).to.throw(RangeError, /degradedThreshold.*-1/);
      expect(() => healthHandler(registry, { degradedStatusCode: 99 })).to.throw(RangeError, /degradedStatusCode.*99/);
      expect(() => healthHandler({} as ConnectionRegistry)).to.throw(TypeError, /ConnectionRegistry/);
      expect(() => healthHandler(registry, { service: '' })).to.throw(TypeError, /service.*""/);
    });
  });

  describe('sessionHealth()', () => {
    const base = { activeSessions: 0, memoryUsageMb: 0 } as SessionMetrics;

    it('is healthy below the threshold and degraded from it on: at 1000 of 1000, degraded', () => {
      expect(sessionHealth({ ...base, activeSessions: 999 }, { degradedThreshold: 1000 }).status).to.equal('healthy');
      expect(sessionHealth({ ...base, activeSessions: 1000 }, { degradedThreshold: 1000 })).to.deep.equal({
        status: 'degraded',
        reasons: ['activeSessions 1000 >= 1000'],
      });
    });
  });

  describe('checkHealth()', () => {
    it('reports cleanupSchedulerRunning while the registry expires idle sessions on its scheduler, and not once stopped', async () => {
      const registry = new ConnectionRegistry({ clock: createTestClock().clock, logger: silentLogger, config: { idleTimeoutMs: 60_000, connectionTimeoutMs: 0 } });
      expect(checkHealth(registry).sessions.cleanupSchedulerRunning).to.equal(true);
      await registry.stop();
      expect(checkHealth(registry).sessions.cleanupSchedulerRunning).to.equal(false);
      registry.startCleanupScheduler(60_000); // the periodic cleanup expires sessions too
      expect(checkHealth(registry).sessions.cleanupSchedulerRunning).to.equal(true);
      registry.stopCleanupScheduler();
    });

    it('reports no cleanupSchedulerRunning when nothing expires idle sessions (idle timeout 0, no periodic cleanup)', () => {
      expect(checkHealth(registryWith(1)).sessions.cleanupSchedulerRunning).to.equal(false);
    });


    it('uses the registry degradedThreshold (default 1000)', () => {
      const registry = registryWith(1);
      expect(registry.degradedThreshold).to.equal(1000);
      expect(checkHealth(registry).status).to.equal('healthy');
      expect(checkHealth(registry, { degradedThreshold: 0 }).status).to.equal('degraded');
    });
  });
  describe('the fleet option', () => {
    const fleetWith = (health: { status: 'ok' | 'unavailable'; nodes: number; connections: number; reason?: string }) => ({ health: () => health });

    it('reports the fleet next to the sessions; a healthy fleet changes nothing else', async () => {
      const res = await get(healthHandler(registryWith(1), { fleet: fleetWith({ status: 'ok', nodes: 3, connections: 12 }) }));
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.include({ status: 'healthy', reasons: [], fleet: { status: 'ok', nodes: 3, connections: 12 } });
    });

    it('an unavailable fleet makes the instance degraded (still 200), naming Redis and the reason', async () => {
      const fleet = fleetWith({ status: 'unavailable', nodes: 3, connections: 12, reason: 'bus unavailable: connection closed' });
      const res = await get(healthHandler(registryWith(1), { fleet }));
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.include({ status: 'degraded', reasons: ['redis unavailable: bus unavailable: connection closed'] });
      expect(res.body.fleet).to.deep.equal({ status: 'unavailable', nodes: 3, connections: 12, reason: 'bus unavailable: connection closed' });
      const asService = await get(healthHandler(registryWith(1), { fleet, service: 'session_manager' }));
      expect(asService.body).to.deep.include({ status: 'degraded', fleet: res.body.fleet });
    });

    it('refuses a fleet without health(), saying what to pass', () => {
      expect(() => healthHandler(registryWith(0), { fleet: {} as never })).to.throw(TypeError, /fleet must be a FleetNode \(the result of joinFleet/);
    });
  });
});
