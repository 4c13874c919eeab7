import { expect } from 'chai';
import express, { type Request } from 'express';
import { ConfigError, DEFAULT_TIMEOUT_CONFIG, TIMEOUT_PROFILES, isTimeoutConfig, wsTimeouts, type TimeoutConfig } from '../lib/index.js';
import { startExpress, type ExpressTestServer } from './support/express-server.js';

/** Runs one middleware on a bare request object and returns what it passed to next(). */
function run(middleware: ReturnType<typeof wsTimeouts>, req: Partial<Request> = {}): { req: Partial<Request>; error: unknown } {
  let error: unknown = 'next() not called';
  void middleware(req as Request, {} as never, (err?: unknown) => {
    error = err;
  });
  return { req, error };
}

describe('wsTimeouts() (lib/express/config-middleware)', () => {
  it('puts the environment config on req.wsTimeouts, frozen', () => {
    const { req, error } = run(wsTimeouts(undefined, { env: { WS_IDLE_TIMEOUT: '12' } }));
    expect(error).to.equal(undefined);
    expect(req.wsTimeouts).to.include({ idleTimeoutMs: 12_000, pingIntervalMs: DEFAULT_TIMEOUT_CONFIG.pingIntervalMs });
    expect(Object.isFrozen(req.wsTimeouts)).to.equal(true);
    expect(isTimeoutConfig(req.wsTimeouts)).to.equal(true);
  });

  it('selects a profile with WS_TIMEOUT_PROFILE and applies overrides (ms) on top', () => {
    const { req } = run(wsTimeouts({ messageTimeoutMs: 250 }, { env: { WS_TIMEOUT_PROFILE: 'production' } }));
    expect(req.wsTimeouts).to.deep.equal({ ...TIMEOUT_PROFILES.production, messageTimeoutMs: 250 });
  });

  it('reads the environment once, when the middleware is created, not per request', () => {
    const env: Record<string, string | undefined> = { WS_IDLE_TIMEOUT: '12' };
    const middleware = wsTimeouts(undefined, { env });
    env.WS_IDLE_TIMEOUT = '13';
    const first = run(middleware).req.wsTimeouts;
    const second = run(middleware).req.wsTimeouts;
    expect(first?.idleTimeoutMs).to.equal(12_000);
    expect(second).to.equal(first); // the same frozen object for every request
  });

  it('throws one ConfigError naming every bad variable at creation', () => {
    let error: unknown;
    try {
      wsTimeouts(undefined, { env: { WS_IDLE_TIMEOUT: 'soon', WS_PING_INTERVAL: '-1' } });
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.name)).to.have.members(['WS_IDLE_TIMEOUT', 'WS_PING_INTERVAL']);
  });

  it('throws a ConfigError at creation for a bad or unknown override', () => {
    expect(() => wsTimeouts({ idleTimeoutMs: -5 }, { env: {} })).to.throw(ConfigError, /idleTimeoutMs/);
    expect(() => wsTimeouts({ idleTimeout: 5 } as Partial<TimeoutConfig>, { env: {} })).to.throw(ConfigError, /did you mean "idleTimeoutMs"/);
  });

  it("applies a route's overrides on top of the app's config, not the environment's", () => {
    const app = wsTimeouts({ idleTimeoutMs: 20_000, pingIntervalMs: 5_000 }, { env: {} });
    const route = wsTimeouts({ idleTimeoutMs: 3_000 }, { env: {} });
    const req: Partial<Request> = {};
    run(app, req);
    run(route, req);
    expect(req.wsTimeouts).to.include({ idleTimeoutMs: 3_000, pingIntervalMs: 5_000 });
  });

  it('resolves a stacked config once per app config, not per request', () => {
    const app = wsTimeouts({ pingIntervalMs: 5_000 }, { env: {} });
    const route = wsTimeouts({ idleTimeoutMs: 3_000 }, { env: {} });
    const configs = [0, 1].map(() => {
      const req: Partial<Request> = {};
      run(app, req);
      run(route, req);
      return req.wsTimeouts;
    });
    expect(configs[0]).to.equal(configs[1]);
  });

  it('passes a problem that only appears on top of the earlier config to next(err)', () => {
    const app = wsTimeouts({ connectionTimeoutMs: 30_000, idleTimeoutMs: 10_000, pingIntervalMs: 5_000 }, { env: {} });
    const route = wsTimeouts({ idleTimeoutMs: 40_000 }, { env: {} }); // fine alone (default lifetime 300 s)
    const req: Partial<Request> = {};
    run(app, req);
    const { error } = run(route, req);
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).message).to.include('idleTimeoutMs');
  });

  describe('on plain HTTP routes', () => {
    let server: ExpressTestServer | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
    });

    it('is visible to plain HTTP handlers, with per-route overrides', async () => {
      const app = express();
      app.use(wsTimeouts({ idleTimeoutMs: 20_000 }, { env: {} }));
      app.get('/config', (req, res) => res.json(req.wsTimeouts));
      app.get('/slow/config', wsTimeouts({ messageTimeoutMs: 5_000 }), (req, res) => res.json(req.wsTimeouts));
      server = await startExpress(app);
      const plain = (await (await fetch(`${server.httpUrl}/config`)).json()) as TimeoutConfig;
      const slow = (await (await fetch(`${server.httpUrl}/slow/config`)).json()) as TimeoutConfig;
      expect(plain).to.include({ idleTimeoutMs: 20_000, messageTimeoutMs: DEFAULT_TIMEOUT_CONFIG.messageTimeoutMs });
      expect(slow).to.include({ idleTimeoutMs: 20_000, messageTimeoutMs: 5_000 });
    });
  });
});
