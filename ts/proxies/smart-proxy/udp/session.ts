/**
 * One UDP session: a real client flow (client ip:port as seen through its peer) and the backend
 * socket that carries it, so every reply maps back to that client. Listeners on the backend socket
 * are module-level functions that find their session through a symbol on the socket: no closure
 * per session. Idle time is a tick number the proxy's one sweep compares, not a timer per session.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { ProxyProtocolParser } from '../../../protocols/proxy/parser.js';
import { uniqueIdTlv } from '../../../protocols/proxy/tlv.js';
import type { IProxyHeader, IProxyIpAddress, ITlv } from '../../../protocols/proxy/types.js';
import type { IResolvedRoute, ISendSettings } from '../config.js';

const kSession = Symbol('udpSession');

type TaggedSocket = dgram.Socket & { [kSession]: UdpSession };

/** Datagrams held while the backend socket connects (a name lookup at most); more are dropped. */
const MAX_QUEUED = 64;

/** The listener a session belongs to (an interface, so this module imports no other of udp/). */
interface ISessionOwner {
  /** The bound address, for the destination of headers we send. */
  readonly address: string;
  readonly port: number;
  reply(session: UdpSession, msg: Buffer): void;
  backendFailed(session: UdpSession, err: Error): void;
}

export class UdpSession {
  /** The sweep tick of the last datagram either way. */
  lastTick: number;
  closed = false;
  readonly backend: TaggedSocket;
  /** The v2 DGRAM header every datagram to the backend begins with; null when not sending. */
  readonly header: Buffer | null;
  /** Payloads that arrived before the backend socket was connected; null once it is. */
  private queued: Buffer[] | null = [];

  constructor(
    readonly id: string,
    readonly key: string,
    readonly listener: ISessionOwner,
    /** Who sent the flow to us (the client itself, or the balancer in front). Replies go here. */
    readonly peerAddress: string,
    readonly peerPort: number,
    readonly client: IProxyIpAddress,
    readonly route: IResolvedRoute,
    host: string,
    received: IProxyHeader | null,
    tick: number,
  ) {
    this.lastTick = tick;
    this.header = route.send === null ? null : buildHeader(this, route.send, received);
    const backend = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4') as TaggedSocket;
    backend[kSession] = this;
    backend.on('message', onBackendMessage);
    backend.on('error', onBackendError);
    backend.connect(route.port, host, onBackendConnect);
    this.backend = backend;
  }

  /** Sends one client payload to the backend, behind the session's header when sending; false when the queue is full. */
  forward(payload: Buffer): boolean {
    const queued = this.queued;
    if (queued !== null) {
      if (queued.length >= MAX_QUEUED) return false;
      queued.push(payload);
    } else if (this.header === null) this.backend.send(payload);
    else this.backend.send([this.header, payload]);
    return true;
  }

  /** The backend socket is connected: what waited goes out in order. */
  connected(): void {
    const queued = this.queued;
    this.queued = null;
    if (queued === null || this.closed) return;
    for (const payload of queued) this.forward(payload);
  }

  /** Closes the backend socket; the listener drops the session from its table. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.backend.close();
  }
}

/** The wildcard of the client's family: a listener on `::` or `0.0.0.0` knows no better. */
function unspecified(client: IProxyIpAddress): string {
  return net.isIPv4(client.address) ? '0.0.0.0' : '::';
}

/**
 * Source: the real client. Destination: what the client sent to, as the previous hop's header
 * said when one was believed, else this listener's address (Node does not report the local
 * address of each datagram, so on a wildcard listener it is the wildcard).
 */
function buildHeader(session: UdpSession, send: ISendSettings, received: IProxyHeader | null): Buffer {
  const given = received?.destination;
  let destination: IProxyIpAddress;
  if (given !== undefined && given !== null && 'address' in given) destination = given;
  else {
    const local = session.listener.address;
    destination = { address: net.isIP(local) !== 0 && local !== '::' && local !== '0.0.0.0' ? local : unspecified(session.client), port: session.listener.port };
  }
  const tlvs: ITlv[] = [];
  const pass = send.tlvs.passThrough;
  if (pass !== undefined && pass.length > 0 && received !== null) {
    for (const tlv of received.tlvs) if (pass.includes(tlv.type)) tlvs.push(tlv);
  }
  if (send.tlvs.uniqueId) tlvs.push(uniqueIdTlv(session.id));
  return ProxyProtocolParser.generate(
    { transport: 'DGRAM', source: session.client, destination },
    { version: 2, tlvs, crc32c: send.tlvs.crc32c === true },
  );
}

function onBackendConnect(this: TaggedSocket): void {
  this[kSession].connected();
}

function onBackendMessage(this: TaggedSocket, msg: Buffer): void {
  const session = this[kSession];
  if (!session.closed) session.listener.reply(session, msg);
}

/** ICMP unreachable from the backend, or a send that failed: the session ends, the next datagram opens a new one. */
function onBackendError(this: TaggedSocket, err: Error): void {
  const session = this[kSession];
  session.listener.backendFailed(session, err);
}
