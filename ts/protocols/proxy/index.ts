export * from './types.js';
export * as PP2 from './constants.js';
export { crc32c } from './crc32c.js';
export { decodeDatagram, hasV2Signature } from './datagram.js';
export type { DatagramResult } from './datagram.js';
export { GivenEndpoints, IPv4Endpoints, IPv6Endpoints, ProxyHeader } from './header.js';
export type { IEndpoints, IProxyHeaderFields } from './header.js';
export { ProxyProtocolDecoder, ProxyProtocolParser } from './parser.js';
export type { SignatureMatch } from './parser.js';
export {
  alpnTlv,
  authorityTlv,
  awsVpceTlv,
  azureLinkIdTlv,
  gcpPscTlv,
  netnsTlv,
  noopTlv,
  sslTlv,
  uniqueIdTlv,
} from './tlv.js';
export type { ISslTlvInit } from './tlv.js';
