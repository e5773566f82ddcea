import type { IProxyHeader } from '../../../protocols/proxy/types.js';
import type { WrappedSocket } from '../../../core/models/wrapped-socket.js';
import type { IProxyProtocolTlvOptions, IRouteConfig, IRouteSecurity, IRouteTarget } from './route-types.js';

/**
 * One PROXY policy rule: who (`from`), where (`ports`, default all) and what (`policy`):
 * `require` a header (believed), `use` one if present (believed), `ignore` one if present (read and
 * removed, never believed), `reject` one (spoofing; no header is a normal client), or `skip`
 * reading entirely (bytes reach routing untouched; a header from such a source reaches the backend
 * as data). A catch-all `from` with `require` or `use` needs trustAllProxyIPs.
 */
export interface IProxyProtocolRule {
  from: string[];
  ports?: number[];
  policy: 'require' | 'use' | 'ignore' | 'reject' | 'skip';
}

/** Options of a SmartProxy. Durations are milliseconds; 0 disables a timeout. */
export interface ISmartProxyOptions {
  routes: IRouteConfig[];
  /** Address to listen on. Default: every interface (`::`, dual-stack where available). */
  listenAddress?: string;
  /** Keep one direction open after the other ended. Default false: when one side ends, both close. */
  enableHalfOpen?: boolean;
  /** Deadline for the first client bytes when routing needs them (SNI). Default 30000. */
  initialDataTimeout?: number;
  /** Close a connection idle in both directions this long. Default 3600000 (1 h). */
  inactivityTimeout?: number;
  /** Close any connection after this long. Default 86400000 (24 h). */
  maxConnectionLifetime?: number;
  /** Most concurrent connections per real client IP. Default 0 (no limit). */
  maxConnectionsPerIP?: number;
  /** On stop(): how long live connections may drain before they are closed. Default 0. */
  gracefulShutdownTimeout?: number;
  /** Deadline for the TCP connection to a backend; past it the client is closed with ERR_BACKEND_CONNECT_TIMEOUT. Default 10000. */
  connectTimeout?: number;
  /** Once one side of a connection is gone, how long the other may take to flush before it is destroyed. Default 5000. */
  flushTimeout?: number;
  /** Fallbacks for routes that leave these out. */
  defaults?: { target?: Partial<IRouteTarget>; security?: IRouteSecurity };

  /** TCP peers (IPs/CIDRs) whose PROXY headers are believed. Default none. */
  proxyIPs?: string[];
  /** Read a PROXY header from trusted peers (and refuse one from anybody else). Default false. */
  acceptProxyProtocol?: boolean;
  /** Allow a catch-all entry (`0.0.0.0/0`, `::/0`, `*`) in proxyIPs. Default false. */
  trustAllProxyIPs?: boolean;
  /** Deadline for a whole PROXY header, from accept. Default 10000. */
  proxyProtocolTimeout?: number;
  /** Largest v2 header accepted, bytes. Default 4096, at most 65551. */
  proxyProtocolMaxHeaderSize?: number;
  /** A trusted peer must send a header. Default true; false treats one without a header as a direct client. */
  proxyProtocolRequired?: boolean;
  /**
   * PROXY policies per source and port; the first matching rule wins; sources that match no rule
   * (and are not in proxyIPs) get `reject`. See IProxyProtocolRule.
   */
  proxyProtocolRules?: IProxyProtocolRule[];
  /** Header versions accepted; another version is refused with ERR_PP_VERSION_NOT_ALLOWED. Default [1, 2]. */
  proxyProtocolVersions?: Array<1 | 2>;
  /** Connections that may wait in the PROXY or spoof-check stage at once, per listener; the excess is closed with ERR_PP_TOO_MANY_PENDING. Default 1000; 0: no cap. */
  proxyProtocolMaxPending?: number;
  /** The same cap per TCP peer address. Default 64; 0: no cap. */
  proxyProtocolMaxPendingPerIP?: number;
  /** Send a PROXY header to every backend (routes may override). Default false. */
  sendProxyProtocol?: boolean;
  /** Version sent. Default 1 (what SmartProxy 21 receivers understand). */
  proxyProtocolVersion?: 1 | 2;
  /** TLVs of v2 headers sent. Default none. */
  proxyProtocolTlvs?: IProxyProtocolTlvOptions;
  /** A UDP session (one client flow and its backend socket) idle this long is removed. Default 60000; 0: never. */
  udpSessionTimeout?: number;
  /** UDP sessions per listening port; a datagram that would open one more is dropped (ERR_UDP_TOO_MANY_SESSIONS). Default 10000; 0: no cap. */
  udpMaxSessions?: number;
}

