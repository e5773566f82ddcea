/**
 * One connection, start to end, in stages:
 *   handleConnection → PROXY stage (trusted: read one header; untrusted: refuse a spoofed one)
 *   → admission (per-IP limit on the real client) → route stage (ClientHello when SNI matters)
 *   → setupDirectConnection (PROXY header to the backend, buffered bytes, then both directions).
 * Every failure ends in ConnectionManager.close with a code; nothing throws past a socket event.
 *
 * Socket listeners are created once per handler, not per connection: each finds its connection
 * (and the socket it forwards to) through symbol properties on the socket. This keeps the
 * per-connection cost to the objects a connection really needs. Events that fire at most once
 * ('end', 'connect', 'finish') use `on`, which, unlike `once`, allocates no wrapper.
 */
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import type { ProxyProtocolError, SmartProxyError } from '../../protocols/errors.js';
import { WrappedSocket } from '../../core/models/wrapped-socket.js';
import { normalizeIP } from '../../core/utils/ip-utils.js';
import { ProxyProtocolDecoder, detectSignature } from '../../protocols/proxy/parser.js';
import type { IProxyHeader } from '../../protocols/proxy/types.js';
import { readClientHello } from '../../protocols/tls/client-hello.js';
import type { IResolvedConfig, IResolvedRoute } from './config.js';
import type { Connection, ConnectionManager, DeadlineKind } from './connection-manager.js';
import type { IProxyProtocolErrorEvent } from './models/interfaces.js';
import { buildProxyHeader } from './proxy-header-sender.js';
import type { RouteManager } from './route-manager.js';

const EMPTY: Buffer = Buffer.alloc(0);
const kConn = Symbol('smartproxy.connection');
const kPeer = Symbol('smartproxy.peer');

interface ITaggedSocket extends net.Socket {
  [kConn]: Connection;
  [kPeer]: net.Socket;
}

function tag<T extends net.Socket>(socket: T, conn: Connection): T & ITaggedSocket {
  const tagged = socket as T & ITaggedSocket;
  tagged[kConn] = conn;
  return tagged;
}

// Byte moving with explicit backpressure (cheaper than stream.pipe): a full destination pauses
// its source until it drains.
function forwardData(this: ITaggedSocket, chunk: Buffer): void {
  if (!this[kPeer].write(chunk)) this.pause();
}

function resumePeer(this: ITaggedSocket): void {
  this[kPeer].resume();
}

/** Closes a socket once everything written to it has been handed to the kernel. */
function closeWhenFlushed(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.writableFinished) socket.destroy();
  else socket.on('finish', destroyThis);
}

function destroyThis(this: net.Socket): void {
  this.destroy();
}

export class RouteConnectionHandler {
  // Shared listeners (see the file comment); `handler` is this instance.
  private readonly onClientError: (this: ITaggedSocket) => void;
  private readonly onClientClose: (this: ITaggedSocket) => void;
  private readonly onBackendError: (this: ITaggedSocket) => void;
  private readonly onBackendClose: (this: ITaggedSocket) => void;
  private readonly onBackendConnect: (this: ITaggedSocket) => void;
  private readonly onHeaderData: (this: ITaggedSocket, chunk: Buffer) => void;
  private readonly onSignatureData: (this: ITaggedSocket, chunk: Buffer) => void;
  private readonly onHelloData: (this: ITaggedSocket, chunk: Buffer) => void;
  private readonly onStreamEnd: (this: ITaggedSocket) => void;
  private readonly onClientEndEarly: (this: ITaggedSocket) => void;

