/**
 * IP address text <-> bytes, strict and allocation-light. Pure: no node:net here, so the
 * protocol layer stays free of sockets (ts/core/utils/ip-utils.ts builds trust lists on net).
 */
import { CHAR_0, CHAR_9, CHAR_COLON, CHAR_DOT } from './proxy/constants.js';

const IPV4_OCTETS = 4;
const IPV6_GROUPS = 8;
const MAX_OCTET = 255;
const MAX_HEX_GROUP_DIGITS = 4;

/**
 * Checks a dotted quad in bytes [start, end): four decimal octets ≤ 255, no leading zeros.
 * Returns the address as a 32-bit unsigned number, or -1 when invalid.
 */
export function parseIPv4Bytes(buf: Uint8Array, start: number, end: number): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (i < end) {
    const first = i;
    let octet = 0;
    while (i < end && buf[i] >= CHAR_0 && buf[i] <= CHAR_9) {
      octet = octet * 10 + (buf[i] - CHAR_0);
      i++;
    }
    const digits = i - first;
    if (digits === 0 || digits > 3 || octet > MAX_OCTET) return -1;
    if (digits > 1 && buf[first] === CHAR_0) return -1;
    value = value * 256 + octet;
    octets++;
    if (i === end) break;
    if (buf[i] !== CHAR_DOT || octets === IPV4_OCTETS) return -1;
    i++;
    if (i === end) return -1;
  }
  return octets === IPV4_OCTETS ? value : -1;
}

const textScratch = Buffer.allocUnsafe(64);

/** Strict dotted quad from text, or -1. */
export function parseIPv4(text: string): number {
  if (text.length > 15) return -1;
  const n = textScratch.write(text, 0, 'latin1');
  return parseIPv4Bytes(textScratch, 0, n);
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  return -1;
}

/** Writes the groups of one side of "::" into `out` from `groupIndex`; returns groups written or -1. */
function parseIPv6Groups(part: string, out: Uint8Array, groupIndex: number, allowV4Tail: boolean): number {
  if (part === '') return 0;
  const pieces = part.split(':');
  let g = groupIndex;
  for (let p = 0; p < pieces.length; p++) {
    const piece = pieces[p];
    if (allowV4Tail && p === pieces.length - 1 && piece.includes('.')) {
      const v4 = parseIPv4(piece);
      if (v4 < 0 || g + 2 > IPV6_GROUPS) return -1;
      out[g * 2] = v4 >>> 24;
      out[g * 2 + 1] = (v4 >>> 16) & 0xff;
      out[g * 2 + 2] = (v4 >>> 8) & 0xff;
      out[g * 2 + 3] = v4 & 0xff;
      g += 2;
      continue;
    }
    if (piece.length === 0 || piece.length > MAX_HEX_GROUP_DIGITS || g >= IPV6_GROUPS) return -1;
    let v = 0;
    for (let k = 0; k < piece.length; k++) {
      const h = hexValue(piece.charCodeAt(k));
      if (h < 0) return -1;
      v = v * 16 + h;
    }
    out[g * 2] = v >>> 8;
    out[g * 2 + 1] = v & 0xff;
    g++;
  }
  return g - groupIndex;
}

/**
 * Checks IPv6 text in bytes [start, end) without allocating: 1–4 hex digit groups, at most one
 * "::", an optional dotted-quad tail counting as two groups, no zone id.
 */
export function isIPv6Bytes(buf: Uint8Array, start: number, end: number): boolean {
  const length = end - start;
  if (length < 2 || length > 45) return false;
  let groups = 0;
  let compressed = false;
  let i = start;
  if (buf[i] === CHAR_COLON) {
    if (buf[i + 1] !== CHAR_COLON) return false;
    compressed = true;
    i += 2;
  }
  while (i < end) {
    const groupStart = i;
    while (i < end && hexValue(buf[i]) >= 0) i++;
    if (i < end && buf[i] === CHAR_DOT) {
      if (parseIPv4Bytes(buf, groupStart, end) < 0) return false;
      groups += 2;
      break;
    }
    const digits = i - groupStart;
    if (digits === 0 || digits > MAX_HEX_GROUP_DIGITS) return false;
    groups++;
    if (i === end) break;
    if (buf[i] !== CHAR_COLON) return false;
    i++;
    if (i === end) return false;
    if (buf[i] === CHAR_COLON) {
      if (compressed) return false;
      compressed = true;
      i++;
    }
  }
  return compressed ? groups <= IPV6_GROUPS - 1 : groups === IPV6_GROUPS;
}

