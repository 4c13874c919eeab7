/** Express integration: config middleware, WebSocket routes, the upgrade gateway, graceful shutdown. */
export { wsTimeouts, type WsTimeoutsOptions } from './config-middleware.js';
export { attachWebSockets, WebSocketGateway, type AttachWebSocketsOptions, type ManagerSink, type RefusalReason, type WebSocketHandler } from './gateway.js';
export { installGracefulShutdown, shutdownGracefully, type ClosesAll, type GracefulShutdownOptions, type ShutdownOptions } from './shutdown.js';
export type { WebSocketRoute } from './route-types.js';
export { websocket } from './websocket-route.js';
