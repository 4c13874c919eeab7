import { expect } from 'chai';
import { Writable } from 'node:stream';
import winston from 'winston';
import { createLogger, defaultLogger, silentLogger } from '../lib/logger.js';

/** A logger from `createLogger()` whose JSON lines are kept, parsed, instead of printed. */
function capturedLogger(level = 'debug') {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const logger = createLogger({ level, transports: [new winston.transports.Stream({ stream })] });
  return {
    logger,
    /** The raw text of every line: what a log shipper would see. */
    text: () => lines.join(''),
    entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    last: () => JSON.parse(lines.at(-1)!) as Record<string, unknown>,
  };
}

/** Logs `message` (and `meta`), then checks no secret appears anywhere in the written line. */
function logAndCheck(message: string | Error, meta: Record<string, unknown> | undefined, secrets: string[]) {
  const log = capturedLogger();
  if (typeof message === 'string') log.logger.info(message, meta);
  else log.logger.error(message);
  const text = log.text();
  for (const secret of secrets) expect(text, `"${secret}" leaked`).not.to.include(secret);
  return log.last();
}

describe('createLogger() redaction', () => {
  describe('free text', () => {
    it('drops the value of token=… pairs, whatever the token is called, and keeps the name', () => {
      const entry = logAndCheck(
        'upgrade refused: token=tk1 access_token=tk2 myToken=tk3 apiToken: tk4 x-auth-token: tk5 {"refreshToken":"tk6"} client_secret=tk7 password=tk8',
        undefined,
        ['tk1', 'tk2', 'tk3', 'tk4', 'tk5', 'tk6', 'tk7', 'tk8'],
      );
      expect(entry.message).to.include('upgrade refused: token=[redacted]').and.include('myToken=[redacted]').and.include('apiToken: [redacted]');
    });

    it('drops Authorization credentials with any scheme, not only Bearer and Basic', () => {
      for (const [header, secrets] of [
        ['Authorization: Bearer eyJhbGciOi.payload.sig', ['eyJhbGciOi', 'payload']],
        ['Authorization: Basic YWxpY2U6czNjcmV0', ['YWxpY2U6czNjcmV0']],
        ['Authorization: Token abc123secret', ['abc123secret']],
        ['Authorization: Digest username="alice", realm="ws", response="6629fae49393a053"', ['alice', '6629fae49393a053']],
        ['authorization=AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130, Signature=fe5f80f7', ['AKIDEXAMPLE', 'fe5f80f7']],
        ['Proxy-Authorization: Negotiate YIIFzQYGKwYBBQUC', ['YIIFzQYGKwYBBQUC']],
      ] as const) {
        const entry = logAndCheck(`request failed: ${header}`, undefined, [...secrets]);
        expect(entry.message, header).to.match(/^request failed: (Proxy-)?[Aa]uthorization[:=] ?\[redacted\]/);
      }
    });

    it('drops a bearer or basic credential quoted without its header name', () => {
      logAndCheck('retrying with Bearer tkn.abc.def', undefined, ['tkn.abc.def']);
    });

    it('drops every cookie of a Cookie header, not only the first', () => {
      logAndCheck('Cookie: sid=c1; theme=dark; csrf=c2', undefined, ['c1', 'c2']);
    });

    it('drops query strings from paths, full URLs and bare routes, keeping the path', () => {
      const entry = logAndCheck(
        'GET /ws/echo?ticket=q1 then wss://example.com/ws?token=q2 then ws://127.0.0.1:3000?key=q3 then rooms?user=q4&sig=q5',
        undefined,
        ['q1', 'q2', 'q3', 'q4', 'q5'],
      );
      expect(entry.message).to.include('GET /ws/echo?[redacted]').and.include('wss://example.com/ws?[redacted]').and.include('rooms?[redacted]');
    });

    it('keeps text without secrets as it is', () => {
      const message = 'WebSocket timeout: idle for 60000 ms (closeCode 4001, reason idle_timeout)';
      expect(logAndCheck(message, { connectionId: 'c1', userId: 'alice', idleTimeoutMs: 60_000 }, [])).to.include({
        message,
        connectionId: 'c1',
        userId: 'alice',
        idleTimeoutMs: 60_000,
      });
    });
  });

  describe('structured fields', () => {
    it('replaces sensitive keys whole: tokens, headers, cookies, queries, session ids', () => {
      const entry = logAndCheck(
        'upgrade',
        {
          token: 's1',
          headers: { host: 'example.com', 'sec-websocket-key': 's2' },
          cookie: 's3',
          query: { ticket: 's4' },
          sessionId: 's5',
          apiKey: 's6',
          userId: 'alice',
        },
        ['s1', 's2', 's3', 's4', 's5', 's6'],
      );
      expect(entry).to.include({ token: '[redacted]', headers: '[redacted]', query: '[redacted]', userId: 'alice' });
    });

    it('redacts nested keys and strings at any depth, in objects and arrays', () => {
      const deep = { a: { b: { c: { d: { e: { f: { g: { token: 'n1', url: '/ws?t=n2' } } } } } } } };
      const entry = logAndCheck('nested', { request: { auth: { password: 'n3' } }, list: [{ secret: 'n4' }, 'Bearer n5'], deep }, [
        'n1',
        'n2',
        'n3',
        'n4',
        'n5',
      ]);
      expect(entry.request).to.deep.equal({ auth: { password: '[redacted]' } });
      expect(entry.list).to.deep.equal([{ secret: '[redacted]' }, 'Bearer [redacted]']);
    });

    it('survives a cyclic object', () => {
      const cyclic: Record<string, unknown> = { name: 'loop', token: 'cy1' };
      cyclic.self = cyclic;
      const entry = logAndCheck('cycle', { cyclic }, ['cy1']);
      expect((entry.cyclic as Record<string, unknown>).name).to.equal('loop');
    });
  });

  describe('errors', () => {
    // Their stacks carry file paths, so the secrets must be strings no checkout path holds (a clone in ci-clone2 holds "e2").
    it('keeps the name, message, code, stack and cause of an error in meta, each redacted', () => {
      const cause = Object.assign(new Error('store said password=Secret-E1'), { code: 'ECONNRESET' });
      const error = Object.assign(new Error('GET /ws?token=Secret-E2 failed with Authorization: Bearer Secret-E3'), { code: 'E_UPGRADE', cause });
      const entry = logAndCheck('handler failed', { error }, ['Secret-E1', 'Secret-E2', 'Secret-E3']);
      const logged = entry.error as Record<string, unknown>;
      expect(logged).to.include({ name: 'Error', message: 'GET /ws?[redacted] failed with Authorization: [redacted]', code: 'E_UPGRADE' });
      expect(logged.stack).to.be.a('string').and.include('GET /ws?[redacted]').and.match(/\n\s+at /);
      expect(logged.cause).to.include({ message: 'store said password=[redacted]', code: 'ECONNRESET' });
    });

    it('logs an error given as the message, redacted, instead of an empty line', () => {
      const entry = logAndCheck(new Error('top-level failure, token=Secret-E4'), undefined, ['Secret-E4']);
      expect(entry.level).to.equal('error');
      expect(entry.message).to.equal('top-level failure, token=[redacted]');
      expect(entry.stack).to.be.a('string').and.include('token=[redacted]');
    });
  });

  it('writes one JSON line per entry with level, message and timestamp', () => {
    const log = capturedLogger('info');
    log.logger.debug('not written');
    log.logger.info('written', { connectionId: 'c7' });
    const entries = log.entries();
    expect(entries).to.have.length(1);
    expect(entries[0]).to.include({ level: 'info', message: 'written', connectionId: 'c7' });
    expect(Date.parse(entries[0]!.timestamp as string)).to.be.a('number').and.not.NaN;
  });
});

describe('defaultLogger() and silentLogger', () => {
  it('shares one default logger', () => {
    expect(defaultLogger()).to.equal(defaultLogger());
  });

  it('has a silent logger that accepts every level', () => {
    for (const level of ['error', 'warn', 'info', 'debug'] as const) expect(silentLogger[level]('x', { token: 'y' })).to.equal(undefined);
  });
});