  constructor(
    private readonly config: IResolvedConfig,
    public routeManager: RouteManager,
    private readonly manager: ConnectionManager,
    private readonly events: EventEmitter,
  ) {
    const handler = this;
    this.onClientError = function () {
      const conn = this[kConn];
      manager.close(conn, conn.forwarded ? 'client-error' : 'ERR_CLIENT_ERROR');
    };
    this.onClientClose = function () {
      handler.onSocketClose(this[kConn], 'client');
    };
    this.onBackendError = function () {
      const conn = this[kConn];
      manager.close(conn, conn.backendConnected ? 'backend-error' : 'ERR_BACKEND_CONNECT');
    };
    this.onBackendClose = function () {
      handler.onSocketClose(this[kConn], 'backend');
    };
    this.onBackendConnect = function () {
      this[kConn].backendConnected = true;
    };
    this.onHeaderData = function (chunk) {
      handler.headerData(this, this[kConn], chunk);
    };
    this.onSignatureData = function (chunk) {
      handler.signatureData(this, this[kConn], chunk);
    };
    this.onHelloData = function (chunk) {
      const conn = this[kConn];
      conn.pending = conn.pending === null || conn.pending.length === 0 ? chunk : Buffer.concat([conn.pending, chunk]);
      if (handler.inspectHello(conn)) this.off('data', handler.onHelloData);
    };
    this.onStreamEnd = function () {
      handler.onEnd(this[kConn], this, this[kPeer]);
    };
    this.onClientEndEarly = function () {
      const conn = this[kConn];
      if (!conn.forwarded && conn.deadlineKind !== null) handler.endedWhileWaiting(conn, conn.deadlineKind);
    };
    manager.onDeadline = (conn, kind) => this.deadlinePassed(conn, kind);
  }

  /** Entry point for every accepted socket. */
  handleConnection(socket: net.Socket, localPort: number): Connection | null {
    const peerAddress = socket.remoteAddress;
    if (peerAddress === undefined) {
      // Already gone between accept and here (e.g. reset right after connecting): nothing to trust.
      this.manager.countGoneBeforeAccept();
      socket.destroy();
      return null;
    }
    const peerIP = normalizeIP(peerAddress);
    const trusted = this.config.proxyIPs.has(peerIP);
    const wrapped = new WrappedSocket(socket, trusted);
    const conn = this.manager.open(wrapped, peerIP, socket.remotePort ?? 0, localPort);
    const tagged = tag(socket, conn);
    tagged.on('error', this.onClientError);
    tagged.on('close', this.onClientClose);
    tagged.on('end', this.onClientEndEarly);
    this.events.emit('connection-open', conn);
    if (!this.config.acceptProxyProtocol) this.admit(conn, EMPTY);
    else if (trusted) {
      conn.decoder = new ProxyProtocolDecoder({ maxHeaderSize: this.config.proxyProtocolMaxHeaderSize });
      tagged.on('data', this.onHeaderData);
      this.manager.setDeadline(conn, 'proxy-header', this.config.proxyProtocolTimeout);
    } else {
      conn.pending = EMPTY;
      tagged.on('data', this.onSignatureData);
      this.manager.setDeadline(conn, 'spoof-check', this.config.proxyProtocolTimeout);
    }
    return conn;
  }

  /** The data listener a waiting stage has on the client socket ('tls-handshake' has none). */
  private stageListener(kind: DeadlineKind): ((this: ITaggedSocket, chunk: Buffer) => void) | null {
    switch (kind) {
      case 'proxy-header':
        return this.onHeaderData;
      case 'spoof-check':
        return this.onSignatureData;
      case 'client-hello':
        return this.onHelloData;
      default:
        return null;
    }
  }

  /** A stage's deadline passed: give up on it, or go on with what arrived where that is safe. */
  private deadlinePassed(conn: Connection, kind: DeadlineKind): void {
    const listener = this.stageListener(kind);
    if (listener !== null) conn.wrapped.socket.off('data', listener);
    switch (kind) {
      case 'proxy-header':
        if (!this.config.proxyProtocolRequired && conn.wrapped.socket.bytesRead === 0) this.admit(conn, EMPTY);
        else this.proxyError(conn, 'ERR_PP_TIMEOUT', `no complete PROXY header within ${this.config.proxyProtocolTimeout} ms`);
        break;
      case 'spoof-check':
        // A slow direct client: whatever it sent so far is not a whole signature.
        this.admit(conn, conn.pending ?? EMPTY);
        break;
      case 'client-hello':
        this.reject(conn, 'ERR_TIMEOUT_INITIAL_DATA', `no TLS ClientHello within ${this.config.initialDataTimeout} ms`);
        break;
      case 'tls-handshake':
        this.reject(conn, 'ERR_TLS_HANDSHAKE', `TLS handshake not done within ${this.config.initialDataTimeout} ms`);
        break;
    }
  }

