/**
 * One error family for the whole library. Every error has a stable string `code`
 * (documented in readme.proxy-protocol.md and readme.md) so callers branch on codes, not messages.
 */
export class SmartProxyError extends Error {
  /** Stable machine-readable cause, e.g. `ERR_PP_V1_MALFORMED`. */
  public readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Invalid options or routes, thrown by the constructor, `updateRoutes` or the CLI's check. */
export class ConfigError extends SmartProxyError {
  /** Name of the route at fault, when the problem is inside a route. */
  public readonly route?: string;
  /** Path of the offending field, e.g. `routes[1].match.ports`. */
  public readonly field: string;

  constructor(code: string, field: string, message: string, route?: string) {
    super(code, `${route !== undefined ? `route "${route}": ` : ''}${field}: ${message}`);
    this.field = field;
    this.route = route;
  }
}

/** A PROXY protocol header could not be read or written. */
export class ProxyProtocolError extends SmartProxyError {}

/** A TLS ClientHello could not be read. */
export class TlsParseError extends SmartProxyError {}
