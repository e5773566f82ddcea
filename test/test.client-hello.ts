/**
 * The ClientHello reader: SNI and ALPN from real hellos in any split and any record framing,
 * typed errors, the bounds, and work linear in the bytes received (issue #10.7).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { TlsParseError } from '../ts/protocols/errors.js';
import { ClientHelloReader, readClientHello } from '../ts/protocols/tls/client-hello.js';
import type { ClientHelloResult } from '../ts/protocols/tls/client-hello.js';
import { codeOf as errorCodeOf } from './helpers/error-code.js';
import { captureClientHello, reframe } from './helpers/tls.js';

function codeOf(fn: () => unknown): string {
  return errorCodeOf(fn, TlsParseError);
}

/** Pushes `input` cut at `cuts` into a fresh reader; the first result that is not incomplete. */
function feed(input: Buffer, cuts: number[], maxBytes?: number): { result: ClientHelloResult; reader: ClientHelloReader } {
  const reader = new ClientHelloReader(maxBytes);
  let start = 0;
  let result: ClientHelloResult = { status: 'incomplete' };
  for (const cut of [...cuts, input.length]) {
    if (cut <= start) continue;
    result = reader.push(input.subarray(start, cut));
    start = cut;
    if (result.status !== 'incomplete') break;
  }
  return { result, reader };
}

const byteByByte = (input: Buffer): number[] => Array.from({ length: input.length }, (_, i) => i + 1);

/** A TLS 1.2-style record header of `type` around `body`. */
function record(body: Buffer, type = 0x16): Buffer {
  const head = Buffer.from([type, 0x03, 0x01, 0, 0]);
  head.writeUInt16BE(body.length, 3);
  return Buffer.concat([head, body]);
}

/**
 * A ClientHello handshake message with SNI `host`, `padding` bytes of padding extension and
 * `suites` cipher suites (each field is at most 64 KiB, so large hellos grow in both).
 */
function helloMessage(host: string, padding = 0, suites = 1): Buffer {
  const name = Buffer.from(host);
  const sni = Buffer.alloc(9 + name.length);
  sni.writeUInt16BE(0x0000, 0);
  sni.writeUInt16BE(5 + name.length, 2);
  sni.writeUInt16BE(3 + name.length, 4);
  sni[6] = 0;
  sni.writeUInt16BE(name.length, 7);
  name.copy(sni, 9);
  const pad = Buffer.alloc(4 + padding);
  pad.writeUInt16BE(0x0015, 0);
  pad.writeUInt16BE(padding, 2);
  const extensions = Buffer.concat([sni, pad]);
  const extensionsLength = Buffer.alloc(2);
  extensionsLength.writeUInt16BE(extensions.length);
  const cipherSuites = Buffer.alloc(2 + suites * 2, 0x13);
  cipherSuites.writeUInt16BE(suites * 2, 0);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 7),
    Buffer.from([0x00]),
    cipherSuites,
    Buffer.from([0x01, 0x00]),
    extensionsLength,
    extensions,
  ]);
  const head = Buffer.from([0x01, 0, 0, 0]);
  head.writeUIntBE(body.length, 1, 3);
  return Buffer.concat([head, body]);
}

/** `message` (from helloMessage with one suite) with its extensions block claiming one byte more than there is. */
function overrunExtensions(message: Buffer): Buffer {
  const copy = Buffer.from(message);
  const at = 4 + 2 + 32 + 1 + 4 + 1 + 1; // header, version, random, session id, suites, compression
  copy.writeUInt16BE(copy.readUInt16BE(at) + 1, at);
  return copy;
}

/** `message` cut into handshake records of at most `size` bytes. */
function inRecords(message: Buffer, size: number): Buffer {
  const records: Buffer[] = [];
  for (let off = 0; off < message.length; off += size) records.push(record(message.subarray(off, off + size)));
  return Buffer.concat(records);
}

