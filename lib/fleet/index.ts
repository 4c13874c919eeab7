/**
 * `ws-timeouts/fleet`: many processes on one Redis. A separate entry point, so that an app that
 * never uses Redis never loads ioredis or any of this.
 *
 * ```ts
 * import { joinFleet } from 'ws-timeouts/fleet';
 * const fleet = await joinFleet({ registry, redisUrl: process.env.REDIS_URL });
 * await fleet.broadcast({ type: 'scan' }, { route: '/ws/scans' }); // every node's /ws/scans sockets
 * await fleet.close(fleetId); // 'closed' | 'gone' | 'unknown' | 'unavailable'
 * ```
 * @module
 */
export { BusUnavailableError, type BusStatus, type BusWrite, type Fence, type FleetBus } from './bus.js';
export { MemoryBus, MemoryBusNetwork, type MemoryBusNetworkOptions } from './memory-bus.js';
export { RedisBus, type RedisBusOptions } from './redis-bus.js';
export type { FleetMember } from './membership.js';
export {
  FLEET_DEFAULTS,
  FLEET_ENV,
  explainFleetSettings,
  loadFleetSettings,
  type FleetSettings,
  type FleetSettingsExplained,
  type FleetSettingValue,
} from './settings.js';
export {
  FleetNode,
  joinFleet,
  type FleetBroadcastOptions,
  type FleetBroadcastResult,
  type FleetCloseOptions,
  type FleetCloseResult,
  type FleetHealth,
  type FleetSendOptions,
  type FleetSendResult,
  type FleetUserCloseResult,
  type FleetUserSendResult,
  type JoinFleetOptions,
} from './node.js';
export type { SessionRecord } from './sessions.js';
export { trackSessions, type FleetSessions, type ReapInfo, type SweepResult, type TrackSessionsOptions } from './sweeper.js';
