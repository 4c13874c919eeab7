/**
 * `ws-timeouts/testing`: test your own WebSocket handlers under fake timers, without a network.
 * Needs `@sinonjs/fake-timers` installed as a dev dependency of your project.
 */
export { createSocketPair, InMemoryServerSocket, TestClient, type CloseFrame, type SocketPairOptions } from './socket-pair.js';
export { createTestClock, installTestClock, DEFAULT_START, SAFE_TO_FAKE, type TestClock } from './clock.js';
export { captureLogs, type LogEntry } from './log-capture.js';
