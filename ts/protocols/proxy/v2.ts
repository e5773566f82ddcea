/** PROXY protocol v2 (binary): strict parse and generate. */
import { ProxyProtocolError } from '../errors.js';
import { parseIPv4, parseIPv6, readIPv4, unmapIPv4 } from '../ip-address.js';
import * as C from './constants.js';
import { crc32c } from './crc32c.js';
import { GivenEndpoints, type IEndpoints, IPv4Endpoints, IPv6Endpoints, ProxyHeader } from './header.js';
import { outgoingTlvsLength, validateTlvs, writeTlvs } from './tlv.js';
import type { ITlv, ProxyAddress, ProxyCommand, ProxyFamily, ProxyTransport } from './types.js';

const FAMILY_NAMES: readonly ProxyFamily[] = ['UNSPEC', 'INET', 'INET6', 'UNIX'];
const TRANSPORT_NAMES: readonly ProxyTransport[] = ['UNSPEC', 'STREAM', 'DGRAM'];
const ADDRESS_LENGTHS = [0, C.V2_ADDRESS_LENGTH_INET, C.V2_ADDRESS_LENGTH_INET6, C.V2_ADDRESS_LENGTH_UNIX];

/** The seven legal family/transport bytes (spec 2.2): 0x00 and {INET,INET6,UNIX} × {STREAM,DGRAM}. */
export function isValidFamilyByte(byte: number): boolean {
  const family = byte >> 4;
  const transport = byte & 0x0f;
  if (family === C.V2_FAMILY_UNSPEC) return transport === C.V2_TRANSPORT_UNSPEC;
  return family <= C.V2_FAMILY_UNIX && (transport === C.V2_TRANSPORT_STREAM || transport === C.V2_TRANSPORT_DGRAM);
}

/**
 * Total length (16 + length field) of the v2 header at the start of `buf`, after checking the
 * fixed part. Needs 16 bytes; throws for a bad version, command, family or a size over the bound.
 */
export function checkV2Fixed(buf: Uint8Array, maxHeaderSize: number): number {
  const versionCommand = buf[C.V2_OFFSET_VERSION_COMMAND];
  if (versionCommand >> 4 !== C.V2_VERSION) {
    throw new ProxyProtocolError('ERR_PP_V2_BAD_VERSION', `version nibble is ${versionCommand >> 4}, expected 2`);
  }
  if ((versionCommand & 0x0f) > C.V2_COMMAND_PROXY) {
    throw new ProxyProtocolError('ERR_PP_V2_BAD_COMMAND', `command ${versionCommand & 0x0f} is neither LOCAL nor PROXY`);
  }
  const familyByte = buf[C.V2_OFFSET_FAMILY];
  if (!isValidFamilyByte(familyByte)) {
    throw new ProxyProtocolError('ERR_PP_V2_BAD_FAMILY', `family/transport byte 0x${familyByte.toString(16).padStart(2, '0')} is not valid`);
  }
  const total = C.V2_FIXED_LENGTH + ((buf[C.V2_OFFSET_LENGTH] << 8) | buf[C.V2_OFFSET_LENGTH + 1]);
  if (total > maxHeaderSize) {
    throw new ProxyProtocolError('ERR_PP_HEADER_TOO_LARGE', `header of ${total} bytes exceeds the ${maxHeaderSize}-byte limit`);
  }
  return total;
}

function unixPath(buf: Buffer, start: number): string {
  // NUL padding is trailing; an abstract socket name keeps its leading NUL.
  let end = start + C.V2_UNIX_PATH_LENGTH;
  while (end > start && buf[end - 1] === 0) end--;
  return buf.toString('utf8', start, end);
}