  /**
   * The client sent FIN before a stage finished: what it sent is all there will be, so decide
   * now rather than at the deadline. ('tls-handshake' comes after routing: the TLS socket
   * handles its own end.)
   */
  private endedWhileWaiting(conn: Connection, kind: DeadlineKind): void {
    const listener = this.stageListener(kind);
    if (listener === null) return;
    conn.wrapped.socket.off('data', listener);
    this.manager.clearDeadline(conn);
    const held = conn.pending ?? EMPTY;
    conn.pending = null;
    if (kind === 'proxy-header') {
      if ((conn.decoder?.bufferedLength ?? 0) > 0) this.proxyError(conn, 'ERR_PP_INCOMPLETE', 'connection ended inside the PROXY header');
      else if (this.config.proxyProtocolRequired) this.proxyError(conn, 'ERR_PP_MISSING', 'trusted peer sent no PROXY header');
      else this.admit(conn, EMPTY);
    } else if (kind === 'spoof-check') this.admit(conn, held);
    else this.routeConnection(conn, held);
  }

  // ---- PROXY stage ----------------------------------------------------------------------------

  private proxyError(conn: Connection, code: string, message: string): void {
    const stats = this.manager.proxyStats;
    if (code === 'ERR_PP_UNTRUSTED_PEER') stats.spoofing++;
    else if (code === 'ERR_PP_TIMEOUT') stats.timeouts++;
    this.manager.countProxyRejection(code);
    const event: IProxyProtocolErrorEvent = {
      code,
      message,
      peerAddress: conn.peerIP,
      peerPort: conn.wrapped.socket.remotePort ?? 0,
      localPort: conn.localPort,
      trusted: conn.wrapped.isFromTrustedProxy,
    };
    this.events.emit('proxy-protocol-error', event);
    this.manager.close(conn, code);
  }

  /** Trusted peer: exactly one header, within the deadline and size bound. */
  private headerData(socket: ITaggedSocket, conn: Connection, chunk: Buffer): void {
    const decoder = conn.decoder as ProxyProtocolDecoder;
    let result;
    try {
      result = decoder.push(chunk);
    } catch (err) {
      socket.off('data', this.onHeaderData);
      const e = err as ProxyProtocolError;
      this.proxyError(conn, e.code, e.message);
      return;
    }
    if (result.status === 'incomplete') return;
    socket.off('data', this.onHeaderData);
    this.manager.clearDeadline(conn);
    conn.decoder = null;
    if (result.status === 'none') {
      if (this.config.proxyProtocolRequired) this.proxyError(conn, 'ERR_PP_MISSING', 'trusted peer sent no PROXY header');
      else this.admit(conn, decoder.remaining);
      return;
    }
    this.applyHeader(conn, result.header);
    this.admit(conn, decoder.remaining);
  }

  /** A believed header: the record's client fields follow from what it sets on the WrappedSocket. */
  private applyHeader(conn: Connection, header: IProxyHeader): void {
    const wrapped = conn.wrapped;
    const stats = this.manager.proxyStats;
    wrapped.proxyHeader = header;
    if (header.command === 'LOCAL') {
      stats.local++;
      return;
    }
    const source = header.source;
    if (source !== null && 'address' in source) {
      wrapped.setProxyInfo(source.address, source.port);
      if (header.version === 1) stats.acceptedV1++;
      else stats.acceptedV2++;
    } else stats.unknown++;
  }

  /** Untrusted peer: its bytes are a normal client's unless they open with a PROXY signature. */
  private signatureData(socket: ITaggedSocket, conn: Connection, chunk: Buffer): void {
    const head = conn.pending === null || conn.pending.length === 0 ? chunk : Buffer.concat([conn.pending, chunk]);
    const match = detectSignature(head);
    if (match === 'incomplete') {
      conn.pending = head;
      return;
    }
    socket.off('data', this.onSignatureData);
    this.manager.clearDeadline(conn);
    conn.pending = null;
    if (match === 'none') this.admit(conn, head);
    else this.proxyError(conn, 'ERR_PP_UNTRUSTED_PEER', `PROXY ${match} header from untrusted peer ${conn.peerIP}`);
  }

