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

/** Checks that TLVs in [start, end) are well framed and end exactly at `end`. */
function checkFraming(buf: Uint8Array, start: number, end: number, what: string): void {
  let off = start;
  while (off < end) {
    if (off + C.TLV_HEADER_LENGTH > end) throw tlvError(`${what}: ${end - off} dangling byte(s) after the last TLV`);
    const length = (buf[off + 1] << 8) | buf[off + 2];
    const next = off + C.TLV_HEADER_LENGTH + length;
    if (next > end) throw tlvError(`${what}: TLV 0x${buf[off].toString(16)} of length ${length} overruns the header`);
    off = next;
  }
}

/**
 * Validates the TLV area [start, end) of the header that begins at `headerStart`:
 * framing, the fixed sizes the spec gives, SSL sub-TLV framing, and the CRC32C value.
 */
export function validateTlvs(buf: Uint8Array, headerStart: number, start: number, end: number): void {
  let off = start;
  let crcChecked = false;
  checkFraming(buf, start, end, 'TLV area');
  while (off < end) {
    const type = buf[off];
    const length = (buf[off + 1] << 8) | buf[off + 2];
    const value = off + C.TLV_HEADER_LENGTH;
    switch (type) {
      case C.PP2_TYPE_CRC32C:
        if (length !== C.CRC32C_LENGTH) throw tlvError(`CRC32C TLV must be 4 bytes, got ${length}`);
        if (!crcChecked) {
          crcChecked = true;
          let state = crc32cUpdate(crc32cStart(), buf, headerStart, value);
          state = crc32cUpdateZeros(state, C.CRC32C_LENGTH);
          state = crc32cUpdate(state, buf, value + C.CRC32C_LENGTH, end);
          const expected = crc32cFinish(state);
          const got = ((buf[value] << 24) | (buf[value + 1] << 16) | (buf[value + 2] << 8) | buf[value + 3]) >>> 0;
          if (expected !== got) {
            throw new ProxyProtocolError(
              'ERR_PP_CRC32C_MISMATCH',
              `CRC32C mismatch: header says 0x${got.toString(16)}, computed 0x${expected.toString(16)}`,
            );
          }
        }
        break;
      case C.PP2_TYPE_UNIQUE_ID:
        if (length > C.UNIQUE_ID_MAX_LENGTH) throw tlvError(`UNIQUE_ID is ${length} bytes, at most 128 allowed`);
        break;
      case C.PP2_TYPE_SSL:
        if (length < C.PP2_SSL_FIXED_LENGTH) throw tlvError(`SSL TLV is ${length} bytes, at least 5 needed`);
        checkFraming(buf, value + C.PP2_SSL_FIXED_LENGTH, value + length, 'SSL sub-TLVs');
        break;
      default:
        break;
    }
    off = value + length;
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

// Builders for sending. They refuse what HAProxy would reject, so our headers are accepted.

function badInput(message: string): ProxyProtocolError {
  return new ProxyProtocolError('ERR_PP_BAD_INPUT', message);
}

function textValue(text: string | Buffer): Buffer {
  return typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
}

export function alpnTlv(protocol: string | Buffer): ITlv {
  return { type: C.PP2_TYPE_ALPN, value: textValue(protocol) };
}

export function authorityTlv(host: string): ITlv {
  const value = Buffer.from(host, 'utf8');
  if (value.length === 0 || value.length > C.AUTHORITY_MAX_LENGTH) {
    throw badInput(`AUTHORITY must be 1..255 bytes, got ${value.length}`);
  }
  return { type: C.PP2_TYPE_AUTHORITY, value };
}

export function uniqueIdTlv(id: string | Buffer): ITlv {
  const value = textValue(id);
  if (value.length > C.UNIQUE_ID_MAX_LENGTH) throw badInput(`UNIQUE_ID must be at most 128 bytes, got ${value.length}`);
  return { type: C.PP2_TYPE_UNIQUE_ID, value };
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
  return { type: C.PP2_TYPE_SSL, value: Buffer.concat([fixed, encodeTlvs(subs)]) };
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

/** Total bytes `tlvs` take on the wire. */
export function tlvsLength(tlvs: readonly ITlv[]): number {
  let total = 0;
  for (const tlv of tlvs) {
    if (tlv.value.length > C.TLV_MAX_VALUE_LENGTH) throw badInput(`TLV 0x${tlv.type.toString(16)} value exceeds 65535 bytes`);
    total += C.TLV_HEADER_LENGTH + tlv.value.length;
  }
  return total;
}

/** Writes TLVs into `out` at `offset`; returns the offset after them. */
export function writeTlvs(out: Buffer, offset: number, tlvs: readonly ITlv[]): number {
  let off = offset;
  for (const tlv of tlvs) {
    if (!Number.isInteger(tlv.type) || tlv.type < 0 || tlv.type > 0xff) throw badInput(`TLV type ${tlv.type} is not a byte`);
    out[off] = tlv.type;
    out.writeUInt16BE(tlv.value.length, off + 1);
    out.set(tlv.value, off + C.TLV_HEADER_LENGTH);
    off += C.TLV_HEADER_LENGTH + tlv.value.length;
  }
  return off;
}

export function encodeTlvs(tlvs: readonly ITlv[]): Buffer {
  const out = Buffer.allocUnsafe(tlvsLength(tlvs));
  writeTlvs(out, 0, tlvs);
  return out;
}
