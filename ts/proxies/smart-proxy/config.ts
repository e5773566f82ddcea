/**
 * Options and routes are checked and compiled once, here: every later stage works on resolved
 * values and never meets a bad configuration at connection time.
 */
import tls from 'node:tls';
import { ConfigError, type ConfigErrorCode } from '../../protocols/errors.js';
import { IpList, isCatchAll } from '../../core/utils/ip-utils.js';
import { DEFAULT_MAX_HEADER_SIZE, V2_FIXED_LENGTH, V2_MAX_TOTAL_LENGTH } from '../../protocols/proxy/constants.js';
import type { IProxyProtocolTlvOptions, ISmartProxyOptions } from './models/interfaces.js';
import type { IRouteConfig, TTlsMode } from './models/route-types.js';

export const DEFAULTS = Object.freeze({
  initialDataTimeout: 30_000,
  inactivityTimeout: 3_600_000,
  maxConnectionLifetime: 86_400_000,
  maxConnectionsPerIP: 0,
  gracefulShutdownTimeout: 0,
  proxyProtocolTimeout: 10_000,
  proxyProtocolMaxHeaderSize: DEFAULT_MAX_HEADER_SIZE,
  proxyProtocolRequired: true,
  proxyProtocolVersion: 1 as 1 | 2,
  connectTimeout: 10_000,
  flushTimeout: 5_000,
  proxyProtocolMaxPending: 1_000,
  proxyProtocolMaxPendingPerIP: 64,
});

const MAX_PORT = 65535;
const TLS_MODES: readonly TTlsMode[] = ['passthrough', 'terminate', 'terminate-and-reencrypt'];
const DOMAIN_PATTERN = /^(\*|(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*)$/;

/** How a route sends PROXY headers, after global options and route override are combined. */
export interface ISendSettings {
  version: 1 | 2;
  tlvs: IProxyProtocolTlvOptions;
}

/** Host-name patterns compiled for matching. */
export interface IDomainMatcher {
  any: boolean;
  exact: Set<string>;
  /** ".example.com" for "*.example.com". */
  suffixes: string[];
}

export interface IResolvedRoute {
  config: IRouteConfig;
  name: string;
  priority: number;
  /** Declaration order, the tie-breaker. */
  index: number;
  ports: number[];
  /** null: matches with or without SNI. */
  domains: IDomainMatcher | null;
  clientIp: IpList | null;
  allowList: IpList | null;
  blockList: IpList | null;
  maxConnections: number;
  hosts: string[];
  port: number;
  tlsMode: TTlsMode | 'none';
  secureContext: tls.SecureContext | null;
  alpnProtocols: string[] | undefined;
  backendTls: { rejectUnauthorized: boolean; ca?: string; servername?: string };
  send: ISendSettings | null;
}

export interface IResolvedConfig {
  listenAddress: string | undefined;
  enableHalfOpen: boolean;
  initialDataTimeout: number;
  inactivityTimeout: number;
  maxConnectionLifetime: number;
  maxConnectionsPerIP: number;
  gracefulShutdownTimeout: number;
  proxyIPs: IpList;
  trustAllProxyIPs: boolean;
  acceptProxyProtocol: boolean;
  proxyProtocolTimeout: number;
  proxyProtocolMaxHeaderSize: number;
  proxyProtocolRequired: boolean;
  /** Deadline for the TCP connection to a backend. */
  connectTimeout: number;
  /** Once one side is gone, how long the other may take to flush before it is destroyed. */
  flushTimeout: number;
  /** Connections that may wait in the PROXY or spoof-check stage at once, per listener (0: no cap). */
  proxyProtocolMaxPending: number;
  /** The same, per TCP peer address (0: no cap). */
  proxyProtocolMaxPendingPerIP: number;
  routes: IResolvedRoute[];
}

// Known keys per object: a misspelt option (say `acceptProxyprotocol`) must fail loudly, not be
// ignored and leave the proxy trusting nobody or everybody.
const KNOWN_KEYS = {
  options: ['routes', 'listenAddress', 'enableHalfOpen', 'initialDataTimeout', 'inactivityTimeout', 'maxConnectionLifetime', 'maxConnectionsPerIP', 'gracefulShutdownTimeout', 'defaults', 'proxyIPs', 'acceptProxyProtocol', 'trustAllProxyIPs', 'proxyProtocolTimeout', 'proxyProtocolMaxHeaderSize', 'proxyProtocolRequired', 'sendProxyProtocol', 'proxyProtocolVersion', 'proxyProtocolTlvs', 'connectTimeout', 'flushTimeout', 'proxyProtocolMaxPending', 'proxyProtocolMaxPendingPerIP'],
  defaults: ['target', 'security'],
  tlvs: ['authority', 'alpn', 'uniqueId', 'ssl', 'crc32c', 'passThrough'],
  route: ['name', 'priority', 'match', 'action'],
  match: ['ports', 'domains', 'clientIp'],
  action: ['type', 'target', 'tls', 'security', 'sendProxyProtocol'],
  target: ['host', 'port'],
  tls: ['mode', 'certificate', 'alpnProtocols', 'backend'],
  certificate: ['key', 'cert'],
  backendTls: ['rejectUnauthorized', 'ca', 'servername'],
  security: ['ipAllowList', 'ipBlockList', 'maxConnections'],
} as const;

function checkKeys(value: unknown, known: readonly string[], field: string, problems: Problems, route?: string): void {
  if (!isObject(value)) return;
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      problems.add('ERR_CONFIG_UNKNOWN_OPTION', field ? `${field}.${key}` : key, `unknown option (known here: ${known.join(', ')})`, route);
    }
  }
}

