/**
 * One UDP socket per port. Each datagram: the PROXY policy of its peer decides whether a v2
 * header is required, optional, ignored, refused or not looked for; the real client names the
 * session; the session's backend socket carries the payload (behind our own header when sending).
 * Replies go back to the peer as plain datagrams. Nothing throws out of the socket listener.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { normalizeIP } from '../../../core/utils/ip-utils.js';
import type { EventEmitter } from 'node:events';
import type { ProxyPolicy } from '../../../core/utils/proxy-policy.js';
import { type ConnectionErrorCode, SmartProxyError } from '../../../protocols/errors.js';
import { decodeDatagram, hasV2Signature } from '../../../protocols/proxy/datagram.js';
import type { IProxyHeader } from '../../../protocols/proxy/types.js';
import type { ConnectionManager } from '../connection-manager.js';
import type { ISmartProxyEventMap } from '../models/interfaces.js';
import type { UdpSession } from './session.js';

/** The largest UDP payload over IPv4 (65,535 − 8-byte UDP header − 20-byte IP header). */
const MAX_UDP_PAYLOAD = 65_507;

const kListener = Symbol('udpListener');
type TaggedSocket = dgram.Socket & { [kListener]: UdpListener };

/** What a datagram that opens a session tells: the real client and the believed header naming it (null: the peer is the client). */
export interface IFlow {
  header: IProxyHeader | null;
  clientAddress: string;
  clientPort: number;
}

/** A datagram's flow and payload once its header (if any) is read; one object reused, never kept. */
interface IClassified extends IFlow {
  payload: Buffer;
}

/** What listeners share, kept by UdpProxy: configuration, limits, counters, the sweep tick. */
export interface IUdpHost {
  readonly manager: ConnectionManager;
  readonly events: EventEmitter<ISmartProxyEventMap>;
  readonly tick: number;
  openSession(listener: UdpListener, key: string, peerAddress: string, peerPort: number, flow: IFlow): UdpSession | ConnectionErrorCode;
  released(session: UdpSession): void;
  drop(code: ConnectionErrorCode): void;
  countToBackend(bytes: number, withHeader: boolean): void;
  countToClient(bytes: number): void;
  countHeaderReceived(): void;
}

export class UdpListener {
  readonly sessions = new Map<string, UdpSession>();
  readonly socket: TaggedSocket;
  private readonly family: 'udp4' | 'udp6';
  /** The bound address, for the destination of headers we send. */
  address = '';
  private readonly scratch: IClassified = { payload: Buffer.alloc(0), header: null, clientAddress: '', clientPort: 0 };

  constructor(
    readonly proxy: IUdpHost,
    readonly port: number,
    listenAddress: string | undefined,
  ) {
    this.family = listenAddress !== undefined && net.isIPv4(listenAddress) ? 'udp4' : 'udp6';
    this.socket = dgram.createSocket({ type: this.family, ipv6Only: false }) as TaggedSocket;
    this.socket[kListener] = this;
  }

