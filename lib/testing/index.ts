/**
 * `ws-timeouts/testing`: test your own WebSocket handlers under fake timers, without a network.
 *
 * - {@link createSocketPair}: an in-memory server socket that behaves like a `ws` 8 socket, and
 *   the client handle a test drives.
 * - {@link connectHandler}: runs a `websocket(handler)` route handler against that pair, with an
 *   Express request carrying query, params, headers and the `WS_*` config.
 * - {@link createTestClock} / {@link installTestClock}: `@sinonjs/fake-timers` wired the safe way
 *   (needs `npm i -D @sinonjs/fake-timers`; loaded only when called).
 * - {@link captureLogs}: a logger that records what was logged.
 */
export {
  createSocketPair,
  InMemoryServerSocket,
  TestClient,
  type ClientSendOptions,
  type CloseFrame,
  type SocketPairOptions,
  type VanishOptions,
} from './socket-pair.js';
export { connectHandler, type ConnectedHandler, type ConnectHandlerOptions } from './connect-handler.js';
export { createTestClock, installTestClock, type TestClock } from './clock.js';
export { SAFE_TO_FAKE } from './fake-timers-safety.js';
export { captureLogs, type LogEntry } from './log-capture.js';
