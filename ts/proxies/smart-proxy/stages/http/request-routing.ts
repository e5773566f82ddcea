/**
 * Routing per request among the port's HTTP routes: Host against `match.domains`, `match.path`,
 * `match.headers`, the real client against `match.clientIp`; then the chosen route's allow/block
 * lists and its limit of requests in flight. A request the connection's TLS does not cover is 421.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { type IHostHeader, parseHost } from '../../../../protocols/http/headers.js';
import type { IResolvedRoute } from '../../config.js';
import type { Connection } from '../../connection-manager.js';
import { domainMatches, type RouteManager } from '../../route-manager.js';
import type { IRefusal } from './answers.js';
import type { HttpSession } from './session.js';

/** The port's HTTP routes in matching order, per route table (replaced whole on updateRoutes). */
const candidatesByTable = new WeakMap<RouteManager, Map<number, IResolvedRoute[]>>();

function candidates(routes: RouteManager, port: number): IResolvedRoute[] {
  let byPort = candidatesByTable.get(routes);
  if (byPort === undefined) candidatesByTable.set(routes, (byPort = new Map()));
  let list = byPort.get(port);
  if (list === undefined) {
    list = routes.routes.filter((r) => r.http !== null && r.ports.includes(port)).sort((a, b) => b.priority - a.priority || a.index - b.index);
    byPort.set(port, list);
  }
  return list;
}

export interface IRequestTarget {
  host: IHostHeader;
  /** The Host value the backend gets (the client's, or the absolute-form URL's authority). */
  authority: string;
  /** The request-target sent to the backend, in origin form. */
  path: string;
}

const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)([^#]*)$/i;

/**
 * Host and path of a request. An absolute-form target (`GET http://a/b`) names its own authority,
 * which replaces Host (RFC 9112 3.2.2); `*` (OPTIONS) is passed on as it is.
 */
export function requestTarget(url: string, hostHeader: string | undefined): IRequestTarget | IRefusal {
  let authority = hostHeader;
  let path = url;
  if (!url.startsWith('/') && url !== '*') {
    const absolute = ABSOLUTE_FORM.exec(url);
    if (absolute === null) return { status: 400, code: 'ERR_HTTP_BAD_REQUEST', message: `request-target ${JSON.stringify(url.slice(0, 100))} is not origin or absolute form` };
    authority = absolute[1];
    path = absolute[2].length === 0 ? '/' : absolute[2];
  }
  const host = authority === undefined ? null : parseHost(authority);
  if (host === null || authority === undefined) return { status: 400, code: 'ERR_HTTP_BAD_REQUEST', message: `Host ${JSON.stringify(authority ?? '(none)')} is not a host[:port]` };
  return { host, authority, path };
}

function pathMatches(route: IResolvedRoute, path: string): boolean {
  const matcher = route.path;
  if (matcher === null) return true;
  const query = path.indexOf('?');
  const pathname = query < 0 ? path : path.slice(0, query);
  if (!matcher.prefix) return pathname === matcher.path;
  return pathname === matcher.path || (pathname.startsWith(matcher.path) && pathname.charCodeAt(matcher.path.length) === 0x2f);
}

function headersMatch(route: IResolvedRoute, headers: IncomingHttpHeaders): boolean {
  if (route.headers === null) return true;
  for (const [name, value] of route.headers) if (headers[name] !== value) return false;
  return true;
}

function terminates(route: IResolvedRoute): boolean {
  return route.tlsMode === 'terminate' || route.tlsMode === 'terminate-and-reencrypt';
}

/** The route's allow/block lists and its requests-in-flight limit, for the real client. */
function admit(conn: Connection, route: IResolvedRoute): IRefusal | null {
  const client = conn.clientIP;
  if (route.blockList?.has(client)) return { status: 403, code: 'ERR_SECURITY_BLOCKED', message: `client ${client} is on route "${route.name}"'s block list` };
  if (route.allowList !== null && !route.allowList.has(client)) return { status: 403, code: 'ERR_SECURITY_NOT_ALLOWED', message: `client ${client} is not on route "${route.name}"'s allow list` };
  const max = route.maxConnections;
  if (max > 0 && (conn.manager.http.inFlight.get(route) ?? 0) >= max) return { status: 503, code: 'ERR_LIMIT_ROUTE', message: `route "${route.name}" has ${max} requests in flight (maxConnections)` };
  return null;
}

/** The route for a request, or why there is none. */
export function chooseRoute(session: HttpSession, target: IRequestTarget, headers: IncomingHttpHeaders): IResolvedRoute | IRefusal {
  const conn = session.conn;
  const name = target.host.name;
  // The certificate was chosen by SNI: another host's requests belong on a connection of its own.
  if (session.tls && !domainMatches((conn.route as IResolvedRoute).domains, name)) {
    return { status: 421, code: 'ERR_HTTP_MISDIRECTED', message: `Host ${name} is not served on a connection for ${conn.serverName ?? '(no SNI)'}` };
  }
  for (const route of candidates(conn.manager.routes, conn.localPort)) {
    if (terminates(route) !== session.tls || !domainMatches(route.domains, name)) continue;
    if (route.clientIp !== null && !route.clientIp.has(conn.clientIP)) continue;
    if (!pathMatches(route, target.path) || !headersMatch(route, headers)) continue;
    return admit(conn, route) ?? route;
  }
  return { status: 404, code: 'ERR_HTTP_NO_ROUTE', message: `no HTTP route on port ${conn.localPort} for ${name}${target.path.slice(0, 200)}` };
}

export function isRefusal(value: object): value is IRefusal {
  return 'status' in value && 'code' in value;
}