  /** Binds; rejects with ERR_LISTEN. */
  bind(listenAddress: string | undefined): Promise<void> {
    const socket = this.socket;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new SmartProxyError('ERR_LISTEN', `cannot listen on UDP port ${this.port}: ${err.message}`, { cause: err }));
      socket.once('error', onError);
      socket.bind({ port: this.port, address: listenAddress ?? (this.family === 'udp4' ? '0.0.0.0' : '::') }, () => {
        socket.off('error', onError);
        socket.on('error', onListenerError);
        socket.on('message', onClientMessage);
        this.address = normalizeIP(socket.address().address);
        resolve();
      });
    });
  }

  /** A backend's datagram back to the peer that sent the flow. */
  reply(session: UdpSession, msg: Buffer): void {
    session.lastTick = this.proxy.tick;
    this.proxy.countToClient(msg.length);
    this.socket.send(msg, session.peerPort, session.peerAddress);
  }

  backendFailed(session: UdpSession, err: Error): void {
    this.proxy.drop('ERR_UDP_BACKEND');
    this.proxy.events.emit('warning', `UDP session ${session.id} (port ${this.port}) to ${session.route.name}: ${err.message}`);
    this.endSession(session);
  }

  endSession(session: UdpSession): void {
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    if (!session.closed) this.proxy.released(session);
    session.close();
  }

  /** Closes every session and the socket. */
  close(): Promise<void> {
    for (const session of [...this.sessions.values()]) this.endSession(session);
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  /** One datagram from a peer, end to end. */
  receive(msg: Buffer, peerAddress: string, peerPort: number): void {
    const proxy = this.proxy;
    const config = proxy.manager.config;
    const peerIP = normalizeIP(peerAddress);
    const policy = config.acceptProxyProtocol ? config.proxyPolicies.policyFor(peerIP, this.port) : 'skip';
    const seen = this.classify(msg, policy, peerIP, peerPort);
    if (seen === null) return;
    const key = seen.header === null ? `${peerAddress} ${peerPort}` : `${peerAddress} ${peerPort} ${seen.clientAddress} ${seen.clientPort}`;
    let session = this.sessions.get(key);
    if (session === undefined) {
      const opened = proxy.openSession(this, key, peerAddress, peerPort, seen);
      if (typeof opened === 'string') return proxy.drop(opened);
      session = opened;
      this.sessions.set(key, session);
    }
    const size = seen.payload.length + (session.header?.length ?? 0);
    if (size > MAX_UDP_PAYLOAD) return proxy.drop('ERR_UDP_OVERSIZE');
    session.lastTick = proxy.tick;
    if (!session.forward(seen.payload)) return proxy.drop('ERR_UDP_BACKEND');
    proxy.countToBackend(seen.payload.length, session.header !== null);
  }

  /** The payload and real client of a datagram under `policy`, or null when it is dropped (and counted). */
  private classify(msg: Buffer, policy: ProxyPolicy, peerIP: string, peerPort: number): IClassified | null {
    const seen = this.scratch;
    seen.payload = msg;
    seen.header = null;
    seen.clientAddress = peerIP;
    seen.clientPort = peerPort;
    if (policy === 'skip') return seen;
    if (!hasV2Signature(msg)) {
      if (policy !== 'require') return seen;
      this.proxy.drop('ERR_PP_MISSING');
      return null;
    }
    if (policy === 'reject') {
      this.proxy.drop('ERR_PP_UNTRUSTED_PEER');
      return null;
    }
    const code = this.readHeader(msg, seen, policy !== 'ignore');
    if (code === null) return seen;
    this.proxy.drop(code);
    return null;
  }

  /** Reads the header into `seen` (believing it when asked); the code when the datagram is dropped. */
  private readHeader(msg: Buffer, seen: IClassified, believe: boolean): ConnectionErrorCode | null {
    const config = this.proxy.manager.config;
    if (!config.proxyProtocolVersions.has(2)) return 'ERR_PP_VERSION_NOT_ALLOWED';
    let decoded;
    try {
      decoded = decodeDatagram(msg, config.proxyProtocolMaxHeaderSize);
    } catch (err) {
      return (err as SmartProxyError).code as ConnectionErrorCode;
    }
    if (decoded.status !== 'header') return 'ERR_PP_MISSING';
    seen.payload = decoded.payload;
    const source = decoded.header.source;
    if (!believe || source === null || !('address' in source)) return null;
    seen.header = decoded.header;
    seen.clientAddress = source.address;
    seen.clientPort = source.port;
    this.proxy.countHeaderReceived();
    return null;
  }
}

function onClientMessage(this: TaggedSocket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
  const listener = this[kListener];
  try {
    listener.receive(msg, rinfo.address, rinfo.port);
  } catch (err) {
    listener.proxy.drop('ERR_INTERNAL');
    listener.proxy.events.emit('warning', `UDP port ${listener.port}: ${(err as Error)?.message ?? String(err)}`);
  }
}

function onListenerError(this: TaggedSocket, err: Error): void {
  const listener = this[kListener];
  listener.proxy.events.emit('warning', `UDP listener on port ${listener.port}: ${err.message}`);
}
