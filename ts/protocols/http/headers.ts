/**
 * Header rules a proxy applies to HTTP/1.1 messages: hop-by-hop headers (RFC 9110 7.6.1), message
 * framing a smuggler could make two parties read differently (RFC 9112 6), and the Host header
 * (RFC 9110 7.2). Pure: Node's `rawHeaders` layout in (name, value, name, value, ...), values out.
 */
import { CHAR_DOT } from '../ascii.js';

/** Headers for one hop only; never passed on. Upgrade is passed on for upgrade requests only. */
const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade', 'proxy-connection']);

/** Whether a lower-case header name is hop-by-hop: the fixed list and the Proxy-* family. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-');
}

/** The lower-case header names that Connection headers list (also hop-by-hop). */
export function connectionTokens(rawHeaders: readonly string[]): Set<string> | null {
  let tokens: Set<string> | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].length !== 10 || rawHeaders[i].toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1].split(',')) {
      const name = token.trim().toLowerCase();
      if (name.length > 0) (tokens ??= new Set()).add(name);
    }
  }
  return tokens;
}

/**
 * Why a request's framing or Host cannot be trusted, or null. Node's parser already refuses
 * Content-Length with Transfer-Encoding, repeated Content-Length, obs-fold, bad header names and
 * white space before the colon; these are the cases it lets through (RFC 9112 6.1, 6.3; RFC 9110 7.2).
 */
export function framingProblem(rawHeaders: readonly string[], httpVersion: string): string | null {
  let hosts = 0;
  let codings: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (name === 'host') hosts++;
    else if (name === 'transfer-encoding') codings = codings === undefined ? rawHeaders[i + 1] : `${codings},${rawHeaders[i + 1]}`;
  }
  if (hosts > 1) return 'more than one Host header';
  if (hosts === 0 && httpVersion === '1.1') return 'an HTTP/1.1 request needs a Host header';
  if (codings === undefined) return null;
  if (httpVersion === '1.0') return 'Transfer-Encoding in an HTTP/1.0 request';
  const last = codings.slice(codings.lastIndexOf(',') + 1).trim().toLowerCase();
  return last === 'chunked' ? null : 'the request body framing is unknown: Transfer-Encoding does not end in chunked';
}

export interface IHostHeader {
  /** Lower-case host name (without the trailing dot of a fully qualified one), IPv4 address, or IPv6 address in brackets. */
  name: string;
  port: number | undefined;
}

// reg-name of RFC 3986 (unreserved, pct-encoded, sub-delims) or an IPv6 literal in brackets, then an optional port.
const HOST = /^([a-z0-9\-._~!$&'()*+,;=%]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/i;
const MAX_PORT = 65535;

/**
 * A Host header (or :authority) value split into name and port; null when it is not one. The name
 * is the one routes match: `a.test.` is `a.test` (as backends such as nginx read it, so a trailing
 * dot cannot steer a request past the route for its host), and an empty label is refused.
 */
export function parseHost(value: string): IHostHeader | null {
  const match = HOST.exec(value);
  if (match === null) return null;
  const port = match[2] === undefined ? undefined : Number(match[2]);
  if (port !== undefined && port > MAX_PORT) return null;
  let name = match[1].toLowerCase();
  if (name.charCodeAt(name.length - 1) === CHAR_DOT) name = name.slice(0, -1);
  if (name.length === 0 || name.charCodeAt(0) === CHAR_DOT || name.charCodeAt(name.length - 1) === CHAR_DOT || name.includes('..')) return null;
  return { name, port };
}
