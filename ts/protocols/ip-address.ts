/**
 * IP address text <-> bytes, strict and allocation-light. Pure: no node:net here, so the
 * protocol layer stays free of sockets (ts/core/utils/ip-utils.ts builds trust lists on net).
 */
import {
  ASCII_MAX,
  CHAR_0,
  CHAR_9,
  CHAR_COLON,
  CHAR_DOT,
  CHAR_LOWER_A,
  CHAR_LOWER_F,
  CHAR_UPPER_A,
  CHAR_UPPER_F,
} from './ascii.js';

const IPV4_OCTETS = 4;
const IPV6_BYTES = 16;
const IPV6_MAX_TEXT_LENGTH = 45;
const IPV6_GROUPS = 8;
const MAX_OCTET = 255;
const MAX_HEX_GROUP_DIGITS = 4;

/**
 * Reads the dotted quad that starts at `start`: its bytes run up to the first byte that is
 * neither a digit nor a dot, or up to `limit`. Writes its value (unsigned 32-bit) to out[index],
 * or -1 when those bytes are not four decimal octets ≤ 255 without leading zeros. Returns where
 * they end, so a caller reading fields in one pass learns the value and the delimiter at once.
 */
export function scanIPv4(buf: Uint8Array, start: number, limit: number, out: Float64Array, index: number): number {
  let value = 0;
  let i = start;
  for (let part = 0; part < IPV4_OCTETS; part++) {
    if (part > 0) {
      if (i >= limit || buf[i] !== CHAR_DOT) return invalidQuad(buf, i, limit, out, index);
      i++;
    }
    // One to three digits, read without a loop; a second digit after a 0 is a leading zero.
    const first = i < limit ? buf[i] - CHAR_0 : -1;
    if (first >>> 0 >= 10) return invalidQuad(buf, i, limit, out, index);
    let octet = first;
    i++;
    const second = i < limit ? buf[i] - CHAR_0 : -1;
    if (second >>> 0 < 10) {
      if (first === 0) return invalidQuad(buf, i, limit, out, index);
      octet = octet * 10 + second;
      i++;
      const third = i < limit ? buf[i] - CHAR_0 : -1;
      if (third >>> 0 < 10) {
        octet = octet * 10 + third;
        i++;
      }
    }
    if (octet > MAX_OCTET) return invalidQuad(buf, i, limit, out, index);
    value = (value << 8) | octet;
  }
  if (i < limit && isQuadByte(buf[i])) return invalidQuad(buf, i, limit, out, index);
  out[index] = value >>> 0;
  return i;
}

function isQuadByte(byte: number): boolean {
  return (byte >= CHAR_0 && byte <= CHAR_9) || byte === CHAR_DOT;
}

/** The rest of a quad already known to be invalid: find where its bytes end, and say -1. */
function invalidQuad(buf: Uint8Array, from: number, limit: number, out: Float64Array, index: number): number {
  let i = from;
  while (i < limit && isQuadByte(buf[i])) i++;
  out[index] = -1;
  return i;
}

const quadOut = new Float64Array(1);

/** The dotted quad in exactly the bytes [start, end) as an unsigned 32-bit number, or -1. */
function parseIPv4Bytes(buf: Uint8Array, start: number, end: number): number {
  return scanIPv4(buf, start, end, quadOut, 0) === end ? quadOut[0] : -1;
}

// A Buffer like the parsers' usual input, so their element reads stay monomorphic.
const textScratch = Buffer.alloc(IPV6_MAX_TEXT_LENGTH);

/** Copies ASCII text of at most 45 characters into the scratch; false for anything else. */
function toScratch(text: string): boolean {
  if (text.length > IPV6_MAX_TEXT_LENGTH) return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    // A wider character must not alias an ASCII digit by losing its high byte.
    if (code > ASCII_MAX) return false;
    textScratch[i] = code;
  }
  return true;
}

/** Strict dotted quad from text, or -1. */
export function parseIPv4(text: string): number {
  if (text.length > 15 || !toScratch(text)) return -1;
  return parseIPv4Bytes(textScratch, 0, text.length);
}

function hexValue(code: number): number {
  if (code >= CHAR_0 && code <= CHAR_9) return code - CHAR_0;
  if (code >= CHAR_LOWER_A && code <= CHAR_LOWER_F) return code - CHAR_LOWER_A + 10;
  if (code >= CHAR_UPPER_A && code <= CHAR_UPPER_F) return code - CHAR_UPPER_A + 10;
  return -1;
}

/**
 * Parses IPv6 text in bytes [start, end) into the 16 bytes at `out[outOffset]`, without
 * allocating: 1–4 hex digit groups, at most one "::", an optional dotted-quad tail counting as
 * two groups, no zone id. Returns false (leaving `out` partly written) when the text is invalid.
 */
