/**
 * One connection, start to end, in stages:
 *   handleConnection → PROXY stage (trusted: read one header; untrusted: refuse a spoofed one)
 *   → admission (per-IP limit on the real client) → route stage (ClientHello when SNI matters)
 *   → setupDirectConnection (PROXY header to the backend, buffered bytes, then both directions).
 * Every failure ends in ConnectionManager.close with a code; nothing throws past a socket event.
 */
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { ProxyProtocolError, SmartProxyError } from '../../core/errors.js';
import { WrappedSocket } from '../../core/models/wrapped-socket.js';
import { normalizeIP } from '../../core/utils/ip-utils.js';
import { ProxyProtocolDecoder, detectSignature } from '../../protocols/proxy/parser.js';
import { readClientHello } from '../../protocols/tls/client-hello.js';
import type { IResolvedConfig, IResolvedRoute } from './config.js';
import type { Connection, ConnectionManager } from './connection-manager.js';
import type { IProxyProtocolErrorEvent } from './models/interfaces.js';
import { buildProxyHeader } from './proxy-header-sender.js';
import type { RouteManager } from './route-manager.js';

const EMPTY: Buffer = Buffer.alloc(0);

export class RouteConnectionHandler {
  constructor(
    private readonly config: IResolvedConfig,
    public routeManager: RouteManager,
    private readonly manager: ConnectionManager,
    private readonly events: EventEmitter,
  ) {}

  /** Entry point for every accepted socket. */
  handleConnection(socket: net.Socket, localPort: number): Connection | null {
    const peerAddress = socket.remoteAddress;
    if (peerAddress === undefined) {
      // Already gone between accept and here.
      socket.destroy();
      return null;
    }
    const peerIP = normalizeIP(peerAddress);
    const trusted = this.config.proxyIPs.has(peerIP);
    const wrapped = new WrappedSocket(socket, trusted);
    const conn = this.manager.open(wrapped, peerIP, socket.remotePort ?? 0, localPort);
    socket.setNoDelay(true);
    socket.on('error', () => this.manager.close(conn, conn.forwarded ? 'client-error' : 'ERR_CLIENT_ERROR'));
    socket.on('close', () => this.onSocketClose(conn, 'client'));
    if (this.config.inactivityTimeout > 0) {
      socket.setTimeout(this.config.inactivityTimeout, () => this.manager.close(conn, 'ERR_TIMEOUT_INACTIVITY'));
    }
    this.events.emit('connection-open', conn);
    if (!this.config.acceptProxyProtocol) this.admit(conn, EMPTY);
    else if (trusted) this.readProxyHeader(conn);
    else this.refuseSpoofedHeader(conn);
    return conn;
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
  private readProxyHeader(conn: Connection): void {
    const socket = conn.wrapped.socket;
    const decoder = new ProxyProtocolDecoder({ maxHeaderSize: this.config.proxyProtocolMaxHeaderSize });
    let received = 0;
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      let result;
      try {
        result = decoder.push(chunk);
      } catch (err) {
        socket.off('data', onData);
        const e = err as ProxyProtocolError;
        this.proxyError(conn, e.code, e.message);
        return;
      }
      if (result.status === 'incomplete') return;
      socket.off('data', onData);
      this.manager.clearDeadline(conn);
      if (result.status === 'none') {
        if (this.config.proxyProtocolRequired) {
          this.proxyError(conn, 'ERR_PP_MISSING', 'trusted peer sent no PROXY header');
          return;
        }
        this.admit(conn, decoder.remaining);
        return;
      }
      this.applyHeader(conn, result.header);
      this.admit(conn, decoder.remaining);
    };
    socket.on('data', onData);
    this.manager.setDeadline(conn, 'proxy-header', this.config.proxyProtocolTimeout, () => {
      socket.off('data', onData);
      if (!this.config.proxyProtocolRequired && received === 0) {
        this.admit(conn, EMPTY);
        return;
      }
      this.proxyError(conn, 'ERR_PP_TIMEOUT', `no complete PROXY header within ${this.config.proxyProtocolTimeout} ms`);
    });
  }