/** One live connection, as statistics, events and hooks see it. */
export interface IConnectionRecord {
  /** Unique per process; also the UNIQUE_ID TLV we send. */
  readonly id: string;
  readonly wrapped: WrappedSocket;
  /** TCP peer address (normalised). */
  readonly peerIP: string;
  /** Real client address: the PROXY header's source when believed, else the peer. */
  readonly clientIP: string;
  readonly clientPort: number;
  readonly localPort: number;
  readonly startTime: number;
  /** The received PROXY header (the same object as `wrapped.proxyHeader`). */
  readonly proxyHeader: IProxyHeader | null;
  readonly serverName: string | undefined;
  readonly routeName: string | undefined;
  /** Why it ended (an error code or `client-closed`, `backend-closed`, ...). */
  readonly closeReason: string | undefined;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  /** HTTP requests this connection carried (HTTP routes; 0 otherwise). */
  readonly requests: number;
}

export interface IProxyProtocolStatistics {
  acceptedV1: number;
  acceptedV2: number;
  /** LOCAL headers (health checks): believed as "use the peer's address". */
  local: number;
  /** v1 UNKNOWN, v2 UNSPEC/UNIX: accepted, the peer's address is used. */
  unknown: number;
  /** Headers refused, by error code. */
  rejected: Record<string, number>;
  /** Untrusted peers that opened with a PROXY signature. */
  spoofing: number;
  timeouts: number;
  /** Headers written to backends. */
  sent: number;
  /** Headers read and removed but not believed (policy `ignore`). */
  ignored: number;
  /** Connections by the PROXY policy that applied to their peer (all `skip` when acceptProxyProtocol is off). */
  byPolicy: Record<'require' | 'use' | 'ignore' | 'reject' | 'skip', number>;
  /** Complete headers read, by version, believed or not. */
  byVersion: { v1: number; v2: number };
}

export interface ISmartProxyStatistics {
  activeConnections: number;
  totalConnections: number;
  /** Connections closed before reaching a backend (security, limits, routing, PROXY errors). */
  rejectedConnections: number;
  /** Sockets whose peer was gone (reset) before they could be handled: not counted in totalConnections. */
  goneBeforeAccept: number;
  /**
   * Bytes read from clients' TCP connections, live and ended: what arrived on the wire, so a
   * PROXY header's bytes (and TLS records on terminated routes) are included, as in the CLI's
   * access line (`bytesIn`) and getMetrics().
   */
  bytesFromClients: number;
  /** Bytes written to clients' TCP connections, live and ended (TLS records included). */
  bytesToClients: number;
  listeningPorts: number[];
  proxyProtocol: IProxyProtocolStatistics;
  /** UDP routes (always set by SmartProxy.getStatistics()). */
  udp?: IUdpStatistics;
  /** HTTP routes. */
  http: IHttpStatistics;
}

/** HTTP routes: requests, upgrades, HTTP/2 sessions, statuses by route, and the proxy's own answers by code. */
export interface IHttpStatistics {
  requests: number;
  /** Requests that became tunnels (WebSocket and other upgrades). */
  upgrades: number;
  h2Sessions: number;
  /** Per route name ("" before a route was chosen): responses by status class. */
  byRoute: Record<string, Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>>;
  /** Answers the proxy made itself (404, 421, 502, ...) by code. */
  answered: Record<string, number>;
}

