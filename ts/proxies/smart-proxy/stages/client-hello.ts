/**
 * ClientHello stage, on ports whose routes depend on SNI: holds the client's first bytes until a
 * whole ClientHello (or something that is not TLS) has arrived, within initialDataTimeout.
 */
import type { SmartProxyError } from '../../../protocols/errors.js';
import { readClientHello } from '../../../protocols/tls/client-hello.js';
import type { Connection, IStage } from '../connection-manager.js';
import { EMPTY, type ITaggedSocket, kConn, reject } from './common.js';

function onHelloData(this: ITaggedSocket, chunk: Buffer): void {
  const conn = this[kConn];
  conn.pending = conn.pending === null || conn.pending.length === 0 ? chunk : Buffer.concat([conn.pending, chunk]);
  if (inspectHello(conn)) this.off('data', onHelloData);
}

/** Looks for the ClientHello in the bytes so far; true once the connection moved on. */
function inspectHello(conn: Connection): boolean {
  const buffered = conn.pending ?? EMPTY;
  let hello;
  try {
    hello = readClientHello(buffered);
  } catch (err) {
    const e = err as SmartProxyError;
    reject(conn, e.code as 'ERR_TLS_CLIENT_HELLO_MALFORMED', e.message);
    return true;
  }
  if (hello.status === 'incomplete') return false;
  conn.pending = null;
  if (hello.status === 'complete') conn.serverName = hello.serverName;
  conn.manager.advance(conn, 'routing', buffered);
  return true;
}

export const clientHelloStage: IStage = {
  enter(conn, initial) {
    conn.pending = initial;
    if (initial.length > 0 && inspectHello(conn)) return;
    if (conn.wrapped.socket.readableEnded) {
      // The client already sent FIN: no ClientHello is coming; route on what there is.
      conn.pending = null;
      conn.manager.advance(conn, 'routing', initial);
      return;
    }
    conn.wrapped.socket.on('data', onHelloData);
    conn.manager.setDeadline(conn, conn.manager.config.initialDataTimeout);
  },
  deadline(conn) {
    conn.wrapped.socket.off('data', onHelloData);
    reject(conn, 'ERR_TIMEOUT_INITIAL_DATA', `no TLS ClientHello within ${conn.manager.config.initialDataTimeout} ms`);
  },
  clientEnded(conn) {
    conn.wrapped.socket.off('data', onHelloData);
    const held = conn.pending ?? EMPTY;
    conn.pending = null;
    conn.manager.advance(conn, 'routing', held);
  },
};
