/**
 * PROXY stage for a trusted peer: exactly one header, within proxyProtocolTimeout and the size
 * bound, read by the incremental decoder. A believed header sets the real client on the
 * WrappedSocket; LOCAL and UNKNOWN keep the peer.
 */
import type { ProxyProtocolError } from '../../../protocols/errors.js';
import { ProxyProtocolDecoder } from '../../../protocols/proxy/parser.js';
import type { DecodeResult, IProxyHeader } from '../../../protocols/proxy/types.js';
import type { Connection, IStage } from '../connection-manager.js';
import { EMPTY, type ITaggedSocket, kConn, proxyError } from './common.js';

function onHeaderData(this: ITaggedSocket, chunk: Buffer): void {
  const conn = this[kConn];
  const decoder = conn.decoder as ProxyProtocolDecoder;
  let result: DecodeResult;
  try {
    result = decoder.push(chunk);
  } catch (err) {
    this.off('data', onHeaderData);
    const e = err as ProxyProtocolError;
    proxyError(conn, e.code, e.message);
    return;
  }
  if (result.status === 'incomplete') return;
  this.off('data', onHeaderData);
  conn.decoder = null;
  if (result.status === 'none') noHeader(conn, decoder.remaining);
  else {
    applyHeader(conn, result.header);
    conn.manager.advance(conn, 'admission', decoder.remaining);
  }
}

function noHeader(conn: Connection, bytes: Buffer): void {
  if (conn.manager.config.proxyProtocolRequired) proxyError(conn, 'ERR_PP_MISSING', 'trusted peer sent no PROXY header');
  else conn.manager.advance(conn, 'admission', bytes);
}

/** A believed header: the record's client fields follow from what it sets on the WrappedSocket. */
function applyHeader(conn: Connection, header: IProxyHeader): void {
  const wrapped = conn.wrapped;
  const stats = conn.manager.proxyProtocol;
  wrapped.proxyHeader = header;
  if (header.command === 'LOCAL') {
    stats.local++;
    return;
  }
  const source = header.source;
  if (source !== null && 'address' in source) {
    wrapped.setProxyInfo(source.address, source.port);
    if (header.version === 1) stats.acceptedV1++;
    else stats.acceptedV2++;
  } else stats.unknown++;
}

export const proxyHeaderStage: IStage = {
  enter(conn) {
    const config = conn.manager.config;
    conn.decoder = new ProxyProtocolDecoder({ maxHeaderSize: config.proxyProtocolMaxHeaderSize });
    conn.wrapped.socket.on('data', onHeaderData);
    conn.manager.setDeadline(conn, config.proxyProtocolTimeout);
  },
  deadline(conn) {
    conn.wrapped.socket.off('data', onHeaderData);
    const config = conn.manager.config;
    if (!config.proxyProtocolRequired && conn.wrapped.socket.bytesRead === 0) conn.manager.advance(conn, 'admission', EMPTY);
    else proxyError(conn, 'ERR_PP_TIMEOUT', `no complete PROXY header within ${config.proxyProtocolTimeout} ms`);
  },
  clientEnded(conn) {
    conn.wrapped.socket.off('data', onHeaderData);
    if ((conn.decoder?.bufferedLength ?? 0) > 0) proxyError(conn, 'ERR_PP_INCOMPLETE', 'connection ended inside the PROXY header');
    else noHeader(conn, EMPTY);
  },
};
