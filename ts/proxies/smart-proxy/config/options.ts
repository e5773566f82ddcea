/**
 * Options and routes are checked and compiled once, here: every later stage works on resolved
 * values and never meets a bad configuration at connection time.
 */
import type { ConfigError } from '../../../protocols/errors.js';
import { IpList, isCatchAll } from '../../../core/utils/ip-utils.js';
import { DEFAULT_MAX_HEADER_SIZE, V2_FIXED_LENGTH, V2_MAX_TOTAL_LENGTH } from '../../../protocols/proxy/constants.js';
import type { ISmartProxyOptions } from '../models/interfaces.js';
import type { IRouteConfig } from '../models/route-types.js';
import { isObject, Problems, Scope } from './check.js';
import { resolvePolicies } from './policy.js';
import { type IRouteContext, resolveRoutes } from './route.js';
import { ipList, resolveDefaultSecurity, SECURITY_KEYS } from './security.js';
import { DEFAULT_VERSION, resolveGlobalSend } from './sending.js';
import { resolveDefaultTarget, TARGET_KEYS } from './target.js';
import { SecureContextCache } from './tls.js';
import type { IResolvedConfig, IResolvedRoute } from './types.js';

export const DEFAULTS = Object.freeze({
  initialDataTimeout: 30_000,
  inactivityTimeout: 3_600_000,
  maxConnectionLifetime: 86_400_000,
  maxConnectionsPerIP: 0,
  gracefulShutdownTimeout: 0,
  proxyProtocolTimeout: 10_000,
  proxyProtocolMaxHeaderSize: DEFAULT_MAX_HEADER_SIZE,
  proxyProtocolRequired: true,
  proxyProtocolVersion: DEFAULT_VERSION,
  connectTimeout: 10_000,
  flushTimeout: 5_000,
  proxyProtocolMaxPending: 1_000,
  proxyProtocolMaxPendingPerIP: 64,
  udpSessionTimeout: 60_000,
  udpMaxSessions: 10_000,
});

const OPTION_KEYS = [
  'routes', 'listenAddress', 'enableHalfOpen', 'initialDataTimeout', 'inactivityTimeout', 'maxConnectionLifetime',
  'maxConnectionsPerIP', 'gracefulShutdownTimeout', 'defaults', 'proxyIPs', 'acceptProxyProtocol', 'trustAllProxyIPs',
  'proxyProtocolTimeout', 'proxyProtocolMaxHeaderSize', 'proxyProtocolRequired', 'sendProxyProtocol', 'proxyProtocolVersion',
  'proxyProtocolTlvs', 'connectTimeout', 'flushTimeout', 'proxyProtocolMaxPending', 'proxyProtocolMaxPendingPerIP',
  'proxyProtocolRules', 'proxyProtocolVersions', 'udpSessionTimeout', 'udpMaxSessions',
] as const;
const DEFAULTS_KEYS = ['target', 'security'] as const;

// Scalar options by kind: each kind has one check and one wording ("milliseconds", "connections").
const DURATIONS = ['initialDataTimeout', 'inactivityTimeout', 'maxConnectionLifetime', 'gracefulShutdownTimeout', 'proxyProtocolTimeout', 'connectTimeout', 'flushTimeout', 'udpSessionTimeout'] as const;
const COUNTS = ['maxConnectionsPerIP', 'proxyProtocolMaxPending', 'proxyProtocolMaxPendingPerIP', 'udpMaxSessions'] as const;
const FLAGS = { enableHalfOpen: false, acceptProxyProtocol: false, proxyProtocolRequired: DEFAULTS.proxyProtocolRequired } as const;

type TScalars = Record<(typeof DURATIONS)[number] | (typeof COUNTS)[number], number> & Record<keyof typeof FLAGS, boolean>;

function resolveScalars(raw: Record<string, unknown>, scope: Scope): TScalars {
  const scalars: Record<string, number | boolean> = {};
  for (const key of DURATIONS) scalars[key] = scope.whole(raw[key], key, DEFAULTS[key], 'milliseconds');
  for (const key of COUNTS) scalars[key] = scope.whole(raw[key], key, DEFAULTS[key], 'connections');
  for (const [key, fallback] of Object.entries(FLAGS)) scalars[key] = scope.flag(raw[key], key, fallback);
  return scalars as TScalars;
}

