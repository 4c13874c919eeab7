import { expect } from 'chai';
import express, { type NextFunction, type Request, type Response } from 'express';
import { silentLogger, websocket, type WebSocketHandler } from '../lib/index.js';
import type { connectHandler } from '../lib/testing/index.js';
import WebSocket from 'ws';
import { closed, nextMessage, startExpress, type ExpressTestServer } from './support/express-server.js';

// Route params are typed as in an ordinary Express 5 route with the same path. This file is
// type-checked by `tsc --noEmit` (npm test): a line marked @ts-expect-error that compiles fails
// the check, and so does a correct line that does not. The routes below also run.

const logger = silentLogger;

function auth(_req: Request, res: Response, next: NextFunction): void {
  res.locals.userId = 'alice';
  next();
}

/** The app of the runtime specs; every route also carries type assertions. */
function typedApp(): express.Express {
  const app = express();

  // Inline: params inferred from the path.
  app.get('/ws/rooms/:room', websocket(async (manager, req) => {
    const room: string = req.params.room;
    await manager.sendTextWithTimeout(`room ${room}`);
  }, { logger }));

  // Inline after middleware (typed as a plain Express handler, and inline), two params.
  app.get('/ws/rooms/:room/users/:user', auth, (req, _res, next) => {
    const user: string = req.params.user;
    next(user === 'mallory' ? new Error('not mallory') : undefined);
  }, websocket(async (manager, req) => {
    const { room, user }: { room: string; user: string } = req.params;
    await manager.sendTextWithTimeout(`${user} in ${room}`);
  }, { logger }));

  // An explicit annotation, as Express accepts on an ordinary route.
  app.get('/ws/annotated/:room', websocket(async (manager, req: Request<{ room: string }>) => {
    await manager.sendTextWithTimeout(`annotated ${req.params.room}`);
  }, { logger }));

  // On a router, and with app.route().
  const router = express.Router();
  router.get('/:room', websocket(async (manager, req) => {
    const room: string = req.params.room;
    await manager.sendTextWithTimeout(`router ${room}`);
  }, { logger }));
  app.use('/ws/router', router);
  app.route('/ws/route/:room').get(websocket(async (manager, req) => {
    const room: string = req.params.room;
    await manager.sendTextWithTimeout(`route ${room}`);
  }, { logger }));

  // A handler declared apart from its route says what it needs.
  const declared: WebSocketHandler<{ room: string }> = async (manager, req) => {
    await manager.sendTextWithTimeout(`declared ${req.params.room}`);
  };
  app.get('/ws/declared/:room', websocket(declared, { logger }));
  const testable: Parameters<typeof connectHandler>[0] = declared; // and the testing kit runs it
  void testable;

  // Wildcards and optional params, as Express types them.
  app.get('/ws/files/*path', websocket(async (manager, req) => {
    const path: string[] = req.params.path;
    await manager.sendTextWithTimeout(`files ${path.join('/')}`);
  }, { logger }));
  app.get('/ws/maybe{/:room}', websocket(async (manager, req) => {
    const room: string | undefined = req.params.room;
    await manager.sendTextWithTimeout(`maybe ${room ?? '-'}`);
  }, { logger }));

  // What must be refused.
  app.get('/ws/refused/:room', websocket((_manager, req) => {
    // @ts-expect-error the path has no :nope
    void req.params.nope;
    // @ts-expect-error a param is a string
    const n: number = req.params.room;
    void n;
  }, { logger }));
  app.get('/ws/refused-files/*path', websocket((_manager, req) => {
    // @ts-expect-error a wildcard is a list of segments
    const path: string = req.params.path;
    void path;
  }, { logger }));
  const undeclared: WebSocketHandler = (_manager, req) => {
    // @ts-expect-error without a route, a param may be a list (a wildcard), as in Express
    const room: string = req.params.room;
    void room;
  };
  void undeclared;

  return app;
}

describe('typed route params of websocket() (lib/express/route-types)', () => {
  let server: ExpressTestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  const cases: Array<[path: string, expected: string]> = [
    ['/ws/rooms/lobby', 'room lobby'],
    ['/ws/rooms/lobby/users/bob', 'bob in lobby'],
    ['/ws/annotated/lobby', 'annotated lobby'],
    ['/ws/router/lobby', 'router lobby'],
    ['/ws/route/lobby', 'route lobby'],
    ['/ws/declared/lobby', 'declared lobby'],
    ['/ws/files/a/b', 'files a/b'],
    ['/ws/maybe', 'maybe -'],
    ['/ws/maybe/lobby', 'maybe lobby'],
  ];
  for (const [path, expected] of cases) {
    it(`hands the handler the params of ${path}`, async () => {
      server = await startExpress(typedApp(), { logger });
      const ws = new WebSocket(`${server.wsUrl}${path}`); // listening before 'open': the greeting may come with the 101
      expect(await nextMessage(ws)).to.equal(expected);
      ws.close();
      await closed(ws);
    });
  }
});
