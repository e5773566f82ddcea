/**
 * Hints for PROXY errors: what the bytes suggest went wrong and what to switch on, so an operator
 * does not have to guess (the question users of every PROXY receiver ask most).
 */
import { identifyOpening, type KnownOpening } from '../../../protocols/sniff.js';
import type { Connection } from '../connection-manager.js';

const OPENINGS: Record<KnownOpening, string> = {
  tls: 'a TLS ClientHello',
  http: 'an HTTP/1 request line',
  http2: 'the HTTP/2 connection preface',
  ssh: 'an SSH banner',
};

const SENDER_SWITCHES =
  'HAProxy: `send-proxy` or `send-proxy-v2` on the server line; nginx stream: `proxy_protocol on;`; AWS NLB: the target group attribute `proxy_protocol_v2.enabled`';

/** How the peer appears in a hint: as the socket reported it when that was IPv4-mapped. */
function peerName(conn: Connection): string {
  const reported = conn.wrapped.socket.remoteAddress ?? conn.peerIP;
  return reported !== conn.peerIP ? `${conn.peerIP} (reported by the socket as ${reported})` : conn.peerIP;
}

/** A source whose policy requires a header opened with something else (or nothing at all). */
export function missingHeaderHint(conn: Connection, firstBytes: Buffer): string {
  const opening = identifyOpening(firstBytes);
  const what = opening !== null ? OPENINGS[opening] : firstBytes.length > 0 ? 'bytes that are not a PROXY header' : 'nothing';
  return (
    `peer ${peerName(conn)} sent ${what} where policy "require" expects a PROXY header first. ` +
    `If it is your load balancer, switch sending PROXY on there (${SENDER_SWITCHES}). ` +
    'If it connects directly (health checks, or hairpin traffic from inside the cluster, which bypasses the balancer and so has no header), ' +
    'give its address policy "use" in proxyProtocolRules, which accepts it without a header.'
  );
}

/** A source that is not trusted sent a header. */
export function untrustedHeaderHint(conn: Connection): string {
  return (
    `peer ${peerName(conn)} sent a PROXY header, but policy "${conn.policy}" applies to it, so the header is treated as spoofing. ` +
    'If this peer really is your load balancer or outer proxy, add its address to proxyIPs (or a proxyProtocolRules entry with policy "require"); ' +
    'rules match IPv4 sources in plain and IPv4-mapped form alike.'
  );
}
