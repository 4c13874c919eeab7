// The public surface, pinned: every name the entry points export, runtime and type-only. A new
// export (or a lost one) fails here, so it is a decision: document it in README.md, then add it.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execFile } from 'node:child_process';
import ts from 'typescript';
import * as root from '../lib/index.js';
import * as testing from '../lib/testing/index.js';
import * as fleet from '../lib/fleet/index.js';

const ROOT_VALUES = [
  'CloseCode',
  'CloseReason',
  'ConfigError',
  'ConnectionRegistry',
  'DEFAULT_TIMEOUT_CONFIG',
  'ESTIMATED_SESSION_BYTES',
  'ReconnectBudget',
  'SessionCleanupError',
  'SessionStoreError',
  'TIMEOUT_ENV',
  'TIMEOUT_PROFILES',
  'TimeoutMetrics',
  'WebSocketGateway',
  'WebSocketTimeoutManager',
  'attachWebSockets',
  'checkDrainBudget',
  'checkHealth',
  'createLogger',
  'defaultTimeoutConfig',
  'explainTimeoutConfig',
  'formatConfigProblems',
  'healthHandler',
  'installGracefulShutdown',
  'isTimeoutConfig',
  'loadReconnectBudgetOptions',
  'loadTimeoutConfig',
  'metricsHandler',
  'redact',
  'resolveTimeoutConfig',
  'shutdownGracefully',
  'silentLogger',
  'systemClock',
  'websocket',
  'wsTimeouts',
];

const ROOT_TYPES = [
  'AttachWebSocketsOptions',
  'BroadcastOptions',
  'BroadcastResult',
  'Clock',
  'CloseCodeValue',
  'CloseOutcome',
  'ClosesAll',
  'ConfigProblem',
  'ConnectionSnapshot',
  'CreateLoggerOptions',
  'DisconnectInfo',
  'DrainBudgetInput',
  'DrainBudgetReport',
  'GracefulShutdownOptions',
  'HealthOptions',
  'HealthReport',
  'HealthStatus',
  'HeartbeatMode',
  'Logger',
  'ManagedSocket',
  'ManagerOptions',
  'ManagerSink',
  'Message',
  'ReconnectAdvice',
  'ReconnectBudgetOptions',
  'RefusalReason',
  'RegistryOptions',
  'SessionMetrics',
  'ShutdownOptions',
  'SlowConsumerPolicy',
  'TimeoutConfig',
  'TimeoutConfigExplanation',
  'TimeoutMetricsOptions',
  'TimeoutProfile',
  'TimeoutReason',
  'TimeoutValueOrigin',
  'TimeoutValueSource',
  'TimerHandle',
  'WebSocketHandler',
  'WebSocketRoute',
  'WsTimeoutsOptions',
];

const TESTING_VALUES = [
  'InMemoryServerSocket',
  'SAFE_TO_FAKE',
  'TestClient',
  'captureLogs',
  'connectHandler',
  'createSocketPair',
  'createTestClock',
  'installTestClock',
];

const TESTING_TYPES = [
  'ClientSendOptions',
  'CloseFrame',
  'ConnectHandlerOptions',
  'ConnectedHandler',
  'LogEntry',
  'SocketPairOptions',
  'TestClock',
  'VanishOptions',
];

const FLEET_VALUES = ['BusUnavailableError', 'FLEET_DEFAULTS', 'FLEET_ENV', 'FleetNode', 'MemoryBus', 'MemoryBusNetwork', 'RedisBus', 'explainFleetSettings', 'joinFleet', 'loadFleetSettings', 'trackSessions'];

const FLEET_TYPES = [
  'BusStatus',
  'BusWrite',
  'Fence',
  'FleetBroadcastOptions',
  'FleetBroadcastResult',
  'FleetBus',
  'FleetCloseOptions',
  'FleetCloseResult',
  'FleetHealth',
  'FleetMember',
  'FleetSendOptions',
  'FleetSendResult',
  'FleetSessions',
  'FleetSettingValue',
  'FleetSettings',
  'FleetSettingsExplained',
  'FleetUserCloseResult',
  'FleetUserSendResult',
  'JoinFleetOptions',
  'MemoryBusNetworkOptions',
  'ReapInfo',
  'RedisBusOptions',
  'SessionRecord',
  'SweepResult',
  'TrackSessionsOptions',
];

const ENTRIES = { root: '../lib/index.ts', testing: '../lib/testing/index.ts', fleet: '../lib/fleet/index.ts' };

