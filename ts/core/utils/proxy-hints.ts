/**
 * Hints for PROXY errors from plain values, shared by SmartProxy's stages and withProxyProtocol:
 * what the bytes suggest went wrong and what to switch on, so an operator does not have to guess
 * (the question users of every PROXY receiver ask most).
 */
import { identifyOpening, type KnownOpening } from '../../protocols/sniff.js';
import type { ProxyPolicy } from './proxy-policy.js';

const OPENINGS: Record<KnownOpening, string> = {
  tls: 'a TLS ClientHello',
  http: 'an HTTP/1 request line',
  http2: 'the HTTP/2 connection preface',
  ssh: 'an SSH banner',
};

const SENDER_SWITCHES =
  'HAProxy: `send-proxy` or `send-proxy-v2` on the server line; nginx stream: `proxy_protocol on;`; AWS NLB: the target group attribute `proxy_protocol_v2.enabled`';

/** How the peer appears in a hint: as the socket reported it too, when that was IPv4-mapped. */
export function hintPeerName(peerIP: string, reported: string | undefined): string {
  const shown = reported ?? peerIP;
  return shown !== peerIP ? `${peerIP} (reported by the socket as ${shown})` : peerIP;
}

/**
 * A source whose policy requires a header opened with something else (or nothing at all).
 * `directRemedy` says how to accept a direct connection without a header in this configuration.
 */
export function missingHeaderHint(peer: string, firstBytes: Buffer, directRemedy: string): string {
  const opening = identifyOpening(firstBytes);
  const what = opening !== null ? OPENINGS[opening] : firstBytes.length > 0 ? 'bytes that are not a PROXY header' : 'nothing';
  return (
    `peer ${peer} sent ${what} where policy "require" expects a PROXY header first. ` +
    `If it is your load balancer, switch sending PROXY on there (${SENDER_SWITCHES}). ` +
    `If it connects directly (health checks, or hairpin traffic from inside the cluster, which bypasses the balancer and so has no header), ${directRemedy}`
  );
}

/** A source that is not trusted sent a header; `rulesOption` names the rules option to point at. */
export function untrustedHeaderHint(peer: string, policy: ProxyPolicy, rulesOption: string): string {
  return (
    `peer ${peer} sent a PROXY header, but policy "${policy}" applies to it, so the header is treated as spoofing. ` +
    `If this peer really is your load balancer or outer proxy, add its address to proxyIPs (or a ${rulesOption} entry with policy "require"); ` +
    'rules match IPv4 sources in plain and IPv4-mapped form alike.'
  );
}
