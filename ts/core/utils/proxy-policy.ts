/**
 * PROXY policies as small data: a rule says who (`from`, addresses and CIDRs), where (`ports`,
 * all when absent) and what (`policy`). The first matching rule wins; a source that matches none
 * gets the fallback, `reject` (a header from it is spoofing; without one it is a normal client).
 */
import type { IpList } from './ip-utils.js';

/**
 * `require`: a header must come first and is believed. `use`: a header is optional and believed
 * when present. `ignore`: a header, when present, is read and removed, never believed. `reject`:
 * a header is a spoofing attempt. `skip`: nothing is read; the bytes go to routing untouched.
 */
export type ProxyPolicy = 'require' | 'use' | 'ignore' | 'reject' | 'skip';

export const PROXY_POLICIES: readonly ProxyPolicy[] = ['require', 'use', 'ignore', 'reject', 'skip'];

/** Policies whose headers set the client address: their sources must be trusted deliberately. */
export const BELIEVING_POLICIES: ReadonlySet<ProxyPolicy> = new Set(['require', 'use']);

export interface IProxyPolicyRule {
  from: IpList;
  /** null: every port. */
  ports: ReadonlySet<number> | null;
  policy: ProxyPolicy;
}

export class ProxyPolicyTable {
  constructor(
    readonly rules: readonly IProxyPolicyRule[],
    readonly fallback: ProxyPolicy = 'reject',
  ) {}

  /** The policy for a TCP peer (as the socket reports it) on a listening port. */
  policyFor(peerIP: string, port: number): ProxyPolicy {
    for (const rule of this.rules) {
      if ((rule.ports === null || rule.ports.has(port)) && rule.from.has(peerIP)) return rule.policy;
    }
    return this.fallback;
  }
}
