/**
 * PROXY v2 over UDP: the header and the payload travel in one datagram, and every datagram
 * carries its own header (HAProxy's proxy-protocol.txt, section 2.2, transport DGRAM).
 * A datagram is complete by definition, so there is no "need more": it starts with a whole
 * header, or with none, or it is invalid. v1 has no datagram form: only the v2 signature counts,
 * and a datagram starting with the text "PROXY" is payload.
 */
import { ProxyProtocolError } from '../errors.js';
import * as C from './constants.js';
import { parseV2 } from './v2.js';
import type { IProxyHeader } from './types.js';

/**
 * header: the datagram began with a valid header (`payload` is a view of the bytes after it).
 * none: no v2 signature; `payload` is the whole datagram.
 */
export type DatagramResult =
  | { status: 'header'; header: IProxyHeader; payload: Buffer }
  | { status: 'none'; payload: Buffer };

/** Whether `datagram` begins with the whole 12-byte v2 signature. */
export function hasV2Signature(datagram: Uint8Array): boolean {
  if (datagram.length < C.V2_SIGNATURE.length) return false;
  for (let i = 0; i < C.V2_SIGNATURE.length; i++) if (datagram[i] !== C.V2_SIGNATURE[i]) return false;
  return true;
}

/**
 * Splits one datagram into its PROXY v2 header and payload. Throws a ProxyProtocolError when it
 * starts with the v2 signature but the header is invalid, ends inside the datagram's bounds
 * (`ERR_PP_INCOMPLETE`), or names a stream transport (`ERR_PP_V2_TRANSPORT`: a TCP header in
 * a UDP datagram describes some other flow). LOCAL and UNSPEC headers are valid: use the peer.
 */
export function decodeDatagram(datagram: Buffer, maxHeaderSize: number = C.DEFAULT_MAX_HEADER_SIZE): DatagramResult {
  if (!hasV2Signature(datagram)) return { status: 'none', payload: datagram };
  const header = parseV2(datagram, maxHeaderSize);
  if (header === null) {
    throw new ProxyProtocolError('ERR_PP_INCOMPLETE', `the ${datagram.length}-byte datagram ends inside its PROXY v2 header`);
  }
  if (header.command === 'PROXY' && header.transport === 'STREAM') {
    throw new ProxyProtocolError('ERR_PP_V2_TRANSPORT', 'a PROXY v2 header with transport STREAM arrived in a UDP datagram (expected DGRAM)');
  }
  return { status: 'header', header, payload: datagram.subarray(header.length) };
}
