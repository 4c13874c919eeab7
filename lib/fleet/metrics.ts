/**
 * The fleet's Prometheus counters, registered next to a `TimeoutMetrics` (same prom-client
 * registry, same prefix), so one `/metrics` serves both. Several nodes in one process (tests)
 * share the counters.
 *
 * | metric (after the prefix) | type | labels | meaning |
 * | --- | --- | --- | --- |
 * | `fleet_operations_total` | counter | `op`, `result` | fleet operations by op (`broadcast`, `send`, `close`, `sendToUser`, `closeUser`) and result (`expired`: counted by the node that dropped a request past its deadline) |
 * | `fleet_bus_errors_total` | counter | `op` | bus calls that failed (Redis down, stalled or closed), by what the node was doing |
 * | `fleet_deaf_subscribers_total` | counter | | times the canary found this node's subscriber deaf (it then resubscribed) |
 */
import * as prom from 'prom-client';
import type { TimeoutMetrics } from '../metrics.js';

export class FleetMetrics {
  readonly operations: prom.Counter<'op' | 'result'>;
  readonly busErrors: prom.Counter<'op'>;
  readonly deafSubscribers: prom.Counter;

  constructor(metrics: TimeoutMetrics) {
    const { prefix, register } = metrics;
    const counter = <L extends string>(name: string, help: string, labelNames: L[]): prom.Counter<L> =>
      (register.getSingleMetric(`${prefix}${name}`) as prom.Counter<L> | undefined) ??
      new prom.Counter({ name: `${prefix}${name}`, help, labelNames, registers: [register] });
    this.operations = counter('fleet_operations_total', 'Fleet operations by op and result (ok, partial, unavailable, sent, gone, unknown, expired, ...)', ['op', 'result']);
    this.busErrors = counter('fleet_bus_errors_total', 'Fleet bus calls that failed (Redis down, stalled or closed), by op', ['op']);
    this.deafSubscribers = counter('fleet_deaf_subscribers_total', 'Times the canary found the fleet subscriber deaf (then resubscribed)', []);
  }
}
