/** PROXY protocol v1 (text): strict parse and generate. */
import { ProxyProtocolError } from '../errors.js';
import { isIPv6Bytes, parseIPv4, parseIPv4Bytes, parseIPv6, unmapIPv4 } from '../ip-address.js';
import * as C from './constants.js';
import { AddressLayout, ProxyHeader } from './header.js';
import type { IProxyIpAddress } from './types.js';

const MAX_PORT = 65535;
const MAX_PORT_DIGITS = 5;
const V1_FIELD_COUNT = 5;
/** Where the protocol word starts: right after "PROXY ". */
const FIELDS_START = C.V1_SIGNATURE.length;

function malformed(message: string): ProxyProtocolError {
  return new ProxyProtocolError('ERR_PP_V1_MALFORMED', message);
}

/** Decimal port in [start, end): no sign, no leading zero, ≤ 65535; -1 when invalid. */
function parsePort(buf: Uint8Array, start: number, end: number): number {
  const digits = end - start;
  if (digits < 1 || digits > MAX_PORT_DIGITS || (digits > 1 && buf[start] === C.CHAR_0)) return -1;
  let port = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c < C.CHAR_0 || c > C.CHAR_9) return -1;
    port = port * 10 + (c - C.CHAR_0);
  }
  return port <= MAX_PORT ? port : -1;
}

function wordIs(buf: Uint8Array, start: number, end: number, word: string): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (buf[start + i] !== word.charCodeAt(i)) return false;
  return true;
}

// Field boundaries of the line being parsed; module-level so a parse allocates no array.
const fieldStart = new Int32Array(V1_FIELD_COUNT);
const fieldEnd = new Int32Array(V1_FIELD_COUNT);

/**
 * Parses a v1 line at the start of `buf` (which is known to begin with "PROXY ").
 * Returns null while the line is still incomplete.
 */
export function parseV1(buf: Buffer): ProxyHeader | null {
  const length = buf.length;
  const limit = length < C.V1_MAX_LENGTH ? length : C.V1_MAX_LENGTH;
  let lf = -1;
  for (let i = FIELDS_START; i < limit; i++) {
    const c = buf[i];
    if (c === C.CHAR_LF) {
      lf = i;
      break;
    }
    if (c === C.CHAR_CR && i + 1 < length && buf[i + 1] !== C.CHAR_LF) throw malformed('CR not followed by LF');
  }
  if (lf < 0) {
    if (length >= C.V1_MAX_LENGTH) throw new ProxyProtocolError('ERR_PP_V1_TOO_LONG', 'no CRLF within 107 bytes');
    return null;
  }
  if (buf[lf - 1] !== C.CHAR_CR) throw malformed('LF not preceded by CR');
  const lineEnd = lf - 1;
  const consumed = lf + 1;

  let protoEnd = FIELDS_START;
  while (protoEnd < lineEnd && buf[protoEnd] !== C.CHAR_SPACE) protoEnd++;
  if (wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_UNKNOWN)) {
    // Spec 2.1: whatever follows UNKNOWN up to CRLF is ignored.
    return new ProxyHeader(1, 'PROXY', 'UNSPEC', 'UNSPEC', consumed, null, AddressLayout.Values, null, null, null);
  }
  const isTcp4 = wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_TCP4);
  if (!isTcp4 && !wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_TCP6)) {
    throw malformed(`unknown protocol "${buf.toString('latin1', FIELDS_START, protoEnd)}"`);
  }

  let count = 0;
  let start = FIELDS_START;
  for (let i = FIELDS_START; i <= lineEnd; i++) {
    if (i === lineEnd || buf[i] === C.CHAR_SPACE) {
      if (i === start) throw malformed('empty field (double, leading or trailing space)');
      if (count === V1_FIELD_COUNT) throw malformed('more than 5 fields');
      fieldStart[count] = start;
      fieldEnd[count] = i;
      count++;
      start = i + 1;
    }
  }
  if (count !== V1_FIELD_COUNT) throw malformed(`expected 5 fields, got ${count}`);

  const srcPort = parsePort(buf, fieldStart[3], fieldEnd[3]);
  const dstPort = parsePort(buf, fieldStart[4], fieldEnd[4]);
  if (srcPort < 0 || dstPort < 0) {
    throw new ProxyProtocolError('ERR_PP_V1_BAD_PORT', 'ports must be decimal 0..65535 without leading zeros');
  }
  const srcStart = fieldStart[1];
  const srcEnd = fieldEnd[1];
  const dstStart = fieldStart[2];
  const dstEnd = fieldEnd[2];
  if (isTcp4) {
    if (parseIPv4Bytes(buf, srcStart, srcEnd) < 0 || parseIPv4Bytes(buf, dstStart, dstEnd) < 0) {
      throw new ProxyProtocolError('ERR_PP_V1_BAD_ADDRESS', 'TCP4 needs dotted-quad IPv4 addresses without leading zeros');
    }
  } else if (!isIPv6Bytes(buf, srcStart, srcEnd) || !isIPv6Bytes(buf, dstStart, dstEnd)) {
    throw new ProxyProtocolError('ERR_PP_V1_BAD_ADDRESS', 'TCP6 needs IPv6 addresses');
  }
  return new ProxyHeader(
    1, 'PROXY', isTcp4 ? 'INET' : 'INET6', 'STREAM', consumed, null, AddressLayout.V1Text, buf, null, null,
    srcStart | (srcEnd << 7) | (dstStart << 14) | (dstEnd << 21), srcPort * 0x10000 + dstPort,
  );
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > MAX_PORT) {
    throw new ProxyProtocolError('ERR_PP_BAD_INPUT', `port ${port} is not an integer in 0..65535`);
  }
}

/**
 * Writes a v1 line. Both IPv4 (IPv4-mapped counts as IPv4) → TCP4; both IPv6 → TCP6;
 * anything else (mixed families, UNIX, no addresses, LOCAL) → the short "PROXY UNKNOWN".
 */
export function generateV1(source: IProxyIpAddress | null, destination: IProxyIpAddress | null): Buffer {
  if (source === null || destination === null) return Buffer.from(C.V1_UNKNOWN_LINE);
  checkPort(source.port);
  checkPort(destination.port);
  const src4 = unmapIPv4(source.address);
  const dst4 = unmapIPv4(destination.address);
  const srcIs4 = parseIPv4(src4) >= 0;
  const dstIs4 = parseIPv4(dst4) >= 0;
  let line: string;
  if (srcIs4 && dstIs4) {
    line = `PROXY TCP4 ${src4} ${dst4} ${source.port} ${destination.port}\r\n`;
  } else {
    const srcIs6 = !srcIs4 && parseIPv6(source.address) !== null;
    const dstIs6 = !dstIs4 && parseIPv6(destination.address) !== null;
    if (!(srcIs4 || srcIs6) || !(dstIs4 || dstIs6)) {
      throw new ProxyProtocolError('ERR_PP_BAD_INPUT', `not an IP address: ${srcIs4 || srcIs6 ? destination.address : source.address}`);
    }
    if (!(srcIs6 && dstIs6)) return Buffer.from(C.V1_UNKNOWN_LINE);
    line = `PROXY TCP6 ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`;
  }
  return Buffer.from(line, 'latin1');
}
