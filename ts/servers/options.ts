/**
 * Options of withProxyProtocol, checked once when a server is wrapped: connection time never
 * meets a bad value. The trust rules are SmartProxy's (policy rules, first match wins, a catch-all
 * source that would be believed is refused unless asked for), so a Node server behind a proxy is
 * no easier to spoof than SmartProxy itself.
 */
import { ConfigError } from '../protocols/errors.js';
import { DEFAULT_MAX_HEADER_SIZE, V2_FIXED_LENGTH, V2_MAX_TOTAL_LENGTH } from '../protocols/proxy/constants.js';
import { IpList, isCatchAll } from '../core/utils/ip-utils.js';
import { BELIEVING_POLICIES, type IProxyPolicyRule, PROXY_POLICIES, type ProxyPolicy, ProxyPolicyTable } from '../core/utils/proxy-policy.js';

/** One PROXY policy rule, as SmartProxy's `proxyProtocolRules` entries. */
export interface IProxyProtocolRule {
  /** TCP peers (IPs or CIDRs) the rule applies to. */
  from: string[];
  /** The server's local ports the rule applies to; all when absent. */
  ports?: number[];
  policy: ProxyPolicy;
}

export interface IWithProxyProtocolOptions {
  /**
   * The proxies whose headers are believed: IPs or CIDRs of the hop right in front. Required
   * unless `rules` is given; then a rule after those (`require`, or `use` with required: false).
   */
  proxyIPs?: string[];
  /** Policies by source and local port, first match wins; sources matching none get `reject`. */
  rules?: IProxyProtocolRule[];
  /** Header versions accepted (default [1, 2]); another is ERR_PP_VERSION_NOT_ALLOWED. */
  versions?: Array<1 | 2>;
  /** Allow a catch-all entry (`0.0.0.0/0`, `::/0`, `*`) in `proxyIPs`. Default false. */
  trustAllProxyIPs?: boolean;
  /** A trusted peer must send a header (default true); false: without one it is a direct client. */
  required?: boolean;
  /** Milliseconds for the header to arrive (default 10000; 0: no deadline). */
  timeout?: number;
  /** Largest v2 header accepted, in bytes (default 4096, 16..65551). */
  maxHeaderSize?: number;
}

export interface IResolvedServerOptions {
  policies: ProxyPolicyTable;
  versions: ReadonlySet<1 | 2>;
  timeout: number;
  maxHeaderSize: number;
}

const SERVER_DEFAULTS = Object.freeze({
  required: true,
  timeout: 10_000,
  maxHeaderSize: DEFAULT_MAX_HEADER_SIZE,
});

