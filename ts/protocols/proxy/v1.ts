/** PROXY protocol v1 (text): strict parse and generate. */
import { ProxyProtocolError } from '../errors.js';
import { formatIPv6, parseIPv4, parseIPv6, parseIPv6Bytes, scanIPv4, unmapIPv4 } from '../ip-address.js';
import { CHAR_0, CHAR_CR, CHAR_LF, CHAR_SPACE } from '../ascii.js';
import * as C from './constants.js';
import { IPv4Endpoints, IPv6Endpoints, ProxyHeader } from './header.js';
import type { IProxyIpAddress } from './types.js';

const MAX_PORT = 65535;
const MAX_PORT_DIGITS = 5;
/** Where the protocol word starts: right after "PROXY" and its one space. */
const FIELDS_START = C.V1_SIGNATURE.length + 1;

function malformed(message: string): ProxyProtocolError {
  return new ProxyProtocolError('ERR_PP_V1_MALFORMED', message);
}

// Values of the line being read (source address, destination address, source port,
// destination port); module-level so a parse allocates nothing for them.
const values = new Float64Array(4);

/**
 * Reads the decimal port that starts at `start`: digits up to the first non-digit or `limit`.
 * Writes it to values[index], or -1 when it has no digits, a leading zero or exceeds 65535.
 * Returns where the digits end.
 */
function scanPort(buf: Uint8Array, start: number, limit: number, index: number): number {
  let port = 0;
  let i = start;
  for (; i < limit; i++) {
    const digit = buf[i] - CHAR_0;
    if (digit >>> 0 >= 10) break;
    // Past 5 digits the port is invalid anyway: stop accumulating, keep finding its end.
    if (i - start < MAX_PORT_DIGITS) port = port * 10 + digit;
  }
  const digits = i - start;
  const valid = digits > 0 && digits <= MAX_PORT_DIGITS && (digits === 1 || buf[start] !== CHAR_0) && port <= MAX_PORT;
  values[index] = valid ? port : -1;
  return i;
}

/** The first byte at or after `start` that is a space, CR, LF or another control byte; or `limit`. */
function wordEnd(buf: Uint8Array, start: number, limit: number): number {
  let i = start;
  while (i < limit && buf[i] > CHAR_SPACE) i++;
  return i;
}

function wordIs(buf: Uint8Array, start: number, end: number, word: string): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (buf[start + i] !== word.charCodeAt(i)) return false;
  return true;
}

/** No line end within the bytes so far: wait for more, or refuse once 107 bytes hold none. */
function needMore(limit: number): null {
  if (limit === C.V1_MAX_LENGTH) throw new ProxyProtocolError('ERR_PP_V1_TOO_LONG', 'no CRLF within 107 bytes');
  return null;
}

/**
 * Checks the field [start, end) that ended at `end` (not at the end of the bytes so far): it
 * must be non-empty, hold a valid value, and be followed by `delimiter`. A field cut short by a
 * space, CR, LF or control byte is a broken line; a field with other bytes is a bad value.
 */
function checkField(buf: Uint8Array, start: number, end: number, delimiter: number, value: number, badValue: ProxyProtocolError['code']): void {
  const next = buf[end];
  if (next <= CHAR_SPACE && (next !== delimiter || end === start)) {
    throw malformed(end === start ? 'empty field (double or leading space)' : 'expected 5 fields separated by single spaces, then CRLF');
  }
  if (next !== delimiter || value < 0) throw new ProxyProtocolError(badValue, badValueMessage(badValue));
}

function badValueMessage(code: ProxyProtocolError['code']): string {
  return code === 'ERR_PP_V1_BAD_PORT'
    ? 'ports must be decimal 0..65535 without leading zeros'
    : 'TCP4 needs dotted-quad IPv4 addresses without leading zeros, TCP6 IPv6 addresses';
}

/**
 * Parses a v1 line at the start of `buf` (which is known to begin with "PROXY") in one pass:
 * each field is read where it stands and checked as soon as its delimiter is in. Returns null
 * while the line is incomplete; a header only once its CRLF has arrived.
 */
