/**
 * One connection, start to end, as explicit stages (one module each under `stages/`):
 *
 *   accepting ─┬─ proxy-header (trusted peer) ─┐
 *              ├─ spoof-check (untrusted peer) ┼─ admission ─ client-hello (SNI ports) ─ routing
 *              └───────────────────────────────┘                                          │
 *   closing ─ forwarding ─ connecting ─ tls-handshake (terminating routes) ───────────────┘
 *
 * A stage owns its data listener, its deadline and its exits, and hands over with
 * `manager.advance(conn, next, bytes)`. Listeners are module-level functions that find their
 * connection through a symbol on the socket: no closures per connection. Every failure ends in
 * ConnectionManager.close with a code; nothing throws past a socket event.
 */
import type { EventEmitter } from 'node:events';
import type net from 'node:net';
import { WrappedSocket } from '../../core/models/wrapped-socket.js';
import { normalizeIP } from '../../core/utils/ip-utils.js';
import { BELIEVING_POLICIES } from '../../core/utils/proxy-policy.js';
import type { IResolvedConfig, IResolvedRoute } from './config.js';
import type { ISmartProxyEventMap } from './models/interfaces.js';
import { type Connection, ConnectionManager, type StageTable } from './connection-manager.js';
import type { RouteManager } from './route-manager.js';
import { admissionStage } from './stages/admission.js';
import { clientHelloStage } from './stages/client-hello.js';
import { EMPTY, proxyError, reject, tag } from './stages/common.js';
import { connectingStage } from './stages/connect.js';
import { httpStage } from './stages/http/stage.js';
import { closingStage, forwardingStage, onClientClose, onClientEnd, onClientError } from './stages/forward.js';
import { proxyHeaderStage } from './stages/proxy-header.js';
import { routingStage, startAction } from './stages/routing.js';
import { spoofCheckStage } from './stages/spoof-check.js';
import { tlsHandshakeStage } from './stages/tls-terminate.js';

/** The dispatcher: a new stage is a module and a line here. */
const STAGES: StageTable = {
  'proxy-header': proxyHeaderStage,
  'spoof-check': spoofCheckStage,
  admission: admissionStage,
  'client-hello': clientHelloStage,
  routing: routingStage,
  'tls-handshake': tlsHandshakeStage,
  connecting: connectingStage,
  http: httpStage,
  forwarding: forwardingStage,
  closing: closingStage,
};

export class RouteConnectionHandler {
  readonly manager: ConnectionManager;

  constructor(config: IResolvedConfig, routeManager: RouteManager, events: EventEmitter<ISmartProxyEventMap>) {
    this.manager = new ConnectionManager(config, routeManager, events, STAGES);
  }

  /** The routes new connections are matched against (live connections keep theirs). */
  get routeManager(): RouteManager {
    return this.manager.routes;
  }
  set routeManager(routes: RouteManager) {
    this.manager.routes = routes;
  }

  /** Entry point for every accepted socket. */
  handleConnection(socket: net.Socket, localPort: number): Connection | null {
    const manager = this.manager;
    const peerAddress = socket.remoteAddress;
    if (peerAddress === undefined) {
      // Already gone between accept and here (e.g. reset right after connecting): nothing to trust.
      manager.countGoneBeforeAccept();
      socket.destroy();
      return null;
    }
    const config = manager.config;
    const peerIP = normalizeIP(peerAddress);
    const policy = config.acceptProxyProtocol ? config.proxyPolicies.policyFor(peerIP, localPort) : 'skip';
    const believes = BELIEVING_POLICIES.has(policy);
    const conn = manager.open(new WrappedSocket(socket, believes), peerIP, socket.remotePort ?? 0, localPort, policy);
    const tagged = tag(socket, conn);
    tagged.on('error', onClientError);
    tagged.on('close', onClientClose);
    tagged.on('end', onClientEnd);
    manager.events.emit('connection-open', conn);
    // Whoever sends no believed header is the client from the first moment: count it now, so
    // nobody can hold more than its share of sockets while a stage waits for bytes.
    if (!believes && !manager.admitIP(conn)) reject(conn, 'ERR_LIMIT_PER_IP', `client ${conn.clientIP} is at maxConnectionsPerIP`);
    else if (policy === 'skip') manager.advance(conn, 'admission', EMPTY);
    else if (!manager.enterPending(conn)) proxyError(conn, 'ERR_PP_TOO_MANY_PENDING', `too many connections waiting for a PROXY header (peer ${peerIP}, port ${localPort})`);
    else manager.advance(conn, policy === 'reject' ? 'spoof-check' : 'proxy-header', EMPTY);
    return conn;
  }

  /**
   * Connects `conn` to `route`'s target and starts moving bytes (terminating TLS first when the
   * route says so). A PROXY header, when sent, is the first thing the backend receives, then
   * `initial` (bytes the client already sent).
   */
  setupDirectConnection(conn: Connection, route: IResolvedRoute, initial: Buffer): void {
    startAction(conn, route, initial);
  }
}
