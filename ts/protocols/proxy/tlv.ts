/**
 * v2 TLVs: the structural check done while parsing (no allocation), the lazy walk that
 * materialises them, typed decoders, and builders for sending.
 */
import { ProxyProtocolError } from '../errors.js';
import * as C from './constants.js';
import { crc32cFinish, crc32cStart, crc32cUpdate, crc32cUpdateZeros } from './crc32c.js';
import type { ISslInfo, ITlv } from './types.js';

function tlvError(message: string): ProxyProtocolError {
  return new ProxyProtocolError('ERR_PP_V2_TLV', message);
}

/** Why the TLVs in [start, end) are not well framed or do not end exactly at `end`; null when they are. */
function framingFault(buf: Uint8Array, start: number, end: number, what: string): string | null {
  let off = start;
  while (off < end) {
    if (off + C.TLV_HEADER_LENGTH > end) return `${what}: ${end - off} dangling byte(s) after the last TLV`;
    const length = (buf[off + 1] << 8) | buf[off + 2];
    const next = off + C.TLV_HEADER_LENGTH + length;
    if (next > end) return `${what}: TLV 0x${buf[off].toString(16)} of length ${length} overruns the header`;
    off = next;
  }
  return null;
}

/**
 * The spec's rules for the value of one TLV of `type` at [value, value + length): the one place
 * they live, applied to what we receive and to what we send. A reason it breaks one, or null.
 */
function valueFault(buf: Uint8Array, type: number, value: number, length: number): string | null {
  switch (type) {
    case C.PP2_TYPE_CRC32C:
      return length === C.CRC32C_LENGTH ? null : `CRC32C TLV must be 4 bytes, got ${length}`;
    case C.PP2_TYPE_UNIQUE_ID:
      return length <= C.UNIQUE_ID_MAX_LENGTH ? null : `UNIQUE_ID is ${length} bytes, at most 128 allowed`;
    case C.PP2_TYPE_SSL:
      if (length < C.PP2_SSL_FIXED_LENGTH) return `SSL TLV is ${length} bytes, at least 5 needed`;
      return framingFault(buf, value + C.PP2_SSL_FIXED_LENGTH, value + length, 'SSL sub-TLVs');
    default:
      return null;
  }
}

/**
 * Validates the TLV area [start, end) of the header that begins at `headerStart`:
 * framing, the per-type value rules, and the CRC32C value.
 */
export function validateTlvs(buf: Uint8Array, headerStart: number, start: number, end: number): void {
  const framing = framingFault(buf, start, end, 'TLV area');
  if (framing !== null) throw tlvError(framing);
  let off = start;
  let crcChecked = false;
  while (off < end) {
    const type = buf[off];
    const length = (buf[off + 1] << 8) | buf[off + 2];
    const value = off + C.TLV_HEADER_LENGTH;
    const fault = valueFault(buf, type, value, length);
    if (fault !== null) throw tlvError(fault);
    if (type === C.PP2_TYPE_CRC32C && !crcChecked) {
      crcChecked = true;
      checkCrc32c(buf, headerStart, value, end);
    }
    off = value + length;
  }
}

/** Spec 2.2.3: the checksum of the whole header with its own 4 bytes counted as zeros. */
function checkCrc32c(buf: Uint8Array, headerStart: number, value: number, end: number): void {
  let state = crc32cUpdate(crc32cStart(), buf, headerStart, value);
  state = crc32cUpdateZeros(state, C.CRC32C_LENGTH);
  state = crc32cUpdate(state, buf, value + C.CRC32C_LENGTH, end);
  const expected = crc32cFinish(state);
  const got = ((buf[value] << 24) | (buf[value + 1] << 16) | (buf[value + 2] << 8) | buf[value + 3]) >>> 0;
  if (expected !== got) {
    throw new ProxyProtocolError('ERR_PP_CRC32C_MISMATCH', `CRC32C mismatch: header says 0x${got.toString(16)}, computed 0x${expected.toString(16)}`);
  }
}

/** Materialises the TLVs of an already validated area; values are views, not copies. */
export function walkTlvs(area: Buffer): ITlv[] {
  const tlvs: ITlv[] = [];
  let off = 0;
  while (off < area.length) {
    const length = area.readUInt16BE(off + 1);
    const value = off + C.TLV_HEADER_LENGTH;
    tlvs.push({ type: area[off], value: area.subarray(value, value + length) });
    off = value + length;
  }
  return tlvs;
}