/**
 * Every name an entry file exports, read from its `export { ... } from './...'` lists (an entry
 * declares nothing itself). The ones that are not runtime names of the loaded module exist only
 * for the type checker: no type checker needed to tell them apart (building one over lib/ took
 * seconds of the unit run on a busy machine).
 */
function exportedNames(entry: string): string[] {
  const file = fileURLToPath(new URL(entry, import.meta.url));
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  return source.statements
    .flatMap((statement) => {
      const from = statement.kind === ts.SyntaxKind.ExportDeclaration ? (statement as ts.ExportDeclaration).moduleSpecifier : undefined;
      const list = (statement as ts.ExportDeclaration).exportClause;
      if (!from || !ts.isStringLiteral(from) || !from.text.startsWith('./') || !list || !ts.isNamedExports(list)) {
        throw new Error(`${entry}: an entry only re-exports names from lib/, as export { ... } from './...'; read this statement here too: ${statement.getText(source)}`);
      }
      return list.elements.map((element) => element.name.text);
    })
    .sort();
}

/**
 * The ioredis modules a fresh process has loaded once it imported the root entry (through tsx).
 * ioredis is CommonJS: whatever loads it, it shows in the require cache.
 */
function ioredisLoadedByRootEntry(): Promise<string[]> {
  const script = `
    await import(${JSON.stringify(new URL('../lib/index.ts', import.meta.url).href)});
    const { createRequire } = await import('node:module');
    console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache).filter((file) => file.includes('ioredis'))));
  `;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' }, (error, stdout) =>
      error ? reject(error) : resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as string[]),
    );
  });
}

describe('the public surface', function () {
  const modules = { root, testing, fleet };
  let types: Record<keyof typeof ENTRIES, string[]>;
  before(() => {
    types = Object.fromEntries(
      Object.entries(ENTRIES).map(([key, entry]) => [key, exportedNames(entry).filter((name) => !(name in modules[key as keyof typeof ENTRIES]))]),
    ) as typeof types;
  });

  it('"ws-timeouts" exports exactly these runtime names', () => {
    expect(Object.keys(root).sort()).to.deep.equal(ROOT_VALUES);
  });

  it('"ws-timeouts" exports exactly these types', () => {
    expect(types.root).to.deep.equal(ROOT_TYPES);
  });

  it('"ws-timeouts/testing" exports exactly these runtime names', () => {
    expect(Object.keys(testing).sort()).to.deep.equal(TESTING_VALUES);
  });

  it('"ws-timeouts/testing" exports exactly these types', () => {
    expect(types.testing).to.deep.equal(TESTING_TYPES);
  });

  it('"ws-timeouts/fleet" exports exactly these runtime names', () => {
    expect(Object.keys(fleet).sort()).to.deep.equal(FLEET_VALUES);
  });

  it('"ws-timeouts/fleet" exports exactly these types', () => {
    expect(types.fleet).to.deep.equal(FLEET_TYPES);
  });

  it('guides/fleet.md documents every name "ws-timeouts/fleet" exports', () => {
    const guide = readFileSync(new URL('../guides/fleet.md', import.meta.url), 'utf8');
    expect([...FLEET_VALUES, ...FLEET_TYPES].filter((name) => !new RegExp(`\\b${name}\\b`).test(guide))).to.deep.equal([]);
  });

  it('"ws-timeouts" never loads ioredis: an app without Redis does not need it', async function () {
    this.timeout(30_000); // a child process that loads the entry through tsx
    expect(await ioredisLoadedByRootEntry()).to.deep.equal([]);
  });

  it('"ws-timeouts" imports nothing from lib/fleet or ioredis, not even a type', () => {
    // Every module the root entry reaches through its imports, read statically.
    const seen = new Set<string>();
    const bare = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const { fileName } of ts.preProcessFile(readFileSync(file, 'utf8')).importedFiles) {
        if (!fileName.startsWith('.')) bare.add(fileName);
        else visit(fileURLToPath(new URL(fileName.replace(/\.js$/, '.ts'), pathToFileURL(file))));
      }
    };
    visit(fileURLToPath(new URL(ENTRIES.root, import.meta.url)));
    expect(seen.size, 'modules reached').to.be.above(10);
    expect([...seen].filter((file) => /[\\/]lib[\\/]fleet[\\/]/.test(file))).to.deep.equal([]);
    expect([...bare].filter((name) => name.startsWith('ioredis'))).to.deep.equal([]);
  });

  it('README.md documents every exported name', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const undocumented = [...ROOT_VALUES, ...ROOT_TYPES, ...TESTING_VALUES, ...TESTING_TYPES].filter(
      (name) => !new RegExp(`\\b${name}\\b`).test(readme),
    );
    expect(undocumented).to.deep.equal([]);
  });
});
