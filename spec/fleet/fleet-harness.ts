/**
 * Fleets under fake time: nodes on one MemoryBusNetwork, each with its own registry, all on one
 * injected test clock. Clients are in-memory socket pairs on that clock.
 */
import { MemoryBusNetwork, type MemoryBus } from '../../lib/fleet/memory-bus.js';
import { joinFleet, type FleetNode, type JoinFleetOptions } from '../../lib/fleet/node.js';
import { ConnectionRegistry } from '../../lib/registry.js';
import type { ManagerOptions, WebSocketTimeoutManager } from '../../lib/manager.js';
import { TimeoutMetrics } from '../../lib/metrics.js';
import { createSocketPair, type TestClient } from '../../lib/testing/socket-pair.js';
import { createTestClock, type TestClock } from '../../lib/testing/clock.js';
import { captureLogs } from '../../lib/testing/log-capture.js';

export const TTL_MS = 3_000;
export const REQUEST_MS = 200;

export interface TestNode {
  fleet: FleetNode;
  bus: MemoryBus;
  registry: ConnectionRegistry;
  /** A client connected to this node, with `options` (labels, userId). */
  connect(options?: ManagerOptions): { client: TestClient; manager: WebSocketTimeoutManager };
}

export interface TestFleet {
  t: TestClock;
  network: MemoryBusNetwork;
  logs: ReturnType<typeof captureLogs>;
  metrics: TimeoutMetrics;
  nodes: Record<string, TestNode>;
  join(nodeId: string, options?: Partial<JoinFleetOptions>): Promise<TestNode>;
  cleanup(): Promise<void>;
}

export async function createFleet(nodeIds: string[] = ['a', 'b', 'c']): Promise<TestFleet> {
  const t = createTestClock();
  const logs = captureLogs();
  const metrics = new TimeoutMetrics();
  const network = new MemoryBusNetwork({ clock: t.clock, commandTimeoutMs: REQUEST_MS, logger: logs.logger });
  const nodes: Record<string, TestNode> = {};
  const fleet: TestFleet = {
    t,
    network,
    logs,
    metrics,
    nodes,
    async join(nodeId, options = {}) {
      const registry = new ConnectionRegistry({
        clock: t.clock,
        logger: logs.logger,
        config: { idleTimeoutMs: 0, connectionTimeoutMs: 0, pingIntervalMs: 600_000, pongTimeoutMs: 600_000, messageTimeoutMs: 1_000, closeTimeoutMs: 1_000, resolutionMs: 100 },
      });
      const bus = network.bus();
      const node: TestNode = {
        bus,
        registry,
        fleet: await joinFleet({ registry, bus, nodeId, clock: t.clock, logger: logs.logger, metrics, membershipTtlMs: TTL_MS, requestTimeoutMs: REQUEST_MS, ...options }),
        connect(managerOptions) {
          const { server, client } = createSocketPair({ clock: t.clock });
          return { client, manager: registry.add(server, managerOptions) };
        },
      };
      nodes[nodeId] = node;
      return node;
    },
    async cleanup() {
      network.bringUp(); // a stalled network would hold leave() until its deadline, on a clock nobody moves
      for (const node of Object.values(nodes)) {
        await node.fleet.leave();
      }
    },
  };
  for (const nodeId of nodeIds) await fleet.join(nodeId);
  return fleet;
}
