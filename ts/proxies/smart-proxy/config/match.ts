/** `match`: listening ports, SNI domains and real client addresses. */
import type { IpList } from '../../../core/utils/ip-utils.js';
import { describe, isObject, type Scope } from './check.js';
import { type IResolvedHttpMatch, resolveHttpMatch } from './http.js';
import { ipList } from './security.js';
import type { IDomainMatcher } from './types.js';

export const MATCH_KEYS = ['ports', 'domains', 'clientIp', 'transport', 'path', 'headers'] as const;
const TRANSPORTS = ['tcp', 'udp'] as const;
const RANGE_KEYS = ['from', 'to'] as const;
export const MAX_PORT = 65535;
const DOMAIN_PATTERN = /^(\*|(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*)$/;

export interface IResolvedMatch extends IResolvedHttpMatch {
  ports: number[];
  domains: IDomainMatcher | null;
  clientIp: IpList | null;
  /** Which listener the route is for: TCP (default) or UDP. */
  transport: 'tcp' | 'udp';
}

export function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_PORT;
}

/** The ports of a range `{ from, to }`, or none (each problem reported at its field). */
function expandRange(range: Record<string, unknown>, field: string, scope: Scope): number[] {
  scope.object(range, field, RANGE_KEYS, 'ERR_CONFIG_PORT');
  const { from, to } = range;
  if (!isPort(from)) scope.add('ERR_CONFIG_PORT', `${field}.from`, `${describe(from)} is not a port 1..65535`);
  if (!isPort(to)) scope.add('ERR_CONFIG_PORT', `${field}.to`, `${describe(to)} is not a port 1..65535`);
  if (!isPort(from) || !isPort(to)) return [];
  if (from > to) {
    scope.add('ERR_CONFIG_PORT', field, `from ${from} is above to ${to}`);
    return [];
  }
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function expandPorts(spec: unknown, field: string, scope: Scope): number[] {
  if (spec === undefined || (Array.isArray(spec) && spec.length === 0)) {
    scope.add('ERR_CONFIG_PORT', field, 'needs at least one port');
    return [];
  }
  const items = Array.isArray(spec) ? spec : [spec];
  const ports: number[] = [];
  items.forEach((item, i) => {
    const at = Array.isArray(spec) ? `${field}[${i}]` : field;
    if (isPort(item)) ports.push(item);
    else if (isObject(item)) for (const port of expandRange(item, at, scope)) ports.push(port);
    else scope.add('ERR_CONFIG_PORT', at, `${describe(item)} is not a port 1..65535 or a range {from, to}`);
  });
  return [...new Set(ports)];
}

function compileDomains(value: unknown, field: string, scope: Scope): IDomainMatcher | null {
  if (value === undefined) return null;
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) scope.add('ERR_CONFIG_DOMAIN', field, 'an empty list matches nothing; leave domains out to match any SNI');
  const matcher: IDomainMatcher = { any: false, exact: new Set(), suffixes: [] };
  list.forEach((entry, i) => {
    const pattern = typeof entry === 'string' ? entry.trim().toLowerCase() : '';
    if (!DOMAIN_PATTERN.test(pattern)) {
      scope.add('ERR_CONFIG_DOMAIN', Array.isArray(value) ? `${field}[${i}]` : field, `${describe(entry)} is not a host name, *.suffix or *`);
    } else if (pattern === '*') matcher.any = true;
    else if (pattern.startsWith('*.')) matcher.suffixes.push(pattern.slice(1));
    else matcher.exact.add(pattern);
  });
  return matcher;
}

/** `match` (an object, required). */
export function resolveMatch(raw: Record<string, unknown>, field: string, scope: Scope): IResolvedMatch {
  return {
    ports: expandPorts(raw.ports, `${field}.ports`, scope),
    domains: compileDomains(raw.domains, `${field}.domains`, scope),
    clientIp: ipList(raw.clientIp, `${field}.clientIp`, scope),
    transport: raw.transport === undefined ? 'tcp' : (scope.oneOf(raw.transport, `${field}.transport`, TRANSPORTS, 'ERR_CONFIG_ROUTE') ?? 'tcp'),
    ...resolveHttpMatch(raw, field, scope),
  };
}