/** Collects every problem instead of stopping at the first, so the CLI can list them all. */
class Problems {
  readonly list: ConfigError[] = [];
  add(code: ConfigErrorCode, field: string, message: string, route?: string): void {
    this.list.push(new ConfigError(code, field, message, route));
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function duration(options: Record<string, unknown>, key: string, fallback: number, problems: Problems): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || !Number.isInteger(value)) {
    problems.add('ERR_CONFIG_OPTION', key, `must be a whole number of milliseconds ≥ 0, got ${JSON.stringify(value)}`);
    return fallback;
  }
  return value;
}

function flag(options: Record<string, unknown>, key: string, fallback: boolean, problems: Problems): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    problems.add('ERR_CONFIG_OPTION', key, `must be true or false, got ${JSON.stringify(value)}`);
    return fallback;
  }
  return value;
}

/** An IP/CIDR list; each bad entry is reported with its index, and the list is then null. */
function ipList(value: unknown, field: string, problems: Problems, route?: string): IpList | null {
  if (value === undefined) return null;
  if (!Array.isArray(value)) {
    problems.add('ERR_CONFIG_CIDR', field, 'must be an array of IP addresses or CIDR ranges', route);
    return null;
  }
  let valid = true;
  const list = new IpList(value as string[], (entry, i) => {
    problems.add('ERR_CONFIG_CIDR', `${field}[${i}]`, `${JSON.stringify(entry)} is not an IP address or CIDR range`, route);
    valid = false;
  });
  return valid ? list : null;
}

function expandPorts(spec: unknown, field: string, problems: Problems, route: string): number[] {
  const items = Array.isArray(spec) ? spec : [spec];
  const ports: number[] = [];
  const isPort = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= MAX_PORT;
  items.forEach((item, i) => {
    const path = Array.isArray(spec) ? `${field}[${i}]` : field;
    if (isPort(item)) ports.push(item);
    else if (isObject(item) && isPort(item.from) && isPort(item.to) && item.from <= item.to) {
      for (let p = item.from; p <= item.to; p++) ports.push(p);
    } else {
      problems.add('ERR_CONFIG_PORT', path, `${JSON.stringify(item)} is not a port 1..65535 or a range {from, to}`, route);
    }
  });
  if (items.length === 0) problems.add('ERR_CONFIG_PORT', field, 'needs at least one port', route);
  return [...new Set(ports)];
}

