// The public surface, pinned: every name the entry points export, runtime and type-only. A new
// export (or a lost one) fails here, so it is a decision: document it in README.md, then add it.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import * as root from '../lib/index.js';
import * as testing from '../lib/testing/index.js';

const ROOT_VALUES = [
  'CloseCode',
  'CloseReason',
  'ConfigError',
  'ConnectionRegistry',
  'DEFAULT_TIMEOUT_CONFIG',
  'ESTIMATED_SESSION_BYTES',
  'SessionCleanupError',
  'SessionStoreError',
  'TIMEOUT_ENV',
  'TIMEOUT_PROFILES',
  'TimeoutMetrics',
  'WebSocketGateway',
  'WebSocketTimeoutManager',
  'attachWebSockets',
  'checkHealth',
  'createLogger',
  'defaultTimeoutConfig',
  'explainTimeoutConfig',
  'formatConfigProblems',
  'healthHandler',
  'installGracefulShutdown',
  'isTimeoutConfig',
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

const ENTRIES = { root: '../lib/index.ts', testing: '../lib/testing/index.ts' };

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
  return { root: typesOf(files[0]!), testing: typesOf(files[1]!) };
}

describe('the public surface', function () {
  let types: ReturnType<typeof typeOnlyExports>;
  before(function () {
    this.timeout(20_000); // the type checker reads lib/ (about a second on a busy machine)
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

  it('README.md documents every exported name', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const undocumented = [...ROOT_VALUES, ...ROOT_TYPES, ...TESTING_VALUES, ...TESTING_TYPES].filter(
      (name) => !new RegExp(`\\b${name}\\b`).test(readme),
    );
    expect(undocumented).to.deep.equal([]);
  });
});
