/**
 * ClientHello stage, on ports whose routes depend on SNI: holds the client's first bytes until a
 * whole ClientHello (or something that is not TLS) has arrived, within initialDataTimeout. The
 * reader is incremental and linear in the bytes received, however finely they are split.
 */
import type { TlsParseError } from '../../../protocols/errors.js';
import { ClientHelloReader, type ClientHelloResult } from '../../../protocols/tls/client-hello.js';
import type { Connection, IStage } from '../connection-manager.js';
import { type ITaggedSocket, kConn, reject } from './common.js';

function onHelloData(this: ITaggedSocket, chunk: Buffer): void {
  if (inspectHello(this[kConn], chunk)) this.off('data', onHelloData);
}

/** Feeds the reader; true once the connection moved on (routed or refused). */
function inspectHello(conn: Connection, chunk: Buffer): boolean {
  const reader = conn.helloReader as ClientHelloReader;
  let hello: ClientHelloResult;
  try {
    hello = reader.push(chunk);
  } catch (err) {
    const e = err as TlsParseError;
    reject(conn, e.code, e.message);
    return true;
  }
  if (hello.status === 'incomplete') return false;
  if (hello.status === 'complete') conn.serverName = hello.serverName;
  routeOnWhatArrived(conn);
  return true;
}

function routeOnWhatArrived(conn: Connection): void {
  const bytes = (conn.helloReader as ClientHelloReader).received;
  conn.helloReader = null;
  conn.manager.advance(conn, 'routing', bytes);
}

export const clientHelloStage: IStage = {
  enter(conn, initial) {
    conn.helloReader = new ClientHelloReader();
    if (initial.length > 0 && inspectHello(conn, initial)) return;
    // A client that already sent FIN sends no ClientHello: route on what there is.
    if (conn.wrapped.socket.readableEnded) routeOnWhatArrived(conn);
    else {
      conn.wrapped.socket.on('data', onHelloData);
      conn.manager.setDeadline(conn, conn.manager.config.initialDataTimeout);
    }
  },
  deadline(conn) {
    conn.wrapped.socket.off('data', onHelloData);
    reject(conn, 'ERR_TIMEOUT_INITIAL_DATA', `no TLS ClientHello within ${conn.manager.config.initialDataTimeout} ms`);
  },
  clientEnded(conn) {
    conn.wrapped.socket.off('data', onHelloData);
    routeOnWhatArrived(conn);
  },
};
