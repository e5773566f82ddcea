/**
 * The request head a backend gets: the client's headers without hop-by-hop ones, forwarded
 * headers from an untrusted peer removed, ours added (the real client: PROXY header when believed,
 * else the TCP peer), and HTTP/2 turned into HTTP/1.1 (pseudo-headers out, Host in, one Cookie).
 */
import { normalizeIP } from '../../../../core/utils/ip-utils.js';
import { appendToList, forwardedElement, forwardedNode, isForwardingHeader } from '../../../../protocols/http/forwarded.js';
import { connectionTokens, isHopByHop } from '../../../../protocols/http/headers.js';
import type { IResolvedHttp, IResolvedRoute } from '../../config.js';
import type { Connection } from '../../connection-manager.js';
import type { IRequestTarget } from './request-routing.js';
import type { HttpSession } from './session.js';

/**
 * Whether the request's incoming forwarded headers are believed: when the hop that wrote them is in
 * proxyIPs or the route's trustForwardedFrom. That hop is the real client: behind a believed PROXY
 * header the TCP peer only relayed the client's bytes, so trusting the peer would let any client
 * behind a layer-4 proxy choose its own X-Forwarded-For and X-Real-IP.
 */
function trustsSender(conn: Connection, http: IResolvedHttp): boolean {
  return conn.manager.config.proxyIPs.has(conn.clientIP) || (http.trustForwardedFrom?.has(conn.clientIP) ?? false);
}

/** Where the client connected to: the previous hop's listener when a believed header said so, else ours. */
function facing(conn: Connection): { address: string; port: number } {
  const received = conn.proxyHeader?.destination;
  if (conn.wrapped.hasProxyInfo && received && 'address' in received) return received;
  const socket = conn.wrapped.socket;
  return { address: normalizeIP(socket.localAddress ?? ''), port: socket.localPort ?? 0 };
}

/** Incoming forwarded headers of a trusted peer, gathered so ours can be appended. */
interface IKept {
  xff: string | undefined;
  forwarded: string | undefined;
  /** Lower-case names of X-Forwarded-* / X-Real-IP the peer already set (kept as they are). */
  present: Set<string>;
}

function addOurs(out: string[], session: HttpSession, http: IResolvedHttp, target: IRequestTarget, kept: IKept): void {
  const conn = session.conn;
  const proto = session.tls ? 'https' : 'http';
  const mode = http.forwardedHeaders;
  const entry = facing(conn);
  if (mode === 'x-forwarded' || mode === 'both') {
    out.push('X-Forwarded-For', appendToList(kept.xff, conn.clientIP));
    if (!kept.present.has('x-forwarded-proto')) out.push('X-Forwarded-Proto', proto);
    if (!kept.present.has('x-forwarded-host')) out.push('X-Forwarded-Host', target.authority);
    if (!kept.present.has('x-forwarded-port')) out.push('X-Forwarded-Port', String(entry.port));
    if (!kept.present.has('x-real-ip')) out.push('X-Real-IP', conn.clientIP);
  } else if (kept.xff !== undefined) out.push('X-Forwarded-For', kept.xff);
  const element = forwardedElement({ for: forwardedNode(conn.clientIP), proto, host: target.authority, by: entry.address.length > 0 ? forwardedNode(entry.address) : undefined });
  if (mode === 'forwarded' || mode === 'both') out.push('Forwarded', appendToList(kept.forwarded, element));
  else if (kept.forwarded !== undefined) out.push('Forwarded', kept.forwarded);
}

/**
 * The backend's request headers as a flat [name, value, ...] list (Node's rawHeaders layout).
 * `upgrade`: the Upgrade header is passed on with `Connection: upgrade` (WebSocket).
 */
export function backendHeaders(session: HttpSession, route: IResolvedRoute, rawHeaders: readonly string[], target: IRequestTarget, upgrade: string | undefined): string[] {
  const http = route.http as IResolvedHttp;
  const trusted = trustsSender(session.conn, http);
  const named = connectionTokens(rawHeaders);
  const kept: IKept = { xff: undefined, forwarded: undefined, present: new Set() };
  // Host first, as the client's authority (an absolute-form target's replaces the Host header).
  const out: string[] = ['Host', target.authority];
  let cookie: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    const lower = name.toLowerCase();
    const value = rawHeaders[i + 1];
    if (lower.charCodeAt(0) === 0x3a || isHopByHop(lower) || named?.has(lower)) continue;
    if (isForwardingHeader(lower)) {
      if (!trusted) continue;
      if (lower === 'x-forwarded-for') kept.xff = appendToList(kept.xff, value);
      else if (lower === 'forwarded') kept.forwarded = appendToList(kept.forwarded, value);
      else {
        kept.present.add(lower);
        out.push(name, value);
      }
      continue;
    }
    if (lower === 'host') continue;
    // HTTP/2 may split cookies into several fields; HTTP/1.1 wants one (RFC 9113 8.2.3).
    if (lower === 'cookie' && session.conn.negotiatedAlpn === 'h2') cookie = cookie === undefined ? value : `${cookie}; ${value}`;
    else out.push(name, value);
  }
  if (cookie !== undefined) out.push('Cookie', cookie);
  addOurs(out, session, http, target, kept);
  if (upgrade !== undefined) out.push('Connection', 'Upgrade', 'Upgrade', upgrade);
  return out;
}

/** The client's response headers: the backend's without hop-by-hop ones, as a flat list. */
export function responseHeaders(rawHeaders: readonly string[]): string[] {
  const named = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i].toLowerCase();
    if (isHopByHop(lower) || named?.has(lower)) continue;
    out.push(rawHeaders[i], rawHeaders[i + 1]);
  }
  return out;
}
