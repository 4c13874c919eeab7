export { systemClock, type Clock, type TimerHandle } from './clock.js';
export {
  CloseCode,
  CloseReason,
  type CloseCodeValue,
  type TimeoutReason,
} from './close-codes.js';
export {
  DEFAULT_TIMEOUT_CONFIG,
  TIMEOUT_ENV,
  TIMEOUT_PROFILES,
  defaultTimeoutConfig,
  explainTimeoutConfig,
  isTimeoutConfig,
  loadReconnectBudgetOptions,
  loadTimeoutConfig,
  resolveTimeoutConfig,
  type TimeoutConfig,
  type TimeoutConfigExplanation,
  type TimeoutProfile,
  type TimeoutValueOrigin,
  type TimeoutValueSource,
} from './config.js';
export { ConfigError, SessionCleanupError, SessionStoreError, formatConfigProblems, type ConfigProblem } from './errors.js';
export { createLogger, redact, silentLogger, type CreateLoggerOptions, type Logger } from './logger.js';
export {
  WebSocketTimeoutManager,
  type CloseOutcome,
  type HeartbeatMode,
  type ManagerOptions,
  type SlowConsumerPolicy,
} from './manager.js';
export type { ManagedSocket, Message } from './socket.js';
export {
  attachWebSockets,
  installGracefulShutdown,
  shutdownGracefully,
  websocket,
  wsTimeouts,
  WebSocketGateway,
  type AttachWebSocketsOptions,
  type ClosesAll,
  type GracefulShutdownOptions,
  type ManagerSink,
  type RefusalReason,
  type ShutdownOptions,
  type WebSocketHandler,
  type WebSocketRoute,
  type WsTimeoutsOptions,
} from './express/index.js';
export {
  ConnectionRegistry,
  ESTIMATED_SESSION_BYTES,
  type BroadcastOptions,
  type BroadcastResult,
  type ConnectionSnapshot,
  type DisconnectInfo,
  type RegistryOptions,
  type SessionMetrics,
} from './registry.js';
export { ReconnectBudget, type ReconnectBudgetOptions } from './reconnect-budget.js';
export type { ReconnectAdvice } from './close-pacer.js';
export { checkDrainBudget, type DrainBudgetInput, type DrainBudgetReport } from './drain.js';
export { TimeoutMetrics, metricsHandler, type TimeoutMetricsOptions } from './metrics.js';
export { checkHealth, healthHandler, type HealthOptions, type HealthReport, type HealthStatus } from './health.js';
