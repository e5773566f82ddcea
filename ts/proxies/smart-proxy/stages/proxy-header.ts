/**
 * PROXY stage for sources whose policy reads a header (`require`, `use`, `ignore`): exactly one
 * header, within proxyProtocolTimeout and the size bound, read by the incremental decoder. A
 * believed header (`require`, `use`) sets the real client on the WrappedSocket; LOCAL and UNKNOWN
 * keep the peer. An ignored header is removed and the peer stays the client.
 */
import type { ProxyProtocolError } from '../../../protocols/errors.js';
import { ProxyProtocolDecoder } from '../../../protocols/proxy/parser.js';
import type { DecodeResult, IProxyHeader } from '../../../protocols/proxy/types.js';
import type { Connection, IStage } from '../connection-manager.js';
import { EMPTY, type ITaggedSocket, kConn, proxyError } from './common.js';
import { missingHeaderHint } from './hints.js';

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
  else if (applyHeader(conn, result.header)) conn.manager.advance(conn, 'admission', decoder.remaining);
}

function noHeader(conn: Connection, bytes: Buffer): void {
  if (conn.policy === 'require') proxyError(conn, 'ERR_PP_MISSING', `peer ${conn.peerIP} sent no PROXY header`, missingHeaderHint(conn, bytes));
  else conn.manager.advance(conn, 'admission', bytes);
}

/** Takes a complete header as its policy says; false when its version is not accepted. */
function applyHeader(conn: Connection, header: IProxyHeader): boolean {
  const stats = conn.manager.proxyProtocol;
  stats.byVersion[header.version === 1 ? 'v1' : 'v2']++;
  if (!conn.manager.config.proxyProtocolVersions.has(header.version)) {
    proxyError(conn, 'ERR_PP_VERSION_NOT_ALLOWED', `a v${header.version} PROXY header arrived but proxyProtocolVersions does not include ${header.version}`);
    return false;
  }
  if (conn.policy === 'ignore') {
    stats.ignored++;
    return true;
  }
  believe(conn, header);
  return true;
}

/** A believed header: the record's client fields follow from what it sets on the WrappedSocket. */
function believe(conn: Connection, header: IProxyHeader): void {
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
    const silent = conn.wrapped.socket.bytesRead === 0;
    if (conn.policy !== 'require' && silent) conn.manager.advance(conn, 'admission', EMPTY);
    else {
      const hint = silent && conn.policy === 'require' ? missingHeaderHint(conn, EMPTY) : undefined;
      proxyError(conn, 'ERR_PP_TIMEOUT', `no complete PROXY header within ${conn.manager.config.proxyProtocolTimeout} ms`, hint);
    }
  },
  clientEnded(conn) {
    conn.wrapped.socket.off('data', onHeaderData);
    if ((conn.decoder?.bufferedLength ?? 0) > 0) proxyError(conn, 'ERR_PP_INCOMPLETE', 'connection ended inside the PROXY header');
    else noHeader(conn, EMPTY);
  },
};
