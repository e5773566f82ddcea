/**
 * Protocol-layer faults that escaped one connection (issue #10): what a parsed header keeps
 * alive, how IPv6 text comes back, what generate() may write, and what counts as a v1 header.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProxyProtocolError } from '../ts/protocols/errors.js';
import {
  GivenEndpoints,
  IPv4Endpoints,
  IPv6Endpoints,
  ProxyHeader,
  ProxyProtocolDecoder,
  ProxyProtocolParser,
  alpnTlv,
  authorityTlv,
  noopTlv,
  sslTlv,
  uniqueIdTlv,
} from '../ts/protocols/proxy/index.js';
import type { DecodeResult, IProxyHeader, ITlv } from '../ts/protocols/proxy/index.js';
import { HAPROXY_CAPTURES, v2 } from './vectors/proxy-protocol.js';
import { codeOf as errorCodeOf } from './helpers/error-code.js';

const codeOf = (fn: () => unknown): string => errorCodeOf(fn, ProxyProtocolError);

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** 60 KiB of payload arriving in the same chunk as the header, as a busy client sends it. */
const PAYLOAD_LENGTH = 60 * 1024;

const TLVS = [alpnTlv('h2'), authorityTlv('api.example.com'), uniqueIdTlv('conn-42'), sslTlv({ version: 'TLSv1.3', cn: 'client' })];

const HEADERS: Array<[string, Buffer]> = [
  ['v1 TCP4', Buffer.from('PROXY TCP4 192.168.0.1 10.0.0.1 56324 443\r\n')],
  ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n')],
  ['v2 INET with TLVs', ProxyProtocolParser.generate({ source: { address: '192.168.0.1', port: 56324 }, destination: { address: '10.0.0.1', port: 443 } }, { version: 2, tlvs: TLVS, crc32c: true })],
  ['v2 INET6 with TLVs', ProxyProtocolParser.generate({ source: { address: '2001:db8::1', port: 56324 }, destination: { address: '2001:db8::2', port: 443 } }, { version: 2, tlvs: TLVS })],
  ['v2 UNIX with TLVs', ProxyProtocolParser.generate({ source: { path: '/run/a.sock' }, destination: { path: '/run/b.sock' } }, { version: 2, tlvs: TLVS })],
];

/** Everything a caller can read from a header, as plain values. */
function snapshot(header: IProxyHeader): unknown {
  return {
    source: header.source,
    destination: header.destination,
    tlvs: header.tlvs.map((t) => [t.type, t.value.toString('hex')]),
    authority: header.authority,
    uniqueId: header.uniqueId?.toString('hex'),
    ssl: header.ssl && { ...header.ssl, subTlvs: header.ssl.subTlvs.map((t) => [t.type, t.value.toString('hex')]) },
  };
}

/** Every byte view reachable from `root` through its properties (private ones included). */
function reachableViews(root: unknown): ArrayBufferView[] {
  const views: ArrayBufferView[] = [];
  const seen = new Set<unknown>();
  const visit = (value: unknown): void => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return;
    seen.add(value);
    if (ArrayBuffer.isView(value)) {
      views.push(value);
      return;
    }
    for (const key of Reflect.ownKeys(value)) visit((value as Record<PropertyKey, unknown>)[key]);
  };
  visit(root);
  return views;
}

function withPayload(header: Buffer): Buffer {
  return Buffer.concat([header, Buffer.alloc(PAYLOAD_LENGTH, 0x61)]);
}

function decodeHeader(chunk: Buffer): IProxyHeader {
  const result = ProxyProtocolParser.decode(chunk, { maxHeaderSize: 8192 });
  assert.equal(result.status, 'complete');
  return (result as { header: IProxyHeader }).header;
}

function decoderHeader(chunk: Buffer): IProxyHeader {
  const decoder = new ProxyProtocolDecoder({ maxHeaderSize: 8192 });
  const result = decoder.push(chunk);
  assert.equal(result.status, 'complete');
  return (result as { header: IProxyHeader }).header;
}

