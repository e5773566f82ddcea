/** PROXY protocol v1 (text): strict parse and generate. */
import { ProxyProtocolError } from '../errors.js';
import { formatIPv6, parseIPv4, parseIPv4Bytes, parseIPv6, parseIPv6Bytes, unmapIPv4 } from '../ip-address.js';
import { CHAR_0, CHAR_9, CHAR_CR, CHAR_LF, CHAR_SPACE } from '../ascii.js';
import * as C from './constants.js';
import { ProxyHeader } from './header.js';
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

// Field boundaries of the line being parsed; module-level so a parse allocates no array.
const fieldStart = new Int32Array(V1_FIELD_COUNT);
const fieldEnd = new Int32Array(V1_FIELD_COUNT);

/**
 * Parses a v1 line at the start of `buf` (which is known to begin with "PROXY").
 * Returns null while the line is still incomplete.
 */
export function parseV1(buf: Buffer): ProxyHeader | null {
  const length = buf.length;
  if (length > C.V1_SIGNATURE.length && buf[C.V1_SIGNATURE.length] !== CHAR_SPACE) {
    throw malformed('"PROXY" must be followed by exactly one space');
  }
  const limit = length < C.V1_MAX_LENGTH ? length : C.V1_MAX_LENGTH;
  let lf = -1;
  for (let i = FIELDS_START; i < limit; i++) {
    const c = buf[i];
    if (c === CHAR_LF) {
      lf = i;
      break;
    }
    if (c === CHAR_CR && i + 1 < length && buf[i + 1] !== CHAR_LF) throw malformed('CR not followed by LF');
  }
  if (lf < 0) {
    if (length >= C.V1_MAX_LENGTH) throw new ProxyProtocolError('ERR_PP_V1_TOO_LONG', 'no CRLF within 107 bytes');
    return null;
  }
  if (buf[lf - 1] !== CHAR_CR) throw malformed('LF not preceded by CR');
  const lineEnd = lf - 1;
  const consumed = lf + 1;

  let protoEnd = FIELDS_START;
  while (protoEnd < lineEnd && buf[protoEnd] !== CHAR_SPACE) protoEnd++;
  if (wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_UNKNOWN)) {
    // Spec 2.1: whatever follows UNKNOWN up to CRLF is ignored.
    return new ProxyHeader({ version: 1, command: 'PROXY', family: 'UNSPEC', transport: 'UNSPEC', length: consumed });
  }
  const isTcp4 = wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_TCP4);
  if (!isTcp4 && !wordIs(buf, FIELDS_START, protoEnd, C.V1_PROTO_TCP6)) {
    throw malformed(`unknown protocol "${buf.toString('latin1', FIELDS_START, protoEnd)}"`);
  }

  let count = 0;
  let start = FIELDS_START;
  for (let i = FIELDS_START; i <= lineEnd; i++) {
    if (i === lineEnd || buf[i] === CHAR_SPACE) {
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
  const ipBlock = isTcp4 ? ipv4Block(buf) : ipv6Block(buf);
  const portsAt = ipBlock.length - 2 * C.PORT_LENGTH;
  writePort(ipBlock, portsAt, srcPort);
  writePort(ipBlock, portsAt + C.PORT_LENGTH, dstPort);
  return new ProxyHeader({ version: 1, command: 'PROXY', family: isTcp4 ? 'INET' : 'INET6', transport: 'STREAM', length: consumed, ipBlock });
}

function writePort(block: Uint8Array, offset: number, port: number): void {
  block[offset] = port >>> 8;
  block[offset + 1] = port & 0xff;
}

function writeIPv4(block: Uint8Array, offset: number, value: number): void {
  block[offset] = value >>> 24;
  block[offset + 1] = (value >>> 16) & 0xff;
  block[offset + 2] = (value >>> 8) & 0xff;
  block[offset + 3] = value & 0xff;
}

/** The two TCP4 address fields as a v2 INET address block (ports written by the caller). */
function ipv4Block(buf: Uint8Array): Uint8Array {
  const src = parseIPv4Bytes(buf, fieldStart[1], fieldEnd[1]);
  const dst = parseIPv4Bytes(buf, fieldStart[2], fieldEnd[2]);
  if (src < 0 || dst < 0) {
    throw new ProxyProtocolError('ERR_PP_V1_BAD_ADDRESS', 'TCP4 needs dotted-quad IPv4 addresses without leading zeros');
  }
  const block = new Uint8Array(C.V2_ADDRESS_LENGTH_INET);
  writeIPv4(block, 0, src);
  writeIPv4(block, C.IPV4_LENGTH, dst);
  return block;
}

/** The two TCP6 address fields as a v2 INET6 address block: any spelling in, 16 bytes each out. */
function ipv6Block(buf: Uint8Array): Uint8Array {
  const block = new Uint8Array(C.V2_ADDRESS_LENGTH_INET6);
  if (!parseIPv6Bytes(buf, fieldStart[1], fieldEnd[1], block, 0) || !parseIPv6Bytes(buf, fieldStart[2], fieldEnd[2], block, C.IPV6_LENGTH)) {
    throw new ProxyProtocolError('ERR_PP_V1_BAD_ADDRESS', 'TCP6 needs IPv6 addresses');
  }
  return block;
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
