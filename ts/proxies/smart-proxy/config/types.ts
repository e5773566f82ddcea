/** What configuration resolves into: the values every later stage works on. */
import type tls from 'node:tls';
import type { IpList } from '../../../core/utils/ip-utils.js';
import type { ProxyPolicyTable } from '../../../core/utils/proxy-policy.js';
import type { IProxyProtocolTlvOptions, IRouteConfig, TClientCertificate, TTlsMode } from '../models/route-types.js';
import type { IPathMatcher, IResolvedHttp } from './http.js';

/** How a route sends PROXY headers, after global options and route override are combined. */
export interface ISendSettings {
  version: 1 | 2;
  tlvs: IProxyProtocolTlvOptions;
}

/** Host-name patterns compiled for matching. */
export interface IDomainMatcher {
  any: boolean;
  exact: Set<string>;
  /** ".example.com" for "*.example.com". */
  suffixes: string[];
}

/** TLS to the target (`terminate-and-reencrypt`). */
export interface IBackendTls {
  rejectUnauthorized: boolean;
  /** The configured CA bundle (already part of `secureContext`). */
  ca?: string;
  servername?: string;
  /** ALPN protocols offered to the target; undefined: none configured. */
  alpnProtocols: string[] | undefined;
  /**
   * Built once at configuration (with `ca` when given), shared by every route with the same `ca`:
   * parsing a CA bundle per connection costs milliseconds of CPU.
   */
  secureContext: tls.SecureContext;
}

export interface IResolvedRoute {
  config: IRouteConfig;
  name: string;
  priority: number;
  /** Declaration order, the tie-breaker. */
  index: number;
  ports: number[];
  /** Which listener the route is for: TCP or UDP (`match.transport`, default TCP). */
  transport: 'tcp' | 'udp';
  /** null: matches with or without SNI. */
  domains: IDomainMatcher | null;
  clientIp: IpList | null;
  /** HTTP routes: request path and headers to match (null: any). */
  path: IPathMatcher | null;
  headers: Array<[string, string]> | null;
  allowList: IpList | null;
  blockList: IpList | null;
  maxConnections: number;
  hosts: string[];
  port: number;
  tlsMode: TTlsMode | 'none';
  /** The server context when TLS terminates here (key, cert and `clientCa` as `ca`); shared by routes with the same PEM. */
  secureContext: tls.SecureContext | null;
  alpnProtocols: string[] | undefined;
  /** Whether clients are asked for a certificate when TLS terminates here; null: not asked. */
  clientCertificate: TClientCertificate | null;
  backendTls: IBackendTls;
  send: ISendSettings | null;
  /** Set when the route is HTTP-aware: its connections go to the HTTP stage. */
  http: IResolvedHttp | null;
}

export interface IResolvedConfig {
  listenAddress: string | undefined;
  enableHalfOpen: boolean;
  initialDataTimeout: number;
  inactivityTimeout: number;
  maxConnectionLifetime: number;
  maxConnectionsPerIP: number;
  gracefulShutdownTimeout: number;
  proxyIPs: IpList;
  trustAllProxyIPs: boolean;
  acceptProxyProtocol: boolean;
  proxyProtocolTimeout: number;
  proxyProtocolMaxHeaderSize: number;
  proxyProtocolRequired: boolean;
  /** Who must, may or must not send a PROXY header, per source and port (rules, then proxyIPs). */
  proxyPolicies: ProxyPolicyTable;
  /** Header versions accepted. */
  proxyProtocolVersions: ReadonlySet<1 | 2>;
  /** Deadline for the TCP connection to a backend. */
  connectTimeout: number;
  /** Once one side is gone, how long the other may take to flush before it is destroyed. */
  flushTimeout: number;
  /** Connections that may wait in the PROXY or spoof-check stage at once, per listener (0: no cap). */
  proxyProtocolMaxPending: number;
  /** The same, per TCP peer address (0: no cap). */
  proxyProtocolMaxPendingPerIP: number;
  /** A UDP session idle this long is removed (0: never). */
  udpSessionTimeout: number;
  /** UDP sessions per listener (0: no cap). */
  udpMaxSessions: number;
  routes: IResolvedRoute[];
}