export function parseIPv6Bytes(buf: Uint8Array, start: number, end: number, out: Uint8Array, outOffset: number): boolean {
  const length = end - start;
  if (length < 2 || length > IPV6_MAX_TEXT_LENGTH) return false;
  let groups = 0;
  let gapAt = -1;
  let i = start;
  if (buf[i] === CHAR_COLON) {
    if (buf[i + 1] !== CHAR_COLON) return false;
    gapAt = 0;
    i += 2;
  }
  while (i < end) {
    const groupStart = i;
    let value = 0;
    let digit: number;
    while (i < end && (digit = hexValue(buf[i])) >= 0) {
      value = value * 16 + digit;
      i++;
    }
    if (i < end && buf[i] === CHAR_DOT) {
      const v4 = parseIPv4Bytes(buf, groupStart, end);
      if (v4 < 0 || groups > IPV6_GROUPS - 2) return false;
      writeGroup(out, outOffset, groups++, v4 >>> 16);
      writeGroup(out, outOffset, groups++, v4 & 0xffff);
      break;
    }
    const digits = i - groupStart;
    if (digits === 0 || digits > MAX_HEX_GROUP_DIGITS || groups === IPV6_GROUPS) return false;
    writeGroup(out, outOffset, groups++, value);
    if (i === end) break;
    if (buf[i] !== CHAR_COLON) return false;
    i++;
    if (i === end) return false;
    if (buf[i] === CHAR_COLON) {
      if (gapAt >= 0) return false;
      gapAt = groups;
      i++;
    }
  }
  if (gapAt < 0) return groups === IPV6_GROUPS;
  if (groups > IPV6_GROUPS - 1) return false;
  expandGap(out, outOffset, gapAt, groups);
  return true;
}

function writeGroup(out: Uint8Array, offset: number, group: number, value: number): void {
  out[offset + group * 2] = value >>> 8;
  out[offset + group * 2 + 1] = value & 0xff;
}

/** Moves the groups written after "::" to the end of the address and zeroes the gap. */
function expandGap(out: Uint8Array, offset: number, gapAt: number, groups: number): void {
  const shift = (IPV6_GROUPS - groups) * 2;
  for (let b = groups * 2 - 1; b >= gapAt * 2; b--) out[offset + b + shift] = out[offset + b];
  for (let b = gapAt * 2; b < gapAt * 2 + shift; b++) out[offset + b] = 0;
}

/** Parses IPv6 text (with "::" and an optional dotted-quad tail; no zone id) into 16 bytes, or null. */
export function parseIPv6(text: string): Uint8Array | null {
  if (!toScratch(text)) return null;
  const out = new Uint8Array(IPV6_BYTES);
  return parseIPv6Bytes(textScratch, 0, text.length, out, 0) ? out : null;
}

// "0." … "255.": four table lookups make a dotted quad without number-to-string conversions.
const OCTET_DOT = Array.from({ length: 256 }, (_, i) => `${i}.`);
const OCTET = Array.from({ length: 256 }, (_, i) => String(i));

/** Dotted quad of an address held as a 32-bit number, unsigned (as parseIPv4 returns it) or signed. */
export function formatIPv4(value: number): string {
  return OCTET_DOT[value >>> 24] + OCTET_DOT[(value >>> 16) & 0xff] + OCTET_DOT[(value >>> 8) & 0xff] + OCTET[value & 0xff];
}

/** The four bytes at `offset`, big-endian, as a signed 32-bit number (a small integer, unboxed). */
export function readIPv4(buf: Uint8Array, offset: number): number {
  return (buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3];
}

// A byte in hex without leading zeros ("0".."ff") and as two digits ("00".."ff"): a group's text
// from two lookups, not a number-to-string conversion.
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16));
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** The 16-bit group at `at` in lower-case hex without leading zeros (RFC 5952 section 4.1). */
function hexGroup(buf: Uint8Array, at: number): string {
  const high = buf[at];
  return high === 0 ? HEX[buf[at + 1]] : HEX[high] + HEX2[buf[at + 1]];
}

function isV4Mapped(buf: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 10; i++) if (buf[offset + i] !== 0) return false;
  return buf[offset + 10] === 0xff && buf[offset + 11] === 0xff;
}

/** RFC 5952 text of the 16 bytes at `offset` (lower case, longest zero run as "::"; mapped as ::ffff:a.b.c.d). */
export function formatIPv6(buf: Uint8Array, offset: number): string {
  if (isV4Mapped(buf, offset)) return `::ffff:${formatIPv4(readIPv4(buf, offset + 12))}`;
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
    text += hexGroup(buf, offset + g * 2);
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
