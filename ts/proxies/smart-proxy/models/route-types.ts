/**
 * Route shapes as users write them. This module imports nothing: `interfaces.ts` builds on it, and
 * a cycle between the two (even type-only) is what the layering rules forbid.
 */

/** Which TLVs a v2 header we send carries. Every field defaults to off. */
export interface IProxyProtocolTlvOptions {
  /** AUTHORITY = the client's SNI, when known. */
  authority?: boolean;
  /** ALPN = the protocol negotiated with the client (only known when TLS terminates here). */
  alpn?: boolean;
  /** UNIQUE_ID = this connection's id. */
  uniqueId?: boolean;
  /** SSL = TLS facts (version, cipher, client certificate CN) when TLS terminates here. */
  ssl?: boolean;
  /** Append a CRC32C checksum TLV. */
  crc32c?: boolean;
  /**
   * Types of TLVs received from the previous hop to copy, in their received order. Not 3 (CRC32C):
   * a copied checksum covers the previous header, not ours; ask for `crc32c: true` instead.
   */
  passThrough?: number[];
}

/** A port range, both ends included. */
export interface IPortRange {
  from: number;
  to: number;
}

export type TPortSpec = number | Array<number | IPortRange>;

export interface IRouteMatch {
  /** Listening port(s): a number, a list, or ranges `{ from, to }`. */
  ports: TPortSpec;
  /**
   * SNI host names: exact (`api.example.com`), wildcard (`*.example.com`: any sub-domain, not the
   * apex), or `*` (anything, including no SNI). Case-insensitive. Absent: matches with or without SNI.
   */
  domains?: string | string[];
  /** Real client addresses (IPs and CIDRs) this route is for. Absent: every client. */
  clientIp?: string[];
  /**
   * `tcp` (default) or `udp`: a UDP route gets a UDP socket on its ports and forwards datagrams
   * per client flow (no TLS, no domains; PROXY headers sent are v2 DGRAM, one per datagram).
   */
  transport?: 'tcp' | 'udp';
  /** HTTP routes: the request path, exact (`/health`) or a prefix (`/api/*`: `/api` and below). Makes the route HTTP-aware. */
  path?: string;
  /** HTTP routes: headers the request must carry, `{ name: value }`, values exact. Makes the route HTTP-aware. */
  headers?: Record<string, string>;
}

export interface IRouteTarget {
  /** Backend host; an array round-robins across hosts. */
  host: string | string[];
  port: number;
}

export type TTlsMode = 'passthrough' | 'terminate' | 'terminate-and-reencrypt';

/** Ask TLS clients for a certificate: `request` (a client without one is let in) or `require`. */
export type TClientCertificate = 'request' | 'require';

export interface IRouteTls {
  /**
   * `passthrough`: route on SNI, forward TLS bytes untouched. `terminate`: TLS ends here (needs
   * `certificate`), plain bytes to the target. `terminate-and-reencrypt`: TLS ends here and a new
   * TLS connection goes to the target.
   */
  mode: TTlsMode;
  /** PEM key and certificate chain; required for `terminate` and `terminate-and-reencrypt`. */
  certificate?: { key: string; cert: string };
  /** ALPN protocols offered to clients when terminating, in preference order. */
  alpnProtocols?: string[];
  /** Ask clients for a certificate when terminating. Default: not asked. `require` needs `clientCa`. */
  clientCertificate?: TClientCertificate;
  /** PEM CA bundle that client certificates are verified against. */
  clientCa?: string;
  /** TLS to the target (`terminate-and-reencrypt`). */
  backend?: {
    /** Verify the target's certificate. Default true. */
    rejectUnauthorized?: boolean;
    /** PEM CA bundle to verify the target with. */
    ca?: string;
    /** SNI sent to the target. Default: the client's SNI, else the target host. */
    servername?: string;
    /** ALPN protocols offered to the target, in preference order. */
    alpnProtocols?: string[];
  };
}

export interface IRouteSecurity {
  /** Only these real client addresses (IPs/CIDRs) may use the route. */
  ipAllowList?: string[];
  /** These real client addresses are refused (checked before the allow list). */
  ipBlockList?: string[];
  /** Most concurrent connections on this route. 0 or absent: no limit. */
  maxConnections?: number;
}

/** Which headers tell an HTTP backend the real client. */
export type TForwardedHeaders = 'x-forwarded' | 'forwarded' | 'both' | 'none';

/** HTTP at the end of the chain (`action.http`, `{}` allowed): requests are routed and proxied one by one. */
export interface IRouteHttp {
  /**
   * `x-forwarded` (default): X-Forwarded-For, -Proto, -Host, -Port and X-Real-IP. `forwarded`:
   * RFC 7239 Forwarded. `both`, or `none`. Incoming ones are kept (and appended to) only from
   * a trusted real client (`proxyIPs`, `trustForwardedFrom`; behind a believed PROXY header, the
   * header's source, not the relaying peer); from anybody else they are removed.
   */
  forwardedHeaders?: TForwardedHeaders;
  /** Hops (IPs/CIDRs), besides `proxyIPs`, whose forwarded headers are kept: the real client, as for PROXY headers. */
  trustForwardedFrom?: string[];
  /** Offer HTTP/2 to TLS clients (ALPN `h2`, `http/1.1`) when TLS ends here. Default true. */
  h2?: boolean;
  /** Largest request head (request line and headers), bytes; larger gets 431. Default 16384. */
  maxHeaderSize?: number;
  /** A request head must be complete this long after the connection became ready for it; else 408. Default 30000. */
  headersTimeout?: number;
  /** An idle keep-alive connection is closed after this long. Default 60000. */
  keepAliveTimeout?: number;
  /** A backend silent this long: 504 (or the response is cut when it had started). Default 60000. */
  backendTimeout?: number;
}

/** Per-route PROXY header sending: `true` uses the global version and TLVs. */
export type TSendProxyProtocol = boolean | { version?: 1 | 2; tlvs?: IProxyProtocolTlvOptions };

export interface IRouteAction {
  type: 'forward';
  /** Where to forward; may be left out (or partly) when `defaults.target` supplies it. */
  target?: Partial<IRouteTarget>;
  tls?: IRouteTls;
  security?: IRouteSecurity;
  /** Overrides the global `sendProxyProtocol` for this route. */
  sendProxyProtocol?: TSendProxyProtocol;
  /** Makes the route an HTTP reverse proxy (see IRouteHttp); `maxConnections` then limits its requests in flight. */
  http?: IRouteHttp;
}

export interface IRouteConfig {
  /** Unique name; used in errors, statistics and events. */
  name: string;
  /** Higher wins when several routes match. Default 0; ties keep declaration order. */
  priority?: number;
  match: IRouteMatch;
  action: IRouteAction;
}
