/**
 * Address lists (trust lists, allow/block lists) on net.BlockList. Entries are IPs or CIDRs,
 * IPv4 or IPv6; IPv4-mapped IPv6 (::ffff:a.b.c.d) is unmapped on both sides, so one entry
 * matches a client however the socket reports it.
 */
import net from 'node:net';
import { unmapIPv4 } from '../../protocols/ip-address.js';

/** "::ffff:1.2.3.4" → "1.2.3.4"; strips a zone id ("fe80::1%eth0"); anything else unchanged. */
export function normalizeIP(address: string): string {
  const zone = address.indexOf('%');
  return unmapIPv4(zone >= 0 ? address.slice(0, zone) : address);
}

// First and last address of the ranges that mean "anyone on the internet": all of IPv4, and all
// global unicast IPv6 (2000::/3). A CIDR holding both ends of such a range holds all of it.
const EVERYONE: ReadonlyArray<readonly [string, string, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', '255.255.255.255', 'ipv4'],
  ['2000::', '3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ipv6'],
];

/**
 * Whether an entry trusts every address on the internet, however it is spelt (`10.0.0.0/0`,
 * `0::0/0`, `::ffff:0:0/96`, `::/1` all do). Decided on the parsed range with the matcher IpList
 * uses, which also checks IPv4 clients against IPv4-mapped IPv6 ranges; text patterns miss spellings.
 */
export function isCatchAll(entry: string): boolean {
  if (typeof entry !== 'string') return false;
  if (entry.trim() === '*') return true;
  const parsed = parseAddressEntry(entry);
  if (parsed === null) return false;
  const range = new net.BlockList();
  range.addSubnet(parsed.address, parsed.prefix, parsed.family);
  return EVERYONE.some(([first, last, family]) => range.check(first, family) && range.check(last, family));
}

export interface IParsedEntry {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses "ip" or "ip/prefix"; returns null when it is neither. */
export function parseAddressEntry(entry: string): IParsedEntry | null {
  if (typeof entry !== 'string') return null;
  const slash = entry.indexOf('/');
  const rawAddress = normalizeIP(slash < 0 ? entry.trim() : entry.slice(0, slash).trim());
  const version = net.isIP(rawAddress);
  if (version === 0) return null;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const text = entry.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(text)) return null;
    prefix = Number(text);
    // A mapped entry's prefix counts the 96-bit ::ffff: part; unmapped, it counts IPv4 bits.
    const mapped = version === 4 && net.isIPv6(entry.slice(0, slash).trim());
    if (mapped) prefix -= 96;
    if (prefix < 0 || prefix > max) return null;
  }
  return { address: rawAddress, prefix, family };
}

const CACHE_LIMIT = 4096;

/** A matcher over IP/CIDR entries; a bad entry is reported to `onInvalid` and left out. */
export class IpList {
  private readonly list = new net.BlockList();
  // Peers repeat (a few proxies, returning clients); BlockList.check allocates, a Map hit does not.
  private readonly cache = new Map<string, boolean>();
  public readonly size: number;

  constructor(entries: readonly string[], onInvalid: (entry: unknown, index: number) => void = () => undefined) {
    entries.forEach((entry, index) => {
      if (typeof entry === 'string' && entry.trim() === '*') {
        this.list.addSubnet('0.0.0.0', 0, 'ipv4');
        this.list.addSubnet('::', 0, 'ipv6');
        return;
      }
      const parsed = parseAddressEntry(entry);
      if (parsed === null) onInvalid(entry, index);
      else this.list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    });
    this.size = entries.length;
  }

  /** Whether `address` (as a socket reports it) is in the list. */
  has(address: string | undefined): boolean {
    if (address === undefined || this.size === 0) return false;
    const cached = this.cache.get(address);
    if (cached !== undefined) return cached;
    const ip = normalizeIP(address);
    const version = net.isIP(ip);
    const result = version !== 0 && this.list.check(ip, version === 4 ? 'ipv4' : 'ipv6');
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(address, result);
    return result;
  }
}
