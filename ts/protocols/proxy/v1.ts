/** PROXY protocol v1 (text): strict parse and generate. */
import { ProxyProtocolError } from '../errors.js';
import { formatIPv6, parseIPv4, parseIPv4Bytes, parseIPv6, parseIPv6Bytes, unmapIPv4 } from '../ip-address.js';
import { CHAR_0, CHAR_9, CHAR_CR, CHAR_LF, CHAR_SPACE } from '../ascii.js';
import * as C from './constants.js';
import { IPv4Endpoints, IPv6Endpoints, ProxyHeader } from './header.js';
import type { IProxyIpAddress } from './types.js';

const MAX_PORT = 65535;
const MAX_PORT_DIGITS = 5;
const V1_FIELD_COUNT = 5;
/** Where the protocol word starts: right after "PROXY" and its one space. */
const FIELDS_START = C.V1_SIGNATURE.length + 1;

function malformed(message: string): ProxyProtocolError {
  return new ProxyProtocolError('ERR_PP_V1_MALFORMED', message);
}

/** Decimal port in [start, end): no sign, no leading zero, ≤ 65535; -1 when invalid. */
function parsePort(buf: Uint8Array, start: number, end: number): number {
  const digits = end - start;
  if (digits < 1 || digits > MAX_PORT_DIGITS || (digits > 1 && buf[start] === CHAR_0)) return -1;
  let port = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c < CHAR_0 || c > CHAR_9) return -1;
    port = port * 10 + (c - CHAR_0);
  }
  return port <= MAX_PORT ? port : -1;
}

function wordIs(buf: Uint8Array, start: number, end: number, word: string): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (buf[start + i] !== word.charCodeAt(i)) return false;
  return true;
}

// The spaces of the line being parsed, found in the same pass as its end; module-level so a
// parse allocates nothing. One more than the 4 separators is kept: it proves an extra field.
const spaces = new Int32Array(V1_FIELD_COUNT);
let spaceCount = 0;

/** The line's LF (spaces recorded on the way), or -1 while the line may still be incomplete. */
function scanLine(buf: Buffer): number {
  const length = buf.length;
  const limit = length < C.V1_MAX_LENGTH ? length : C.V1_MAX_LENGTH;
  let count = 0;
  for (let i = FIELDS_START; i < limit; i++) {
    const c = buf[i];
    // Every byte that matters here is ≤ space; digits, letters, dots and colons skip at once.
    if (c > CHAR_SPACE) continue;
    if (c === CHAR_SPACE) {
      if (count < V1_FIELD_COUNT) spaces[count] = i;
      count++;
    } else if (c === CHAR_LF) {
      spaceCount = count;
      return i;
    } else if (c === CHAR_CR && i + 1 < length && buf[i + 1] !== CHAR_LF) {
      throw malformed('CR not followed by LF');
    }
  }
  if (length >= C.V1_MAX_LENGTH) throw new ProxyProtocolError('ERR_PP_V1_TOO_LONG', 'no CRLF within 107 bytes');
  return -1;
}

/**
 * Parses a v1 line at the start of `buf` (which is known to begin with "PROXY").
 * Returns null while the line is still incomplete.
 */
export function parseV1(buf: Buffer): ProxyHeader | null {
  if (buf.length > C.V1_SIGNATURE.length && buf[C.V1_SIGNATURE.length] !== CHAR_SPACE) {
    throw malformed('"PROXY" must be followed by exactly one space');
  }
  const lf = scanLine(buf);
  if (lf < 0) return null;
  const lineEnd = lf - 1;
  if (buf[lineEnd] !== CHAR_CR) throw malformed('LF not preceded by CR');
  const protoEnd = spaceCount > 0 ? spaces[0] : lineEnd;
  if (wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_UNKNOWN)) {
    // Spec 2.1: whatever follows UNKNOWN up to CRLF is ignored.
    return new ProxyHeader({ version: 1, command: 'PROXY', family: 'UNSPEC', transport: 'UNSPEC', length: lf + 1, endpoints: null, tlvArea: null });
  }
  const isTcp4 = wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_TCP4);
  if (!isTcp4 && !wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_TCP6)) {
    throw malformed(`unknown protocol "${buf.toString('latin1', FIELDS_START, protoEnd)}"`);
  }
  if (spaceCount !== V1_FIELD_COUNT - 1) throw malformed(`expected 5 fields, got ${spaceCount + 1}`);
  const s1 = spaces[1];
  const s2 = spaces[2];
  const s3 = spaces[3];
  if (s1 === protoEnd + 1 || s2 === s1 + 1 || s3 === s2 + 1 || lineEnd === s3 + 1) {
    throw malformed('empty field (double or trailing space)');
  }
  const sourcePort = parsePort(buf, s2 + 1, s3);
  const destinationPort = parsePort(buf, s3 + 1, lineEnd);
  if (sourcePort < 0 || destinationPort < 0) {
    throw new ProxyProtocolError('ERR_PP_V1_BAD_PORT', 'ports must be decimal 0..65535 without leading zeros');
  }
  const length = lf + 1;
  if (isTcp4) {
    const sourceIPv4 = parseIPv4Bytes(buf, protoEnd + 1, s1);
    const destinationIPv4 = parseIPv4Bytes(buf, s1 + 1, s2);
    if (sourceIPv4 < 0 || destinationIPv4 < 0) {
      throw new ProxyProtocolError('ERR_PP_V1_BAD_ADDRESS', 'TCP4 needs dotted-quad IPv4 addresses without leading zeros');
    }
    const endpoints = new IPv4Endpoints(sourceIPv4, destinationIPv4, sourcePort, destinationPort);
    return new ProxyHeader({ version: 1, command: 'PROXY', family: 'INET', transport: 'STREAM', length, endpoints, tlvArea: null });
  }
  // Any legal spelling in, 128 bits each out: the header formats them in RFC 5952 form.
  const ipv6 = new Uint8Array(2 * C.IPV6_LENGTH);
  if (!parseIPv6Bytes(buf, protoEnd + 1, s1, ipv6, 0) || !parseIPv6Bytes(buf, s1 + 1, s2, ipv6, C.IPV6_LENGTH)) {
    throw new ProxyProtocolError('ERR_PP_V1_BAD_ADDRESS', 'TCP6 needs IPv6 addresses');
  }
  const endpoints = new IPv6Endpoints(ipv6, sourcePort, destinationPort);
  return new ProxyHeader({ version: 1, command: 'PROXY', family: 'INET6', transport: 'STREAM', length, endpoints, tlvArea: null });
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
  if (srcIs4 && dstIs4) {
    return Buffer.from(`PROXY TCP4 ${src4} ${dst4} ${source.port} ${destination.port}\r\n`, 'latin1');
  }
  const src6 = srcIs4 ? null : parseIPv6(source.address);
  const dst6 = dstIs4 ? null : parseIPv6(destination.address);
  if ((!srcIs4 && src6 === null) || (!dstIs4 && dst6 === null)) {
    throw new ProxyProtocolError('ERR_PP_BAD_INPUT', `not an IP address: ${!srcIs4 && src6 === null ? source.address : destination.address}`);
  }
  if (src6 === null || dst6 === null) return Buffer.from(C.V1_UNKNOWN_LINE);
  // RFC 5952 text, as our parser reports it: a receiver keying on the text sees one spelling.
  return Buffer.from(`PROXY TCP6 ${formatIPv6(src6, 0)} ${formatIPv6(dst6, 0)} ${source.port} ${destination.port}\r\n`, 'latin1');
}
