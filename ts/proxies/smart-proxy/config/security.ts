/** Address lists and per-route limits: `action.security`, `defaults.security`, `match.clientIp`. */
import { IpList } from '../../../core/utils/ip-utils.js';
import { describe, type Scope } from './check.js';

export const SECURITY_KEYS = ['ipAllowList', 'ipBlockList', 'maxConnections'] as const;

export interface IResolvedSecurity {
  allowList: IpList | null;
  blockList: IpList | null;
  maxConnections: number;
}

/** What `defaults.security` gives a route that leaves a field out; absent fields are undefined. */
export type TDefaultSecurity = Partial<IResolvedSecurity>;

/** An IP/CIDR list; each bad entry is reported at its index, and the list is then null. */
export function ipList(value: unknown, field: string, scope: Scope): IpList | null {
  if (value === undefined) return null;
  if (!Array.isArray(value)) {
    scope.add('ERR_CONFIG_CIDR', field, `must be an array of IP addresses or CIDR ranges, got ${describe(value)}`);
    return null;
  }
  let valid = true;
  const list = new IpList(value as string[], (entry, i) => {
    scope.add('ERR_CONFIG_CIDR', `${field}[${i}]`, `${describe(entry)} is not an IP address or CIDR range`);
    valid = false;
  });
  return valid ? list : null;
}

/** Each field the object names, resolved; fields it leaves out stay undefined. */
function resolveGiven(raw: Record<string, unknown>, field: string, scope: Scope): TDefaultSecurity {
  const given: TDefaultSecurity = {};
  if (raw.ipAllowList !== undefined) given.allowList = ipList(raw.ipAllowList, `${field}.ipAllowList`, scope);
  if (raw.ipBlockList !== undefined) given.blockList = ipList(raw.ipBlockList, `${field}.ipBlockList`, scope);
  if (raw.maxConnections !== undefined) given.maxConnections = scope.whole(raw.maxConnections, `${field}.maxConnections`, 0, 'connections');
  return given;
}

/** `defaults.security`, resolved once and shared by every route that takes a field from it. */
export function resolveDefaultSecurity(value: unknown, scope: Scope): TDefaultSecurity {
  const raw = scope.object(value, 'defaults.security', SECURITY_KEYS);
  return raw === undefined ? {} : resolveGiven(raw, 'defaults.security', scope);
}

/** A route's security, field by field over the defaults. */
export function resolveSecurity(value: unknown, defaults: TDefaultSecurity, field: string, scope: Scope): IResolvedSecurity {
  const raw = scope.object(value, field, SECURITY_KEYS);
  const merged = { ...defaults, ...(raw === undefined ? {} : resolveGiven(raw, field, scope)) };
  return { allowList: merged.allowList ?? null, blockList: merged.blockList ?? null, maxConnections: merged.maxConnections ?? 0 };
}