/** Payload of the `http-error` event: an answer the proxy made itself instead of a backend. */
export interface IHttpErrorEvent {
  code: string;
  status: number;
  message: string;
  clientIP: string;
  localPort: number;
  /** The request's route, when one was chosen. */
  route: string | undefined;
  method: string | undefined;
  url: string | undefined;
}


/** UDP: datagrams and bytes each way, sessions, and drops by reason. */
export interface IUdpStatistics {
  /** Ports with an open UDP socket. */
  listeningPorts: number[];
  activeSessions: number;
  totalSessions: number;
  /** Datagrams (and their payload bytes) from clients forwarded to backends. */
  datagramsToBackends: number;
  bytesToBackends: number;
  /** Datagrams (and bytes) from backends forwarded to clients. */
  datagramsToClients: number;
  bytesToClients: number;
  /** PROXY v2 headers read from datagrams and believed, and headers sent. */
  headersReceived: number;
  headersSent: number;
  /** Datagrams dropped, by code (ERR_PP_MISSING, ERR_PP_UNTRUSTED_PEER, ERR_UDP_OVERSIZE, ...). */
  dropped: Record<string, number>;
}

/** Payload of the `proxy-protocol-error` event. */
export interface IProxyProtocolErrorEvent {
  code: string;
  message: string;
  peerAddress: string;
  peerPort: number;
  localPort: number;
  /** Whether the peer's policy believes headers (`require`, `use`). */
  trusted: boolean;
  /** The PROXY policy that applied to the peer. */
  policy: 'require' | 'use' | 'ignore' | 'reject' | 'skip';
  /** What the bytes suggest went wrong and what to switch on, when they tell a story. */
  hint?: string;
}

/** A finished connection, as `connection-close` hands it over: its close reason is always set. */
export interface IClosedConnectionRecord extends IConnectionRecord {
  readonly closeReason: string;
}

/** Payload of the `connection-rejected` event: a connection refused before it reached a backend. */
export interface IConnectionRejectedEvent {
  code: string;
  message: string;
  /** The real client when known by then, else the TCP peer. */
  clientIP: string;
  localPort: number;
  connection: IConnectionRecord;
}

/**
 * Every event a SmartProxy emits, with its arguments; `proxy.on(...)` is checked against it. Per
 * TCP connection, in this order: `connection-open` (TCP peer known); `connection-admitted` once
 * the real client is known and within its per-IP limit (never after a refused header); at most
 * one of `proxy-protocol-error` or `connection-rejected` when it is refused before a backend; and
 * `connection-close`, always, last and exactly once.
 */
export interface ISmartProxyEventMap {
  /** A TCP listener opened on this port. */
  listening: [port: number];
  /** A socket was accepted; `clientIP` is still the TCP peer (no PROXY header read yet). */
  'connection-open': [record: IConnectionRecord];
  /** The real client is known (PROXY header believed, or none expected) and within its per-IP limit; routing comes next. */
  'connection-admitted': [record: IConnectionRecord];
  /** Refused before a backend (limits, security, routing, TLS); `connection-close` follows. */
  'connection-rejected': [event: IConnectionRejectedEvent];
  /** A PROXY header was missing, malformed, untrusted or too slow; `connection-close` follows. */
  'proxy-protocol-error': [event: IProxyProtocolErrorEvent];
  /** The connection ended; `closeReason` says why. */
  'connection-close': [record: IClosedConnectionRecord];
  /** Something an operator should know that is not one connection's failure (the library never writes to the console). */
  warning: [message: string];
  /** An HTTP route answered a request itself (400, 404, 421, 502, 504, ...); the connection may go on. */
  'http-error': [event: IHttpErrorEvent];
}
