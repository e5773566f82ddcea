/**
 * Backend connections of HTTP routes. A route that sends no PROXY header shares one keep-alive
 * pool among all clients. A route that sends one gives each client connection pools of its own,
 * closed with it: a reused backend connection would otherwise carry another client's header.
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { IResolvedRoute } from '../../config.js';
import type { Connection } from '../../connection-manager.js';
import { buildProxyHeader } from '../../proxy-header-sender.js';
import type { HttpSession } from './session.js';

/**
 * Idle pooled connections are closed after this long: below the 5 s keep-alive of Node's own
 * servers (and most others), so we close first instead of reusing a socket the backend is closing.
 */
const FREE_SOCKET_TIMEOUT = 4000;
const MAX_FREE_SOCKETS = 256;
const BACKEND_ALPN = ['http/1.1'];

/** An agent that connects to the route's target: PROXY header first (per-client pools), TLS when re-encrypting. */
class BackendAgent extends http.Agent {
  constructor(
    private readonly route: IResolvedRoute,
    /** The client whose PROXY header starts every connection of this agent; null for a shared pool. */
    private readonly client: Connection | null,
  ) {
    super({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS, scheduling: 'lifo', timeout: FREE_SOCKET_TIMEOUT });
  }

  override createConnection(options: http.ClientRequestArgs): Duplex {
    const route = this.route;
    const host = options.host as string;
    // Built before connecting: a header that cannot be built fails the request, not a socket.
    const header = this.client !== null && route.send !== null ? buildProxyHeader(this.client, route.send) : null;
    const socket = net.connect({ host, port: options.port as number, noDelay: true });
    if (header !== null) socket.write(header);
    if (route.tlsMode !== 'terminate-and-reencrypt') return socket;
    const backendTls = route.backendTls;
    const servername = backendTls.servername ?? this.client?.serverName ?? (net.isIP(host) ? undefined : host);
    return tls.connect({ socket, servername, rejectUnauthorized: backendTls.rejectUnauthorized, secureContext: backendTls.secureContext, ALPNProtocols: BACKEND_ALPN });
  }
}

/** The agent a request of `session` to `route` goes through. */
export function agentFor(session: HttpSession, route: IResolvedRoute): http.Agent {
  if (route.send !== null) {
    const agents = (session.agents ??= new Map());
    let agent = agents.get(route);
    if (agent === undefined) agents.set(route, (agent = new BackendAgent(route, session.conn)));
    return agent;
  }
  const state = session.conn.manager.http;
  const table = session.conn.manager.routes;
  if (state.poolsFor !== table) {
    // Routes replaced by updateRoutes: their pools go (idle sockets close by FREE_SOCKET_TIMEOUT).
    for (const old of [...state.pools.keys()]) if (!table.routes.includes(old)) state.pools.delete(old);
    state.poolsFor = table;
  }
  let agent = state.pools.get(route);
  if (agent === undefined) state.pools.set(route, (agent = new BackendAgent(route, null)));
  return agent;
}

/** The client connection is gone: its own backend connections go with it. */
export function closeSessionAgents(session: HttpSession): void {
  if (session.agents === null) return;
  for (const agent of session.agents.values()) agent.destroy();
  session.agents = null;
}
