import type { TimeoutConfig } from '../../lib/config.js';

/**
 * Short real timeouts (ms) for manager tests over real sockets: heartbeat every 50 ms, a silent
 * peer terminated after 200 ms, idle and lifetime off. Each test overrides what it is about.
 */
export const SHORT_TIMEOUTS: Partial<TimeoutConfig> = Object.freeze({
  heartbeatIntervalMs: 50,
  pingIntervalMs: 50,
  pongTimeoutMs: 150,
  messageTimeoutMs: 200,
  closeTimeoutMs: 200,
  idleTimeoutMs: 0,
  connectionTimeoutMs: 0,
  resolutionMs: 10,
});