function compileDomains(value: unknown, field: string, problems: Problems, route: string): IDomainMatcher | null {
  if (value === undefined) return null;
  const list = Array.isArray(value) ? value : [value];
  const matcher: IDomainMatcher = { any: false, exact: new Set(), suffixes: [] };
  list.forEach((entry, i) => {
    const pattern = typeof entry === 'string' ? entry.trim().toLowerCase() : '';
    if (!DOMAIN_PATTERN.test(pattern)) {
      problems.add('ERR_CONFIG_DOMAIN', `${field}[${i}]`, `${JSON.stringify(entry)} is not a host name, *.suffix or *`, route);
    } else if (pattern === '*') matcher.any = true;
    else if (pattern.startsWith('*.')) matcher.suffixes.push(pattern.slice(1));
    else matcher.exact.add(pattern);
  });
  return matcher;
}

function resolveTlvOptions(value: unknown, field: string, problems: Problems, route?: string): IProxyProtocolTlvOptions {
  if (value === undefined) return {};
  if (!isObject(value)) {
    problems.add('ERR_CONFIG_OPTION', field, 'must be an object', route);
    return {};
  }
  for (const key of ['authority', 'alpn', 'uniqueId', 'ssl', 'crc32c']) {
    if (value[key] !== undefined && typeof value[key] !== 'boolean') problems.add('ERR_CONFIG_OPTION', `${field}.${key}`, 'must be true or false', route);
  }
  const pass = value.passThrough;
  if (pass !== undefined && (!Array.isArray(pass) || pass.some((t) => !Number.isInteger(t) || t < 0 || t > 0xff))) {
    problems.add('ERR_CONFIG_OPTION', `${field}.passThrough`, 'must be an array of TLV type numbers 0..255', route);
  }
  return value as IProxyProtocolTlvOptions;
}

function resolveVersion(value: unknown, field: string, problems: Problems, route?: string): 1 | 2 {
  if (value === undefined) return DEFAULTS.proxyProtocolVersion;
  if (value !== 1 && value !== 2) {
    problems.add('ERR_CONFIG_OPTION', field, `must be 1 or 2, got ${JSON.stringify(value)}`, route);
    return DEFAULTS.proxyProtocolVersion;
  }
  return value;
}