describe('ClientHelloReader reads SNI and ALPN from real ClientHellos however they arrive', () => {
  let withSni: Buffer;
  let withoutSni: Buffer;
  const expected = { status: 'complete', serverName: 'a.example.com', alpn: ['h2', 'http/1.1'] };

  before(async () => {
    withSni = await captureClientHello('a.example.com', ['h2', 'http/1.1']);
    withoutSni = await captureClientHello(undefined);
  });

  it('reads a hello in one chunk, with and without SNI', () => {
    assert.deepEqual(readClientHello(withSni), expected);
    assert.deepEqual(readClientHello(withoutSni), { status: 'complete', serverName: undefined, alpn: [] });
  });

  it('gives the same result split at every offset, and keeps every byte it was given', () => {
    for (let cut = 1; cut < withSni.length; cut++) {
      const { result, reader } = feed(withSni, [cut]);
      assert.deepEqual(result, expected, `cut at ${cut}`);
      assert.ok(reader.received.equals(withSni), `received, cut at ${cut}`);
      assert.equal(reader.receivedLength, withSni.length);
    }
    assert.deepEqual(feed(withSni, byteByByte(withSni)).result, expected, 'byte by byte');
  });

  it('gives the same result with a record boundary at every byte of the handshake', () => {
    const message = withSni.subarray(5);
    for (let at = 1; at < message.length; at++) {
      const input = Buffer.concat([record(message.subarray(0, at)), record(message.subarray(at))]);
      assert.deepEqual(readClientHello(input), expected, `boundary at ${at}`);
      assert.deepEqual(feed(input, [at, at + 5, at + 6]).result, expected, `boundary at ${at}, pushed in pieces`);
    }
  });

  it('reads a hello sent as 1-byte TLS records, in chunks of every size', () => {
    const input = reframe(withSni, 1);
    for (const size of [1, 2, 3, 5, 6, 7, 11, 64, 1000, input.length]) {
      const cuts = Array.from({ length: Math.ceil(input.length / size) }, (_, i) => (i + 1) * size);
      const { result, reader } = feed(input, cuts);
      assert.deepEqual(result, expected, `chunks of ${size}`);
      assert.ok(reader.received.equals(input), `received, chunks of ${size}`);
    }
  });

  it('hands back bytes that follow the hello in the same chunk, untouched', () => {
    const input = Buffer.concat([withSni, Buffer.from('after')]);
    const { result, reader } = feed(input, [10]);
    assert.equal(result.status, 'complete');
    assert.ok(reader.received.equals(input));
  });

  it('reports not-tls on the first bytes that cannot start a TLS handshake record', () => {
    for (const text of ['GET / HTTP/1.1\r\n', '\x16\x02']) {
      const input = Buffer.from(text, 'latin1');
      assert.equal(readClientHello(input).status, 'not-tls', JSON.stringify(text));
      const reader = new ClientHelloReader();
      for (const byte of input) reader.push(Buffer.from([byte]));
      assert.equal(reader.push(Buffer.from('more')).status, 'not-tls', 'stays not-tls');
      assert.equal(reader.received.toString('latin1'), text + 'more');
    }
    assert.equal(readClientHello(Buffer.alloc(0)).status, 'incomplete');
    assert.equal(readClientHello(Buffer.from([0x16])).status, 'incomplete');
  });
});

