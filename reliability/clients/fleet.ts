/**
 * A fleet of `ws` clients in its own process (started by ../support/fleet.ts with `fork`), so
 * that hundreds of clients do not share an event loop (or a stall) with the server under test.
 * The parent drives it over IPC: `{ id, op, ...args }` in, `{ id, ok, ...result }` out.
 *
 * Groups of clients are opened with one behaviour each: answer pings or not (`autoPong`), read
 * or stop reading (`pause`), check that numbered broadcasts arrive in order (`checkSeq`).
 * When the parent goes away, every socket is terminated and the process ends by itself.
 */
import WebSocket from 'ws';

interface Client {
  ws: WebSocket;
  openedAt: number;
  closedAt: number;
  code: number;
  reason: string;
  received: number;
  lastSeq: number;
  seqErrors: number;
  bytes: number;
  /** When a `reconnectAdvised` notice arrived (0: none), and the close it announced (server clock + retryAfterMs). */
  advisedAt: number;
  plannedCloseAt: number;
}

interface OpenArgs {
  group: string;
  url: string;
  count: number;
  autoPong?: boolean;
  pause?: boolean;
  checkSeq?: boolean;
  concurrency?: number;
  headers?: Record<string, string>;
}

const groups = new Map<string, Client[]>();

function openOne(args: OpenArgs): Promise<Client | Error> {
  return new Promise((resolve) => {
    const ws = new WebSocket(args.url, { autoPong: args.autoPong ?? true, headers: args.headers, handshakeTimeout: 10_000, perMessageDeflate: false });
    const client: Client = { ws, openedAt: 0, closedAt: 0, code: 0, reason: '', received: 0, lastSeq: -1, seqErrors: 0, bytes: 0, advisedAt: 0, plannedCloseAt: 0 };
    ws.on('error', (err) => {
      if (client.openedAt === 0) resolve(err);
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(new Error(`HTTP ${res.statusCode}`));
      ws.terminate();
    });
    ws.on('message', (data: Buffer, isBinary) => {
      client.received++;
      client.bytes += data.length;
      if (!isBinary && client.advisedAt === 0 && data.includes('"reconnectAdvised"')) {
        client.advisedAt = Date.now();
        const advice = JSON.parse(data.toString()) as { timestamp: number; retryAfterMs: number };
        client.plannedCloseAt = advice.timestamp + advice.retryAfterMs;
      }
      if (args.checkSeq && !isBinary) {
        // Broadcasts start with `<seq>:`; every one must arrive, in order.
        const seq = Number(data.toString('latin1', 0, 12).split(':', 1)[0]);
        if (seq !== client.lastSeq + 1) client.seqErrors++;
        client.lastSeq = seq;
      }
    });
    ws.on('close', (code, reason) => {
      client.closedAt = Date.now();
      client.code = code;
      client.reason = reason.toString();
    });
    ws.once('open', () => {
      client.openedAt = Date.now();
      if (args.pause) ws.pause();
      resolve(client);
    });
  });
}

async function open(args: OpenArgs): Promise<Record<string, unknown>> {
  const list = groups.get(args.group) ?? [];
  groups.set(args.group, list);
  let next = 0;
  let failed = 0;
  const errors: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < args.count) {
      next++;
      const result = await openOne(args);
      if (result instanceof Error) {
        failed++;
        if (errors.length < 3) errors.push(result.message);
      } else list.push(result);
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: Math.min(args.concurrency ?? 50, args.count) }, worker));
  return { opened: args.count - failed, failed, errors, ms: Date.now() - started };
}

function stats(group: string): Record<string, unknown> {
  const list = groups.get(group) ?? [];
  const codes: Record<string, number> = {};
  let open = 0;
  let seqErrors = 0;
  let minReceived = Infinity;
  let minMessages = Infinity;
  let received = 0;
  const closeTimes: number[] = [];
  const openTimes: number[] = [];
  const plannedCloseTimes: number[] = [];
  let advisedBeforeClose = 0;
  for (const c of list) {
    if (c.advisedAt > 0 && (c.closedAt === 0 || c.advisedAt <= c.closedAt)) advisedBeforeClose++;
    if (c.plannedCloseAt > 0) plannedCloseTimes.push(c.plannedCloseAt);
    openTimes.push(c.openedAt);
    if (c.closedAt === 0) open++;
    else {
      codes[c.code] = (codes[c.code] ?? 0) + 1;
      closeTimes.push(c.closedAt);
    }
    seqErrors += c.seqErrors;
    received += c.received;
    minReceived = Math.min(minReceived, c.lastSeq + 1);
    minMessages = Math.min(minMessages, c.received);
  }
  return { count: list.length, open, closed: list.length - open, codes, closeTimes, openTimes, plannedCloseTimes, advisedBeforeClose, seqErrors, received, minSeqReceived: list.length ? minReceived : 0, minReceived: list.length ? minMessages : 0 };
}

async function closeGroup(group: string, terminate: boolean): Promise<Record<string, unknown>> {
  const list = groups.get(group) ?? [];
  await Promise.all(
    list.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          c.ws.once('close', () => resolve());
          if (terminate) c.ws.terminate();
          else {
            c.ws.resume();
            c.ws.close(1000);
          }
        }),
    ),
  );
  return stats(group);
}

const ops: Record<string, (args: any) => unknown> = {
  open,
  stats: (args: { group: string }) => stats(args.group),
  pause: (args: { group: string }) => groups.get(args.group)?.forEach((c) => c.ws.pause()),
  resume: (args: { group: string }) => groups.get(args.group)?.forEach((c) => c.ws.resume()),
  close: (args: { group: string }) => closeGroup(args.group, false),
  terminate: (args: { group: string }) => closeGroup(args.group, true),
  send: (args: { group: string; data: string }) => groups.get(args.group)?.forEach((c) => c.ws.readyState === WebSocket.OPEN && c.ws.send(args.data)),
};

process.on('message', (message: { id: number; op: string; [key: string]: unknown }) => {
  const op = ops[message.op];
  Promise.resolve()
    .then(() => {
      if (!op) throw new Error(`unknown op ${message.op}`);
      return op(message);
    })
    .then(
      (result) => process.send?.({ id: message.id, ok: true, result: result ?? null }),
      (err: Error) => process.send?.({ id: message.id, ok: false, error: err.message }),
    );
});

// The parent is gone (or finished): drop every socket; nothing else keeps this process alive.
process.on('disconnect', () => {
  for (const list of groups.values()) for (const c of list) c.ws.terminate();
});
