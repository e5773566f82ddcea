/**
 * Routing: the best route for port, SNI and real client; its allow/block lists and connection
 * limit; then TLS termination when the route asks for it, else straight to the backend.
 */
import type { IResolvedRoute } from '../config.js';
import type { Connection, IStage } from '../connection-manager.js';
import { reject } from './common.js';

/** Binds the connection to `route` (within its limit) and starts the route's action. */
export function startAction(conn: Connection, route: IResolvedRoute, initial: Buffer): void {
  if (conn.route !== route && !conn.manager.admitRoute(conn, route)) {
    reject(conn, 'ERR_LIMIT_ROUTE', `route "${route.name}" is at maxConnections`);
    return;
  }
  const terminates = route.tlsMode === 'terminate' || route.tlsMode === 'terminate-and-reencrypt';
  conn.manager.advance(conn, terminates ? 'tls-handshake' : route.http !== null ? 'http' : 'connecting', initial);
}

export const routingStage: IStage = {
  enter(conn, initial) {
    const route = conn.manager.routes.match(conn.localPort, conn.serverName, conn.clientIP);
    if (route === undefined) {
      reject(conn, 'ERR_ROUTE_NOT_FOUND', `no route for port ${conn.localPort}${conn.serverName ? ` and SNI ${conn.serverName}` : ''}`);
    } else if (route.http !== null) {
      // Each request picks its own route, whose lists the HTTP stage checks (403); this one may not be it.
      startAction(conn, route, initial);
    } else if (route.blockList?.has(conn.clientIP)) {
      reject(conn, 'ERR_SECURITY_BLOCKED', `client ${conn.clientIP} is on route "${route.name}"'s block list`);
    } else if (route.allowList !== null && !route.allowList.has(conn.clientIP)) {
      reject(conn, 'ERR_SECURITY_NOT_ALLOWED', `client ${conn.clientIP} is not on route "${route.name}"'s allow list`);
    } else startAction(conn, route, initial);
  },
};