/** Parses the v2 header at the start of `buf` (signature already matched); null while incomplete. */
export function parseV2(buf: Buffer, maxHeaderSize: number): ProxyHeader | null {
  if (buf.length < C.V2_FIXED_LENGTH) return null;
  const total = checkV2Fixed(buf, maxHeaderSize);
  if (buf.length < total) return null;
  const command: ProxyCommand = (buf[C.V2_OFFSET_VERSION_COMMAND] & 0x0f) === C.V2_COMMAND_PROXY ? 'PROXY' : 'LOCAL';
  const familyCode = buf[C.V2_OFFSET_FAMILY] >> 4;
  const family = FAMILY_NAMES[familyCode];
  const transport = TRANSPORT_NAMES[buf[C.V2_OFFSET_FAMILY] & 0x0f];
  if (command === 'LOCAL') {
    // Spec: the receiver uses the real endpoints and skips the whole block, whatever it holds.
    return new ProxyHeader({ version: 2, command: 'LOCAL', family, transport, length: total, endpoints: null, tlvArea: null });
  }
  const addressLength = ADDRESS_LENGTHS[familyCode];
  const tlvStart = C.V2_FIXED_LENGTH + addressLength;
  if (tlvStart > total) {
    throw new ProxyProtocolError('ERR_PP_V2_LENGTH', `length ${total - C.V2_FIXED_LENGTH} is shorter than the ${addressLength}-byte ${family} address block`);
  }
  let tlvArea: Buffer | null = null;
  if (tlvStart < total) {
    validateTlvs(buf, 0, tlvStart, total);
    tlvArea = ownedCopy(buf, tlvStart, total);
  }
  return new ProxyHeader({ version: 2, command, family, transport, length: total, endpoints: v2Endpoints(buf, familyCode), tlvArea });
}

/** The endpoints of the address block at offset 16, copied out of `buf`; null for UNSPEC. */
function v2Endpoints(buf: Buffer, familyCode: number): IEndpoints | null {
  const a = C.V2_FIXED_LENGTH;
  if (familyCode === C.V2_FAMILY_INET) {
    return new IPv4Endpoints(readIPv4(buf, a), readIPv4(buf, a + 4), (buf[a + 8] << 8) | buf[a + 9], (buf[a + 10] << 8) | buf[a + 11]);
  }
  if (familyCode === C.V2_FAMILY_INET6) {
    const addresses = new Uint8Array(2 * C.IPV6_LENGTH);
    for (let i = 0; i < addresses.length; i++) addresses[i] = buf[a + i];
    return new IPv6Endpoints(addresses, (buf[a + 32] << 8) | buf[a + 33], (buf[a + 34] << 8) | buf[a + 35]);
  }
  if (familyCode === C.V2_FAMILY_UNIX) {
    return new GivenEndpoints({ path: unixPath(buf, a) }, { path: unixPath(buf, a + C.V2_UNIX_PATH_LENGTH) });
  }
  return null;
}

/**
 * Bytes [start, end) in a buffer of exactly that size: a header outlives the chunk it came in,
 * and a view (or a slice of Node's shared pool) would keep that chunk or the pool alive.
 */
function ownedCopy(buf: Buffer, start: number, end: number): Buffer {
  const copy = Buffer.allocUnsafeSlow(end - start);
  buf.copy(copy, 0, start, end);
  return copy;
}

function badInput(message: string): ProxyProtocolError {
  return new ProxyProtocolError('ERR_PP_BAD_INPUT', message);
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw badInput(`port ${port} is not an integer in 0..65535`);
  return port;
}

interface IAddressBytes {
  family: number;
  src: Uint8Array;
  dst: Uint8Array;
}