describe('ClientHelloReader refuses what is not a ClientHello with a stable code, at any split', () => {
  const message = helloMessage('b.example.com');
  const cases: Array<[string, Buffer, string, number?]> = [
    ['an application-data record inside the hello', Buffer.concat([record(message.subarray(0, 10)), record(message.subarray(10), 0x17)]), 'ERR_TLS_CLIENT_HELLO_MALFORMED'],
    ['a record of length 0', Buffer.concat([record(Buffer.alloc(0)), record(message)]), 'ERR_TLS_CLIENT_HELLO_MALFORMED'],
    // A whole, valid hello inside: only the record length can make these malformed.
    ['a record over 16384 bytes', Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), message]), 'ERR_TLS_CLIENT_HELLO_MALFORMED'],
    ['a record of length 65535', Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), message]), 'ERR_TLS_CLIENT_HELLO_MALFORMED'],
    ['a ServerHello where the ClientHello should be', record(Buffer.concat([Buffer.from([0x02]), message.subarray(1)])), 'ERR_TLS_CLIENT_HELLO_MALFORMED'],
    ['an extensions block that overruns the hello', record(overrunExtensions(message)), 'ERR_TLS_CLIENT_HELLO_MALFORMED'],
    ['a hello longer than maxBytes', record(helloMessage('c.example.com', 500)), 'ERR_TLS_CLIENT_HELLO_TOO_LARGE', 512],
  ];
  for (const [what, input, code, maxBytes] of cases) {
    it(`refuses ${what} with ${code}`, () => {
      assert.equal(codeOf(() => readClientHello(input, maxBytes)), code, 'one chunk');
      assert.equal(codeOf(() => feed(input, byteByByte(input), maxBytes)), code, 'byte by byte');
      for (let cut = 1; cut < Math.min(input.length, 80); cut++) assert.equal(codeOf(() => feed(input, [cut], maxBytes)), code, `cut at ${cut}`);
    });
  }

  it('refuses more than 2 × maxBytes of raw bytes without a whole hello (1-byte records)', () => {
    const input = inRecords(helloMessage('c.example.com', 400), 1);
    const reader = new ClientHelloReader(512);
    let off = 0;
    const code = codeOf(() => {
      for (; off < input.length; off += 7) reader.push(input.subarray(off, off + 7));
    });
    assert.equal(code, 'ERR_TLS_CLIENT_HELLO_TOO_LARGE');
    assert.ok(reader.receivedLength > 1024 && reader.receivedLength <= 1024 + 7, `refused after ${reader.receivedLength} bytes`);
  });

  it('keeps refusing once it has refused', () => {
    const reader = new ClientHelloReader();
    assert.equal(codeOf(() => reader.push(record(Buffer.alloc(0)))), 'ERR_TLS_CLIENT_HELLO_MALFORMED');
    assert.equal(codeOf(() => reader.push(Buffer.from([1]))), 'ERR_TLS_CLIENT_HELLO_MALFORMED');
  });

  it('accepts a hello right at maxBytes', () => {
    const hello = helloMessage('c.example.com', 100);
    assert.equal(readClientHello(record(hello), hello.length).status, 'complete');
    assert.equal(codeOf(() => readClientHello(record(hello), hello.length - 1)), 'ERR_TLS_CLIENT_HELLO_TOO_LARGE');
  });
});

describe('ClientHelloReader work is linear in the bytes received (#10.7)', () => {
  /** Best-of-`trials` ms to feed `input` in `chunkSize` pieces, `repeats` times. */
  function feedTime(input: Buffer, chunkSize: number, repeats: number, trials: number): number {
    const chunks: Buffer[] = [];
    for (let off = 0; off < input.length; off += chunkSize) chunks.push(input.subarray(off, off + chunkSize));
    let best = Infinity;
    for (let t = 0; t < trials; t++) {
      const start = process.hrtime.bigint();
      for (let r = 0; r < repeats; r++) {
        const reader = new ClientHelloReader(1 << 20);
        let result: ClientHelloResult = { status: 'incomplete' };
        for (const chunk of chunks) result = reader.push(chunk);
        assert.equal(result.status, 'complete');
      }
      best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
    }
    return best;
  }

  it('takes about 4× as long, not 16×, for a hello 4× as large arriving in 64-byte chunks', () => {
    // 32 KiB and 128 KiB hellos in 1 KiB records: re-walking from byte 0 per chunk (or copying
    // everything pending per chunk) makes the larger one about 16× slower; linear work, 4×.
    const small = inRecords(helloMessage('d.example.com', 16000, 8000), 1024);
    const large = inRecords(helloMessage('d.example.com', 64000, 32000), 1024);
    feedTime(small, 64, 3, 1); // warm up the JIT before timing
    const ratios: number[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const ratio = feedTime(large, 64, 30, 3) / feedTime(small, 64, 30, 3);
      ratios.push(ratio);
      // Linear work gives ~4; 8 leaves room for a loaded machine and still fails quadratic work.
      if (ratio < 8) return;
    }
    assert.fail(`128 KiB took ${ratios.map((r) => r.toFixed(1)).join(', ')}× as long as 32 KiB (linear ≈ 4, quadratic ≈ 16)`);
  });
});
