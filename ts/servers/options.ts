/**
 * Options of withProxyProtocol, checked once when a server is wrapped: connection time never
 * meets a bad value. The trust rules are SmartProxy's (a catch-all entry is refused unless asked
 * for), so a Node server behind a proxy is no easier to spoof than SmartProxy itself.
 */
import { ConfigError } from '../protocols/errors.js';
import { DEFAULT_MAX_HEADER_SIZE, V2_FIXED_LENGTH, V2_MAX_TOTAL_LENGTH } from '../protocols/proxy/constants.js';
import { IpList, isCatchAll } from '../core/utils/ip-utils.js';

export interface IWithProxyProtocolOptions {
  /** The proxies whose headers are believed: IPs or CIDRs of the hop right in front. Required. */
  proxyIPs: string[];
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
  proxyIPs: IpList;
  required: boolean;
  timeout: number;
  maxHeaderSize: number;
}

export const SERVER_DEFAULTS = Object.freeze({
  required: true,
  timeout: 10_000,
  maxHeaderSize: DEFAULT_MAX_HEADER_SIZE,
});

const KNOWN_KEYS: readonly string[] = ['proxyIPs', 'trustAllProxyIPs', 'required', 'timeout', 'maxHeaderSize'];

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

function trustList(value: unknown, trustAll: boolean): IpList {
  if (value === undefined) {
    throw new ConfigError('ERR_CONFIG_OPTION', 'proxyIPs', 'is required: list the addresses of the proxy in front of this server');
  }
  if (!Array.isArray(value)) throw new ConfigError('ERR_CONFIG_CIDR', 'proxyIPs', 'must be an array of IP addresses or CIDR ranges');
  value.forEach((entry: unknown, i) => {
    if (typeof entry === 'string' && isCatchAll(entry) && !trustAll) {
      throw new ConfigError(
        'ERR_CONFIG_TRUST_ALL',
        `proxyIPs[${i}]`,
        `"${entry}" would let anyone on the internet claim any client address; list your proxies, or set trustAllProxyIPs: true if you really mean it`,
      );
    }
  });
  return new IpList(value as string[], (entry, i) => {
    throw new ConfigError('ERR_CONFIG_CIDR', `proxyIPs[${i}]`, `${JSON.stringify(entry)} is not an IP address or CIDR range`);
  });
}

/** Resolves and checks the options; the first problem is thrown as a ConfigError naming its field. */
export function resolveServerOptions(options: unknown): IResolvedServerOptions {
  if (!isObject(options)) throw new ConfigError('ERR_CONFIG_OPTION', '', 'options must be an object with at least proxyIPs');
  for (const key of Object.keys(options)) {
    if (!KNOWN_KEYS.includes(key)) {
      throw new ConfigError('ERR_CONFIG_UNKNOWN_OPTION', key, `unknown option (known here: ${KNOWN_KEYS.join(', ')})`);
    }
  }
  const trustAll = flag(options, 'trustAllProxyIPs', false);
  return {
    proxyIPs: trustList(options.proxyIPs, trustAll),
    required: flag(options, 'required', SERVER_DEFAULTS.required),
    timeout: wholeNumber(options, 'timeout', SERVER_DEFAULTS.timeout, 0, 2 ** 31 - 1),
    maxHeaderSize: wholeNumber(options, 'maxHeaderSize', SERVER_DEFAULTS.maxHeaderSize, V2_FIXED_LENGTH, V2_MAX_TOTAL_LENGTH),
  };
}