  // ---- admission and route stage -------------------------------------------------------------

  private reject(conn: Connection, code: string, message: string): void {
    this.events.emit('connection-rejected', { code, message, clientIP: conn.clientIP, localPort: conn.localPort, connection: conn });
    this.manager.close(conn, code);
  }

  private admit(conn: Connection, initial: Buffer): void {
    if (conn.closed) return;
    if (!this.manager.admitIP(conn)) {
      this.reject(conn, 'ERR_LIMIT_PER_IP', `client ${conn.clientIP} is at maxConnectionsPerIP`);
      return;
    }
    if (!this.routeManager.needsServerName(conn.localPort)) {
      this.routeConnection(conn, initial);
      return;
    }
    conn.pending = initial;
    if (initial.length > 0 && this.inspectHello(conn)) return;
    if (conn.wrapped.socket.readableEnded) {
      // The client already sent FIN: no ClientHello is coming; route on what there is.
      conn.pending = null;
      this.routeConnection(conn, initial);
      return;
    }
    conn.wrapped.socket.on('data', this.onHelloData);
    this.manager.setDeadline(conn, 'client-hello', this.config.initialDataTimeout);
  }

  /** Looks for the ClientHello in the bytes so far; true once the connection moved on. */
  private inspectHello(conn: Connection): boolean {
    const buffered = conn.pending ?? EMPTY;
    let hello;
    try {
      hello = readClientHello(buffered);
    } catch (err) {
      const e = err as SmartProxyError;
      this.reject(conn, e.code, e.message);
      return true;
    }
    if (hello.status === 'incomplete') return false;
    this.manager.clearDeadline(conn);
    conn.pending = null;
    if (hello.status === 'complete') conn.serverName = hello.serverName;
    this.routeConnection(conn, buffered);
    return true;
  }

  private routeConnection(conn: Connection, initial: Buffer): void {
    if (conn.closed) return;
    const route = this.routeManager.match(conn.localPort, conn.serverName, conn.clientIP);
    if (route === undefined) {
      this.reject(conn, 'ERR_ROUTE_NOT_FOUND', `no route for port ${conn.localPort}${conn.serverName ? ` and SNI ${conn.serverName}` : ''}`);
      return;
    }
    if (route.blockList?.has(conn.clientIP)) {
      this.reject(conn, 'ERR_SECURITY_BLOCKED', `client ${conn.clientIP} is on route "${route.name}"'s block list`);
      return;
    }
    if (route.allowList !== null && !route.allowList.has(conn.clientIP)) {
      this.reject(conn, 'ERR_SECURITY_NOT_ALLOWED', `client ${conn.clientIP} is not on route "${route.name}"'s allow list`);
      return;
    }
    if (!this.manager.admitRoute(conn, route)) {
      this.reject(conn, 'ERR_LIMIT_ROUTE', `route "${route.name}" is at maxConnections`);
      return;
    }
    this.setupDirectConnection(conn, route, initial);
  }

  // ---- action: forward -----------------------------------------------------------------------

  private nextHost(route: IResolvedRoute): string {
    const hosts = route.hosts;
    if (hosts.length === 1) return hosts[0];
    const state = route as IResolvedRoute & { rr?: number };
    const index = (state.rr ?? 0) % hosts.length;
    state.rr = index + 1;
    return hosts[index];
  }

  /**
   * Connects to the route's target and starts moving bytes. When a PROXY header is to be sent it
   * is the first thing the backend receives, then `initial` (bytes the client already sent).
   */
  setupDirectConnection(conn: Connection, route: IResolvedRoute, initial: Buffer): void {
    conn.forwarded = true;
    if (route.tlsMode === 'terminate' || route.tlsMode === 'terminate-and-reencrypt') {
      this.terminateTls(conn, route, initial);
      return;
    }
    this.connectBackend(conn, route, initial);
  }

