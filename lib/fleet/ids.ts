/**
 * Fleet ids. A node id names one process of the fleet; an instance is one run of a node,
 * `${nodeId}@${startedAt}`; a fleet connection id is `${instance}:${connectionId}`. It says which
 * node holds the connection, so a remote operation asks that node only, and it is unique across
 * restarts too: a node restarted under the same id numbers its connections from the start
 * again, and an id of its earlier run must not reach the new connection that reuses its number.
 */
import { hostname } from 'node:os';

/** What a node id may be: it is part of Redis keys, channels and fleet ids (so never a `:` or `@`). */
const NODE_ID = '[A-Za-z0-9._-]{1,64}';
export const NODE_ID_PATTERN = new RegExp(`^${NODE_ID}$`);
/** Any run after the `@`: a clock may give a fractional or (faked) negative start time. */
const INSTANCE_PATTERN = new RegExp(`^(${NODE_ID})@.+$`);

/** `nodeId`, checked. @throws {RangeError} naming the rule and echoing the value. */
export function checkNodeId(nodeId: unknown): string {
  if (typeof nodeId !== 'string' || !NODE_ID_PATTERN.test(nodeId)) {
    throw new RangeError(`joinFleet: nodeId must be 1 to 64 characters of A-Z a-z 0-9 . _ - (no ':'), e.g. 'web-1', got ${JSON.stringify(nodeId)}`);
  }
  return nodeId;
}

/**
 * `${hostname}-${suffix}`, with characters a node id may not hold replaced by `-`. The pid by
 * default (unique per process); a server may pass its port for an id stable across restarts.
 */
export function defaultNodeId(suffix: string | number = process.pid): string {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 50) || 'node';
  return `${host}-${suffix}`;
}

/** `${nodeId}@${startedAt}`: one run of a node (`startedAt` in ms since the epoch). */
export const instanceOf = (nodeId: string, startedAt: number): string => `${nodeId}@${startedAt}`;

/** The node of an instance (see {@link instanceOf}); undefined when `instance` is not one. */
export const nodeIdOf = (instance: string): string | undefined => INSTANCE_PATTERN.exec(instance)?.[1];

export function fleetConnectionId(instance: string, connectionId: string): string {
  return `${instance}:${connectionId}`;
}

/** The node, its run and the local connection id of a fleet id; null when it is not one. */
export function parseFleetConnectionId(fleetId: unknown): { nodeId: string; instance: string; connectionId: string } | null {
  if (typeof fleetId !== 'string') return null;
  const colon = fleetId.indexOf(':');
  const instance = fleetId.slice(0, colon);
  const connectionId = fleetId.slice(colon + 1);
  const nodeId = colon < 0 || connectionId === '' ? undefined : nodeIdOf(instance);
  return nodeId === undefined ? null : { nodeId, instance, connectionId };
}