/** Parses IPv6 text (with "::" and an optional dotted-quad tail; no zone id) into 16 bytes, or null. */
export function parseIPv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45) return null;
  const out = new Uint8Array(16);
  const gap = text.indexOf('::');
  if (gap < 0) {
    return parseIPv6Groups(text, out, 0, true) === IPV6_GROUPS ? out : null;
  }
  if (text.indexOf('::', gap + 1) >= 0) return null;
  const head = text.slice(0, gap);
  const tail = text.slice(gap + 2);
  const headGroups = parseIPv6Groups(head, out, 0, false);
  if (headGroups < 0) return null;
  const tailBytes = new Uint8Array(16);
  const tailGroups = parseIPv6Groups(tail, tailBytes, 0, true);
  if (tailGroups < 0 || headGroups + tailGroups > IPV6_GROUPS - 1) return null;
  out.set(tailBytes.subarray(0, tailGroups * 2), (IPV6_GROUPS - tailGroups) * 2);
  return out;
}

// "0." … "255.": four table lookups make a dotted quad without number-to-string conversions.
const OCTET_DOT = Array.from({ length: 256 }, (_, i) => `${i}.`);
const OCTET = Array.from({ length: 256 }, (_, i) => String(i));

/** Dotted quad of the four bytes at `offset`. */
export function formatIPv4(buf: Uint8Array, offset: number): string {
  return OCTET_DOT[buf[offset]] + OCTET_DOT[buf[offset + 1]] + OCTET_DOT[buf[offset + 2]] + OCTET[buf[offset + 3]];
}

function isV4Mapped(buf: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 10; i++) if (buf[offset + i] !== 0) return false;
  return buf[offset + 10] === 0xff && buf[offset + 11] === 0xff;
}

/** RFC 5952 text of the 16 bytes at `offset` (lower case, longest zero run as "::"; mapped as ::ffff:a.b.c.d). */
export function formatIPv6(buf: Uint8Array, offset: number): string {
  if (isV4Mapped(buf, offset)) return `::ffff:${formatIPv4(buf, offset + 12)}`;
  let bestStart = -1;
  let bestLength = 1;
  let runStart = -1;
  for (let g = 0; g <= IPV6_GROUPS; g++) {
    const zero = g < IPV6_GROUPS && buf[offset + g * 2] === 0 && buf[offset + g * 2 + 1] === 0;
    if (zero) {
      if (runStart < 0) runStart = g;
    } else if (runStart >= 0) {
      if (g - runStart > bestLength) {
        bestStart = runStart;
        bestLength = g - runStart;
      }
      runStart = -1;
    }
  }
  let text = '';
  for (let g = 0; g < IPV6_GROUPS; g++) {
    if (g === bestStart) {
      text += g === 0 ? '::' : ':';
      g += bestLength - 1;
      continue;
    }
    text += ((buf[offset + g * 2] << 8) | buf[offset + g * 2 + 1]).toString(16);
    if (g < IPV6_GROUPS - 1) text += ':';
  }
  return text;
}

/** "::ffff:1.2.3.4" (any case) → "1.2.3.4"; any other text is returned unchanged. */
export function unmapIPv4(address: string): string {
  if (address.length > 7 && address.charCodeAt(0) === 0x3a && address.toLowerCase().startsWith('::ffff:')) {
    const tail = address.slice(7);
    if (parseIPv4(tail) >= 0) return tail;
  }
  return address;
}
