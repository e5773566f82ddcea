/**
 * The real client on the sockets an application sees. Node derives `remoteAddress`,
 * `remotePort` and `remoteFamily` from the peer name it caches on a net.Socket (`_peername`),
 * asking the socket's handle (`getpeername`) on first use. A TLSSocket built on a raw socket
 * asks its own handle, which forwards `getpeername` to the raw socket's handle; http2 sessions
 * read the TLS (or raw) socket through a proxy. So one change at the bottom serves them all: the
 * raw socket's cache, and the raw handle's answer for every socket built on it later.
 */
import type { Duplex } from 'node:stream';
import type { IProxyHeader } from '../protocols/proxy/types.js';

const kHeader = Symbol('smartproxy.proxyHeader');
const kPeer = Symbol('smartproxy.realPeer');

interface IPeerName {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

interface IPeerHandle {
  [kPeer]?: IPeerName;
  getpeername?: (out: Record<string, unknown>) => number;
}

/** The Node internals this module relies on; the tests prove them for every server kind. */
interface ISocketInternals {
  [kHeader]?: IProxyHeader;
  _peername?: IPeerName;
  _handle?: IPeerHandle | null;
  /** A server-side TLSSocket's raw socket. */
  _parent?: ISocketInternals | null;
}

/** Shared by every handle (no closure per connection): answers with the real client. */
function realPeerName(this: IPeerHandle, out: Record<string, unknown>): number {
  const peer = this[kPeer] as IPeerName;
  out.address = peer.address;
  out.family = peer.family;
  out.port = peer.port;
  return 0;
}

/** Records a believed header on the raw socket, before any server code sees the socket. */
export function recordHeader(socket: Duplex, header: IProxyHeader): void {
  (socket as ISocketInternals)[kHeader] = header;
}

/** Makes `socket` and every socket later built on it report `address`:`port` as their peer. */
export function setRealPeer(socket: Duplex, address: string, port: number): void {
  const peer: IPeerName = { address, family: address.includes(':') ? 'IPv6' : 'IPv4', port };
  const internals = socket as ISocketInternals;
  internals._peername = peer;
  const handle = internals._handle;
  if (handle !== undefined && handle !== null) {
    handle[kPeer] = peer;
    handle.getpeername = realPeerName;
  }
}

/**
 * The PROXY header a wrapped server read for this connection, or null (no header: a direct
 * client). Works on the raw socket, a TLSSocket, `req.socket` and an http2 session's socket.
 */
export function getProxyHeader(socket: Duplex): IProxyHeader | null {
  const internals = socket as ISocketInternals;
  return internals[kHeader] ?? internals._parent?.[kHeader] ?? null;
}
