/**
 * Admission: the per-IP limit on the real client (for untrusted peers it was already counted at
 * accept), then on to the ClientHello when routing on this port needs SNI, else to routing.
 */
import type { IStage } from '../connection-manager.js';
import { reject } from './common.js';

export const admissionStage: IStage = {
  enter(conn, initial) {
    const manager = conn.manager;
    if (!manager.admitIP(conn)) {
      reject(conn, 'ERR_LIMIT_PER_IP', `client ${conn.clientIP} is at maxConnectionsPerIP`);
      return;
    }
    // The real client is known from here on (connection-open still saw only the TCP peer).
    manager.events.emit('connection-admitted', conn);
    manager.advance(conn, manager.routes.needsServerName(conn.localPort) ? 'client-hello' : 'routing', initial);
  },
};
