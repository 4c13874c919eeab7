import { expect } from 'chai';
import sinon from 'sinon';
import {
  DEFAULT_TIMEOUT_CONFIG,
  RECONNECT_JITTER,
  RECONNECT_RATE,
  TIMEOUT_ENV,
  TIMEOUT_PROFILES,
  defaultTimeoutConfig,
  explainTimeoutConfig,
  isTimeoutConfig,
  loadReconnectBudgetOptions,
  loadTimeoutConfig,
  resolveTimeoutConfig,
  type TimeoutConfig,
  type TimeoutProfile,
} from '../lib/config.js';
import { ConfigError, type ConfigProblem } from '../lib/errors.js';
import { formatConfigProblems, wsTimeouts } from '../lib/index.js';

/** Runs `fn`, expects a ConfigError, and returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  expect.fail('expected a ConfigError');
}

function onlyProblem(fn: () => unknown): ConfigProblem {
  const error = configError(fn);
  expect(error.problems, error.message).to.have.length(1);
  return error.problems[0]!;
}

// The three profile tables, written out again here (in ms) so the spec does not trust the module's constants.
const PROFILE_TABLES: Record<TimeoutProfile, TimeoutConfig> = {
  development: {
    heartbeatIntervalMs: 15_000,
    connectionTimeoutMs: 120_000,
    messageTimeoutMs: 500,
    idleTimeoutMs: 30_000,
    pingIntervalMs: 10_000,
    pongTimeoutMs: 30_000,
    closeTimeoutMs: 5_000,
    resolutionMs: 1_000,
  },
  production: {
    heartbeatIntervalMs: 60_000,
    connectionTimeoutMs: 600_000,
    messageTimeoutMs: 2_000,
    idleTimeoutMs: 120_000,
    pingIntervalMs: 30_000,
    pongTimeoutMs: 90_000,
    closeTimeoutMs: 5_000,
    resolutionMs: 1_000,
  },
  'high-latency': {
    heartbeatIntervalMs: 120_000,
    connectionTimeoutMs: 1_200_000,
    messageTimeoutMs: 5_000,
    idleTimeoutMs: 300_000,
    pingIntervalMs: 60_000,
    pongTimeoutMs: 180_000,
    closeTimeoutMs: 5_000,
    resolutionMs: 1_000,
  },
};

const DEFAULTS: TimeoutConfig = {
  heartbeatIntervalMs: 30_000,
  connectionTimeoutMs: 300_000,
  messageTimeoutMs: 1_000,
  idleTimeoutMs: 60_000,
  pingIntervalMs: 25_000,
  pongTimeoutMs: 60_000,
  closeTimeoutMs: 5_000,
  resolutionMs: 1_000,
};

const NON_DISABLEABLE = [
  'WS_HEARTBEAT_INTERVAL',
  'WS_MESSAGE_TIMEOUT',
  'WS_PING_INTERVAL',
  'WS_PONG_TIMEOUT',
  'WS_CLOSE_TIMEOUT',
  'WS_TIMER_RESOLUTION',
];

describe('TIMEOUT_ENV', () => {
  it('maps every field to its WS_* variable', () => {
    expect(TIMEOUT_ENV).to.deep.equal({
      heartbeatIntervalMs: 'WS_HEARTBEAT_INTERVAL',
      connectionTimeoutMs: 'WS_CONNECTION_TIMEOUT',
      messageTimeoutMs: 'WS_MESSAGE_TIMEOUT',
      idleTimeoutMs: 'WS_IDLE_TIMEOUT',
      pingIntervalMs: 'WS_PING_INTERVAL',
      pongTimeoutMs: 'WS_PONG_TIMEOUT',
      closeTimeoutMs: 'WS_CLOSE_TIMEOUT',
      resolutionMs: 'WS_TIMER_RESOLUTION',
    });
    expect(Object.isFrozen(TIMEOUT_ENV)).to.equal(true);
  });
});

describe('loadTimeoutConfig', () => {
  describe('defaults and profiles', () => {
    it('gives the defaults column when the environment is empty', () => {
      const config = loadTimeoutConfig({});
      expect(config).to.deep.equal(DEFAULTS);
      expect(config).to.equal(DEFAULT_TIMEOUT_CONFIG);
    });

    it('ignores variables that are not its own', () => {
      expect(loadTimeoutConfig({ PORT: 'x', LOG_LEVEL: 'loud', NODE_ENV: 'test', WS_OTHER: 'abc' })).to.deep.equal(DEFAULTS);
    });

    it('treats an empty or whitespace-only variable as unset, as in dotenv files', () => {
      const config = loadTimeoutConfig({ WS_IDLE_TIMEOUT: '', WS_PING_INTERVAL: '   ', WS_TIMEOUT_PROFILE: '' });
      expect(config).to.deep.equal(DEFAULTS);
    });

    for (const profile of ['development', 'production', 'high-latency'] as const) {
      it(`gives the ${profile} table exactly when WS_TIMEOUT_PROFILE=${profile}`, () => {
        const config = loadTimeoutConfig({ WS_TIMEOUT_PROFILE: profile });
        expect(config).to.deep.equal(PROFILE_TABLES[profile]);
        expect(TIMEOUT_PROFILES[profile]).to.deep.equal(PROFILE_TABLES[profile]);
      });
    }

    it('exposes exactly the three profiles, frozen', () => {
      expect(Object.keys(TIMEOUT_PROFILES)).to.have.members(['development', 'production', 'high-latency']);
      expect(Object.isFrozen(TIMEOUT_PROFILES)).to.equal(true);
      for (const config of Object.values(TIMEOUT_PROFILES)) expect(Object.isFrozen(config)).to.equal(true);
    });

    it('lets a single variable override its profile value and keeps the rest of the profile', () => {
      const config = loadTimeoutConfig({ WS_TIMEOUT_PROFILE: 'production', WS_IDLE_TIMEOUT: '45' });
      expect(config).to.deep.equal({ ...PROFILE_TABLES.production, idleTimeoutMs: 45_000 });
    });

    it('lets a single variable override the defaults when no profile is set', () => {
      expect(loadTimeoutConfig({ WS_CLOSE_TIMEOUT: '2' })).to.deep.equal({ ...DEFAULTS, closeTimeoutMs: 2_000 });
    });

    it('reads every WS_* variable as seconds', () => {
      const config = loadTimeoutConfig({
        WS_HEARTBEAT_INTERVAL: '11',
        WS_CONNECTION_TIMEOUT: '900',
        WS_MESSAGE_TIMEOUT: '3',
        WS_IDLE_TIMEOUT: '90',
        WS_PING_INTERVAL: '20',
        WS_PONG_TIMEOUT: '40',
        WS_CLOSE_TIMEOUT: '7',
        WS_TIMER_RESOLUTION: '2',
      });
      expect(config).to.deep.equal({
        heartbeatIntervalMs: 11_000,
        connectionTimeoutMs: 900_000,
        messageTimeoutMs: 3_000,
        idleTimeoutMs: 90_000,
        pingIntervalMs: 20_000,
        pongTimeoutMs: 40_000,
        closeTimeoutMs: 7_000,
        resolutionMs: 2_000,
      });
    });

    it('converts fractional seconds to whole milliseconds, rounding', () => {
      expect(loadTimeoutConfig({ WS_MESSAGE_TIMEOUT: '0.5' }).messageTimeoutMs).to.equal(500);
      expect(loadTimeoutConfig({ WS_MESSAGE_TIMEOUT: '.25' }).messageTimeoutMs).to.equal(250);
      expect(loadTimeoutConfig({ WS_MESSAGE_TIMEOUT: '1.2345' }).messageTimeoutMs).to.equal(1235);
      expect(loadTimeoutConfig({ WS_MESSAGE_TIMEOUT: '0.001' }).messageTimeoutMs).to.equal(1);
      expect(loadTimeoutConfig({ WS_MESSAGE_TIMEOUT: '30.0' }).messageTimeoutMs).to.equal(30_000);
      expect(loadTimeoutConfig({ WS_MESSAGE_TIMEOUT: ' 2 ' }).messageTimeoutMs).to.equal(2_000);
      expect(loadTimeoutConfig({ WS_MESSAGE_TIMEOUT: '1e1' }).messageTimeoutMs).to.equal(10_000);
    });

    it('accepts 0 to disable WS_IDLE_TIMEOUT and WS_CONNECTION_TIMEOUT', () => {
      const config = loadTimeoutConfig({ WS_IDLE_TIMEOUT: '0', WS_CONNECTION_TIMEOUT: '0' });
      expect(config.idleTimeoutMs).to.equal(0);
      expect(config.connectionTimeoutMs).to.equal(0);
    });

    it('accepts the largest delay a Node timer supports (2147483.647 s)', () => {
      expect(loadTimeoutConfig({ WS_CONNECTION_TIMEOUT: '2147483.647' }).connectionTimeoutMs).to.equal(2 ** 31 - 1);
    });

    it('does not depend on NODE_ENV', () => {
      for (const NODE_ENV of ['test', 'development', 'production', undefined]) {
        expect(loadTimeoutConfig({ NODE_ENV })).to.deep.equal(DEFAULTS);
      }
    });
  });

  describe('rejections (each problem names the variable, echoes its raw value and says what is valid)', () => {
    const cases: [string, string, RegExp][] = [
      ['WS_IDLE_TIMEOUT', 'abc', /not a number.*expected 0 \(disabled\) or a number of seconds/],
      ['WS_PING_INTERVAL', '12abc', /not a number.*expected a number of seconds/],
      ['WS_PING_INTERVAL', '0x10', /not a number/],
      ['WS_PING_INTERVAL', '30s', /not a number.*unit is always seconds/],
      ['WS_PONG_TIMEOUT', '-5', /must not be negative.*expected a number of seconds/],
      ['WS_IDLE_TIMEOUT', '-0.5', /must not be negative; to disable it, use 0/],
      ['WS_PONG_TIMEOUT', 'NaN', /NaN is not a number/],
      ['WS_PONG_TIMEOUT', 'nan', /NaN is not a number/],
      ['WS_CONNECTION_TIMEOUT', 'Infinity', /Infinity is not a finite duration; to disable it, use 0/],
      ['WS_CONNECTION_TIMEOUT', '-Infinity', /-Infinity is not a finite duration/],
      ['WS_HEARTBEAT_INTERVAL', 'Infinity', /Infinity is not a finite duration; expected a number of seconds/],
      ['WS_CLOSE_TIMEOUT', '2147484', /too large.*2\^31-1 ms.*24\.8 days/],
      ['WS_CONNECTION_TIMEOUT', '1e999', /too large/],
      ['WS_MESSAGE_TIMEOUT', '0.0004', /less than 1 ms/],
      ['WS_IDLE_TIMEOUT', '0.0004', /less than 1 ms.*expected 0 \(disabled\)/],
    ];
    for (const [name, value, reason] of cases) {
      it(`rejects ${name}=${JSON.stringify(value)}`, () => {
        const problem = onlyProblem(() => loadTimeoutConfig({ [name]: value }));
        expect(problem.name).to.equal(name);
        expect(problem.value).to.equal(value);
        expect(problem.reason).to.match(reason);
      });
    }

    for (const name of NON_DISABLEABLE) {
      it(`rejects 0 for ${name}, which cannot be disabled`, () => {
        const problem = onlyProblem(() => loadTimeoutConfig({ [name]: '0' }));
        expect(problem).to.include({ name, value: '0' });
        expect(problem.reason).to.match(/0 is not allowed.*0 disables only WS_IDLE_TIMEOUT and WS_CONNECTION_TIMEOUT/);
      });
    }

    it('rejects an unknown profile and lists the three valid ones', () => {
      const problem = onlyProblem(() => loadTimeoutConfig({ WS_TIMEOUT_PROFILE: 'prod' }));
      expect(problem).to.include({ name: 'WS_TIMEOUT_PROFILE', value: 'prod' });
      expect(problem.reason).to.include('unknown profile').and.include('"development"').and.include('"production"').and.include('"high-latency"');
    });

    it('matches profile names exactly (case-sensitive)', () => {
      expect(onlyProblem(() => loadTimeoutConfig({ WS_TIMEOUT_PROFILE: 'Production' })).name).to.equal('WS_TIMEOUT_PROFILE');
    });

    it('reports several bad variables together in one ConfigError whose message names each variable and value', () => {
      const error = configError(() =>
        loadTimeoutConfig({
          WS_TIMEOUT_PROFILE: 'staging',
          WS_IDLE_TIMEOUT: 'abc',
          WS_PING_INTERVAL: '-1',
          WS_PONG_TIMEOUT: 'NaN',
          WS_CONNECTION_TIMEOUT: 'Infinity',
          WS_MESSAGE_TIMEOUT: '0',
          WS_CLOSE_TIMEOUT: '9999999',
        }),
      );
      expect(error.code).to.equal('WS_TIMEOUTS_ERR_CONFIG');
      expect(error.problems.map((p) => p.name)).to.have.members([
        'WS_TIMEOUT_PROFILE',
        'WS_IDLE_TIMEOUT',
        'WS_PING_INTERVAL',
        'WS_PONG_TIMEOUT',
        'WS_CONNECTION_TIMEOUT',
        'WS_MESSAGE_TIMEOUT',
        'WS_CLOSE_TIMEOUT',
      ]);
      for (const fragment of [
        'WS_TIMEOUT_PROFILE="staging"',
        'WS_IDLE_TIMEOUT="abc"',
        'WS_PING_INTERVAL="-1"',
        'WS_PONG_TIMEOUT="NaN"',
        'WS_CONNECTION_TIMEOUT="Infinity"',
        'WS_MESSAGE_TIMEOUT="0"',
        'WS_CLOSE_TIMEOUT="9999999"',
      ]) {
        expect(error.message).to.include(fragment);
      }
      expect(error.message).to.match(/^Invalid WebSocket timeout configuration \(7 problems\)/);
    });

    it('never prints and never exits the process', () => {
      const exit = sinon.stub(process, 'exit');
      const consoleError = sinon.stub(console, 'error');
      try {
        configError(() => loadTimeoutConfig({ WS_IDLE_TIMEOUT: 'abc' }));
        expect(exit.called).to.equal(false);
        expect(consoleError.called).to.equal(false);
      } finally {
        exit.restore();
        consoleError.restore();
      }
    });
  });

  describe('cross-field rules', () => {
    it('rejects an idle timeout not below the connection timeout, naming both variables and values', () => {
      const problem = onlyProblem(() => loadTimeoutConfig({ WS_IDLE_TIMEOUT: '400', WS_CONNECTION_TIMEOUT: '300' }));
      expect(problem.name).to.equal('WS_IDLE_TIMEOUT/WS_CONNECTION_TIMEOUT');
      expect(problem.value).to.deep.equal({ WS_IDLE_TIMEOUT: '400', WS_CONNECTION_TIMEOUT: '300' });
      expect(problem.reason).to.include('WS_IDLE_TIMEOUT=400 s').and.include('WS_CONNECTION_TIMEOUT=300 s').and.include('can ever be idle');
    });

    it('rejects an idle timeout equal to the connection timeout', () => {
      expect(onlyProblem(() => loadTimeoutConfig({ WS_IDLE_TIMEOUT: '300' })).name).to.equal('WS_IDLE_TIMEOUT/WS_CONNECTION_TIMEOUT');
    });

    it('checks a single variable against its profile, saying where the other value came from', () => {
      const problem = onlyProblem(() => loadTimeoutConfig({ WS_TIMEOUT_PROFILE: 'development', WS_IDLE_TIMEOUT: '200' }));
      expect(problem.name).to.equal('WS_IDLE_TIMEOUT/WS_CONNECTION_TIMEOUT');
      expect(problem.reason).to.include('WS_CONNECTION_TIMEOUT=120 s (development profile)');
    });

    it('allows any idle timeout when either idle or lifetime is disabled (0)', () => {
      expect(loadTimeoutConfig({ WS_IDLE_TIMEOUT: '4000', WS_CONNECTION_TIMEOUT: '0' }).idleTimeoutMs).to.equal(4_000_000);
      expect(loadTimeoutConfig({ WS_IDLE_TIMEOUT: '0', WS_CONNECTION_TIMEOUT: '10', WS_PING_INTERVAL: '5' }).connectionTimeoutMs).to.equal(10_000);
    });

    it('rejects a ping interval not below an enabled connection timeout', () => {
      const problem = onlyProblem(() => loadTimeoutConfig({ WS_PING_INTERVAL: '50', WS_CONNECTION_TIMEOUT: '50', WS_IDLE_TIMEOUT: '0' }));
      expect(problem.name).to.equal('WS_PING_INTERVAL/WS_CONNECTION_TIMEOUT');
      expect(problem.reason).to.include('WS_PING_INTERVAL=50 s').and.include('WS_CONNECTION_TIMEOUT=50 s').and.include('no ping');
    });

    it('allows any ping interval when the lifetime is disabled', () => {
      expect(loadTimeoutConfig({ WS_PING_INTERVAL: '5000', WS_PONG_TIMEOUT: '5000', WS_CONNECTION_TIMEOUT: '0' }).pingIntervalMs).to.equal(5_000_000);
    });

    it('rejects a timer resolution above the smallest tick-driven timeout, naming that one', () => {
      // ping 25 s, pong 20 s, idle 60 s, lifetime 300 s: pong is the smallest.
      const problem = onlyProblem(() => loadTimeoutConfig({ WS_TIMER_RESOLUTION: '22', WS_PONG_TIMEOUT: '20' }));
      expect(problem.name).to.equal('WS_TIMER_RESOLUTION/WS_PONG_TIMEOUT');
      expect(problem.value).to.deep.equal({ WS_TIMER_RESOLUTION: '22', WS_PONG_TIMEOUT: '20' });
      expect(problem.reason).to.include('WS_TIMER_RESOLUTION=22 s').and.include('WS_PONG_TIMEOUT=20 s');
    });

    it('names the ping interval, idle or lifetime when that is the smallest', () => {
      expect(onlyProblem(() => loadTimeoutConfig({ WS_TIMER_RESOLUTION: '26' })).name).to.equal('WS_TIMER_RESOLUTION/WS_PING_INTERVAL');
      expect(onlyProblem(() => loadTimeoutConfig({ WS_TIMER_RESOLUTION: '5', WS_IDLE_TIMEOUT: '4' })).name).to.equal(
        'WS_TIMER_RESOLUTION/WS_IDLE_TIMEOUT',
      );
      // A lifetime below the ping interval also breaks rule 2; both are reported.
      const error = configError(() =>
        loadTimeoutConfig({ WS_TIMER_RESOLUTION: '5', WS_IDLE_TIMEOUT: '0', WS_CONNECTION_TIMEOUT: '4', WS_PING_INTERVAL: '10' }),
      );
      expect(error.problems.map((p) => p.name)).to.deep.equal([
        'WS_PING_INTERVAL/WS_CONNECTION_TIMEOUT',
        'WS_TIMER_RESOLUTION/WS_CONNECTION_TIMEOUT',
      ]);
    });

    it('allows a resolution equal to the smallest timeout, and ignores disabled idle/lifetime', () => {
      expect(loadTimeoutConfig({ WS_TIMER_RESOLUTION: '25' }).resolutionMs).to.equal(25_000);
      const config = loadTimeoutConfig({ WS_TIMER_RESOLUTION: '30', WS_PING_INTERVAL: '30', WS_PONG_TIMEOUT: '30', WS_IDLE_TIMEOUT: '0', WS_CONNECTION_TIMEOUT: '0' });
      expect(config.resolutionMs).to.equal(30_000);
    });

    it('does not tie the resolution to the message, heartbeat or close timeouts (development sends in 0.5 s)', () => {
      expect(loadTimeoutConfig({ WS_TIMEOUT_PROFILE: 'development' }).messageTimeoutMs).to.be.below(PROFILE_TABLES.development.resolutionMs);
    });

    it('reports every cross-field violation together', () => {
      const error = configError(() =>
        loadTimeoutConfig({ WS_CONNECTION_TIMEOUT: '20', WS_IDLE_TIMEOUT: '30', WS_PING_INTERVAL: '25', WS_TIMER_RESOLUTION: '21' }),
      );
      expect(error.problems.map((p) => p.name)).to.deep.equal([
        'WS_IDLE_TIMEOUT/WS_CONNECTION_TIMEOUT',
        'WS_PING_INTERVAL/WS_CONNECTION_TIMEOUT',
        'WS_TIMER_RESOLUTION/WS_CONNECTION_TIMEOUT',
      ]);
    });

    it('checks cross-field rules only on values that are individually valid', () => {
      const error = configError(() => loadTimeoutConfig({ WS_CONNECTION_TIMEOUT: 'abc', WS_IDLE_TIMEOUT: '999999' }));
      expect(error.problems.map((p) => p.name)).to.deep.equal(['WS_CONNECTION_TIMEOUT']);
    });

    it('skips the cross-field rules for values that would come from an unknown profile', () => {
      const error = configError(() => loadTimeoutConfig({ WS_TIMEOUT_PROFILE: 'nope', WS_IDLE_TIMEOUT: '999999' }));
      expect(error.problems.map((p) => p.name)).to.deep.equal(['WS_TIMEOUT_PROFILE']);
    });

    it('is satisfied by the defaults and all three profiles', () => {
      for (const config of [DEFAULT_TIMEOUT_CONFIG, ...Object.values(TIMEOUT_PROFILES)]) {
        // A trivial override forces full validation of the table.
        expect(resolveTimeoutConfig(config, { closeTimeoutMs: config.closeTimeoutMs })).to.deep.equal(config);
        const untrusted = { ...config };
        expect(resolveTimeoutConfig(untrusted, { closeTimeoutMs: config.closeTimeoutMs })).to.deep.equal(config);
      }
    });
  });

  describe('timer resolution derived from the timeouts when unset', () => {
    it('starts short development timeouts as they are: WS_PING_INTERVAL=0.5 WS_PONG_TIMEOUT=1 WS_IDLE_TIMEOUT=3', () => {
      const config = loadTimeoutConfig({ WS_PING_INTERVAL: '0.5', WS_PONG_TIMEOUT: '1', WS_IDLE_TIMEOUT: '3' });
      expect(config).to.deep.include({ pingIntervalMs: 500, pongTimeoutMs: 1_000, idleTimeoutMs: 3_000 });
      expect(config.resolutionMs).to.equal(50); // a tenth of the smallest tick-driven timeout (ping 500 ms)
    });

    it('is a tenth of the smallest enabled ping, pong, idle or lifetime timeout, at most 1 s and at least 1 ms', () => {
      const derived = (env: Record<string, string>) => loadTimeoutConfig(env).resolutionMs;
      expect(derived({ WS_PONG_TIMEOUT: '2' })).to.equal(200);
      expect(derived({ WS_IDLE_TIMEOUT: '0.3' })).to.equal(30);
      expect(derived({ WS_IDLE_TIMEOUT: '0', WS_CONNECTION_TIMEOUT: '0.75', WS_PING_INTERVAL: '0.7' })).to.equal(70);
      expect(derived({ WS_IDLE_TIMEOUT: '0', WS_CONNECTION_TIMEOUT: '0', WS_PING_INTERVAL: '4' })).to.equal(400);
      expect(derived({ WS_PING_INTERVAL: '0.015' })).to.equal(1); // 1.5 ms, floored to whole ms
      expect(derived({ WS_PING_INTERVAL: '0.005' })).to.equal(1); // never 0
      expect(derived({ WS_PING_INTERVAL: '20' })).to.equal(1_000); // 2 s, capped at 1 s
    });

    it('ignores the message, heartbeat and close timeouts, which are not tick-driven', () => {
      expect(loadTimeoutConfig({ WS_MESSAGE_TIMEOUT: '0.1', WS_HEARTBEAT_INTERVAL: '0.1', WS_CLOSE_TIMEOUT: '0.1' }).resolutionMs).to.equal(1_000);
    });

    it('keeps 1 s for the defaults and the three profiles', () => {
      for (const profile of ['development', 'production', 'high-latency'] as const) {
        expect(loadTimeoutConfig({ WS_TIMEOUT_PROFILE: profile, WS_CLOSE_TIMEOUT: '3' }).resolutionMs, profile).to.equal(1_000);
      }
    });

    it('derives it for code overrides of a timeout too', () => {
      expect(loadTimeoutConfig({}, { idleTimeoutMs: 400 }).resolutionMs).to.equal(40);
      expect(loadTimeoutConfig({ WS_IDLE_TIMEOUT: '2' }, { pingIntervalMs: 300 }).resolutionMs).to.equal(30);
    });

    it('keeps an explicit WS_TIMER_RESOLUTION, and still refuses one coarser than the smallest timeout', () => {
      expect(loadTimeoutConfig({ WS_PING_INTERVAL: '0.5', WS_TIMER_RESOLUTION: '0.25' }).resolutionMs).to.equal(250);
      const problem = onlyProblem(() => loadTimeoutConfig({ WS_PING_INTERVAL: '0.5', WS_TIMER_RESOLUTION: '1' }));
      expect(problem.name).to.equal('WS_TIMER_RESOLUTION/WS_PING_INTERVAL');
      expect(problem.reason).to.include('WS_TIMER_RESOLUTION=1 s').and.include('WS_PING_INTERVAL=0.5 s');
    });

    it('keeps an explicit resolutionMs override, and still refuses one coarser than the smallest timeout', () => {
      expect(loadTimeoutConfig({ WS_PING_INTERVAL: '0.5' }, { resolutionMs: 100 }).resolutionMs).to.equal(100);
      expect(onlyProblem(() => loadTimeoutConfig({ WS_PING_INTERVAL: '0.5' }, { resolutionMs: 1_000 })).name).to.equal('resolutionMs/WS_PING_INTERVAL');
    });
  });

  describe('code overrides (milliseconds)', () => {
    it('merges overrides over the environment and the profile', () => {
      const config = loadTimeoutConfig({ WS_TIMEOUT_PROFILE: 'production', WS_IDLE_TIMEOUT: '45' }, { idleTimeoutMs: 50_000, pingIntervalMs: 5_000 });
      // The resolution follows the shorter ping interval: a tenth of it.
      expect(config).to.deep.equal({ ...PROFILE_TABLES.production, idleTimeoutMs: 50_000, pingIntervalMs: 5_000, resolutionMs: 500 });
    });

    it('validates overrides with the per-field rules, naming the field', () => {
      const error = configError(() =>
        loadTimeoutConfig({}, { pingIntervalMs: 0, pongTimeoutMs: -1, messageTimeoutMs: Number.NaN, closeTimeoutMs: 2 ** 31, idleTimeoutMs: Infinity }),
      );
      const byName = Object.fromEntries(error.problems.map((p) => [p.name, p.reason]));
      expect(Object.keys(byName)).to.have.members(['pingIntervalMs', 'pongTimeoutMs', 'messageTimeoutMs', 'closeTimeoutMs', 'idleTimeoutMs']);
      expect(byName.pingIntervalMs).to.match(/0 is not allowed/);
      expect(byName.pongTimeoutMs).to.match(/must not be negative.*milliseconds/);
      expect(byName.messageTimeoutMs).to.match(/NaN/);
      expect(byName.closeTimeoutMs).to.match(/too large/);
      expect(byName.idleTimeoutMs).to.match(/not a finite duration; to disable it, use 0/);
    });

    it('rejects an override that is not a number', () => {
      const problem = onlyProblem(() => loadTimeoutConfig({}, { idleTimeoutMs: '5000' as unknown as number }));
      expect(problem).to.include({ name: 'idleTimeoutMs', value: '5000' });
      expect(problem.reason).to.match(/must be a number of milliseconds, got string/);
    });

    it('rejects an unknown override key, naming it and suggesting the field it resembles', () => {
      const problem = onlyProblem(() => loadTimeoutConfig({}, { idleTimeout: 5_000 } as Partial<TimeoutConfig>));
      expect(problem).to.include({ name: 'idleTimeout', value: 5_000 });
      expect(problem.reason).to.include('unknown option').and.include('did you mean "idleTimeoutMs"');
    });

    it('applies the cross-field rules to overrides, naming fields for code values and variables for env values', () => {
      const problem = onlyProblem(() => loadTimeoutConfig({ WS_CONNECTION_TIMEOUT: '100' }, { idleTimeoutMs: 100_000 }));
      expect(problem.name).to.equal('idleTimeoutMs/WS_CONNECTION_TIMEOUT');
      expect(problem.value).to.deep.equal({ idleTimeoutMs: 100_000, WS_CONNECTION_TIMEOUT: '100' });
      expect(problem.reason).to.include('idleTimeoutMs=100000 ms').and.include('WS_CONNECTION_TIMEOUT=100 s');
    });

    it('reports environment and override problems together', () => {
      const error = configError(() => loadTimeoutConfig({ WS_PONG_TIMEOUT: 'x' }, { pingIntervalMs: -1, bogus: 1 } as Partial<TimeoutConfig>));
      expect(error.problems.map((p) => p.name)).to.have.members(['WS_PONG_TIMEOUT', 'pingIntervalMs', 'bogus']);
    });

    it('ignores override keys whose value is undefined', () => {
      expect(loadTimeoutConfig({}, { idleTimeoutMs: undefined })).to.equal(DEFAULT_TIMEOUT_CONFIG);
    });
  });

  describe('result', () => {
    it('is frozen', () => {
      const config = loadTimeoutConfig({ WS_IDLE_TIMEOUT: '10' });
      expect(Object.isFrozen(config)).to.equal(true);
      expect(() => {
        (config as { idleTimeoutMs: number }).idleTimeoutMs = 1;
      }).to.throw(TypeError);
      expect(Object.isFrozen(DEFAULT_TIMEOUT_CONFIG)).to.equal(true);
    });

    it('is recognised by isTimeoutConfig', () => {
      expect(isTimeoutConfig(loadTimeoutConfig({ WS_IDLE_TIMEOUT: '10' }))).to.equal(true);
      expect(isTimeoutConfig(loadTimeoutConfig({}))).to.equal(true);
      expect(isTimeoutConfig(DEFAULT_TIMEOUT_CONFIG)).to.equal(true);
      expect(isTimeoutConfig(TIMEOUT_PROFILES.production)).to.equal(true);
    });

    it('is a fresh object when something was set, and the shared table when nothing was', () => {
      expect(loadTimeoutConfig({ WS_TIMEOUT_PROFILE: 'production' })).to.equal(TIMEOUT_PROFILES.production);
      expect(loadTimeoutConfig({ WS_IDLE_TIMEOUT: '10' })).not.to.equal(loadTimeoutConfig({ WS_IDLE_TIMEOUT: '10' }));
    });
  });
});

describe('explainTimeoutConfig', () => {
  const sources = (env: Record<string, string>, overrides?: Partial<TimeoutConfig>) =>
    Object.fromEntries(explainTimeoutConfig(env, overrides).values.map((v) => [v.variable, v.source]));

  it('says where each value came from: default, profile, variable, option or derived', () => {
    expect(sources({})).to.deep.include({ WS_IDLE_TIMEOUT: 'default', WS_TIMER_RESOLUTION: 'derived' });
    expect(sources({ WS_TIMEOUT_PROFILE: 'production', WS_IDLE_TIMEOUT: '45' }, { pingIntervalMs: 5_000 })).to.deep.equal({
      WS_HEARTBEAT_INTERVAL: 'profile',
      WS_CONNECTION_TIMEOUT: 'profile',
      WS_MESSAGE_TIMEOUT: 'profile',
      WS_IDLE_TIMEOUT: 'variable',
      WS_PING_INTERVAL: 'option',
      WS_PONG_TIMEOUT: 'profile',
      WS_CLOSE_TIMEOUT: 'profile',
      WS_TIMER_RESOLUTION: 'derived',
    });
    expect(sources({ WS_TIMER_RESOLUTION: '0.5' }).WS_TIMER_RESOLUTION).to.equal('variable');
  });

  it('gives the values, the raw text and the config loadTimeoutConfig returns', () => {
    const env = { WS_TIMEOUT_PROFILE: 'development', WS_PING_INTERVAL: ' 0.5 ' };
    const explained = explainTimeoutConfig(env);
    expect(explained.profile).to.equal('development');
    expect(explained.problems).to.deep.equal([]);
    expect(explained.values.find((v) => v.field === 'pingIntervalMs')).to.deep.equal({
      field: 'pingIntervalMs',
      variable: 'WS_PING_INTERVAL',
      ms: 500,
      source: 'variable',
      raw: ' 0.5 ',
    });
    expect(explained.config).to.deep.equal(loadTimeoutConfig(env));
  });

  it('answers every problem instead of throwing, leaving the bad values out', () => {
    const explained = explainTimeoutConfig({ WS_IDLE_TIMEOUT: 'abc', WS_PING_INTERVAL: '400', WS_CONNECTION_TIMEOUT: '300' });
    expect(explained.config).to.equal(undefined);
    expect(explained.problems.map((p) => p.name)).to.deep.equal(['WS_IDLE_TIMEOUT', 'WS_PING_INTERVAL/WS_CONNECTION_TIMEOUT']);
    expect(explained.values.find((v) => v.field === 'idleTimeoutMs')).to.include({ ms: undefined, source: 'variable', raw: 'abc' });
  });
});

describe('WS_FLEET_RECONNECT_RATE and WS_FLEET_RECONNECT_JITTER (loadReconnectBudgetOptions)', () => {
  it('are 200 closes per second and 0.25 s when unset or empty, the documented defaults', () => {
    expect(RECONNECT_RATE).to.include({ env: 'WS_FLEET_RECONNECT_RATE', default: 200 });
    expect(RECONNECT_JITTER).to.include({ env: 'WS_FLEET_RECONNECT_JITTER', default: 0.25 });
    expect(loadReconnectBudgetOptions({})).to.deep.equal({ rate: 200, jitterMs: 250 });
    expect(loadReconnectBudgetOptions({ WS_FLEET_RECONNECT_RATE: '  ', WS_FLEET_RECONNECT_JITTER: '' })).to.deep.equal({ rate: 200, jitterMs: 250 });
  });

  it('reads closes per second and seconds of jitter (in ms), fractions allowed', () => {
    expect(loadReconnectBudgetOptions({ WS_FLEET_RECONNECT_RATE: '50' })).to.include({ rate: 50 });
    expect(loadReconnectBudgetOptions({ WS_FLEET_RECONNECT_RATE: ' 0.5 ' })).to.include({ rate: 0.5 });
    expect(loadReconnectBudgetOptions({ WS_FLEET_RECONNECT_JITTER: '0' })).to.include({ jitterMs: 0 });
    expect(loadReconnectBudgetOptions({ WS_FLEET_RECONNECT_JITTER: ' 1.5 ' })).to.include({ jitterMs: 1_500 });
  });

  for (const value of ['0', '-3', 'fast', '200/s', 'Infinity', '2000000']) {
    it(`rejects rate ${JSON.stringify(value)}, naming the variable, echoing the value and giving the range`, () => {
      const problem = onlyProblem(() => loadReconnectBudgetOptions({ WS_FLEET_RECONNECT_RATE: value }));
      expect(problem).to.include({ name: 'WS_FLEET_RECONNECT_RATE', value });
      expect(problem.reason).to.match(/expected a number of closes per second greater than 0 and at most 1000000/);
    });
  }

  for (const value of ['-0.1', '250ms', 'NaN', '61']) {
    it(`rejects jitter ${JSON.stringify(value)}, naming the variable, echoing the value and giving the range`, () => {
      const problem = onlyProblem(() => loadReconnectBudgetOptions({ WS_FLEET_RECONNECT_JITTER: value }));
      expect(problem).to.include({ name: 'WS_FLEET_RECONNECT_JITTER', value });
      expect(problem.reason).to.match(/expected seconds from 0 to 60/);
    });
  }

  it('names both when both are bad, in one ConfigError', () => {
    const error = configError(() => loadReconnectBudgetOptions({ WS_FLEET_RECONNECT_RATE: '0', WS_FLEET_RECONNECT_JITTER: 'x' }));
    expect(error.problems.map((p) => p.name)).to.deep.equal(['WS_FLEET_RECONNECT_RATE', 'WS_FLEET_RECONNECT_JITTER']);
  });

  it('are reported with the timeouts\' problems by loadTimeoutConfig, in one ConfigError', () => {
    const error = configError(() => loadTimeoutConfig({ WS_IDLE_TIMEOUT: 'abc', WS_FLEET_RECONNECT_RATE: '0', WS_FLEET_RECONNECT_JITTER: '-1' }));
    expect(error.problems.map((p) => p.name)).to.deep.equal(['WS_IDLE_TIMEOUT', 'WS_FLEET_RECONNECT_RATE', 'WS_FLEET_RECONNECT_JITTER']);
    expect(explainTimeoutConfig({ WS_FLEET_RECONNECT_RATE: '10', WS_FLEET_RECONNECT_JITTER: '0.1' })).to.include({ reconnectRate: 10, reconnectJitterMs: 100 });
  });
});

describe('formatConfigProblems (from the root entry point)', () => {
  it("lists a ConfigError's problems under the app's own heading, with the app's own problems beside them", () => {
    const error = configError(() => loadTimeoutConfig({ WS_IDLE_TIMEOUT: '30s', WS_PING_INTERVAL: '-1' }));
    const text = formatConfigProblems([...error.problems, { name: 'PORT', value: 'http', reason: 'expected a port' }], 'my-app cannot start');
    const lines = text.split('\n');
    expect(lines[0]).to.equal('my-app cannot start (3 problems):');
    expect(lines[1]).to.match(/^ {2}WS_IDLE_TIMEOUT="30s": not a number \(the unit is always seconds/);
    expect(lines[2]).to.match(/^ {2}WS_PING_INTERVAL="-1": must not be negative/);
    expect(lines[3]).to.equal('  PORT="http": expected a port');
    expect(lines).to.have.length(4);
  });

  it("is the ConfigError's message, with its default heading and a singular count", () => {
    const error = configError(() => loadTimeoutConfig({ WS_IDLE_TIMEOUT: 'abc' }));
    expect(error.message).to.equal(formatConfigProblems(error.problems));
    expect(error.message).to.match(/^Invalid WebSocket timeout configuration \(1 problem\):\n {2}WS_IDLE_TIMEOUT="abc": /);
  });
});

describe('isTimeoutConfig', () => {
  it('is false for look-alike objects and non-objects', () => {
    expect(isTimeoutConfig({ ...DEFAULTS })).to.equal(false);
    expect(isTimeoutConfig(Object.freeze({ ...DEFAULTS }))).to.equal(false);
    for (const value of [null, undefined, 0, 'config', [], () => DEFAULTS]) expect(isTimeoutConfig(value)).to.equal(false);
  });
});

describe('resolveTimeoutConfig', () => {
  it('returns the same object when there are no overrides', () => {
    const base = loadTimeoutConfig({ WS_IDLE_TIMEOUT: '10' });
    expect(resolveTimeoutConfig(base)).to.equal(base);
    expect(resolveTimeoutConfig(base, undefined)).to.equal(base);
    expect(resolveTimeoutConfig(base, {})).to.equal(base);
    expect(resolveTimeoutConfig(base, { pingIntervalMs: undefined })).to.equal(base);
  });

  it('merges overrides into a new frozen, recognised config and leaves the base alone', () => {
    const base = TIMEOUT_PROFILES.development;
    const config = resolveTimeoutConfig(base, { messageTimeoutMs: 250, idleTimeoutMs: 0 });
    expect(config).to.deep.equal({ ...PROFILE_TABLES.development, messageTimeoutMs: 250, idleTimeoutMs: 0 });
    expect(config).not.to.equal(base);
    expect(base).to.deep.equal(PROFILE_TABLES.development);
    expect(Object.isFrozen(config)).to.equal(true);
    expect(isTimeoutConfig(config)).to.equal(true);
  });

  it('rounds fractional milliseconds like env values', () => {
    expect(resolveTimeoutConfig(DEFAULT_TIMEOUT_CONFIG, { messageTimeoutMs: 0.1 * 3 * 1000 }).messageTimeoutMs).to.equal(300);
  });

  it('validates overrides and the cross-field rules, naming fields', () => {
    const error = configError(() => resolveTimeoutConfig(DEFAULT_TIMEOUT_CONFIG, { idleTimeoutMs: 300_000, resolutionMs: 0 }));
    expect(error.problems.map((p) => p.name)).to.deep.equal(['resolutionMs', 'idleTimeoutMs/connectionTimeoutMs']);
    expect(error.problems[1]!.reason).to.include('idleTimeoutMs=300000 ms').and.include('connectionTimeoutMs=300000 ms (base config)');
  });

  it('rejects unknown keys', () => {
    const problem = onlyProblem(() => resolveTimeoutConfig(DEFAULT_TIMEOUT_CONFIG, { WS_IDLE_TIMEOUT: 5 } as Partial<TimeoutConfig>));
    expect(problem.name).to.equal('WS_IDLE_TIMEOUT');
    expect(problem.reason).to.include('did you mean "idleTimeoutMs"');
  });

  describe('timer resolution of a route override (wsTimeouts(overrides))', () => {
    it('is derived again when the base resolution was derived and an override shortens a timeout', () => {
      expect(resolveTimeoutConfig(DEFAULT_TIMEOUT_CONFIG, { idleTimeoutMs: 500 }).resolutionMs).to.equal(50);
      const base = loadTimeoutConfig({ WS_PING_INTERVAL: '0.5' }); // derived 50 ms
      expect(resolveTimeoutConfig(base, { pingIntervalMs: 30_000 }).resolutionMs).to.equal(1_000);
      // Stacked overrides (app-level, then route-level) keep deriving.
      const app = resolveTimeoutConfig(DEFAULT_TIMEOUT_CONFIG, { pingIntervalMs: 5_000 });
      expect(app.resolutionMs).to.equal(500);
      expect(resolveTimeoutConfig(app, { idleTimeoutMs: 800 }).resolutionMs).to.equal(80);
    });

    it('stays explicit when the base got it from WS_TIMER_RESOLUTION: too coarse for the override is an error', () => {
      const base = loadTimeoutConfig({ WS_TIMER_RESOLUTION: '1' });
      expect(resolveTimeoutConfig(base, { idleTimeoutMs: 5_000 }).resolutionMs).to.equal(1_000);
      const problem = onlyProblem(() => resolveTimeoutConfig(base, { idleTimeoutMs: 500 }));
      expect(problem.name).to.equal('resolutionMs/idleTimeoutMs');
      expect(problem.reason).to.include('resolutionMs=1000 ms (base config)');
    });

    it('uses a resolutionMs given with the override as is', () => {
      expect(resolveTimeoutConfig(DEFAULT_TIMEOUT_CONFIG, { idleTimeoutMs: 500, resolutionMs: 250 }).resolutionMs).to.equal(250);
      const derivedBase = resolveTimeoutConfig(DEFAULT_TIMEOUT_CONFIG, { resolutionMs: 200 });
      expect(resolveTimeoutConfig(derivedBase, { idleTimeoutMs: 30_000 }).resolutionMs).to.equal(200);
    });

    it('applies to wsTimeouts(overrides): a short route timeout starts, unless WS_TIMER_RESOLUTION is set too coarse', () => {
      const configFor = (middleware: ReturnType<typeof wsTimeouts>, req: { wsTimeouts?: TimeoutConfig } = {}) => {
        let error: unknown;
        middleware(req as never, {} as never, (err?: unknown) => (error = err));
        if (error) throw error;
        return req.wsTimeouts!;
      };
      expect(configFor(wsTimeouts({ idleTimeoutMs: 500 }, { env: {} })).resolutionMs).to.equal(50);
      const app = wsTimeouts(undefined, { env: { WS_PING_INTERVAL: '20' } });
      expect(configFor(wsTimeouts({ pongTimeoutMs: 700 }, { env: {} }), { wsTimeouts: configFor(app) }).resolutionMs).to.equal(70);
      expect(() => wsTimeouts({ idleTimeoutMs: 500 }, { env: { WS_TIMER_RESOLUTION: '1' } })).to.throw(ConfigError, /resolutionMs\/idleTimeoutMs/);
    });

    it('treats the resolution of a base this module did not produce as explicit', () => {
      expect(() => resolveTimeoutConfig({ ...DEFAULTS }, { idleTimeoutMs: 500 })).to.throw(ConfigError, /resolutionMs\/idleTimeoutMs/);
    });
  });

  it('validates a base that this module did not produce', () => {
    const base = { ...DEFAULTS, pongTimeoutMs: -3 };
    const problem = onlyProblem(() => resolveTimeoutConfig(base, { idleTimeoutMs: 1_000 }));
    expect(problem).to.include({ name: 'pongTimeoutMs', value: -3 });
    expect(problem.reason).to.match(/base config.*must not be negative/);
  });
});

describe('defaultTimeoutConfig', () => {
  it('loads once from process.env and returns the cached config afterwards', () => {
    const first = defaultTimeoutConfig();
    expect(isTimeoutConfig(first)).to.equal(true);
    expect(defaultTimeoutConfig()).to.equal(first);
  });
});