describe('a parsed header owns its bytes and never pins the chunk it came in (#10.6)', () => {
  for (const [what, header] of HEADERS) {
    const expected = snapshot(decodeHeader(Buffer.from(header)));
    for (const [how, read] of [['decode()', decodeHeader], ['the incremental decoder', decoderHeader]] as const) {
      it(`keeps the addresses and TLVs of ${what} from ${how} when the caller overwrites its chunk`, () => {
        const chunk = withPayload(header);
        const parsed = read(chunk);
        chunk.fill(0xff);
        assert.deepEqual(snapshot(parsed), expected);
      });

      it(`retains from ${what} via ${how} no buffer larger than the header itself`, () => {
        const chunk = withPayload(header);
        const parsed = read(chunk);
        snapshot(parsed); // decode every lazy part, so whatever it caches is checked too
        for (const view of reachableViews(parsed)) {
          assert.notEqual(view.buffer, chunk.buffer, 'a view of the chunk');
          assert.ok(view.buffer.byteLength <= header.length, `holds a ${view.buffer.byteLength}-byte buffer for a ${header.length}-byte header`);
        }
      });
    }
  }

  it('keeps a header split across chunks intact when the caller reuses each chunk right after pushing it', () => {
    for (const [what, header] of HEADERS) {
      const expected = snapshot(decodeHeader(Buffer.from(header)));
      for (let cut = 1; cut < header.length; cut++) {
        const decoder = new ProxyProtocolDecoder({ maxHeaderSize: 8192 });
        const first = Buffer.from(header.subarray(0, cut));
        assert.equal(decoder.push(first).status, 'incomplete');
        first.fill(0xff);
        const result = decoder.push(Buffer.from(header.subarray(cut)));
        assert.equal(result.status, 'complete', `${what} cut at ${cut}`);
        assert.deepEqual(snapshot((result as { header: IProxyHeader }).header), expected, `${what} cut at ${cut}`);
      }
    }
  });

  it('lets the garbage collector free the chunk while the header is still in use', async () => {
    for (const [what, header] of HEADERS) {
      let chunk: Buffer | null = withPayload(header);
      const chunkMemory = new WeakRef(chunk.buffer);
      const parsed = decodeHeader(chunk);
      chunk = null;
      await nextTurn();
      collectGarbage();
      assert.equal(chunkMemory.deref(), undefined, `the ${what} header keeps its ${PAYLOAD_LENGTH}-byte chunk alive`);
      assert.ok(parsed.version > 0, 'the header is still in use');
    }
  });
});

/** The 16 bytes as eight groups, each with four digits, upper case: legal, and far from RFC 5952. */
function paddedUpperCase(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').toUpperCase().match(/.{4}/g)?.join(':') ?? '';
}

/** The 16 bytes as eight groups without leading zeros and without "::". */
function uncompressed(bytes: Uint8Array): string {
  return Array.from({ length: 8 }, (_, g) => ((bytes[g * 2] << 8) | bytes[g * 2 + 1]).toString(16)).join(':');
}

function sourceAddress(input: Buffer): string {
  const source = decodeHeader(input).source;
  assert.ok(source !== null && 'address' in source);
  return source.address;
}

describe('v1 TCP6 addresses come back in one spelling, RFC 5952 (#10.9)', () => {
  it('gives every spelling of the same 128 bits the text a v2 header with those bits gives', () => {
    // Zero groups are common in real addresses; bias the bytes towards them.
    const addressBytes = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })), { minLength: 16, maxLength: 16 }).map((a) => Uint8Array.from(a));
    fc.assert(
      fc.property(addressBytes, (bytes) => {
        const hex = Buffer.from(bytes).toString('hex');
        const canonical = sourceAddress(v2(0x21, 0x21, hex + hex + '00010002'));
        // An independent RFC 5952 serializer (WHATWG URL), which writes mapped addresses in hex.
        if (!canonical.startsWith('::ffff:')) assert.equal(canonical, new URL(`http://[${paddedUpperCase(bytes)}]/`).hostname.slice(1, -1));
        for (const written of [paddedUpperCase(bytes), uncompressed(bytes), canonical]) {
          assert.equal(sourceAddress(Buffer.from(`PROXY TCP6 ${written} ${written} 1 2\r\n`)), canonical, written);
        }
      }),
      { numRuns: 500 },
    );
  });
});

const SRC4 = { address: '192.168.0.1', port: 56324 };
const DST4 = { address: '10.0.0.1', port: 443 };

