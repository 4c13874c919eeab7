import { expect } from 'chai';
import { startExample } from '../spec/support/example-server.js';
import { track } from './support/children.js';
import { ms, reliabilityCase } from './support/report.js';
import { max } from './support/util.js';

/** Each bad setting, and the variables stderr must name for it. */
const CASES: Array<{ env: Record<string, string>; names: string[] }> = [
  { env: { WS_HEARTBEAT_INTERVAL: 'abc' }, names: ['WS_HEARTBEAT_INTERVAL'] },
  { env: { WS_CONNECTION_TIMEOUT: '-5' }, names: ['WS_CONNECTION_TIMEOUT'] },
  { env: { WS_MESSAGE_TIMEOUT: '0' }, names: ['WS_MESSAGE_TIMEOUT'] },
  { env: { WS_IDLE_TIMEOUT: '30s' }, names: ['WS_IDLE_TIMEOUT'] },
  { env: { WS_PING_INTERVAL: 'NaN' }, names: ['WS_PING_INTERVAL'] },
  { env: { WS_PONG_TIMEOUT: 'Infinity' }, names: ['WS_PONG_TIMEOUT'] },
  { env: { WS_CLOSE_TIMEOUT: '0.0001' }, names: ['WS_CLOSE_TIMEOUT'] },
  { env: { WS_TIMER_RESOLUTION: '9999999' }, names: ['WS_TIMER_RESOLUTION'] },
  { env: { WS_TIMEOUT_PROFILE: 'staging' }, names: ['WS_TIMEOUT_PROFILE'] },
  // The three cross-field rules: each message names both variables.
  { env: { WS_IDLE_TIMEOUT: '600', WS_CONNECTION_TIMEOUT: '300' }, names: ['WS_IDLE_TIMEOUT', 'WS_CONNECTION_TIMEOUT'] },
  { env: { WS_PING_INTERVAL: '400', WS_CONNECTION_TIMEOUT: '300' }, names: ['WS_PING_INTERVAL', 'WS_CONNECTION_TIMEOUT'] },
  { env: { WS_TIMER_RESOLUTION: '40', WS_PING_INTERVAL: '30' }, names: ['WS_TIMER_RESOLUTION', 'WS_PING_INTERVAL'] },
  // Everything at once: every variable is reported in the one run.
  {
    env: {
      WS_HEARTBEAT_INTERVAL: 'abc',
      WS_CONNECTION_TIMEOUT: '-5',
      WS_MESSAGE_TIMEOUT: '0',
      WS_IDLE_TIMEOUT: '30s',
      WS_PING_INTERVAL: 'NaN',
      WS_PONG_TIMEOUT: 'Infinity',
      WS_CLOSE_TIMEOUT: '0.0001',
      WS_TIMER_RESOLUTION: '9999999',
      WS_TIMEOUT_PROFILE: 'staging',
      PORT: 'http',
    },
    names: ['WS_HEARTBEAT_INTERVAL', 'WS_CONNECTION_TIMEOUT', 'WS_MESSAGE_TIMEOUT', 'WS_IDLE_TIMEOUT', 'WS_PING_INTERVAL', 'WS_PONG_TIMEOUT', 'WS_CLOSE_TIMEOUT', 'WS_TIMER_RESOLUTION', 'WS_TIMEOUT_PROFILE', 'PORT'],
  },
];
const CONCURRENCY = 4;

const report = reliabilityCase('Bad config', {
  load: `${CASES.length} runs of \`npm start\` (the example server), ${CONCURRENCY} at a time`,
  faults: 'each WS_* variable bad on its own (text, units, negative, 0, NaN, Infinity, under 1 ms, over the timer limit, unknown profile), the 3 cross-field rules broken, and all of them plus PORT at once',
});

describe(report.name, function () {
  it('exits non-zero before listening, naming every bad variable on stderr, for each bad value and combination', async () => {
    const results: Array<{ env: Record<string, string>; names: string[]; code: number | null; stderr: string; stdout: string; ms: number }> = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < CASES.length) {
        const c = CASES[next++]!;
        const started = Date.now();
        const server = await startExample(c.env, { waitForListening: false });
        track(server.proc, { group: true });
        const timer = setTimeout(() => void server.kill(), 30_000);
        const { code } = await server.exited;
        clearTimeout(timer);
        results.push({ ...c, code, stderr: server.stderr(), stdout: server.stdout(), ms: Date.now() - started });
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    let named = 0;
    for (const r of results) {
      const label = JSON.stringify(r.env);
      expect(r.code, `exit code for ${label}`).to.be.a('number').and.not.equal(0);
      expect(r.stdout, `nothing listened for ${label}`).not.to.include('Example server listening');
      for (const name of r.names) {
        expect(r.stderr, `stderr names ${name} for ${label}`).to.match(new RegExp(`\\b${name}\\b`));
        named++;
      }
    }
    const expected = CASES.reduce((n, c) => n + c.names.length, 0);
    report.figure(
      `${results.length}/${CASES.length} runs exited with code ${[...new Set(results.map((r) => r.code))].join('/')} before listening, ` +
        `${named}/${expected} bad variables named on stderr (all 10 in the single all-at-once run); slowest exit ${ms(max(results.map((r) => r.ms)))} after spawn`,
    );
  });
});
