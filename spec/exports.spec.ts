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
  'loadReconnectRate',
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

const LIB = fileURLToPath(new URL('../lib/', import.meta.url));

/**
 * The names each entry file exports that exist only for the type checker (interfaces, type aliases).
 * Whether a name is a value or a type is settled where lib/ declares it, so the program reads lib/
 * alone: no lib.d.ts, @types or dependency (parsing those took seconds of the unit run).
 */
function typeOnlyExports(): Record<keyof typeof ENTRIES, string[]> {
  const files = Object.values(ENTRIES).map((entry) => fileURLToPath(new URL(entry, import.meta.url)));
  const options: ts.CompilerOptions = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noLib: true, types: [], noEmit: true };
  const host = ts.createCompilerHost(options);
  const readSource = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, ...rest) => (fileName.startsWith(LIB) ? readSource(fileName, ...rest) : undefined);
  const program = ts.createProgram(files, options, host);
  const checker = program.getTypeChecker();
  const declaredInLib = (symbol: ts.Symbol): ts.Symbol => {
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    if (!target.declarations?.length || !target.declarations.every((d) => d.getSourceFile().fileName.startsWith(LIB))) {
      throw new Error(`${symbol.name} is not declared in lib/ (a missing name, or a dependency's: read that package too here)`);
    }
    return target;
  };
  const typesOf = (file: string): string[] =>
    checker
      .getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file)!)!)
      .filter((symbol) => !(declaredInLib(symbol).flags & ts.SymbolFlags.Value))
      .map((symbol) => symbol.name)
      .sort();
  return { root: typesOf(files[0]!), testing: typesOf(files[1]!), fleet: typesOf(files[2]!) };
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
  let types: ReturnType<typeof typeOnlyExports>;
  let ioredisLoaded: Promise<string[]>;
  before(function () {
    this.timeout(20_000); // the type checker reads lib/ (about a second on a busy machine)
    // The child process (about a second: it loads the entry through tsx) runs meanwhile.
    ioredisLoaded = ioredisLoadedByRootEntry();
    ioredisLoaded.catch(() => undefined); // awaited by its test; not unhandled if another fails first
    types = typeOnlyExports();
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
    this.timeout(30_000); // the child process started in before()
    expect(await ioredisLoaded).to.deep.equal([]);
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
