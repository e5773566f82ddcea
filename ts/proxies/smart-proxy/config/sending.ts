/** Sending PROXY headers: the global settings and each route's override. */
import { PP2_TYPE_CRC32C } from '../../../protocols/proxy/constants.js';
import type { IProxyProtocolTlvOptions } from '../models/route-types.js';
import { describe, isObject, type Scope } from './check.js';
import type { ISendSettings } from './types.js';

const TLV_FLAGS = ['authority', 'alpn', 'uniqueId', 'ssl', 'crc32c'] as const;
const TLV_KEYS = [...TLV_FLAGS, 'passThrough'] as const;
const ROUTE_SEND_KEYS = ['version', 'tlvs'] as const;
export const DEFAULT_VERSION: 1 | 2 = 1;

/** The global sending settings; `enabled` is `sendProxyProtocol`. */
export interface IGlobalSend extends ISendSettings {
  enabled: boolean;
}

/** Why a TLV type cannot be passed through, or null when it can. */
function passThroughProblem(type: unknown): string | null {
  if (typeof type !== 'number' || !Number.isInteger(type) || type < 0 || type > 0xff) return `${describe(type)} is not a TLV type 0..255`;
  if (type === PP2_TYPE_CRC32C) {
    return 'type 3 (CRC32C) cannot be passed through: the copied checksum covers the previous hop\u2019s header, so the next hop rejects ours; set crc32c: true to send a correct one';
  }
  return null;
}

/** TLV options: a fresh object holding only checked fields. */
function resolveTlvOptions(value: unknown, field: string, scope: Scope): IProxyProtocolTlvOptions {
  const raw = scope.object(value, field, TLV_KEYS);
  if (raw === undefined) return {};
  const tlvs: IProxyProtocolTlvOptions = {};
  for (const key of TLV_FLAGS) if (raw[key] !== undefined) tlvs[key] = scope.flag(raw[key], `${field}.${key}`, false);
  const passThrough = scope.list<number>(raw.passThrough, `${field}.passThrough`, { what: 'TLV type numbers', item: passThroughProblem, allowEmpty: true });
  if (passThrough !== undefined) tlvs.passThrough = passThrough;
  return tlvs;
}

function resolveVersion(value: unknown, field: string, fallback: 1 | 2, scope: Scope): 1 | 2 {
  if (value === undefined) return fallback;
  if (value !== 1 && value !== 2) {
    scope.add('ERR_CONFIG_OPTION', field, `must be 1 or 2, got ${describe(value)}`);
    return fallback;
  }
  return value;
}

/** `sendProxyProtocol`, `proxyProtocolVersion`, `proxyProtocolTlvs` of the options. */
export function resolveGlobalSend(options: Record<string, unknown>, scope: Scope): IGlobalSend {
  return {
    enabled: scope.flag(options.sendProxyProtocol, 'sendProxyProtocol', false),
    version: resolveVersion(options.proxyProtocolVersion, 'proxyProtocolVersion', DEFAULT_VERSION, scope),
    tlvs: resolveTlvOptions(options.proxyProtocolTlvs, 'proxyProtocolTlvs', scope),
  };
}

/** A route's `sendProxyProtocol`: true, false or { version, tlvs } over the global settings. */
export function resolveRouteSend(value: unknown, global: IGlobalSend, field: string, scope: Scope): ISendSettings | null {
  if (value === undefined) return global.enabled ? { version: global.version, tlvs: global.tlvs } : null;
  if (value === false) return null;
  if (value === true) return { version: global.version, tlvs: global.tlvs };
  if (!isObject(value)) {
    scope.add('ERR_CONFIG_OPTION', field, `must be true, false or { version, tlvs }, got ${describe(value)}`);
    return null;
  }
  scope.object(value, field, ROUTE_SEND_KEYS);
  return {
    version: resolveVersion(value.version, `${field}.version`, global.version, scope),
    tlvs: value.tlvs === undefined ? global.tlvs : resolveTlvOptions(value.tlvs, `${field}.tlvs`, scope),
  };
}
