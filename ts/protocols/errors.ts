/**
 * One error family for the whole library. Every error has a stable string `code` (documented in
 * readme.md and readme.proxy-protocol.md) so callers branch on codes, not messages. The codes are
 * string-literal unions defined once here: a misspelt code does not compile. This file lives in
 * `protocols/` because every layer imports it and `protocols/` imports nothing outside itself.
 */

/** Reading or writing a PROXY header (parser, decoder, generator). */
export type ProxyProtocolParseCode =
  | 'ERR_PP_BAD_INPUT'
  | 'ERR_PP_VERSION_DISABLED'
  | 'ERR_PP_DECODER_FINISHED'
  | 'ERR_PP_HEADER_TOO_LARGE'
  | 'ERR_PP_V1_MALFORMED'
  | 'ERR_PP_V1_TOO_LONG'
  | 'ERR_PP_V1_BAD_ADDRESS'
  | 'ERR_PP_V1_BAD_PORT'
  | 'ERR_PP_V2_BAD_VERSION'
  | 'ERR_PP_V2_BAD_COMMAND'
  | 'ERR_PP_V2_BAD_FAMILY'
  | 'ERR_PP_V2_LENGTH'
  | 'ERR_PP_V2_TLV'
  | 'ERR_PP_V2_TRANSPORT'
  | 'ERR_PP_CRC32C_MISMATCH';

/** PROXY outcomes that only a connection can have (who sent what, and when). */
export type ProxyProtocolConnectionCode =
  | 'ERR_PP_UNTRUSTED_PEER'
  | 'ERR_PP_TIMEOUT'
  | 'ERR_PP_MISSING'
  | 'ERR_PP_INCOMPLETE'
  | 'ERR_PP_TOO_MANY_PENDING'
  | 'ERR_PP_SEND'
  | 'ERR_PP_VERSION_NOT_ALLOWED';

export type ProxyProtocolErrorCode = ProxyProtocolParseCode | ProxyProtocolConnectionCode;

/** Reading a TLS ClientHello. */
export type TlsParseErrorCode = 'ERR_TLS_CLIENT_HELLO_MALFORMED' | 'ERR_TLS_CLIENT_HELLO_TOO_LARGE';

/** Invalid options or routes. */
export type ConfigErrorCode =
  | 'ERR_CONFIG_OPTION'
  | 'ERR_CONFIG_UNKNOWN_OPTION'
  | 'ERR_CONFIG_ROUTES'
  | 'ERR_CONFIG_ROUTE'
  | 'ERR_CONFIG_ROUTE_NAME'
  | 'ERR_CONFIG_ACTION_TYPE'
  | 'ERR_CONFIG_TARGET'
  | 'ERR_CONFIG_PORT'
  | 'ERR_CONFIG_DOMAIN'
  | 'ERR_CONFIG_CIDR'
  | 'ERR_CONFIG_TLS'
  | 'ERR_CONFIG_TRUST_ALL'
  | 'ERR_CONFIG_FILE'
  | 'ERR_CONFIG_HTTP';

/**
 * Why a UDP datagram was dropped (besides the PROXY and security codes it shares with TCP):
 * too large once the header is added, the listener's session table full, the backend socket failed.
 */
export type UdpDropCode = 'ERR_UDP_OVERSIZE' | 'ERR_UDP_TOO_MANY_SESSIONS' | 'ERR_UDP_BACKEND';

/** An HTTP route's answers of its own (400, 403, 404, 408, 421, 431, 502, 503, 504) and its idle close. */
export type HttpErrorCode =
  | 'ERR_HTTP_BAD_REQUEST'
  | 'ERR_HTTP_HEADERS_TOO_LARGE'
  | 'ERR_HTTP_HEADERS_TIMEOUT'
  | 'ERR_HTTP_IDLE_TIMEOUT'
  | 'ERR_HTTP_NO_ROUTE'
  | 'ERR_HTTP_MISDIRECTED'
  | 'ERR_HTTP_BACKEND_TIMEOUT';

/** Why a connection was refused or failed before or while it was forwarded. */
export type ConnectionErrorCode =
  | ProxyProtocolErrorCode
  | HttpErrorCode
  | UdpDropCode
  | TlsParseErrorCode
  | 'ERR_LIMIT_PER_IP'
  | 'ERR_LIMIT_ROUTE'
  | 'ERR_ROUTE_NOT_FOUND'
  | 'ERR_SECURITY_BLOCKED'
  | 'ERR_SECURITY_NOT_ALLOWED'
  | 'ERR_TIMEOUT_INITIAL_DATA'
  | 'ERR_TIMEOUT_INACTIVITY'
  | 'ERR_TIMEOUT_LIFETIME'
  | 'ERR_TLS_HANDSHAKE'
  | 'ERR_CLIENT_ERROR'
  | 'ERR_CLIENT_CLOSED'
  | 'ERR_BACKEND_CONNECT'
  | 'ERR_BACKEND_CLOSED'
  | 'ERR_BACKEND_TLS'
  | 'ERR_BACKEND_CONNECT_TIMEOUT'
  | 'ERR_TLS_CLIENT'
  | 'ERR_TLS_CLIENT_CERT'
  | 'ERR_INTERNAL';

/** Errors of the proxy as a whole (listening, lifecycle). */
export type LifecycleErrorCode = 'ERR_LISTEN';

export type SmartProxyErrorCode = ConnectionErrorCode | ConfigErrorCode | LifecycleErrorCode;

export class SmartProxyError extends Error {
  /** Stable machine-readable cause, e.g. `ERR_PP_V1_MALFORMED`. */
  public readonly code: SmartProxyErrorCode;

  constructor(code: SmartProxyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Invalid options or routes, thrown by the constructor, `updateRoutes` or the CLI's check. */
export class ConfigError extends SmartProxyError {
  declare readonly code: ConfigErrorCode;
  /** Name of the route at fault, when the problem is inside a route. */
  public readonly route?: string;
  /** Path of the offending field, e.g. `routes[1].match.ports`. */
  public readonly field: string;

  constructor(code: ConfigErrorCode, field: string, message: string, route?: string) {
    super(code, `${route !== undefined ? `route "${route}": ` : ''}${field}: ${message}`);
    this.field = field;
    this.route = route;
  }
}

/** A PROXY protocol header could not be read or written. */
export class ProxyProtocolError extends SmartProxyError {
  declare readonly code: ProxyProtocolErrorCode;
  constructor(code: ProxyProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A TLS ClientHello could not be read. */
export class TlsParseError extends SmartProxyError {
  declare readonly code: TlsParseErrorCode;
  constructor(code: TlsParseErrorCode, message: string) {
    super(code, message);
  }
}
