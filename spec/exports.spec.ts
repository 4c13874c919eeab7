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

const ENTRIES = { root: '../lib/index.ts', testing: '../lib/testing/index.ts' };

/** The names each entry file exports that exist only for the type checker (interfaces, type aliases). */
function typeOnlyExports(): Record<keyof typeof ENTRIES, string[]> {
  const files = Object.values(ENTRIES).map((entry) => fileURLToPath(new URL(entry, import.meta.url)));
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: ['node'],
    skipLibCheck: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const typesOf = (file: string): string[] =>
    checker
      .getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file)!)!)
      .filter((symbol) => !(checker.getAliasedSymbol(symbol).flags & ts.SymbolFlags.Value))
      .map((symbol) => symbol.name)
      .sort();
  return { root: typesOf(files[0]!), testing: typesOf(files[1]!) };
}

describe('the public surface', function () {
  let types: ReturnType<typeof typeOnlyExports>;
  before(function () {
    this.timeout(60_000); // the type checker reads the entry files with the express, ws and winston types
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
