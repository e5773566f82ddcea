/**
 * The headers that carry the real client to an HTTP backend: X-Forwarded-For and its family, and
 * RFC 7239 `Forwarded`. Pure: strings in, strings out.
 */

/** tchar of RFC 9110 5.6.2: the characters a token (and so an unquoted parameter value) may hold. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function isToken(text: string): boolean {
  return TOKEN.test(text);
}

/** A parameter value of RFC 7239: a token as it is, anything else a quoted-string (RFC 9110 5.6.4). */
export function forwardedValue(text: string): string {
  if (isToken(text)) return text;
  return `"${text.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * A node of RFC 7239 section 6 (`for=`, `by=`): an IPv4 address as it is, an IPv6 address in
 * brackets, with `:port` when given; quoted whenever that is not a token (IPv6 and ports always are).
 */
export function forwardedNode(address: string, port?: number): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return forwardedValue(port === undefined ? host : `${host}:${port}`);
}

export interface IForwardedElement {
  /** The client: `forwardedNode(address)`. */
  for: string;
  /** The interface the request came in on: `forwardedNode(address, port)`. */
  by?: string;
  /** The Host the client asked for. */
  host?: string;
  /** `http` or `https`. */
  proto?: string;
}

/** One forwarded-element: `for=…;proto=…;host=…;by=…` (node values already formatted). */
export function forwardedElement(element: IForwardedElement): string {
  let text = `for=${element.for}`;
  if (element.proto !== undefined) text += `;proto=${element.proto}`;
  if (element.host !== undefined && element.host.length > 0) text += `;host=${forwardedValue(element.host)}`;
  if (element.by !== undefined) text += `;by=${element.by}`;
  return text;
}

/** `value` appended to a comma-separated list header (`X-Forwarded-For`, `Forwarded`). */
export function appendToList(existing: string | undefined, value: string): string {
  return existing === undefined || existing.length === 0 ? value : `${existing}, ${value}`;
}

/**
 * Whether a header (lower-case name) tells who the client is: removed unless the peer is trusted.
 * `_` counts as `-`: CGI-style servers (WSGI, Rack, PHP) read `X_Forwarded_For` as the same header.
 */
export function isForwardingHeader(name: string): boolean {
  const dashed = name.includes('_') ? name.replaceAll('_', '-') : name;
  return dashed === 'forwarded' || dashed === 'x-real-ip' || dashed.startsWith('x-forwarded-');
}
