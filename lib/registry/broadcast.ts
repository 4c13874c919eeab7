/**
 * Broadcast: one message to many tracked connections, serialised once, each send with its own
 * deadline; a recipient that cannot keep up is closed with 4003 and leaves the registry once closed.
 */
import { CloseCode, CloseReason } from '../close-codes.js';
import type { Logger } from '../logger.js';
import type { WebSocketTimeoutManager } from '../manager.js';
import { connectionMeta } from './log-meta.js';

export interface BroadcastOptions {
  /** Only managers for which this returns true get the message; a throwing filter skips that one (logged). */
  filter?: (manager: WebSocketTimeoutManager) => boolean;
  /** Send deadline per recipient, ms. @default config.messageTimeoutMs */
  timeoutMs?: number;
}

export interface BroadcastResult {
  /** Recipients whose frame was flushed within the deadline. */
  sent: number;
  /** Recipients whose send failed or missed the deadline; each is being closed with 4003. */
  failed: number;
}

/** `data` as it goes on the wire: strings as text, anything else as JSON; undefined when it cannot be serialised (logged). */
function wireText(data: unknown, logger: Logger): string | undefined {
  try {
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    if (text === undefined) logger.error('Broadcast failed: data is not serialisable to JSON', { dataType: typeof data });
    return text;
  } catch (err) {
    logger.error('Broadcast failed: data is not serialisable to JSON', { error: err });
    return undefined;
  }
}

/** Sends `data` to every open manager of `managers` that `options.filter` accepts. Never rejects for a recipient. */
export async function broadcast(
  managers: Iterable<WebSocketTimeoutManager>,
  data: unknown,
  options: BroadcastOptions,
  defaults: { timeoutMs: number; logger: Logger },
): Promise<BroadcastResult> {
  const { logger } = defaults;
  const timeoutMs = options.timeoutMs ?? defaults.timeoutMs;
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`ConnectionRegistry.broadcast: timeoutMs must be a non-negative number of milliseconds, got ${String(timeoutMs)}`);
  }
  const text = wireText(data, logger);
  if (text === undefined) return { sent: 0, failed: 0 };

  const recipients: WebSocketTimeoutManager[] = [];
  let filterErrors = 0;
  for (const manager of managers) {
    if (manager.state !== 'open') continue;
    if (options.filter) {
      try {
        if (!options.filter(manager)) continue;
      } catch (err) {
        if (filterErrors++ === 0) logger.error('Broadcast filter threw; skipping that recipient', connectionMeta(manager, { error: err }));
        continue;
      }
    }
    recipients.push(manager);
  }
  const results = await Promise.all(recipients.map((manager) => manager.sendTextWithTimeout(text, timeoutMs)));
  let sent = 0;
  let failed = 0;
  for (let i = 0; i < results.length; i++) {
    if (results[i]) {
      sent++;
      continue;
    }
    failed++;
    // Already closing when the manager's own slow-consumer policy closed it; idempotent otherwise.
    void recipients[i]!.gracefulClose(CloseCode.SendTimeout, CloseReason.send_timeout);
  }
  if (failed > 0 || filterErrors > 0) {
    logger.warn(`Broadcast failed for ${failed} recipient(s)`, { sent, failed, filterErrors, timeoutMs });
  } else {
    logger.debug('Broadcast sent', { sent });
  }
  return { sent, failed };
}