const SSL_STRING_FIELDS: Record<number, 'version' | 'cn' | 'cipher' | 'sigAlg' | 'keyAlg'> = {
  [C.PP2_SUBTYPE_SSL_VERSION]: 'version',
  [C.PP2_SUBTYPE_SSL_CN]: 'cn',
  [C.PP2_SUBTYPE_SSL_CIPHER]: 'cipher',
  [C.PP2_SUBTYPE_SSL_SIG_ALG]: 'sigAlg',
  [C.PP2_SUBTYPE_SSL_KEY_ALG]: 'keyAlg',
};

export function decodeSsl(value: Buffer): ISslInfo {
  const subTlvs = walkTlvs(value.subarray(C.PP2_SSL_FIXED_LENGTH));
  const info: ISslInfo = { client: value[0], verify: value.readUInt32BE(1), subTlvs };
  for (const sub of subTlvs) {
    const field = SSL_STRING_FIELDS[sub.type];
    if (field !== undefined && info[field] === undefined) info[field] = sub.value.toString('utf8');
  }
  return info;
}

export function decodeAwsVpceId(value: Buffer): string | undefined {
  return value.length > 1 && value[0] === C.PP2_SUBTYPE_AWS_VPCE_ID ? value.toString('latin1', 1) : undefined;
}

export function decodeAzureLinkId(value: Buffer): number | undefined {
  return value.length === C.AZURE_LINK_ID_TLV_LENGTH && value[0] === C.PP2_SUBTYPE_AZURE_PRIVATEENDPOINT_LINKID
    ? value.readUInt32LE(1)
    : undefined;
}

export function decodeGcpPscConnectionId(value: Buffer): bigint | undefined {
  return value.length === C.GCP_PSC_CONNECTION_ID_LENGTH ? value.readBigUInt64BE(0) : undefined;
}

// Sending. What we write obeys the rules we read by (valueFault), plus HAProxy's limits, so our
// own decoder and HAProxy accept every header we send.

function badInput(message: string): ProxyProtocolError {
  return new ProxyProtocolError('ERR_PP_BAD_INPUT', message);
}

/** Why `tlv` cannot be written as a TLV at all (type not a byte, value too long); null when it can. */
function shapeFault(tlv: ITlv): string | null {
  if (!Number.isInteger(tlv.type) || tlv.type < 0 || tlv.type > 0xff) return `TLV type ${tlv.type} is not a byte`;
  if (tlv.value.length > C.TLV_MAX_VALUE_LENGTH) return `TLV 0x${tlv.type.toString(16)} value exceeds 65535 bytes`;
  return null;
}

/** Why we must not send this TLV (as a top-level TLV of a header); null when we may. */
function sendingFault(tlv: ITlv): string | null {
  const shape = shapeFault(tlv);
  if (shape !== null) return shape;
  const { type, value } = tlv;
  if (type === C.PP2_TYPE_CRC32C) {
    // A copied checksum would be stale for the header it lands in.
    return 'a CRC32C TLV cannot be passed in tlvs: ask for crc32c: true and it is computed over the header';
  }
  if (type === C.PP2_TYPE_AUTHORITY && (value.length === 0 || value.length > C.AUTHORITY_MAX_LENGTH)) {
    return `AUTHORITY must be 1..255 bytes (HAProxy's limit), got ${value.length}`;
  }
  return valueFault(value, type, 0, value.length);
}

function checked(tlv: ITlv): ITlv {
  const fault = sendingFault(tlv);
  if (fault !== null) throw badInput(fault);
  return tlv;
}

function textValue(text: string | Buffer): Buffer {
  return typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
}

export function alpnTlv(protocol: string | Buffer): ITlv {
  return { type: C.PP2_TYPE_ALPN, value: textValue(protocol) };
}

export function authorityTlv(host: string): ITlv {
  return checked({ type: C.PP2_TYPE_AUTHORITY, value: Buffer.from(host, 'utf8') });
}

export function uniqueIdTlv(id: string | Buffer): ITlv {
  return checked({ type: C.PP2_TYPE_UNIQUE_ID, value: textValue(id) });
}

