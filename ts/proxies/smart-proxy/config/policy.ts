/**
 * `proxyProtocolRules`, `proxyIPs` + `proxyProtocolRequired` and `proxyProtocolVersions`, compiled
 * into one policy table. `proxyIPs` keeps its meaning: a rule after the explicit ones, `require`
 * (or `use` when proxyProtocolRequired is false). A catch-all source that would be believed
 * (`require`, `use`) needs trustAllProxyIPs; one that is never believed does not.
 */
import { type IpList, isCatchAll } from '../../../core/utils/ip-utils.js';
import { BELIEVING_POLICIES, type IProxyPolicyRule, PROXY_POLICIES, type ProxyPolicy, ProxyPolicyTable } from '../../../core/utils/proxy-policy.js';
import { describe, type Scope } from './check.js';
import { ipList } from './security.js';

const RULE_KEYS = ['from', 'ports', 'policy'] as const;
const MAX_PORT = 65535;
const VERSIONS = [1, 2] as const;

export interface IResolvedPolicies {
  proxyPolicies: ProxyPolicyTable;
  /** Which header versions are accepted: index 1 and 2. */
  proxyProtocolVersions: ReadonlySet<1 | 2>;
}

function catchAllProblem(entries: unknown, field: string, policy: ProxyPolicy, trustAll: boolean, scope: Scope): boolean {
  if (trustAll || !BELIEVING_POLICIES.has(policy) || !Array.isArray(entries)) return false;
  let found = false;
  entries.forEach((entry: unknown, i) => {
    if (typeof entry !== 'string' || !isCatchAll(entry)) return;
    found = true;
    scope.add(
      'ERR_CONFIG_TRUST_ALL',
      `${field}[${i}]`,
      `"${entry}" with policy "${policy}" would let anyone on the internet claim any client address; list your proxies, or set trustAllProxyIPs: true if you really mean it`,
    );
  });
  return found;
}

function rulePorts(value: unknown, field: string, scope: Scope): ReadonlySet<number> | null {
  const isPort = (p: unknown): boolean => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= MAX_PORT;
  const ports = scope.list<number>(value, field, { what: 'ports 1..65535', code: 'ERR_CONFIG_PORT', item: (p) => (isPort(p) ? null : `${describe(p)} is not a port 1..65535`) });
  return ports === undefined ? null : new Set(ports);
}

function resolveRule(value: unknown, field: string, trustAll: boolean, scope: Scope): IProxyPolicyRule | null {
  const raw = scope.object(value, field, RULE_KEYS);
  if (raw === undefined) return null;
  const policy = scope.oneOf(raw.policy, `${field}.policy`, PROXY_POLICIES);
  if (policy === undefined && raw.policy === undefined) scope.add('ERR_CONFIG_OPTION', `${field}.policy`, `is required: one of ${PROXY_POLICIES.join(', ')}`);
  if (raw.from === undefined || (Array.isArray(raw.from) && raw.from.length === 0)) {
    scope.add('ERR_CONFIG_CIDR', `${field}.from`, 'needs at least one IP address or CIDR range');
  }
  const from = ipList(raw.from, `${field}.from`, scope);
  const ports = raw.ports === undefined ? null : rulePorts(raw.ports, `${field}.ports`, scope);
  if (policy === undefined || from === null || catchAllProblem(raw.from, `${field}.from`, policy, trustAll, scope)) return null;
  return { from, ports, policy };
}

function resolveVersions(value: unknown, scope: Scope): ReadonlySet<1 | 2> {
  const list = scope.list<1 | 2>(value, 'proxyProtocolVersions', {
    what: 'PROXY protocol versions (1, 2)',
    item: (v) => ((VERSIONS as readonly unknown[]).includes(v) ? null : `${describe(v)} is not 1 or 2`),
  });
  return new Set(list ?? VERSIONS);
}

/** The policy table and accepted versions; `proxyIPs` was resolved (and catch-all checked) already. */
export function resolvePolicies(raw: Record<string, unknown>, proxyIPs: IpList, required: boolean, trustAll: boolean, scope: Scope): IResolvedPolicies {
  const rules: IProxyPolicyRule[] = [];
  const given = scope.list<unknown>(raw.proxyProtocolRules, 'proxyProtocolRules', { what: 'rules { from, ports?, policy }', item: () => null, allowEmpty: true });
  given?.forEach((value, i) => {
    const rule = resolveRule(value, `proxyProtocolRules[${i}]`, trustAll, scope);
    if (rule !== null) rules.push(rule);
  });
  if (proxyIPs.size > 0) rules.push({ from: proxyIPs, ports: null, policy: required ? 'require' : 'use' });
  return { proxyPolicies: new ProxyPolicyTable(rules), proxyProtocolVersions: resolveVersions(raw.proxyProtocolVersions, scope) };
}
