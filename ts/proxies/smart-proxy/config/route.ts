/** One route, resolved part by part: match, target, TLS, security, sending. */
import type { IRouteConfig } from '../models/route-types.js';
import { describe, isObject, type Problems, Scope } from './check.js';
import { httpAlpn, resolveHttp } from './http.js';
import { type IResolvedMatch, MATCH_KEYS, resolveMatch } from './match.js';
import { resolveSecurity, type TDefaultSecurity } from './security.js';
import { type IGlobalSend, resolveRouteSend } from './sending.js';
import { type IDefaultTarget, resolveTarget } from './target.js';
import { resolveTls, type SecureContextCache } from './tls.js';
import type { IResolvedRoute, ISendSettings } from './types.js';

const ROUTE_KEYS = ['name', 'priority', 'match', 'action'] as const;
const ACTION_KEYS = ['type', 'target', 'tls', 'security', 'sendProxyProtocol', 'http'] as const;
const ACTION_TYPES = ['forward'] as const;

/** What every route of one resolution shares: the options' defaults and sending, contexts built so far, names taken. */
export interface IRouteContext {
  target: IDefaultTarget;
  security: TDefaultSecurity;
  send: IGlobalSend;
  contexts: SecureContextCache;
  names: Set<string>;
}

/** The route's name (checked: non-empty, unique), or its index as a label for messages. */
function resolveName(value: unknown, base: string, index: number, names: Set<string>, problems: Problems): string {
  const name = typeof value === 'string' && value.length > 0 ? value : undefined;
  const scope = new Scope(problems, name);
  if (name === undefined) scope.add('ERR_CONFIG_ROUTE_NAME', `${base}.name`, `every route needs a non-empty name, got ${describe(value)}`);
  else if (names.has(name)) scope.add('ERR_CONFIG_ROUTE_NAME', `${base}.name`, 'duplicate route name');
  else names.add(name);
  return name ?? `#${index}`;
}

/** A required object part of a route (`match`, `action`). */
function part(value: unknown, field: string, known: readonly string[], scope: Scope): Record<string, unknown> | undefined {
  if (value === undefined) {
    scope.add('ERR_CONFIG_ROUTE', field, `is required (known here: ${known.join(', ')})`);
    return undefined;
  }
  return scope.object(value, field, known, 'ERR_CONFIG_ROUTE');
}

/**
 * What a UDP route cannot have: TLS, SNI domains, HTTP matching or options (UDP matching ignores
 * them, so the route would match more than it says), and PROXY v1 (it has no datagram form).
 */
function checkUdpRoute(action: Record<string, unknown>, matched: IResolvedMatch, send: ISendSettings | null, base: string, scope: Scope): void {
  if (action.tls !== undefined) scope.add('ERR_CONFIG_TLS', `${base}.action.tls`, 'a UDP route carries datagrams, not TLS: leave tls out');
  if (matched.domains !== null) scope.add('ERR_CONFIG_DOMAIN', `${base}.match.domains`, 'a UDP route has no SNI to match: leave domains out');
  const http: Array<[unknown, string]> = [[action.http, 'action.http'], [matched.path, 'match.path'], [matched.headers, 'match.headers']];
  for (const [given, field] of http) {
    if (given !== undefined && given !== null) scope.add('ERR_CONFIG_HTTP', `${base}.${field}`, 'a UDP route carries datagrams, not HTTP: leave it out');
  }
  if (send !== null && send.version === 1) {
    scope.add('ERR_CONFIG_OPTION', `${base}.action.sendProxyProtocol`, 'PROXY v1 has no datagram form: a UDP route sends v2 (sendProxyProtocol: { version: 2 })');
  }
}

export function resolveRoute(raw: unknown, index: number, context: IRouteContext, problems: Problems): IResolvedRoute | null {
  const base = `routes[${index}]`;
  if (!isObject(raw)) {
    new Scope(problems).add('ERR_CONFIG_ROUTE', base, `must be an object, got ${describe(raw)}`);
    return null;
  }
  const name = resolveName(raw.name, base, index, context.names, problems);
  const scope = new Scope(problems, name);
  scope.object(raw, base, ROUTE_KEYS, 'ERR_CONFIG_ROUTE');
  const priority = raw.priority === undefined ? 0 : raw.priority;
  if (typeof priority !== 'number' || !Number.isFinite(priority)) scope.add('ERR_CONFIG_ROUTE', `${base}.priority`, `must be a number, got ${describe(priority)}`);
  const match = part(raw.match, `${base}.match`, MATCH_KEYS, scope);
  const action = part(raw.action, `${base}.action`, ACTION_KEYS, scope);
  if (match === undefined || action === undefined) return null;
  const matched = resolveMatch(match, `${base}.match`, scope);
  if (action.type === undefined) scope.add('ERR_CONFIG_ACTION_TYPE', `${base}.action.type`, 'needs a type (supported: "forward")');
  else scope.oneOf(action.type, `${base}.action.type`, ACTION_TYPES, 'ERR_CONFIG_ACTION_TYPE');
  const target = resolveTarget(action.target, context.target, `${base}.action.target`, scope);
  const tlsPart = resolveTls(action.tls, `${base}.action.tls`, scope, context.contexts);
  const security = resolveSecurity(action.security, context.security, `${base}.action.security`, scope);
  const send = resolveRouteSend(action.sendProxyProtocol, context.send, `${base}.action.sendProxyProtocol`, scope);
  const http = resolveHttp(action.http, matched, tlsPart.tlsMode, `${base}.action.http`, scope);
  if (matched.transport === 'udp') checkUdpRoute(action, matched, send, base, scope);
  return {
    config: raw as unknown as IRouteConfig,
    name,
    priority: typeof priority === 'number' && Number.isFinite(priority) ? priority : 0,
    index,
    ...matched,
    ...target,
    ...tlsPart,
    alpnProtocols: httpAlpn(http, tlsPart.tlsMode, tlsPart.alpnProtocols),
    ...security,
    http,
    send,
  };
}

/** Every route of `routes` (an array); a route with a problem is reported and left out. */
export function resolveRoutes(routes: unknown, context: IRouteContext, problems: Problems): IResolvedRoute[] {
  if (!Array.isArray(routes)) {
    new Scope(problems).add('ERR_CONFIG_ROUTES', 'routes', `must be an array of routes, got ${describe(routes)}`);
    return [];
  }
  const resolved: IResolvedRoute[] = [];
  routes.forEach((raw, i) => {
    const route = resolveRoute(raw, i, context, problems);
    if (route !== null) resolved.push(route);
  });
  return resolved;
}