export function netnsTlv(name: string): ITlv {
  return { type: C.PP2_TYPE_NETNS, value: Buffer.from(name, 'utf8') };
}

export function noopTlv(length: number): ITlv {
  return { type: C.PP2_TYPE_NOOP, value: Buffer.alloc(length) };
}

export interface ISslTlvInit {
  /** PP2_CLIENT_* bit field; PP2_CLIENT_SSL (0x01) is set for you. */
  client?: number;
  /** 0 = verified (default). */
  verify?: number;
  version?: string;
  cn?: string;
  cipher?: string;
  sigAlg?: string;
  keyAlg?: string;
  /** Further sub-TLVs (group, sig scheme, client certificate DER, ...), written after the strings. */
  subTlvs?: readonly ITlv[];
}

export function sslTlv(init: ISslTlvInit): ITlv {
  const subs: ITlv[] = [];
  const strings: Array<[number, string | undefined]> = [
    [C.PP2_SUBTYPE_SSL_VERSION, init.version],
    [C.PP2_SUBTYPE_SSL_CN, init.cn],
    [C.PP2_SUBTYPE_SSL_CIPHER, init.cipher],
    [C.PP2_SUBTYPE_SSL_SIG_ALG, init.sigAlg],
    [C.PP2_SUBTYPE_SSL_KEY_ALG, init.keyAlg],
  ];
  for (const [type, text] of strings) if (text !== undefined) subs.push({ type, value: Buffer.from(text, 'utf8') });
  if (init.subTlvs) subs.push(...init.subTlvs);
  const fixed = Buffer.alloc(C.PP2_SSL_FIXED_LENGTH);
  fixed[0] = (init.client ?? 0) | C.PP2_CLIENT_SSL;
  fixed.writeUInt32BE(init.verify ?? 0, 1);
  return checked({ type: C.PP2_TYPE_SSL, value: Buffer.concat([fixed, encodeSubTlvs(subs)]) });
}

export function awsVpceTlv(vpceId: string): ITlv {
  return { type: C.PP2_TYPE_AWS, value: Buffer.concat([Buffer.from([C.PP2_SUBTYPE_AWS_VPCE_ID]), Buffer.from(vpceId, 'latin1')]) };
}

export function azureLinkIdTlv(linkId: number): ITlv {
  const value = Buffer.alloc(C.AZURE_LINK_ID_TLV_LENGTH);
  value[0] = C.PP2_SUBTYPE_AZURE_PRIVATEENDPOINT_LINKID;
  value.writeUInt32LE(linkId, 1);
  return { type: C.PP2_TYPE_AZURE, value };
}

export function gcpPscTlv(connectionId: bigint): ITlv {
  const value = Buffer.alloc(C.GCP_PSC_CONNECTION_ID_LENGTH);
  value.writeBigUInt64BE(connectionId);
  return { type: C.PP2_TYPE_GCP, value };
}

/**
 * Total bytes `tlvs` take on the wire as a header's TLVs, after checking that each may be sent
 * (sendingFault): generate() never writes what a receiver, ours included, would refuse.
 */
export function outgoingTlvsLength(tlvs: readonly ITlv[]): number {
  let total = 0;
  for (const tlv of tlvs) total += C.TLV_HEADER_LENGTH + checked(tlv).value.length;
  return total;
}

/** Writes TLVs into `out` at `offset`; returns the offset after them. */
export function writeTlvs(out: Buffer, offset: number, tlvs: readonly ITlv[]): number {
  let off = offset;
  for (const tlv of tlvs) {
    out[off] = tlv.type;
    out.writeUInt16BE(tlv.value.length, off + 1);
    out.set(tlv.value, off + C.TLV_HEADER_LENGTH);
    off += C.TLV_HEADER_LENGTH + tlv.value.length;
  }
  return off;
}

/** Sub-TLVs (inside SSL): framing only, since the top-level type rules do not apply to sub-types. */
function encodeSubTlvs(tlvs: readonly ITlv[]): Buffer {
  let total = 0;
  for (const tlv of tlvs) {
    const fault = shapeFault(tlv);
    if (fault !== null) throw badInput(`SSL sub-TLV: ${fault}`);
    total += C.TLV_HEADER_LENGTH + tlv.value.length;
  }
  const out = Buffer.allocUnsafe(total);
  writeTlvs(out, 0, tlvs);
  return out;
}
