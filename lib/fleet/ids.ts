/**
 * Fleet ids. A node id names one process of the fleet; a fleet connection id is
 * `${nodeId}:${connectionId}`, unique across the fleet because node ids are, and it says which
 * node holds the connection, so a remote operation asks that node only.
 */
import { hostname } from 'node:os';

/** What a node id may be: it is part of Redis keys, channels and fleet ids (so never a `:`). */
export const NODE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

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

export function fleetConnectionId(nodeId: string, connectionId: string): string {
  return `${nodeId}:${connectionId}`;
}

/** The node and local connection id of a fleet id; null when it is not one. */
export function parseFleetConnectionId(fleetId: unknown): { nodeId: string; connectionId: string } | null {
  if (typeof fleetId !== 'string') return null;
  const colon = fleetId.indexOf(':');
  if (colon < 0) return null;
  const nodeId = fleetId.slice(0, colon);
  const connectionId = fleetId.slice(colon + 1);
  return NODE_ID_PATTERN.test(nodeId) && connectionId !== '' ? { nodeId, connectionId } : null;
}