export function parseV1(buf: Buffer): ProxyHeader | null {
  const length = buf.length;
  if (length > C.V1_SIGNATURE.length && buf[C.V1_SIGNATURE.length] !== CHAR_SPACE) {
    throw malformed('"PROXY" must be followed by exactly one space');
  }
  const limit = length < C.V1_MAX_LENGTH ? length : C.V1_MAX_LENGTH;
  const protoEnd = wordEnd(buf, FIELDS_START, limit);
  if (protoEnd >= limit) return needMore(limit);
  const isTcp4 = wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_TCP4);
  if (!isTcp4 && !wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_TCP6)) {
    if (wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_UNKNOWN)) return unknownLine(buf, protoEnd, limit);
    throw malformed(`unknown protocol "${buf.toString('latin1', FIELDS_START, protoEnd)}"`);
  }
  if (buf[protoEnd] !== CHAR_SPACE) throw malformed('expected 5 fields separated by single spaces, then CRLF');
  const ipv6 = isTcp4 ? null : new Uint8Array(2 * C.IPV6_LENGTH);
  const portsStart = ipv6 === null ? readIPv4Pair(buf, protoEnd + 1, limit) : readIPv6Pair(buf, protoEnd + 1, limit, ipv6);
  if (portsStart < 0) return needMore(limit);
  const sourcePortEnd = scanPort(buf, portsStart, limit, 2);
  if (sourcePortEnd === limit) return needMore(limit);
  checkField(buf, portsStart, sourcePortEnd, CHAR_SPACE, values[2], 'ERR_PP_V1_BAD_PORT');
  const lineEnd = scanPort(buf, sourcePortEnd + 1, limit, 3);
  if (lineEnd === limit) return needMore(limit);
  checkField(buf, sourcePortEnd + 1, lineEnd, CHAR_CR, values[3], 'ERR_PP_V1_BAD_PORT');
  if (lineEnd + 1 >= limit) return needMore(limit);
  if (buf[lineEnd + 1] !== CHAR_LF) throw malformed('CR not followed by LF');
  // `| 0`: small integers stay unboxed in the endpoints' fields (an unsigned address over 2^31 would not).
  const sourcePort = values[2] | 0;
  const destinationPort = values[3] | 0;
  const endpoints = ipv6 === null ? new IPv4Endpoints(values[0] | 0, values[1] | 0, sourcePort, destinationPort) : new IPv6Endpoints(ipv6, sourcePort, destinationPort);
  const family = ipv6 === null ? 'INET' : 'INET6';
  return new ProxyHeader({ version: 1, command: 'PROXY', family, transport: 'STREAM', length: lineEnd + 2, endpoints, tlvArea: null });
}

/** Reads "a.b.c.d a.b.c.d " from `start`; returns where the ports begin, or -1 to wait for more. */
function readIPv4Pair(buf: Buffer, start: number, limit: number): number {
  const sourceEnd = scanIPv4(buf, start, limit, values, 0);
  if (sourceEnd === limit) return -1;
  checkField(buf, start, sourceEnd, CHAR_SPACE, values[0], 'ERR_PP_V1_BAD_ADDRESS');
  const destinationEnd = scanIPv4(buf, sourceEnd + 1, limit, values, 1);
  if (destinationEnd === limit) return -1;
  checkField(buf, sourceEnd + 1, destinationEnd, CHAR_SPACE, values[1], 'ERR_PP_V1_BAD_ADDRESS');
  return destinationEnd + 1;
}

/** Reads two IPv6 fields from `start` into `bytes` (any legal spelling, 128 bits each); as readIPv4Pair. */
function readIPv6Pair(buf: Buffer, start: number, limit: number, bytes: Uint8Array): number {
  const sourceEnd = wordEnd(buf, start, limit);
  if (sourceEnd === limit) return -1;
  const sourceValid = parseIPv6Bytes(buf, start, sourceEnd, bytes, 0);
  checkField(buf, start, sourceEnd, CHAR_SPACE, sourceValid ? 0 : -1, 'ERR_PP_V1_BAD_ADDRESS');
  const destinationEnd = wordEnd(buf, sourceEnd + 1, limit);
  if (destinationEnd === limit) return -1;
  const destinationValid = parseIPv6Bytes(buf, sourceEnd + 1, destinationEnd, bytes, C.IPV6_LENGTH);
  checkField(buf, sourceEnd + 1, destinationEnd, CHAR_SPACE, destinationValid ? 0 : -1, 'ERR_PP_V1_BAD_ADDRESS');
  return destinationEnd + 1;
}

/** Spec 2.1: whatever follows UNKNOWN up to CRLF is ignored (but a lone CR or LF is not a CRLF). */
function unknownLine(buf: Buffer, from: number, limit: number): ProxyHeader | null {
  for (let i = from; i < limit; i++) {
    const c = buf[i];
    if (c === CHAR_LF) {
      if (buf[i - 1] !== CHAR_CR) throw malformed('LF not preceded by CR');
      return new ProxyHeader({ version: 1, command: 'PROXY', family: 'UNSPEC', transport: 'UNSPEC', length: i + 1, endpoints: null, tlvArea: null });
    }
    if (c === CHAR_CR && i + 1 < buf.length && buf[i + 1] !== CHAR_LF) throw malformed('CR not followed by LF');
  }
  return needMore(limit);
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
