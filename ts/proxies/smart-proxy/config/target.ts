/** `action.target` and `defaults.target`: where a route forwards to. */
import net from 'node:net';
import { describe, type Scope } from './check.js';
import { isPort } from './match.js';

export const TARGET_KEYS = ['host', 'port'] as const;

// RFC 1123 labels, plus '_' (container and service names use it); at most 253 characters in all.
const DNS_NAME = /^(?=.{1,253}\.?$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;
// A top-level label is never all digits: "999.1.1.1" is a bad IPv4 address, not a name.
const NUMERIC_TOP_LABEL = /(^|\.)\d+\.?$/;

export interface IResolvedTarget {
  hosts: string[];
  port: number;
}

/** What `defaults.target` gives routes; `*Given` says the field was there (valid or not). */
export interface IDefaultTarget {
  hosts?: string[];
  port?: number;
  hostGiven: boolean;
  portGiven: boolean;
}

/** Why `host` cannot be connected to, or null when it can: an IP literal or a DNS host name. */
function hostProblem(host: unknown): string | null {
  if (typeof host !== 'string' || host.length === 0) return `${describe(host)} is not a host name or IP address`;
  if (net.isIP(host) !== 0) return null;
  if (host.startsWith('[') && host.endsWith(']') && net.isIPv6(host.slice(1, -1))) {
    return `${describe(host)}: write ${host.slice(1, -1)} without brackets (brackets belong in URLs, the port is a separate field)`;
  }
  if (DNS_NAME.test(host) && !NUMERIC_TOP_LABEL.test(host)) return null;
  return `${describe(host)} is not an IP address or DNS host name${host.includes(':') ? ' (the port is a separate field)' : ''}`;
}

function resolveHosts(value: unknown, field: string, scope: Scope): string[] | undefined {
  if (typeof value === 'string') {
    const problem = hostProblem(value);
    if (problem === null) return [value];
    scope.add('ERR_CONFIG_TARGET', field, problem);
    return undefined;
  }
  return scope.list<string>(value, field, { what: 'host names or IP addresses', item: hostProblem, code: 'ERR_CONFIG_TARGET' });
}

function resolvePort(value: unknown, field: string, scope: Scope): number | undefined {
  if (isPort(value)) return value;
  scope.add('ERR_CONFIG_PORT', field, `${describe(value)} is not a port 1..65535`);
  return undefined;
}

/** `defaults.target`, checked once, not once per route that uses it. */
export function resolveDefaultTarget(value: unknown, scope: Scope): IDefaultTarget {
  const raw = scope.object(value, 'defaults.target', TARGET_KEYS, 'ERR_CONFIG_TARGET') ?? {};
  return {
    hosts: raw.host === undefined ? undefined : resolveHosts(raw.host, 'defaults.target.host', scope),
    port: raw.port === undefined ? undefined : resolvePort(raw.port, 'defaults.target.port', scope),
    hostGiven: raw.host !== undefined,
    portGiven: raw.port !== undefined,
  };
}

/** A route's target, field by field over the defaults. A field wrong in the defaults is reported there only. */
export function resolveTarget(value: unknown, defaults: IDefaultTarget, field: string, scope: Scope): IResolvedTarget {
  const given = scope.object(value, field, TARGET_KEYS, 'ERR_CONFIG_TARGET');
  // A target that is not an object was reported; its fields are not "missing" on top of that.
  if (given === undefined && value !== undefined) return { hosts: defaults.hosts ?? [], port: defaults.port ?? 0 };
  const raw = given ?? {};
  let hosts = defaults.hosts;
  if (raw.host !== undefined) hosts = resolveHosts(raw.host, `${field}.host`, scope);
  else if (!defaults.hostGiven) scope.add('ERR_CONFIG_TARGET', `${field}.host`, 'needs a host name or a non-empty list of them (here or in defaults.target)');
  let port = defaults.port;
  if (raw.port !== undefined) port = resolvePort(raw.port, `${field}.port`, scope);
  else if (!defaults.portGiven) scope.add('ERR_CONFIG_PORT', `${field}.port`, 'needs a port 1..65535 (here or in defaults.target)');
  return { hosts: hosts ?? [], port: port ?? 0 };
}
