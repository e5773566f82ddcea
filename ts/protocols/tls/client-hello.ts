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

const NO_BYTES = Buffer.alloc(0);

/**
 * Incremental ClientHello reader for one stream: push chunks as they arrive, split anywhere.
 * Linear in the bytes received: each byte is looked at once, record headers are parsed as they
 * complete, handshake bytes are copied once into one buffer of the hello's size (≤ maxBytes),
 * and the chunks are kept as they came so the caller can forward them untouched.
 */
export class ClientHelloReader {
  private readonly maxBytes: number;
  private chunks: Buffer[] = [];
  private total = 0;
  private result: ClientHelloResult | null = null;
  private failure: TlsParseError | null = null;
  private records = 0;
  /** Bytes of the current record header seen (0..4), and what they said so far. */
  private headerSeen = 0;
  private recordLength = 0;
  /** Fragment bytes of the current record still to come. */
  private fragmentLeft = 0;
  /** Handshake bytes collected, and the hello's whole length (header included) once `hello` exists. */
  private collected = 0;
  private helloLength = 0;
  /** The hello being reassembled, allocated at its own size once its 4-byte header is in. */
  private hello: Buffer | null = null;

  constructor(maxBytes = T.DEFAULT_MAX_CLIENT_HELLO) {
    if (!Number.isInteger(maxBytes) || maxBytes < T.HANDSHAKE_HEADER_LENGTH) {
      throw new RangeError(`maxBytes must be an integer ≥ ${T.HANDSHAKE_HEADER_LENGTH}, got ${maxBytes}`);
    }
    this.maxBytes = maxBytes;
  }

  /** Every byte pushed so far, in order (concatenated once, when asked). */
  get received(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.total)];
    return this.chunks.length === 1 ? this.chunks[0] : NO_BYTES;
  }

  get receivedLength(): number {
    return this.total;
  }

  /** Takes the next chunk; the result stays final once complete or not-tls; a fault throws again. */
  push(chunk: Buffer): ClientHelloResult {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.total += chunk.length;
    }
    if (this.failure !== null) throw this.failure;
    if (this.result !== null) return this.result;
    try {
      this.result = this.scan(chunk);
      if (this.result === null && this.total > 2 * this.maxBytes) {
        // Tiny records cost 5 bytes of framing each: bound the raw bytes too.
        throw new TlsParseError('ERR_TLS_CLIENT_HELLO_TOO_LARGE', `no complete ClientHello within ${this.maxBytes} bytes`);
      }
    } catch (err) {
      this.failure = err as TlsParseError;
      throw err;
    }
    return this.result ?? INCOMPLETE;
  }

  /** Walks the new bytes once; a final result, or null for "need more". */
  private scan(chunk: Buffer): ClientHelloResult | null {
    let off = 0;
    while (off < chunk.length) {
      if (this.fragmentLeft === 0) {
        const verdict = this.recordHeaderByte(chunk[off++]);
        if (verdict !== null) return verdict;
        continue;
      }
      const take = Math.min(this.fragmentLeft, chunk.length - off);
      this.fragmentLeft -= take;
      if (this.handshakeBytes(chunk, off, off + take)) {
        // The result is final: the reassembled copy is not needed past this parse.
        const hello = this.hello as Buffer;
        this.hello = null;
        return parseHello(hello);
      }
      off += take;
    }
    return null;
  }

  /** One byte of a record header (type, version major, minor, length high, low). */
  private recordHeaderByte(byte: number): ClientHelloResult | null {
    const index = this.headerSeen++;
    const first = this.records === 0;
    if (index === 0 && byte !== T.RECORD_TYPE_HANDSHAKE) {
      if (first) return NOT_TLS;
      throw malformed('a non-handshake record interrupts the ClientHello');
    }
    if (index === 1 && first && byte !== T.RECORD_VERSION_MAJOR) return NOT_TLS;
    if (index === 3) this.recordLength = byte << 8;
    if (index === 4) {
      const length = this.recordLength | byte;
      if (length === 0 || length > T.MAX_RECORD_LENGTH) throw malformed(`record length ${length}`);
      this.records++;
      this.headerSeen = 0;
      this.fragmentLeft = length;
    }
    return null;
  }

  /** Collects handshake bytes [start, end) of `chunk`; true once the whole hello is in. */
  private handshakeBytes(chunk: Buffer, start: number, end: number): boolean {
    let off = start;
    while (this.hello === null && off < end) {
      const byte = chunk[off++];
      const index = this.collected++;
      if (index === 0 && byte !== T.HANDSHAKE_TYPE_CLIENT_HELLO) throw malformed(`first handshake message is type ${byte}`);
      if (index > 0) this.helloLength = (this.helloLength << 8) | byte;
      if (index === T.HANDSHAKE_HEADER_LENGTH - 1) this.startHello();
    }
    if (this.hello === null) return false;
    const take = Math.min(end - off, this.helloLength - this.collected);
    chunk.copy(this.hello, this.collected, off, off + take);
    this.collected += take;
    return this.collected === this.helloLength;
  }

  private startHello(): void {
    const length = T.HANDSHAKE_HEADER_LENGTH + this.helloLength;
    if (length > this.maxBytes) {
      throw new TlsParseError('ERR_TLS_CLIENT_HELLO_TOO_LARGE', `ClientHello of ${length} bytes exceeds ${this.maxBytes}`);
    }
    this.helloLength = length;
    this.hello = Buffer.allocUnsafe(length);
    this.hello[0] = T.HANDSHAKE_TYPE_CLIENT_HELLO;
    this.hello.writeUIntBE(length - T.HANDSHAKE_HEADER_LENGTH, 1, 3);
  }
}

/** Looks for a ClientHello at the start of `buf` (all bytes received so far). */
export function readClientHello(buf: Buffer, maxBytes = T.DEFAULT_MAX_CLIENT_HELLO): ClientHelloResult {
  return new ClientHelloReader(maxBytes).push(buf);
}
