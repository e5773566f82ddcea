/**
 * Connecting: the TCP connection to the route's target (within connectTimeout), the PROXY header
 * as its first bytes when the route sends one, the bytes the client already sent, and TLS to the
 * backend when re-encrypting. Client bytes queue behind the header while the backend connects.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { IResolvedRoute } from '../config.js';
import type { Connection, IStage } from '../connection-manager.js';
import { buildProxyHeader } from '../proxy-header-sender.js';
import { EMPTY, type ITaggedSocket, kConn, proxyError, tag } from './common.js';
import { bridge, onBackendClose } from './forward.js';

function onBackendError(this: ITaggedSocket): void {
  const conn = this[kConn];
  conn.manager.close(conn, conn.stage === 'connecting' ? 'ERR_BACKEND_CONNECT' : 'backend-error');
}

function onBackendTlsError(this: ITaggedSocket): void {
  const conn = this[kConn];
  conn.manager.close(conn, 'ERR_BACKEND_TLS');
}

function connected(conn: Connection): void {
  if (conn.stage === 'connecting') conn.manager.advance(conn, 'forwarding', EMPTY);
}

function onBackendConnect(this: ITaggedSocket): void {
  const conn = this[kConn];
  if (conn.route?.tlsMode !== 'terminate-and-reencrypt') connected(conn);
}

function onBackendSecure(this: ITaggedSocket): void {
  const conn = this[kConn];
  if (conn.closed) return;
  bridge(conn, conn.clientStream as ITaggedSocket, this);
  connected(conn);
}

/**
 * The header (when sent) and the client's first bytes, in one write. Building the header can
 * fail (a passed-through TLV that makes it too large, say): that closes this connection only.
 */
function writeFirstBytes(conn: Connection, route: IResolvedRoute, backend: net.Socket, initial: Buffer): boolean {
  if (route.send === null) {
    if (initial.length > 0) backend.write(initial);
    return true;
  }
  let header: Buffer;
  try {
    header = buildProxyHeader(conn, route.send);
  } catch (err) {
    proxyError(conn, 'ERR_PP_SEND', `cannot build the PROXY header for route "${route.name}": ${(err as Error).message}`);
    return false;
  }
  backend.write(initial.length > 0 ? Buffer.concat([header, initial]) : header);
  conn.manager.proxyProtocol.sent++;
  return true;
}

function reencrypt(conn: Connection, route: IResolvedRoute, backend: net.Socket, host: string): void {
  const servername = route.backendTls.servername ?? conn.serverName ?? (net.isIP(host) ? undefined : host);
  const { rejectUnauthorized, secureContext, alpnProtocols } = route.backendTls;
  // Offer the backend what the route names, else what the client negotiated with us: h2 frames
  // from an h2 client must reach a backend that agreed to h2.
  const ALPNProtocols = alpnProtocols ?? (conn.negotiatedAlpn !== undefined ? [conn.negotiatedAlpn] : undefined);
  const secure = tag(tls.connect({ socket: backend, servername, rejectUnauthorized, secureContext, ALPNProtocols }), conn);
  conn.backendStream = secure;
  secure.on('error', onBackendTlsError);
  secure.on('close', onBackendClose);
  secure.on('secureConnect', onBackendSecure);
}

export const connectingStage: IStage = {
  enter(conn, initial) {
    const route = conn.route as IResolvedRoute;
    const manager = conn.manager;
    const host = manager.nextHost(route);
    const backend = tag(net.connect({ host, port: route.port, allowHalfOpen: true, noDelay: true }), conn);
    conn.backend = backend;
    conn.backendStream = backend;
    backend.on('error', onBackendError);
    backend.on('close', onBackendClose);
    backend.on('connect', onBackendConnect);
    manager.setDeadline(conn, manager.config.connectTimeout);
    if (!writeFirstBytes(conn, route, backend, initial)) return;
    if (route.tlsMode === 'terminate-and-reencrypt') reencrypt(conn, route, backend, host);
    else bridge(conn, conn.clientStream as ITaggedSocket, backend);
  },
  deadline(conn) {
    conn.manager.close(conn, 'ERR_BACKEND_CONNECT_TIMEOUT');
  },
};