function resolveRoute(
  raw: unknown,
  index: number,
  options: ISmartProxyOptions,
  globalSend: ISendSettings & { enabled: boolean },
  names: Set<string>,
  problems: Problems,
): IResolvedRoute | null {
  const base = `routes[${index}]`;
  if (!isObject(raw)) {
    problems.add('ERR_CONFIG_ROUTE', base, 'must be an object');
    return null;
  }
  const r = raw as unknown as IRouteConfig;
  const name = typeof r.name === 'string' && r.name.length > 0 ? r.name : undefined;
  if (name === undefined) problems.add('ERR_CONFIG_ROUTE_NAME', `${base}.name`, 'every route needs a non-empty name');
  else if (names.has(name)) problems.add('ERR_CONFIG_ROUTE_NAME', `${base}.name`, 'duplicate route name', name);
  else names.add(name);
  const label = name ?? `#${index}`;

  if (!isObject(r.match)) {
    problems.add('ERR_CONFIG_ROUTE', `${base}.match`, 'must be an object with ports', label);
    return null;
  }
  if (!isObject(r.action)) {
    problems.add('ERR_CONFIG_ROUTE', `${base}.action`, 'must be an object', label);
    return null;
  }
  checkKeys(r, KNOWN_KEYS.route, base, problems, label);
  checkKeys(r.match, KNOWN_KEYS.match, `${base}.match`, problems, label);
  checkKeys(r.action, KNOWN_KEYS.action, `${base}.action`, problems, label);
  checkKeys(r.action.target, KNOWN_KEYS.target, `${base}.action.target`, problems, label);
  checkKeys(r.action.security, KNOWN_KEYS.security, `${base}.action.security`, problems, label);
  if (isObject(r.action.tls)) {
    checkKeys(r.action.tls, KNOWN_KEYS.tls, `${base}.action.tls`, problems, label);
    checkKeys(r.action.tls.certificate, KNOWN_KEYS.certificate, `${base}.action.tls.certificate`, problems, label);
    checkKeys(r.action.tls.backend, KNOWN_KEYS.backendTls, `${base}.action.tls.backend`, problems, label);
  }
  if (isObject(r.action.sendProxyProtocol)) {
    checkKeys(r.action.sendProxyProtocol, ['version', 'tlvs'], `${base}.action.sendProxyProtocol`, problems, label);
    checkKeys(r.action.sendProxyProtocol.tlvs, KNOWN_KEYS.tlvs, `${base}.action.sendProxyProtocol.tlvs`, problems, label);
  }
  const ports = expandPorts(r.match.ports, `${base}.match.ports`, problems, label);
  const domains = compileDomains(r.match.domains, `${base}.match.domains`, problems, label);
  const clientIp = ipList(r.match.clientIp, `${base}.match.clientIp`, problems, label);
  const priority = r.priority ?? 0;
  if (typeof priority !== 'number' || !Number.isFinite(priority)) problems.add('ERR_CONFIG_ROUTE', `${base}.priority`, 'must be a number', label);

  const action = r.action;
  if (action.type !== 'forward') {
    problems.add('ERR_CONFIG_ACTION_TYPE', `${base}.action.type`, `unknown action type ${JSON.stringify(action.type)} (supported: "forward")`, label);
  }
  const target = { ...options.defaults?.target, ...(isObject(action.target) ? action.target : {}) };
  const hosts = Array.isArray(target.host) ? target.host : [target.host];
  if (hosts.length === 0 || hosts.some((h) => typeof h !== 'string' || h.length === 0)) {
    problems.add('ERR_CONFIG_TARGET', `${base}.action.target.host`, 'needs a host name or a non-empty list of them', label);
  }
  if (typeof target.port !== 'number' || !Number.isInteger(target.port) || target.port < 1 || target.port > MAX_PORT) {
    problems.add('ERR_CONFIG_PORT', `${base}.action.target.port`, `${JSON.stringify(target.port)} is not a port 1..65535`, label);
  }

  let tlsMode: IResolvedRoute['tlsMode'] = 'none';
  let secureContext: tls.SecureContext | null = null;
  const tlsConfig = action.tls;
  if (tlsConfig !== undefined) {
    if (!isObject(tlsConfig) || !TLS_MODES.includes(tlsConfig.mode)) {
      problems.add('ERR_CONFIG_TLS', `${base}.action.tls.mode`, `must be one of ${TLS_MODES.join(', ')}`, label);
    } else {
      tlsMode = tlsConfig.mode;
      if (tlsMode !== 'passthrough') {
        const cert = tlsConfig.certificate;
        if (!isObject(cert) || typeof cert.key !== 'string' || typeof cert.cert !== 'string') {
          problems.add('ERR_CONFIG_TLS', `${base}.action.tls.certificate`, `${tlsMode} needs certificate: { key, cert } (PEM)`, label);
        } else {
          try {
            secureContext = tls.createSecureContext({ key: cert.key, cert: cert.cert });
          } catch (err) {
            problems.add('ERR_CONFIG_TLS', `${base}.action.tls.certificate`, `unusable key or certificate: ${(err as Error).message}`, label);
          }
        }
      }
    }
  }

  const security = { ...options.defaults?.security, ...(isObject(action.security) ? action.security : {}) };
  const allowList = ipList(security.ipAllowList, `${base}.action.security.ipAllowList`, problems, label);
  const blockList = ipList(security.ipBlockList, `${base}.action.security.ipBlockList`, problems, label);
  const maxConnections = security.maxConnections ?? 0;
  if (!Number.isInteger(maxConnections) || maxConnections < 0) {
    problems.add('ERR_CONFIG_OPTION', `${base}.action.security.maxConnections`, 'must be a whole number ≥ 0', label);
  }

  let send: ISendSettings | null = globalSend.enabled ? globalSend : null;
  const override = action.sendProxyProtocol;
  if (override === false) send = null;
  else if (override === true) send = { version: globalSend.version, tlvs: globalSend.tlvs };
  else if (isObject(override)) {
    send = {
      version: override.version === undefined ? globalSend.version : resolveVersion(override.version, `${base}.action.sendProxyProtocol.version`, problems, label),
      tlvs: override.tlvs === undefined ? globalSend.tlvs : resolveTlvOptions(override.tlvs, `${base}.action.sendProxyProtocol.tlvs`, problems, label),
    };
  } else if (override !== undefined) {
    problems.add('ERR_CONFIG_OPTION', `${base}.action.sendProxyProtocol`, 'must be true, false or { version, tlvs }', label);
  }

  return {
    config: r,
    name: label,
    priority: typeof priority === 'number' ? priority : 0,
    index,
    ports,
    domains,
    clientIp,
    allowList,
    blockList,
    maxConnections: Number.isInteger(maxConnections) ? maxConnections : 0,
    hosts: hosts as string[],
    port: target.port as number,
    tlsMode,
    secureContext,
    alpnProtocols: tlsConfig?.alpnProtocols,
    backendTls: {
      rejectUnauthorized: tlsConfig?.backend?.rejectUnauthorized ?? true,
      ca: tlsConfig?.backend?.ca,
      servername: tlsConfig?.backend?.servername,
    },
    send,
  };
}