/** `proxyIPs` and `trustAllProxyIPs`: a catch-all entry needs the explicit flag. */
function resolveTrust(raw: Record<string, unknown>, scope: Scope): Pick<IResolvedConfig, 'proxyIPs' | 'trustAllProxyIPs'> {
  const trustAllProxyIPs = scope.flag(raw.trustAllProxyIPs, 'trustAllProxyIPs', false);
  const list = ipList(raw.proxyIPs, 'proxyIPs', scope);
  let catchAll = false;
  if (Array.isArray(raw.proxyIPs) && !trustAllProxyIPs) {
    raw.proxyIPs.forEach((entry: unknown, i) => {
      if (typeof entry !== 'string' || !isCatchAll(entry)) return;
      catchAll = true;
      scope.add(
        'ERR_CONFIG_TRUST_ALL',
        `proxyIPs[${i}]`,
        `"${entry}" would let anyone on the internet claim any client address; list your proxies, or set trustAllProxyIPs: true if you really mean it`,
      );
    });
  }
  return { proxyIPs: list !== null && !catchAll ? list : new IpList([]), trustAllProxyIPs };
}

/** What the routes of `raw` resolve against: its defaults and sending settings. */
function routeContext(raw: Record<string, unknown>, scope: Scope): IRouteContext {
  const defaults = scope.object(raw.defaults, 'defaults', DEFAULTS_KEYS) ?? {};
  return {
    target: resolveDefaultTarget(defaults.target, scope),
    security: resolveDefaultSecurity(defaults.security, scope),
    send: resolveGlobalSend(raw, scope),
    contexts: new SecureContextCache(),
    names: new Set(),
  };
}

function validate(input: unknown): { config: IResolvedConfig; problems: Problems } {
  const problems = new Problems();
  const scope = new Scope(problems);
  if (!isObject(input)) scope.add('ERR_CONFIG_OPTION', '', 'options must be an object');
  const raw = scope.object(isObject(input) ? input : {}, '', OPTION_KEYS) ?? {};
  const scalars = resolveScalars(raw, scope);
  const trust = resolveTrust(raw, scope);
  const config: IResolvedConfig = {
    listenAddress: scope.text(raw.listenAddress, 'listenAddress'),
    ...scalars,
    ...trust,
    ...resolvePolicies(raw, trust.proxyIPs, scalars.proxyProtocolRequired, trust.trustAllProxyIPs, scope),
    proxyProtocolMaxHeaderSize: scope.whole(raw.proxyProtocolMaxHeaderSize, 'proxyProtocolMaxHeaderSize', DEFAULTS.proxyProtocolMaxHeaderSize, 'bytes', V2_FIXED_LENGTH, V2_MAX_TOTAL_LENGTH),
    routes: [],
  };
  config.routes = resolveRoutes(raw.routes, routeContext(raw, scope), problems);
  return { config, problems };
}

/** Every problem in `options`, each a ConfigError with the JSON path of its field. Never throws. */
export function collectConfigErrors(options: unknown): ConfigError[] {
  return validate(options).problems.list;
}

/** Resolves options, throwing the first ConfigError (all of them: collectConfigErrors). */
export function resolveConfig(options: ISmartProxyOptions): IResolvedConfig {
  const { config, problems } = validate(options);
  if (problems.list.length > 0) throw problems.list[0];
  return config;
}

/** Resolves replacement routes against the options they run under, throwing the first ConfigError. */
export function resolveRoutesOrThrow(routes: IRouteConfig[], options: ISmartProxyOptions): IResolvedRoute[] {
  const problems = new Problems();
  const raw = isObject(options) ? options : {};
  const resolved = resolveRoutes(routes, routeContext(raw, new Scope(problems)), problems);
  if (problems.list.length > 0) throw problems.list[0];
  return resolved;
}