function generateV2With(tlvs: ITlv[]): Buffer {
  return ProxyProtocolParser.generate({ source: SRC4, destination: DST4 }, { version: 2, tlvs });
}

/** The CRC32C TLV of a header HAProxy sent: valid there, stale anywhere else. */
function receivedCrc32cTlv(): ITlv {
  const tlv = decodeHeader(HAPROXY_CAPTURES.sendProxyV2AllOptions).getTlv(0x03);
  assert.ok(tlv !== undefined);
  return tlv;
}

describe('generate() writes only what decode() accepts (#10.10)', () => {
  const refused: Array<[string, () => ITlv[]]> = [
    ['a CRC32C TLV copied from a received header', () => [receivedCrc32cTlv()]],
    ['a CRC32C TLV of the right size', () => [{ type: 0x03, value: Buffer.alloc(4) }]],
    ['a 129-byte UNIQUE_ID', () => [{ type: 0x05, value: Buffer.alloc(129, 0x61) }]],
    ['a 2-byte SSL TLV', () => [{ type: 0x20, value: Buffer.from([0x01, 0x00]) }]],
    ['an SSL TLV whose sub-TLV overruns it', () => [{ type: 0x20, value: Buffer.from('01' + '00000000' + '210009' + Buffer.from('TLS').toString('hex'), 'hex') }]],
    ['an SSL TLV with a dangling sub-TLV byte', () => [{ type: 0x20, value: Buffer.from('01' + '00000000' + '21', 'hex') }]],
    ['an AUTHORITY of 256 bytes (HAProxy refuses over 255)', () => [{ type: 0x02, value: Buffer.alloc(256, 0x61) }]],
    ['an empty AUTHORITY', () => [{ type: 0x02, value: Buffer.alloc(0) }]],
    ['a TLV type that is not a byte', () => [{ type: 0x100, value: Buffer.alloc(1) }]],
  ];
  for (const [what, tlvs] of refused) {
    it(`refuses ${what} with ERR_PP_BAD_INPUT`, () => {
      assert.equal(codeOf(() => generateV2With(tlvs())), 'ERR_PP_BAD_INPUT');
    });
  }

  it('refuses address text with a character beyond ASCII whose low byte is a digit (U+0131), rather than writing the digit', () => {
    for (const version of [1, 2] as const) {
      for (const address of ['\u0131.2.3.4', '2001:db8::\u0131']) {
        assert.equal(codeOf(() => ProxyProtocolParser.generate({ source: { address, port: 1 }, destination: DST4 }, { version })), 'ERR_PP_BAD_INPUT', `v${version} ${address}`);
      }
    }
  });

  it('refuses a header over 65551 bytes with ERR_PP_HEADER_TOO_LARGE', () => {
    assert.equal(codeOf(() => generateV2With([noopTlv(65535)])), 'ERR_PP_HEADER_TOO_LARGE');
    assert.equal(codeOf(() => generateV2With([noopTlv(40000), noopTlv(40000)])), 'ERR_PP_HEADER_TOO_LARGE');
    assert.equal(codeOf(() => ProxyProtocolParser.generate({}, { version: 2, tlvs: [noopTlv(65535 - 3 - 7 + 1)], crc32c: true })), 'ERR_PP_HEADER_TOO_LARGE');
  });

  it('still writes the valid neighbours of each refused case', () => {
    const out = generateV2With([
      { type: 0x05, value: Buffer.alloc(128, 0x61) },
      { type: 0x20, value: Buffer.from('01' + '00000000', 'hex') },
      { type: 0x02, value: Buffer.alloc(255, 0x61) },
    ]);
    assert.equal(ProxyProtocolParser.decode(out).status, 'complete');
  });

  it('returns nothing that decode() refuses, whatever the TLVs', () => {
    const ruledType = fc.constantFrom(0x01, 0x02, 0x03, 0x04, 0x05, 0x20, 0x21, 0x30, 0xea, 0xee, 0xe0);
    const length = fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 120, max: 300 }));
    const sslValue = fc.array(fc.oneof(fc.constant(0), fc.constant(3), fc.integer({ min: 0, max: 255 })), { maxLength: 24 });
    const tlv = fc.oneof(
      fc.record({ type: fc.oneof(ruledType, fc.integer({ min: 0, max: 255 })), value: length.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })) }),
      fc.record({ type: fc.constant(0x20), value: sslValue.map((a) => Uint8Array.from(a)) }),
    ).map((t): ITlv => ({ type: t.type, value: Buffer.from(t.value) }));
    fc.assert(
      fc.property(fc.array(tlv, { maxLength: 6 }), fc.boolean(), (tlvs, crc) => {
        let out: Buffer;
        try {
          out = ProxyProtocolParser.generate({ source: SRC4, destination: DST4 }, { version: 2, tlvs, crc32c: crc });
        } catch (err) {
          assert.ok(err instanceof ProxyProtocolError && err.code === 'ERR_PP_BAD_INPUT', `unexpected ${String(err)}`);
          return;
        }
        const result = ProxyProtocolParser.decode(out, { maxHeaderSize: 65551 });
        assert.equal(result.status, 'complete');
        assert.equal((result as { consumed: number }).consumed, out.length);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('the five bytes "PROXY" identify a v1 header (#10.11, spec 2.2)', () => {
  it('detects a v1 signature whatever follows "PROXY", so an untrusted peer cannot slip one past', () => {
    for (const text of ['PROXY TCP4 ', 'PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'PROXYTCP4', 'PROXY\r\n', 'PROXY']) {
      assert.equal(ProxyProtocolParser.detect(Buffer.from(text)), 'v1', JSON.stringify(text));
    }
  });

  it('waits on a prefix of "PROXY" and lets anything else through as data', () => {
    for (const text of ['P', 'PR', 'PRO', 'PROX']) assert.equal(ProxyProtocolParser.detect(Buffer.from(text)), 'incomplete', text);
    for (const text of ['PROXz', 'proxy TCP4', 'PRO Y', 'GET / HTTP/1.1']) assert.equal(ProxyProtocolParser.detect(Buffer.from(text)), 'none', text);
  });

  it('refuses "PROXY" followed by a tab from a trusted peer as ERR_PP_V1_MALFORMED, however it is split', () => {
    const input = Buffer.from('PROXY\tTCP4 192.168.0.1 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n');
    assert.equal(codeOf(() => ProxyProtocolParser.decode(input)), 'ERR_PP_V1_MALFORMED');
    for (let cut = 1; cut < input.length; cut++) {
      const decoder = new ProxyProtocolDecoder();
      assert.equal(codeOf(() => [decoder.push(input.subarray(0, cut)), decoder.push(input.subarray(cut))]), 'ERR_PP_V1_MALFORMED', `cut at ${cut}`);
    }
  });
});

describe('protocols/ layers: one concern per file, shared parts below the protocols (#11)', () => {
  /** Relative imports of a .ts file, resolved to repository paths. */
  function importsOf(file: string): string[] {
    const text = fs.readFileSync(file, 'utf8');
    return [...text.matchAll(/^(?:import|export)[^;]*?from '(\.[^']+)'/gms)].map((m) => path.join(path.dirname(file), m[1].replace(/\.js$/, '.ts')));
  }

  it('keeps the modules every protocol shares (errors, addresses, ASCII) free of any one protocol', () => {
    const shared = fs.readdirSync('ts/protocols').filter((f) => f.endsWith('.ts')).map((f) => path.join('ts/protocols', f));
    for (const file of shared) {
      for (const target of importsOf(file)) assert.equal(path.dirname(target), 'ts/protocols', `${file} imports ${target}`);
    }
  });

  it('keeps everything under protocols/ importing only protocols/', () => {
    const files = fs.readdirSync('ts/protocols', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join('ts/protocols', f));
    for (const file of files) {
      for (const target of importsOf(file)) assert.ok(target.startsWith('ts/protocols/'), `${file} imports ${target}`);
    }
  });

  it('builds a ProxyHeader from one object of named fields', () => {
    const fields = { version: 2, command: 'PROXY', family: 'INET', transport: 'STREAM', length: 28, tlvArea: null } as const;
    const header = new ProxyHeader({ ...fields, endpoints: new IPv4Endpoints(0xc0a80001, 0x0a000001, 56324, 443) });
    assert.deepEqual([header.source, header.destination, header.length, header.tlvs], [{ address: '192.168.0.1', port: 56324 }, { address: '10.0.0.1', port: 443 }, 28, []]);
    const ipv6 = Uint8Array.from({ length: 32 }, (_, i) => (i === 15 ? 1 : i === 31 ? 2 : 0));
    const header6 = new ProxyHeader({ ...fields, family: 'INET6', length: 52, endpoints: new IPv6Endpoints(ipv6, 1, 2) });
    assert.deepEqual([header6.source, header6.destination], [{ address: '::1', port: 1 }, { address: '::2', port: 2 }]);
    const unix = new ProxyHeader({ ...fields, family: 'UNIX', length: 232, endpoints: new GivenEndpoints({ path: '/a' }, { path: '/b' }) });
    assert.deepEqual([unix.source, unix.destination], [{ path: '/a' }, { path: '/b' }]);
    const local = new ProxyHeader({ ...fields, command: 'LOCAL', endpoints: null });
    assert.deepEqual([local.source, local.destination, local.toProxyInfo().protocol], [null, null, 'UNKNOWN']);
  });
});

describe('v1 lines, valid or broken, give one outcome however they are split', () => {
  it('reads exactly the TCP4 addresses node:net calls IPv4 (no leading zeros), with their value', () => {
    const text = fc.oneof(fc.ipV4(), fc.stringMatching(/^[0-9.]{0,18}$/), fc.ipV4().map((a) => a.replace(/\b(\d)/, '0$1')));
    fc.assert(
      fc.property(text, (address) => {
        const line = Buffer.from(`PROXY TCP4 ${address} 1.2.3.4 1 2\r\n`);
        const result = outcome(() => ProxyProtocolParser.decode(line));
        if (net.isIPv4(address)) assert.deepEqual((result as { source: unknown }).source, { address, port: 1 });
        else assert.equal(result, address === '' ? 'ERR_PP_V1_MALFORMED' : 'ERR_PP_V1_BAD_ADDRESS', address);
      }),
      { numRuns: 3000 },
    );
  });

  /** What decoding `input` came to: the header's values, "incomplete", "none", or the error code. */
  function outcome(run: () => DecodeResult): unknown {
    try {
      const result = run();
      if (result.status !== 'complete') return result.status;
      return { consumed: result.consumed, source: result.header.source, destination: result.header.destination, family: result.header.family };
    } catch (err) {
      assert.ok(err instanceof ProxyProtocolError, `threw ${String(err)}`);
      return err.code;
    }
  }

  function byteByByte(input: Buffer): DecodeResult {
    const decoder = new ProxyProtocolDecoder();
    let result: DecodeResult = { status: 'incomplete' };
    for (let i = 0; i < input.length && result.status === 'incomplete'; i++) result = decoder.push(input.subarray(i, i + 1));
    return result;
  }

  it('decodes mutated lines to the same header or the same code, whole or byte by byte', () => {
    const lines = ['PROXY TCP4 192.168.0.1 10.0.0.1 56324 443\r\n', 'PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 65535\r\n', 'PROXY UNKNOWN x y\r\n'];
    const alphabet = fc.constantFrom(' ', '\r', '\n', '0', '9', '.', ':', 'a', 'F', '\t', '\0', '-', 'PROXY ');
    const edit = fc.record({ at: fc.nat(), remove: fc.integer({ min: 0, max: 3 }), insert: fc.array(alphabet, { maxLength: 3 }).map((a) => a.join('')) });
    fc.assert(
      fc.property(fc.constantFrom(...lines), fc.array(edit, { maxLength: 3 }), fc.constantFrom('', 'GET /'), (line, edits, payload) => {
        let text = line;
        for (const e of edits) {
          const at = e.at % (text.length + 1);
          text = text.slice(0, at) + e.insert + text.slice(at + e.remove);
        }
        const input = Buffer.from(text + payload, 'latin1');
        const whole = outcome(() => ProxyProtocolParser.decode(input));
        const split = outcome(() => byteByByte(input));
        if (whole === 'incomplete') assert.ok(split === 'incomplete', `${JSON.stringify(text)}: ${JSON.stringify(split)}`);
        else assert.deepEqual(split, whole, JSON.stringify(text));
      }),
      { numRuns: 3000 },
    );
  });
});