/** Checks routes alone (for updateRoutes), against the options they run under. */
export function resolveRoutes(routes: unknown, options: ISmartProxyOptions, problems = new Problems()): IResolvedRoute[] {
  if (!Array.isArray(routes)) {
    problems.add('ERR_CONFIG_ROUTES', 'routes', 'must be an array of routes');
    return [];
  }
  const globalSend = {
    enabled: options.sendProxyProtocol === true,
    version: resolveVersion(options.proxyProtocolVersion, 'proxyProtocolVersion', problems),
    tlvs: resolveTlvOptions(options.proxyProtocolTlvs, 'proxyProtocolTlvs', problems),
  };
  const names = new Set<string>();
  const resolved: IResolvedRoute[] = [];
  routes.forEach((raw, i) => {
    const route = resolveRoute(raw, i, options, globalSend, names, problems);
    if (route) resolved.push(route);
  });
  return resolved;
}

/** Every problem in `options`, each a ConfigError with the JSON path of its field. */
export function collectConfigErrors(options: unknown): ConfigError[] {
  return validate(options).problems.list;
}

function validate(input: unknown): { config: IResolvedConfig; problems: Problems } {
  const problems = new Problems();
  const options = (isObject(input) ? input : {}) as unknown as ISmartProxyOptions;
  if (!isObject(input)) problems.add('ERR_CONFIG_OPTION', '', 'options must be an object');
  const raw = options as unknown as Record<string, unknown>;
  checkKeys(raw, KNOWN_KEYS.options, '', problems);
  checkKeys(raw.defaults, KNOWN_KEYS.defaults, 'defaults', problems);
  checkKeys(options.defaults?.target, KNOWN_KEYS.target, 'defaults.target', problems);
  checkKeys(options.defaults?.security, KNOWN_KEYS.security, 'defaults.security', problems);
  checkKeys(raw.proxyProtocolTlvs, KNOWN_KEYS.tlvs, 'proxyProtocolTlvs', problems);
  const trustAllProxyIPs = flag(raw, 'trustAllProxyIPs', false, problems);
  let proxyIPs = ipList(options.proxyIPs, 'proxyIPs', problems);
  (options.proxyIPs ?? []).forEach((entry, i) => {
    if (typeof entry === 'string' && isCatchAll(entry) && !trustAllProxyIPs) {
      problems.add(
        'ERR_CONFIG_TRUST_ALL',
        `proxyIPs[${i}]`,
        `"${entry}" would let anyone on the internet claim any client address; list your proxies, or set trustAllProxyIPs: true if you really mean it`,
      );
      proxyIPs = null;
    }
  });
  if (options.listenAddress !== undefined && typeof options.listenAddress !== 'string') {
    problems.add('ERR_CONFIG_OPTION', 'listenAddress', 'must be a string');
  }
  const maxHeader = options.proxyProtocolMaxHeaderSize ?? DEFAULTS.proxyProtocolMaxHeaderSize;
  if (!Number.isInteger(maxHeader) || maxHeader < V2_FIXED_LENGTH || maxHeader > V2_MAX_TOTAL_LENGTH) {
    problems.add('ERR_CONFIG_OPTION', 'proxyProtocolMaxHeaderSize', `must be a whole number 16..65551, got ${JSON.stringify(maxHeader)}`);
  }
  const config: IResolvedConfig = {
    listenAddress: options.listenAddress,
    enableHalfOpen: flag(raw, 'enableHalfOpen', false, problems),
    initialDataTimeout: duration(raw, 'initialDataTimeout', DEFAULTS.initialDataTimeout, problems),
    inactivityTimeout: duration(raw, 'inactivityTimeout', DEFAULTS.inactivityTimeout, problems),
    maxConnectionLifetime: duration(raw, 'maxConnectionLifetime', DEFAULTS.maxConnectionLifetime, problems),
    maxConnectionsPerIP: duration(raw, 'maxConnectionsPerIP', DEFAULTS.maxConnectionsPerIP, problems),
    gracefulShutdownTimeout: duration(raw, 'gracefulShutdownTimeout', DEFAULTS.gracefulShutdownTimeout, problems),
    proxyIPs: proxyIPs ?? new IpList([]),
    trustAllProxyIPs,
    acceptProxyProtocol: flag(raw, 'acceptProxyProtocol', false, problems),
    proxyProtocolTimeout: duration(raw, 'proxyProtocolTimeout', DEFAULTS.proxyProtocolTimeout, problems),
    proxyProtocolMaxHeaderSize: maxHeader,
    proxyProtocolRequired: flag(raw, 'proxyProtocolRequired', DEFAULTS.proxyProtocolRequired, problems),
    connectTimeout: duration(raw, 'connectTimeout', DEFAULTS.connectTimeout, problems),
    flushTimeout: duration(raw, 'flushTimeout', DEFAULTS.flushTimeout, problems),
    proxyProtocolMaxPending: duration(raw, 'proxyProtocolMaxPending', DEFAULTS.proxyProtocolMaxPending, problems),
    proxyProtocolMaxPendingPerIP: duration(raw, 'proxyProtocolMaxPendingPerIP', DEFAULTS.proxyProtocolMaxPendingPerIP, problems),
    routes: resolveRoutes(options.routes, options, problems),
  };
  flag(raw, 'sendProxyProtocol', false, problems);
  return { config, problems };
}

/** Resolves options, throwing the first ConfigError (all of them: collectConfigErrors). */
export function resolveConfig(options: ISmartProxyOptions): IResolvedConfig {
  const { config, problems } = validate(options);
  if (problems.list.length > 0) throw problems.list[0];
  return config;
}

/** Resolves replacement routes, throwing the first ConfigError. */
export function resolveRoutesOrThrow(routes: IRouteConfig[], options: ISmartProxyOptions): IResolvedRoute[] {
  const problems = new Problems();
  const resolved = resolveRoutes(routes, options, problems);
  if (problems.list.length > 0) throw problems.list[0];
  return resolved;
}
