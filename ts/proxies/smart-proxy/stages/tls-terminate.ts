/**
 * TLS handshake, for routes that terminate TLS here: a server-side TLSSocket over the client
 * socket (after the PROXY header, with the bytes already read handed back), within
 * initialDataTimeout. Renegotiation is refused, and every TLS error, during or after the
 * handshake, closes both sides with a code.
 */
import tls from 'node:tls';
import type { IResolvedRoute } from '../config.js';
import type { IStage } from '../connection-manager.js';
import { EMPTY, type ITaggedSocket, kConn, reject, tag } from './common.js';
import { onClientClose } from './forward.js';

/**
 * A TLSSocket made outside a tls.Server passes TLS errors raised after the handshake (a
 * renegotiation attempt, garbage records) only to its internal '_tlsError' event, never to
 * 'error': tls.Server hears them the same way. Listening to both catches every failure.
 */
const TLS_ERROR_EVENT = '_tlsError';

function onTlsError(this: ITaggedSocket): void {
  const conn = this[kConn];
  conn.manager.close(conn, conn.stage === 'tls-handshake' ? 'ERR_TLS_HANDSHAKE' : 'ERR_TLS_CLIENT');
}

/** The verification result of a client certificate; tls.Server reads the same. */
interface ITlsHandle {
  verifyError(): (Error & { code?: string }) | null;
}

/**
 * Records whether the client's certificate verified against the route's clientCa, as tls.Server
 * does for its sockets (`authorized`, `authorizationError`); false when `require` is not met.
 */
function checkClientCertificate(secure: tls.TLSSocket, route: IResolvedRoute): boolean {
  if (route.clientCertificate === null) return true;
  const error = (secure as tls.TLSSocket & { ssl: ITlsHandle }).ssl.verifyError();
  if (error === null) secure.authorized = true;
  else secure.authorizationError = error;
  return error === null || route.clientCertificate !== 'require';
}

function onSecure(this: ITaggedSocket & tls.TLSSocket): void {
  const conn = this[kConn];
  if (conn.stage !== 'tls-handshake') return;
  if (!checkClientCertificate(this, conn.route as IResolvedRoute)) {
    reject(conn, 'ERR_TLS_CLIENT_CERT', `client certificate not accepted: ${this.authorizationError.message}`);
    return;
  }
  conn.negotiatedAlpn = this.alpnProtocol || undefined;
  // tls.Server clears this on its sockets once secure; an HTTP/2 session waits for it otherwise.
  (this as unknown as { secureConnecting: boolean }).secureConnecting = false;
  if (conn.serverName === undefined) {
    const servername = (this as tls.TLSSocket & { servername?: string | false }).servername;
    if (typeof servername === 'string' && servername.length > 0) conn.serverName = servername;
  }
  this.pause();
  conn.manager.advance(conn, conn.route?.http ? 'http' : 'connecting', EMPTY);
}

export const tlsHandshakeStage: IStage = {
  enter(conn, initial) {
    const route = conn.route as IResolvedRoute;
    const socket = conn.wrapped.socket;
    socket.pause();
    // TLSSocket feeds whatever is already in the socket's read buffer to the TLS engine first.
    if (initial.length > 0) socket.unshift(initial);
    const options = {
      isServer: true,
      secureContext: route.secureContext as tls.SecureContext,
      ALPNProtocols: route.alpnProtocols,
      requestCert: route.clientCertificate !== null,
      rejectUnauthorized: route.clientCertificate === 'require',
    };
    const secure = tag(new tls.TLSSocket(socket, options), conn);
    secure.disableRenegotiation();
    conn.clientStream = secure;
    secure.on('error', onTlsError);
    secure.on(TLS_ERROR_EVENT, onTlsError);
    secure.on('close', onClientClose);
    secure.on('secure', onSecure);
    conn.manager.setDeadline(conn, conn.manager.config.initialDataTimeout);
  },
  deadline(conn) {
    reject(conn, 'ERR_TLS_HANDSHAKE', `TLS handshake not done within ${conn.manager.config.initialDataTimeout} ms`);
  },
};