  private applyHeader(conn: Connection, header: NonNullable<Connection['proxyHeader']>): void {
    const wrapped = conn.wrapped;
    const stats = this.manager.proxyStats;
    wrapped.proxyHeader = header;
    conn.proxyHeader = header;
    const source = header.source;
    if (header.command === 'LOCAL') stats.local++;
    else if (source !== null && 'address' in source) {
      wrapped.setProxyInfo(source.address, source.port);
      conn.clientIP = wrapped.realClientIP as string;
      conn.clientPort = source.port;
      if (header.version === 1) stats.acceptedV1++;
      else stats.acceptedV2++;
    } else stats.unknown++;
  }

  /** Untrusted peer: its bytes are a normal client's unless they open with a PROXY signature. */
  private refuseSpoofedHeader(conn: Connection): void {
    const socket = conn.wrapped.socket;
    let head: Buffer = EMPTY;
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const match = detectSignature(head);
      if (match === 'incomplete') return;
      socket.off('data', onData);
      this.manager.clearDeadline(conn);
      if (match === 'none') this.admit(conn, head);
      else this.proxyError(conn, 'ERR_PP_UNTRUSTED_PEER', `PROXY ${match} header from untrusted peer ${conn.peerIP}`);
    };
    socket.on('data', onData);
    this.manager.setDeadline(conn, 'proxy-header', this.config.proxyProtocolTimeout, () => {
      socket.off('data', onData);
      this.admit(conn, head);
    });
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
    if (this.routeManager.needsServerName(conn.localPort)) this.readServerName(conn, initial);
    else this.routeConnection(conn, initial);
  }

  private readServerName(conn: Connection, initial: Buffer): void {
    const socket = conn.wrapped.socket;
    let buffered = initial;
    const inspect = (): boolean => {
      let hello;
      try {
        hello = readClientHello(buffered);
      } catch (err) {
        const e = err as SmartProxyError;
        this.reject(conn, e.code, e.message);
        return true;
      }
      if (hello.status === 'incomplete') return false;
      if (hello.status === 'complete') conn.serverName = hello.serverName;
      this.routeConnection(conn, buffered);
      return true;
    };
    if (buffered.length > 0 && inspect()) return;
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (!inspect()) return;
      socket.off('data', onData);
      this.manager.clearDeadline(conn);
    };
    socket.on('data', onData);
    this.manager.setDeadline(conn, 'initial-data', this.config.initialDataTimeout, () => {
      socket.off('data', onData);
      this.reject(conn, 'ERR_TIMEOUT_INITIAL_DATA', `no TLS ClientHello within ${this.config.initialDataTimeout} ms`);
    });
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
    const socket = conn.wrapped.socket;
    socket.pause();
    if (route.tlsMode === 'terminate' || route.tlsMode === 'terminate-and-reencrypt') {
      this.terminateTls(conn, route, initial);
      return;
    }
    this.connectBackend(conn, route, initial);
  }

  private terminateTls(conn: Connection, route: IResolvedRoute, initial: Buffer): void {
    const socket = conn.wrapped.socket;
    // TLSSocket feeds whatever is already in the socket's read buffer to the TLS engine first.
    if (initial.length > 0) socket.unshift(initial);
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: route.secureContext as tls.SecureContext,
      ALPNProtocols: route.alpnProtocols,
    });
    conn.clientStream = secure;
    secure.on('error', () => this.manager.close(conn, conn.forwarded ? 'client-error' : 'ERR_TLS_HANDSHAKE'));
    secure.on('close', () => this.onSocketClose(conn, 'client'));
    if (this.config.inactivityTimeout > 0) {
      // The raw socket no longer sees the traffic once TLS owns it; time the TLS stream instead.
      socket.setTimeout(0);
      secure.setTimeout(this.config.inactivityTimeout, () => this.manager.close(conn, 'ERR_TIMEOUT_INACTIVITY'));
    }
    secure.once('secure', () => {
      if (conn.closed) return;
      conn.negotiatedAlpn = secure.alpnProtocol || undefined;
      if (conn.serverName === undefined) {
        const servername = (secure as tls.TLSSocket & { servername?: string | false }).servername;
        if (typeof servername === 'string' && servername.length > 0) conn.serverName = servername;
      }
      secure.pause();
      this.connectBackend(conn, route, EMPTY);
    });
    this.manager.setDeadline(conn, 'initial-data', this.config.initialDataTimeout, () =>
      this.reject(conn, 'ERR_TLS_HANDSHAKE', `TLS handshake not done within ${this.config.initialDataTimeout} ms`),
    );
  }

  private connectBackend(conn: Connection, route: IResolvedRoute, initial: Buffer): void {
    if (conn.closed) return;
    this.manager.clearDeadline(conn);
    const host = this.nextHost(route);
    const backend = net.connect({ host, port: route.port, allowHalfOpen: true, noDelay: true });
    conn.backend = backend;
    conn.backendStream = backend;
    backend.on('error', () => this.manager.close(conn, conn.forwarded ? 'backend-error' : 'ERR_BACKEND_CONNECT'));
    backend.on('close', () => this.onSocketClose(conn, 'backend'));
    backend.once('connect', () => {
      if (conn.closed) return;
      conn.forwarded = true;
      if (route.send !== null) {
        backend.cork();
        backend.write(buildProxyHeader(conn, route.send));
        this.manager.proxyStats.sent++;
      }
      if (initial.length > 0) backend.write(initial);
      if (route.send !== null) backend.uncork();
      if (route.tlsMode === 'terminate-and-reencrypt') this.reencrypt(conn, route, backend, host);
      else this.bridge(conn, conn.clientStream, backend);
    });
  }

  private reencrypt(conn: Connection, route: IResolvedRoute, backend: net.Socket, host: string): void {
    const servername = route.backendTls.servername ?? conn.serverName ?? (net.isIP(host) ? undefined : host);
    const secure = tls.connect({
      socket: backend,
      servername,
      rejectUnauthorized: route.backendTls.rejectUnauthorized,
      ca: route.backendTls.ca,
    });
    conn.backendStream = secure;
    secure.on('error', () => this.manager.close(conn, 'ERR_BACKEND_TLS'));
    secure.on('close', () => this.onSocketClose(conn, 'backend'));
    secure.once('secureConnect', () => {
      if (!conn.closed) this.bridge(conn, conn.clientStream, secure);
    });
  }

  /**
   * Moves bytes both ways with explicit backpressure (cheaper than stream.pipe): a full
   * destination pauses its source until it drains. Ends follow the half-open policy.
   */
  private bridge(conn: Connection, client: net.Socket, backend: net.Socket): void {
    const halfOpen = this.config.enableHalfOpen;
    client.on('data', (chunk: Buffer) => {
      if (!backend.write(chunk)) client.pause();
    });
    backend.on('drain', () => client.resume());
    backend.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) backend.pause();
    });
    client.on('drain', () => backend.resume());
    client.once('end', () => this.onEnd(conn, client, backend, halfOpen));
    backend.once('end', () => this.onEnd(conn, backend, client, halfOpen));
    // The client may have sent FIN while we were still connecting.
    if (client.readableEnded) this.onEnd(conn, client, backend, halfOpen);
    client.resume();
  }

  /** `from` sent FIN: pass it on; without half-open, both sides close once their data is out. */
  private onEnd(conn: Connection, from: net.Socket, to: net.Socket, halfOpen: boolean): void {
    if (conn.closed) return;
    to.end();
    if (!halfOpen) {
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

/** Closes a socket once everything written to it has been handed to the kernel. */
function closeWhenFlushed(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.writableFinished) socket.destroy();
  else socket.once('finish', () => socket.destroy());
}
