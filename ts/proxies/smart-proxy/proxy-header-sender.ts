/** Builds the one PROXY header a backend connection starts with. */
import type tls from 'node:tls';
import { normalizeIP } from '../../core/utils/ip-utils.js';
import { ProxyProtocolParser } from '../../protocols/proxy/parser.js';
import { alpnTlv, authorityTlv, sslTlv, uniqueIdTlv } from '../../protocols/proxy/tlv.js';
import { AUTHORITY_MAX_LENGTH, PP2_CLIENT_CERT_CONN } from '../../protocols/proxy/constants.js';
import type { IProxyIpAddress, ITlv } from '../../protocols/proxy/types.js';
import type { ISendSettings } from './config.js';
import type { Connection } from './connection-manager.js';

/**
 * Source: the real client (as received, when this proxy is an inner hop). Destination: the
 * address the client connected to — the previous hop's view when a header told us, else ours.
 */
function endpoints(conn: Connection): { source: IProxyIpAddress; destination: IProxyIpAddress } {
  const wrapped = conn.wrapped;
  const received = conn.proxyHeader?.destination;
  const destination =
    wrapped.hasProxyInfo && received && 'address' in received
      ? received
      : { address: normalizeIP(wrapped.socket.localAddress ?? ''), port: wrapped.socket.localPort ?? 0 };
  return { source: { address: conn.clientIP, port: conn.clientPort }, destination };
}

function sslInfo(conn: Connection): ITlv | null {
  const secure = conn.clientStream as tls.TLSSocket;
  if (typeof secure.getProtocol !== 'function') return null;
  const peer = secure.getPeerCertificate?.();
  const hasCert = peer !== undefined && peer !== null && Object.keys(peer).length > 0;
  const cn = hasCert ? peer.subject?.CN : undefined;
  return sslTlv({
    client: hasCert ? PP2_CLIENT_CERT_CONN : 0,
    verify: hasCert && !secure.authorized ? 1 : 0,
    version: secure.getProtocol() ?? undefined,
    cipher: secure.getCipher()?.name,
    cn: typeof cn === 'string' ? cn : undefined,
  });
}

function tlvsFor(conn: Connection, send: ISendSettings): ITlv[] {
  const options = send.tlvs;
  const tlvs: ITlv[] = [];
  const pass = options.passThrough;
  if (pass !== undefined && pass.length > 0 && conn.proxyHeader !== null) {
    for (const tlv of conn.proxyHeader.tlvs) if (pass.includes(tlv.type)) tlvs.push(tlv);
  }
  if (options.alpn && conn.negotiatedAlpn !== undefined) tlvs.push(alpnTlv(conn.negotiatedAlpn));
  if (options.authority && conn.serverName !== undefined && Buffer.byteLength(conn.serverName) <= AUTHORITY_MAX_LENGTH) {
    tlvs.push(authorityTlv(conn.serverName));
  }
  if (options.uniqueId) tlvs.push(uniqueIdTlv(conn.id));
  if (options.ssl) {
    const ssl = sslInfo(conn);
    if (ssl !== null) tlvs.push(ssl);
  }
  return tlvs;
}

export function buildProxyHeader(conn: Connection, send: ISendSettings): Buffer {
  const { source, destination } = endpoints(conn);
  if (send.version === 1) return ProxyProtocolParser.generate({ source, destination }, { version: 1 });
  return ProxyProtocolParser.generate(
    { source, destination },
    { version: 2, tlvs: tlvsFor(conn, send), crc32c: send.tlvs.crc32c === true },
  );
}
