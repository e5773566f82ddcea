/**
 * What the first bytes of a stream look like, for error hints only (never for routing or trust):
 * a TLS ClientHello, an HTTP/1 request line, the HTTP/2 preface, or an SSH banner.
 */
export type KnownOpening = 'tls' | 'http' | 'http2' | 'ssh';

const TLS_HANDSHAKE = 0x16;
const TLS_MAJOR = 0x03;
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0');
const SSH_BANNER = Buffer.from('SSH-');
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE'].map((m) => Buffer.from(`${m} `));
const SHORTEST = 4;

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** The protocol the bytes open with, or null when unknown (or too few bytes to tell). */
export function identifyOpening(buf: Buffer): KnownOpening | null {
  if (buf.length >= 2 && buf[0] === TLS_HANDSHAKE && buf[1] === TLS_MAJOR) return 'tls';
  if (buf.length < SHORTEST) return null;
  if (startsWith(buf, HTTP2_PREFACE)) return 'http2';
  if (startsWith(buf, SSH_BANNER)) return 'ssh';
  for (const method of HTTP_METHODS) if (startsWith(buf, method)) return 'http';
  return null;
}
