/**
 * Reads SNI and ALPN from a TLS ClientHello at the start of a byte stream. Pure and bounded:
 * the hello may span several records and arrive in any split; the caller keeps the bytes and
 * forwards them untouched, this only looks.
 */
import { TlsParseError } from '../errors.js';
import * as T from './constants.js';

export type ClientHelloResult =
  | { status: 'complete'; serverName: string | undefined; alpn: string[] }
  | { status: 'incomplete' }
  | { status: 'not-tls' };

const INCOMPLETE: ClientHelloResult = Object.freeze({ status: 'incomplete' });
const NOT_TLS: ClientHelloResult = Object.freeze({ status: 'not-tls' });

function malformed(message: string): TlsParseError {
  return new TlsParseError('ERR_TLS_CLIENT_HELLO_MALFORMED', `ClientHello: ${message}`);
}

/** Bounds-checked reader over the reassembled handshake message. */
class Cursor {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
    private readonly end: number,
  ) {}

  need(n: number): void {
    if (this.pos + n > this.end) throw malformed('field overruns its length');
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
  /** A sub-cursor over the next `n` bytes; this one moves past them. */
  sub(n: number): Cursor {
    this.need(n);
    const c = new Cursor(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return c;
  }
  get left(): number {
    return this.end - this.pos;
  }
  text(n: number): string {
    this.need(n);
    const s = this.buf.toString('latin1', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

const HOST_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/;

function parseServerName(c: Cursor): string | undefined {
  const list = c.sub(c.u16());
  while (list.left > 0) {
    const type = list.u8();
    const name = list.text(list.u16());
    if (type === T.SERVER_NAME_TYPE_HOST) {
      const host = name.toLowerCase();
      if (!HOST_NAME.test(host)) throw malformed('server_name is not a DNS host name');
      return host.endsWith('.') ? host.slice(0, -1) : host;
    }
  }
  return undefined;
}

function parseAlpn(c: Cursor): string[] {
  const list = c.sub(c.u16());
  const protocols: string[] = [];
  while (list.left > 0) protocols.push(list.text(list.u8()));
  return protocols;
}

function parseHello(hello: Buffer): ClientHelloResult {
  const c = new Cursor(hello, T.HANDSHAKE_HEADER_LENGTH, hello.length);
  c.skip(T.PROTOCOL_VERSION_LENGTH + T.RANDOM_LENGTH);
  c.skip(c.u8());
  c.skip(c.u16());
  c.skip(c.u8());
  let serverName: string | undefined;
  let alpn: string[] = [];
  if (c.left > 0) {
    const extensions = c.sub(c.u16());
    while (extensions.left > 0) {
      const type = extensions.u16();
      const body = extensions.sub(extensions.u16());
      if (type === T.EXTENSION_SERVER_NAME) serverName = parseServerName(body);
      else if (type === T.EXTENSION_ALPN) alpn = parseAlpn(body);
    }
  }
  return { status: 'complete', serverName, alpn };
}

/** Looks for a ClientHello at the start of `buf` (all bytes received so far). */
export function readClientHello(buf: Buffer, maxBytes = T.DEFAULT_MAX_CLIENT_HELLO): ClientHelloResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] !== T.RECORD_TYPE_HANDSHAKE) return NOT_TLS;
  if (buf.length < 2) return INCOMPLETE;
  if (buf[1] !== T.RECORD_VERSION_MAJOR) return NOT_TLS;

  const fragments: Buffer[] = [];
  let collected = 0;
  let helloLength = -1;
  let off = 0;
  while (off + T.RECORD_HEADER_LENGTH <= buf.length) {
    if (buf[off] !== T.RECORD_TYPE_HANDSHAKE) throw malformed('a non-handshake record interrupts the ClientHello');
    const recordLength = buf.readUInt16BE(off + 3);
    if (recordLength === 0 || recordLength > T.MAX_RECORD_LENGTH) throw malformed(`record length ${recordLength}`);
    const end = off + T.RECORD_HEADER_LENGTH + recordLength;
    if (end > buf.length) break;
    fragments.push(buf.subarray(off + T.RECORD_HEADER_LENGTH, end));
    collected += recordLength;
    off = end;
    if (helloLength < 0 && collected >= T.HANDSHAKE_HEADER_LENGTH) {
      const head = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments);
      if (head[0] !== T.HANDSHAKE_TYPE_CLIENT_HELLO) throw malformed(`first handshake message is type ${head[0]}`);
      helloLength = T.HANDSHAKE_HEADER_LENGTH + ((head[1] << 16) | (head[2] << 8) | head[3]);
      if (helloLength > maxBytes) {
        throw new TlsParseError('ERR_TLS_CLIENT_HELLO_TOO_LARGE', `ClientHello of ${helloLength} bytes exceeds ${maxBytes}`);
      }
    }
    if (helloLength >= 0 && collected >= helloLength) {
      const all = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments);
      return parseHello(all.subarray(0, helloLength));
    }
  }
  if (buf.length > 2 * maxBytes) {
    throw new TlsParseError('ERR_TLS_CLIENT_HELLO_TOO_LARGE', `no complete ClientHello within ${maxBytes} bytes`);
  }
  return INCOMPLETE;
}