const IPV4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function v4Bytes(value: number): Uint8Array {
  return Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

/** Address bytes of one endpoint, as IPv4 (4 bytes) when it is IPv4 or IPv4-mapped, else IPv6 (16). */
function ipBytes(address: string): Uint8Array {
  const v4 = parseIPv4(unmapIPv4(address));
  if (v4 >= 0) return v4Bytes(v4);
  const v6 = parseIPv6(address);
  if (v6 === null) throw badInput(`not an IP address: ${address}`);
  return v6;
}

function mapToV6(bytes: Uint8Array): Uint8Array {
  if (bytes.length === C.IPV6_LENGTH) return bytes;
  const out = new Uint8Array(C.IPV6_LENGTH);
  out.set(IPV4_MAPPED_PREFIX);
  out.set(bytes, IPV4_MAPPED_PREFIX.length);
  return out;
}

function addressBytes(source: ProxyAddress, destination: ProxyAddress): IAddressBytes {
  if ('path' in source || 'path' in destination) {
    if (!('path' in source && 'path' in destination)) throw badInput('cannot mix a UNIX path with an IP address');
    const src = Buffer.alloc(C.V2_UNIX_PATH_LENGTH);
    const dst = Buffer.alloc(C.V2_UNIX_PATH_LENGTH);
    if (Buffer.byteLength(source.path) > C.V2_UNIX_PATH_LENGTH || Buffer.byteLength(destination.path) > C.V2_UNIX_PATH_LENGTH) {
      throw badInput('UNIX paths are at most 108 bytes');
    }
    src.write(source.path, 'utf8');
    dst.write(destination.path, 'utf8');
    return { family: C.V2_FAMILY_UNIX, src, dst };
  }
  const src = ipBytes(source.address);
  const dst = ipBytes(destination.address);
  if (src.length === C.IPV4_LENGTH && dst.length === C.IPV4_LENGTH) return { family: C.V2_FAMILY_INET, src, dst };
  return { family: C.V2_FAMILY_INET6, src: mapToV6(src), dst: mapToV6(dst) };
}

const TRANSPORT_CODES: Record<ProxyTransport, number> = {
  UNSPEC: C.V2_TRANSPORT_UNSPEC,
  STREAM: C.V2_TRANSPORT_STREAM,
  DGRAM: C.V2_TRANSPORT_DGRAM,
};

export interface IV2GenerateInput {
  command: ProxyCommand;
  transport: ProxyTransport;
  source: ProxyAddress | null;
  destination: ProxyAddress | null;
  tlvs: readonly ITlv[];
  crc32c: boolean;
}

/**
 * Writes a v2 header in one buffer. Mixed families become IPv4-mapped INET6; both IPv4
 * (or both mapped) become INET. The CRC32C TLV, when asked for, is appended and computed last.
 */
export function generateV2(input: IV2GenerateInput): Buffer {
  let addresses: IAddressBytes | null = null;
  if (input.command === 'PROXY' && input.source && input.destination) {
    checkPort('port' in input.source ? input.source.port : 0);
    checkPort('port' in input.destination ? input.destination.port : 0);
    addresses = addressBytes(input.source, input.destination);
  } else if (input.command === 'PROXY' && (input.source || input.destination)) {
    throw badInput('give both source and destination, or neither (UNSPEC)');
  }
  const addressLength = addresses ? ADDRESS_LENGTHS[addresses.family] : 0;
  const crcLength = input.crc32c ? C.TLV_HEADER_LENGTH + C.CRC32C_LENGTH : 0;
  const total = C.V2_FIXED_LENGTH + addressLength + outgoingTlvsLength(input.tlvs) + crcLength;
  if (total > C.V2_MAX_TOTAL_LENGTH) throw new ProxyProtocolError('ERR_PP_HEADER_TOO_LARGE', `header would be ${total} bytes, over 65551`);

  const out = Buffer.allocUnsafe(total);
  C.V2_SIGNATURE.copy(out, 0);
  out[C.V2_OFFSET_VERSION_COMMAND] = (C.V2_VERSION << 4) | (input.command === 'PROXY' ? C.V2_COMMAND_PROXY : C.V2_COMMAND_LOCAL);
  const transport = addresses ? TRANSPORT_CODES[input.transport] : C.V2_TRANSPORT_UNSPEC;
  if (addresses && transport === C.V2_TRANSPORT_UNSPEC) throw badInput('a header with addresses needs transport STREAM or DGRAM');
  out[C.V2_OFFSET_FAMILY] = addresses ? (addresses.family << 4) | transport : 0;
  out.writeUInt16BE(total - C.V2_FIXED_LENGTH, C.V2_OFFSET_LENGTH);
  let off = C.V2_FIXED_LENGTH;
  if (addresses) {
    out.set(addresses.src, off);
    out.set(addresses.dst, off + addresses.src.length);
    off += addresses.src.length * 2;
    if (addresses.family !== C.V2_FAMILY_UNIX) {
      const src = input.source as { port: number };
      const dst = input.destination as { port: number };
      out.writeUInt16BE(src.port, off);
      out.writeUInt16BE(dst.port, off + C.PORT_LENGTH);
      off += C.PORT_LENGTH * 2;
    }
  }
  off = writeTlvs(out, off, input.tlvs);
  if (input.crc32c) {
    out[off] = C.PP2_TYPE_CRC32C;
    out.writeUInt16BE(C.CRC32C_LENGTH, off + 1);
    out.writeUInt32BE(0, off + C.TLV_HEADER_LENGTH);
    out.writeUInt32BE(crc32c(out), off + C.TLV_HEADER_LENGTH);
  }
  return out;
}