  private terminateTls(conn: Connection, route: IResolvedRoute, initial: Buffer): void {
    const socket = conn.wrapped.socket;
    socket.pause();
    // TLSSocket feeds whatever is already in the socket's read buffer to the TLS engine first.
    if (initial.length > 0) socket.unshift(initial);
    const secure = tag(new tls.TLSSocket(socket, { isServer: true, secureContext: route.secureContext as tls.SecureContext, ALPNProtocols: route.alpnProtocols }), conn);
    conn.clientStream = secure;
    secure.on('error', () => this.manager.close(conn, conn.backend === null ? 'ERR_TLS_HANDSHAKE' : 'client-error'));
    secure.on('close', this.onClientClose);
    secure.once('secure', () => {
      if (conn.closed) return;
      conn.negotiatedAlpn = secure.alpnProtocol || undefined;
      if (conn.serverName === undefined) {
        const servername = (secure as tls.TLSSocket & { servername?: string | false }).servername;
        if (typeof servername === 'string' && servername.length > 0) conn.serverName = servername;
      }
      this.manager.clearDeadline(conn);
      secure.pause();
      this.connectBackend(conn, route, EMPTY);
    });
    this.manager.setDeadline(conn, 'tls-handshake', this.config.initialDataTimeout);
  }

  private connectBackend(conn: Connection, route: IResolvedRoute, initial: Buffer): void {
    if (conn.closed) return;
    const host = this.nextHost(route);
    const backend = tag(net.connect({ host, port: route.port, allowHalfOpen: true, noDelay: true }), conn);
    conn.backend = backend;
    conn.backendStream = backend;
    backend.on('error', this.onBackendError);
    backend.on('close', this.onBackendClose);
    backend.on('connect', this.onBackendConnect);
    // Written while connecting: Node queues it and sends it first, in one write once connected.
    if (route.send !== null) {
      const header = buildProxyHeader(conn, route.send);
      backend.write(initial.length > 0 ? Buffer.concat([header, initial]) : header);
      this.manager.proxyStats.sent++;
    } else if (initial.length > 0) backend.write(initial);
    if (route.tlsMode === 'terminate-and-reencrypt') this.reencrypt(conn, route, backend, host);
    else this.bridge(conn, conn.clientStream as ITaggedSocket, backend);
  }

  private reencrypt(conn: Connection, route: IResolvedRoute, backend: net.Socket, host: string): void {
    const servername = route.backendTls.servername ?? conn.serverName ?? (net.isIP(host) ? undefined : host);
    const secure = tag(tls.connect({ socket: backend, servername, rejectUnauthorized: route.backendTls.rejectUnauthorized, ca: route.backendTls.ca }), conn);
    conn.backendStream = secure;
    secure.on('error', () => this.manager.close(conn, 'ERR_BACKEND_TLS'));
    secure.on('close', this.onBackendClose);
    secure.once('secureConnect', () => {
      if (!conn.closed) this.bridge(conn, conn.clientStream as ITaggedSocket, secure);
    });
  }

  /** Starts both directions; ends follow the half-open policy. */
  private bridge(conn: Connection, client: ITaggedSocket, backend: ITaggedSocket): void {
    client[kPeer] = backend;
    backend[kPeer] = client;
    client.on('data', forwardData);
    backend.on('drain', resumePeer);
    backend.on('data', forwardData);
    client.on('drain', resumePeer);
    client.on('end', this.onStreamEnd);
    backend.on('end', this.onStreamEnd);
    // The client may have sent FIN while we were still routing.
    if (client.readableEnded) this.onEnd(conn, client, backend);
    client.resume();
  }

  /** `from` sent FIN: pass it on; without half-open, both sides close once their data is out. */
  private onEnd(conn: Connection, from: net.Socket, to: net.Socket): void {
    if (conn.closed) return;
    to.end();
    if (!this.config.enableHalfOpen) {
      from.end();
      closeWhenFlushed(to);
    }
  }

  /** One side closed: the other may still be flushing what this side sent; then it closes too. */
  private onSocketClose(conn: Connection, side: 'client' | 'backend'): void {
    if (conn.closed) return;
    const other = side === 'client' ? conn.backendStream : conn.clientStream;
    if (!conn.forwarded || other === null || other.destroyed) {
      this.manager.close(conn, conn.forwarded ? `${side}-closed` : side === 'client' ? 'ERR_CLIENT_CLOSED' : 'ERR_BACKEND_CLOSED');
      return;
    }
    if (!other.writableEnded) other.end();
    closeWhenFlushed(other);
  }
}
