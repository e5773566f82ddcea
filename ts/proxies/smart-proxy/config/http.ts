/**
 * HTTP routes: `action.http` and the request-level `match.path` / `match.headers`. A route with
 * any of them is HTTP-aware: its connections go to the HTTP stage, which routes each request.
 */
import type { IpList } from '../../../core/utils/ip-utils.js';
import { isCatchAll } from '../../../core/utils/ip-utils.js';
import type { TForwardedHeaders } from '../models/route-types.js';
import { describe, isObject, type Scope } from './check.js';
import { ipList } from './security.js';

export const HTTP_KEYS = ['forwardedHeaders', 'trustForwardedFrom', 'h2', 'maxHeaderSize', 'headersTimeout', 'keepAliveTimeout', 'backendTimeout'] as const;
const FORWARDED_HEADERS: readonly TForwardedHeaders[] = ['x-forwarded', 'forwarded', 'both', 'none'];
// Header names are tokens (RFC 9110 5.1); matched case-insensitively.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/i;

export const HTTP_DEFAULTS = Object.freeze({
  maxHeaderSize: 16 * 1024,
  headersTimeout: 30_000,
  keepAliveTimeout: 60_000,
  backendTimeout: 60_000,
});
/** Node's HTTP parser refuses more than this. */
const MAX_HEADER_SIZE = 1024 * 1024;

export interface IResolvedHttp {
  forwardedHeaders: TForwardedHeaders;
  /** Real clients (the hop that wrote the request), besides proxyIPs, whose X-Forwarded-* and Forwarded headers are kept. */
  trustForwardedFrom: IpList | null;
  h2: boolean;
  maxHeaderSize: number;
  headersTimeout: number;
  keepAliveTimeout: number;
  backendTimeout: number;
}

/** `match.path`: `/exact`, or `/prefix/*` for the prefix and everything under it. */
export interface IPathMatcher {
  path: string;
  prefix: boolean;
}

export interface IResolvedHttpMatch {
  path: IPathMatcher | null;
  /** Lower-case name and exact value, all of which a request must carry. */
  headers: Array<[string, string]> | null;
}

function resolvePath(value: unknown, field: string, scope: Scope): IPathMatcher | null {
  if (value === undefined) return null;
  if (typeof value !== 'string' || !value.startsWith('/') || /[\s?#]/.test(value)) {
    scope.add('ERR_CONFIG_HTTP', field, `${describe(value)} is not a path: "/exact" or "/prefix/*" (no query, no white space)`);
    return null;
  }
  if (value.endsWith('/*')) return { path: value.slice(0, -2), prefix: true };
  if (value.includes('*')) scope.add('ERR_CONFIG_HTTP', field, 'a "*" is allowed only at the end, after a "/" ("/api/*")');
  return { path: value, prefix: false };
}

function resolveHeaders(value: unknown, field: string, scope: Scope): Array<[string, string]> | null {
  if (value === undefined) return null;
  if (!isObject(value) || Object.keys(value).length === 0) {
    scope.add('ERR_CONFIG_HTTP', field, `must be a non-empty object { name: value }, got ${describe(value)}`);
    return null;
  }
  const pairs: Array<[string, string]> = [];
  for (const [name, expected] of Object.entries(value)) {
    if (!HEADER_NAME.test(name)) scope.add('ERR_CONFIG_HTTP', `${field}.${name}`, 'is not a header name');
    else if (typeof expected !== 'string') scope.add('ERR_CONFIG_HTTP', `${field}.${name}`, `must be a string, got ${describe(expected)}`);
    else pairs.push([name.toLowerCase(), expected]);
  }
  return pairs;
}

/** `match.path` and `match.headers`. */
export function resolveHttpMatch(raw: Record<string, unknown>, field: string, scope: Scope): IResolvedHttpMatch {
  return { path: resolvePath(raw.path, `${field}.path`, scope), headers: resolveHeaders(raw.headers, `${field}.headers`, scope) };
}

/** A trust list that names everybody would let anyone choose the client address. */
function trustList(value: unknown, field: string, scope: Scope): IpList | null {
  const list = ipList(value, field, scope);
  if (!Array.isArray(value)) return list;
  const everyone = value.findIndex((entry: unknown) => typeof entry === 'string' && isCatchAll(entry));
  if (everyone < 0) return list;
  scope.add('ERR_CONFIG_TRUST_ALL', `${field}[${everyone}]`, 'would let anyone choose the client address in X-Forwarded-For and Forwarded; list your proxies');
  return null;
}

/**
 * `action.http` for a route that is HTTP-aware (`http` given, or `match.path` / `match.headers`);
 * null for a byte-forwarding route. HTTP needs the bytes in the clear: not on passthrough routes.
 */
export function resolveHttp(value: unknown, match: IResolvedHttpMatch, tlsMode: string, field: string, scope: Scope): IResolvedHttp | null {
  if (value === undefined && match.path === null && match.headers === null) return null;
  if (tlsMode === 'passthrough') {
    scope.add('ERR_CONFIG_HTTP', field, 'HTTP routing (action.http, match.path, match.headers) needs the bytes in the clear: use tls.mode terminate or terminate-and-reencrypt, or no TLS');
  }
  const raw = scope.object(value, field, HTTP_KEYS, 'ERR_CONFIG_HTTP') ?? {};
  return {
    forwardedHeaders: scope.oneOf(raw.forwardedHeaders, `${field}.forwardedHeaders`, FORWARDED_HEADERS, 'ERR_CONFIG_HTTP') ?? 'x-forwarded',
    trustForwardedFrom: trustList(raw.trustForwardedFrom, `${field}.trustForwardedFrom`, scope),
    h2: scope.flag(raw.h2, `${field}.h2`, true),
    maxHeaderSize: scope.whole(raw.maxHeaderSize, `${field}.maxHeaderSize`, HTTP_DEFAULTS.maxHeaderSize, 'bytes', 1024, MAX_HEADER_SIZE),
    headersTimeout: scope.whole(raw.headersTimeout, `${field}.headersTimeout`, HTTP_DEFAULTS.headersTimeout, 'milliseconds'),
    keepAliveTimeout: scope.whole(raw.keepAliveTimeout, `${field}.keepAliveTimeout`, HTTP_DEFAULTS.keepAliveTimeout, 'milliseconds'),
    backendTimeout: scope.whole(raw.backendTimeout, `${field}.backendTimeout`, HTTP_DEFAULTS.backendTimeout, 'milliseconds'),
  };
}

/** ALPN offered to clients of a terminating HTTP route that names none: h2 (unless off), then HTTP/1.1. */
export function httpAlpn(http: IResolvedHttp | null, tlsMode: string, configured: string[] | undefined): string[] | undefined {
  if (http === null || configured !== undefined || (tlsMode !== 'terminate' && tlsMode !== 'terminate-and-reencrypt')) return configured;
  return http.h2 ? ['h2', 'http/1.1'] : ['http/1.1'];
}
