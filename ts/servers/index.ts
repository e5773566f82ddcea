export { withProxyProtocol } from './with-proxy-protocol.js';
export type { IProxyProtocolServerErrorEvent } from './with-proxy-protocol.js';
export { getProxyHeader } from './peer.js';
export type { IWithProxyProtocolOptions } from './options.js';