const KNOWN_KEYS: readonly string[] = ['proxyIPs', 'rules', 'versions', 'trustAllProxyIPs', 'required', 'timeout', 'maxHeaderSize'];
const RULE_KEYS: readonly string[] = ['from', 'ports', 'policy'];
const MAX_PORT = 65535;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function flag(options: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ConfigError('ERR_CONFIG_OPTION', key, `must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function wholeNumber(options: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError('ERR_CONFIG_OPTION', key, `must be a whole number ${min}..${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function trustAllProblem(entry: string, field: string, policy: ProxyPolicy): ConfigError {
  return new ConfigError(
    'ERR_CONFIG_TRUST_ALL',
    field,
    `"${entry}" with policy "${policy}" would let anyone on the internet claim any client address; list your proxies, or set trustAllProxyIPs: true if you really mean it`,
  );
}

/** IPs or CIDRs; a catch-all entry only when nothing it sends is believed, or with trustAll. */
function sourceList(value: unknown, field: string, policy: ProxyPolicy, trustAll: boolean): IpList {
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError('ERR_CONFIG_CIDR', field, 'must be a non-empty array of IP addresses or CIDR ranges');
  const list = new IpList(value as string[], (entry, i) => {
    throw new ConfigError('ERR_CONFIG_CIDR', `${field}[${i}]`, `${JSON.stringify(entry)} is not an IP address or CIDR range`);
  });
  value.forEach((entry: unknown, i) => {
    if (typeof entry === 'string' && isCatchAll(entry) && !trustAll && BELIEVING_POLICIES.has(policy)) throw trustAllProblem(entry, `${field}[${i}]`, policy);
  });
  return list;
}

function rulePorts(value: unknown, field: string): ReadonlySet<number> | null {
  if (value === undefined) return null;
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError('ERR_CONFIG_PORT', field, 'must be a non-empty array of ports 1..65535');
  value.forEach((p: unknown, i) => {
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > MAX_PORT) {
      throw new ConfigError('ERR_CONFIG_PORT', `${field}[${i}]`, `${JSON.stringify(p)} is not a port 1..65535`);
    }
  });
  return new Set(value as number[]);
}

function resolveRule(value: unknown, field: string, trustAll: boolean): IProxyPolicyRule {
  if (!isObject(value)) throw new ConfigError('ERR_CONFIG_OPTION', field, 'must be an object { from, ports?, policy }');
  for (const key of Object.keys(value)) {
    if (!RULE_KEYS.includes(key)) throw new ConfigError('ERR_CONFIG_UNKNOWN_OPTION', `${field}.${key}`, `unknown option (known here: ${RULE_KEYS.join(', ')})`);
  }
  const policy = value.policy;
  if (typeof policy !== 'string' || !(PROXY_POLICIES as readonly string[]).includes(policy)) {
    throw new ConfigError('ERR_CONFIG_OPTION', `${field}.policy`, `must be one of ${PROXY_POLICIES.join(', ')}, got ${JSON.stringify(policy)}`);
  }
  const from = sourceList(value.from, `${field}.from`, policy as ProxyPolicy, trustAll);
  return { from, ports: rulePorts(value.ports, `${field}.ports`), policy: policy as ProxyPolicy };
}

/** The explicit rules, then proxyIPs as a rule of its own; the table's fallback is `reject`. */
function policyTable(options: Record<string, unknown>, trustAll: boolean, required: boolean): ProxyPolicyTable {
  const { rules, proxyIPs } = options;
  if (rules !== undefined && !Array.isArray(rules)) throw new ConfigError('ERR_CONFIG_OPTION', 'rules', 'must be an array of rules { from, ports?, policy }');
  const table = (rules ?? []).map((rule, i) => resolveRule(rule, `rules[${i}]`, trustAll));
  if (proxyIPs === undefined && rules === undefined) {
    throw new ConfigError('ERR_CONFIG_OPTION', 'proxyIPs', 'is required (or rules): list the addresses of the proxy in front of this server');
  }
  if (proxyIPs !== undefined) {
    if (!Array.isArray(proxyIPs)) throw new ConfigError('ERR_CONFIG_CIDR', 'proxyIPs', 'must be an array of IP addresses or CIDR ranges');
    // An empty proxyIPs trusts nobody: every peer is then a direct client (`reject`).
    const policy = required ? 'require' : 'use';
    if (proxyIPs.length > 0) table.push({ from: sourceList(proxyIPs, 'proxyIPs', policy, trustAll), ports: null, policy });
  }
  return new ProxyPolicyTable(table);
}

function versionSet(value: unknown): ReadonlySet<1 | 2> {
  if (value === undefined) return new Set([1, 2]);
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError('ERR_CONFIG_OPTION', 'versions', 'must be a non-empty array of PROXY protocol versions (1, 2)');
  value.forEach((v: unknown, i) => {
    if (v !== 1 && v !== 2) throw new ConfigError('ERR_CONFIG_OPTION', `versions[${i}]`, `${JSON.stringify(v)} is not 1 or 2`);
  });
  return new Set(value as Array<1 | 2>);
}

/** Resolves and checks the options; the first problem is thrown as a ConfigError naming its field. */
export function resolveServerOptions(options: unknown): IResolvedServerOptions {
  if (!isObject(options)) throw new ConfigError('ERR_CONFIG_OPTION', '', 'options must be an object with proxyIPs or rules');
  for (const key of Object.keys(options)) {
    if (!KNOWN_KEYS.includes(key)) {
      throw new ConfigError('ERR_CONFIG_UNKNOWN_OPTION', key, `unknown option (known here: ${KNOWN_KEYS.join(', ')})`);
    }
  }
  const trustAll = flag(options, 'trustAllProxyIPs', false);
  const required = flag(options, 'required', SERVER_DEFAULTS.required);
  return {
    policies: policyTable(options, trustAll, required),
    versions: versionSet(options.versions),
    timeout: wholeNumber(options, 'timeout', SERVER_DEFAULTS.timeout, 0, 2 ** 31 - 1),
    maxHeaderSize: wholeNumber(options, 'maxHeaderSize', SERVER_DEFAULTS.maxHeaderSize, V2_FIXED_LENGTH, V2_MAX_TOTAL_LENGTH),
  };
}
