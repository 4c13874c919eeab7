// The fleet's environment variables: read and checked once, in the library, as joinFleet options.
import { expect } from 'chai';
import { ConfigError } from '../../lib/errors.js';
import { FLEET_DEFAULTS, explainFleetSettings, loadFleetSettings } from '../../lib/fleet/settings.js';

function problemsOf(env: Record<string, string>): ConfigError {
  try {
    loadFleetSettings(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  return expect.fail('loadFleetSettings did not throw');
}

describe('loadFleetSettings', () => {
  it('is null without REDIS_URL: one process, and no other fleet variable is even checked', () => {
    expect(loadFleetSettings({})).to.equal(null);
    expect(loadFleetSettings({ REDIS_URL: '  ', WS_FLEET_TTL: 'soon', NODE_ID: 'a:b' })).to.equal(null);
  });

  it('gives the defaults in ms, and no nodeId (joinFleet or the app picks it) when NODE_ID is unset', () => {
    expect(loadFleetSettings({ REDIS_URL: 'redis://127.0.0.1:6390' })).to.deep.equal({
      redisUrl: 'redis://127.0.0.1:6390',
      prefix: FLEET_DEFAULTS.prefix,
      membershipTtlMs: FLEET_DEFAULTS.membershipTtlMs,
      requestTimeoutMs: FLEET_DEFAULTS.requestTimeoutMs,
    });
  });

  it('reads every variable: seconds in the environment (fractions allowed), ms in the options', () => {
    const env = { REDIS_URL: 'rediss://u:pw@redis.internal:6380/2', NODE_ID: 'web-1', WS_FLEET_PREFIX: 'shop:ws', WS_FLEET_TTL: '4.5', WS_FLEET_REQUEST_TIMEOUT: '0.25' };
    expect(loadFleetSettings(env)).to.deep.equal({ redisUrl: 'rediss://u:pw@redis.internal:6380/2', nodeId: 'web-1', prefix: 'shop:ws', membershipTtlMs: 4_500, requestTimeoutMs: 250 });
  });

  it('names every problem at once under a fleet heading, echoing each value (the password of REDIS_URL masked) and what is accepted', () => {
    const error = problemsOf({ REDIS_URL: 'http://u:s3cret@host', NODE_ID: 'a:b', WS_FLEET_PREFIX: 'has space', WS_FLEET_TTL: '15000', WS_FLEET_REQUEST_TIMEOUT: '500ms' });
    expect(error.problems.map((p) => p.name)).to.deep.equal(['REDIS_URL', 'NODE_ID', 'WS_FLEET_PREFIX', 'WS_FLEET_TTL', 'WS_FLEET_REQUEST_TIMEOUT']);
    expect(error.message).to.match(/^Invalid fleet configuration \(5 problems\):\n {2}REDIS_URL=/);
    expect(error.message).to.not.include('s3cret');
    expect(error.problems[0]!.value).to.equal('http://u:***@host/');
    expect(error.problems[0]!.reason).to.match(/redis:\/\/ or rediss:\/\//);
    expect(error.problems[1]!.reason).to.match(/no ":"/);
    expect(error.problems[3]).to.deep.include({ value: '15000' });
    expect(error.problems[3]!.reason).to.match(/^expected seconds from 0\.03 to 3600/);
    expect(error.problems[4]!.reason).to.match(/^expected seconds from 0\.001 to 60.*the unit is always seconds/);
  });

  it('refuses zero, negative and non-numeric durations', () => {
    for (const bad of ['0', '-1', 'NaN', 'Infinity', '1e3', '']) {
      const env = { REDIS_URL: 'redis://h', WS_FLEET_REQUEST_TIMEOUT: bad };
      if (bad === '') expect(loadFleetSettings(env)?.requestTimeoutMs, 'empty is unset').to.equal(1_000);
      else expect(problemsOf(env).problems.map((p) => p.name), bad).to.deep.equal(['WS_FLEET_REQUEST_TIMEOUT']);
    }
  });
});

describe('explainFleetSettings (what check-env shows)', () => {
  it('every variable with its value, unit and source, the password masked', () => {
    const { values, problems } = explainFleetSettings({ REDIS_URL: 'redis://:pw@h:6390', WS_FLEET_TTL: 'x' });
    expect(problems.map((p) => p.name)).to.deep.equal(['WS_FLEET_TTL']);
    expect(values.map((v) => [v.variable, v.value, v.unit, v.source])).to.deep.equal([
      ['REDIS_URL', 'redis://:***@h:6390', '-', 'variable'],
      ['NODE_ID', "(unset: <hostname>-<pid>, or the app's default)", '-', 'default'],
      ['WS_FLEET_PREFIX', 'ws-timeouts', '-', 'default'],
      ['WS_FLEET_TTL', '"x"', 's', 'variable (invalid)'],
      ['WS_FLEET_REQUEST_TIMEOUT', '1', 's', 'default'],
    ]);
  });

  it('without REDIS_URL, a fleet variable that is set is "not used", and no problem', () => {
    const { values, problems, settings } = explainFleetSettings({ WS_FLEET_TTL: 'x' });
    expect(settings).to.equal(null);
    expect(problems).to.deep.equal([]);
    expect(values.find((v) => v.variable === 'WS_FLEET_TTL')).to.include({ source: 'not used (REDIS_URL is unset)' });
    expect(values.find((v) => v.variable === 'REDIS_URL')).to.include({ value: '(unset)' });
  });
});
