import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
// The protocol layer directly: these tests need nothing of the proxy built on it.
import { ProxyProtocolError } from '../ts/protocols/errors.js';
import {
  ProxyProtocolDecoder,
  ProxyProtocolParser,
  alpnTlv,
  authorityTlv,
  awsVpceTlv,
  azureLinkIdTlv,
  crc32c,
  gcpPscTlv,
  netnsTlv,
  noopTlv,
  sslTlv,
  uniqueIdTlv,
} from '../ts/protocols/proxy/index.js';
import type { DecodeResult, IProxyHeader } from '../ts/protocols/proxy/index.js';
import { codeOf as errorCodeOf } from './helpers/error-code.js';
import { type IExpectedHeader, invalidVectors, notHeaders, v2, validVectors } from './vectors/proxy-protocol.js';

const codeOf = (fn: () => unknown): string => errorCodeOf(fn, ProxyProtocolError);

function describeHeader(header: IProxyHeader, expected: IExpectedHeader): Record<string, unknown> {
  const actual: Record<string, unknown> = {};
  for (const key of Object.keys(expected) as Array<keyof IExpectedHeader>) {
    if (key === 'tlvTypes') actual.tlvTypes = header.tlvs.map((t) => t.type);
    else if (key === 'uniqueId') actual.uniqueId = header.uniqueId?.toString('latin1');
    else if (key === 'ssl') {
      const ssl = header.ssl as unknown as Record<string, unknown>;
      actual.ssl = Object.fromEntries(Object.keys(expected.ssl as object).map((k) => [k, ssl?.[k]]));
    } else actual[key] = (header as unknown as Record<string, unknown>)[key];
  }
  return actual;
}


/** Feeds `input` to a fresh decoder in pieces cut at `cuts`; returns the first non-incomplete result. */
function feed(input: Buffer, cuts: number[]): { result: DecodeResult; decoder: ProxyProtocolDecoder; pushed: number } {
  const decoder = new ProxyProtocolDecoder();
  let start = 0;
  let result: DecodeResult = { status: 'incomplete' };
  for (const cut of [...cuts, input.length]) {
    if (cut <= start) continue;
    result = decoder.push(input.subarray(start, cut));
    start = cut;
    if (result.status !== 'incomplete') break;
  }
  return { result, decoder, pushed: start };
}

describe('valid headers decode to the values they carry', () => {
  for (const vector of validVectors) {
    it(`decodes ${vector.name}`, () => {
      const result = ProxyProtocolParser.decode(vector.input);
      assert.equal(result.status, 'complete');
      if (result.status !== 'complete') return;
      assert.equal(result.consumed, vector.consumed);
      assert.deepEqual(describeHeader(result.header, vector.expected), vector.expected);
    });
  }
});

describe('the decoder gives the same result whatever the split', () => {
  for (const vector of validVectors) {
    it(`decodes ${vector.name} split at every offset and byte by byte`, () => {
      const payload = vector.input.subarray(vector.consumed);
      const splits: number[][] = [];
      for (let i = 1; i < vector.input.length; i++) splits.push([i]);
      splits.push(Array.from({ length: vector.input.length }, (_, i) => i + 1));
      splits.push([1, 5, 6, 12, 13, 14, 15, 16]);
      for (const cuts of splits) {
        const { result, decoder } = feed(vector.input, cuts);
        assert.equal(result.status, 'complete', `cuts ${cuts.slice(0, 3)}`);
        if (result.status !== 'complete') return;
        assert.deepEqual(describeHeader(result.header, vector.expected), vector.expected);
        // What follows the header is handed on untouched, across whatever chunk it arrived in.
        const cut = cuts.find((c) => c >= vector.consumed) ?? vector.input.length;
        assert.deepEqual(decoder.remaining, vector.input.subarray(vector.consumed, Math.max(cut, vector.consumed)));
        assert.ok(payload.subarray(0, decoder.remaining.length).equals(decoder.remaining));
      }
    });
  }
});

describe('invalid headers are refused with a stable code', () => {
  for (const vector of invalidVectors) {
    it(`refuses ${vector.name} with ${vector.code}`, () => {
      assert.equal(codeOf(() => ProxyProtocolParser.decode(vector.input)), vector.code);
      assert.equal(codeOf(() => feed(vector.input, Array.from({ length: vector.input.length }, (_, i) => i + 1))), vector.code, 'byte by byte');
    });
  }

  for (const [what, input] of notHeaders) {
    it(`reports ${what} as no header, keeping every byte`, () => {
      assert.equal(ProxyProtocolParser.decode(input).status, 'none');
      const { result, decoder, pushed } = feed(input, [1, 2, 3]);
      assert.equal(result.status, 'none');
      assert.deepEqual(decoder.remaining, input.subarray(0, pushed), 'every byte pushed is handed back');
    });
  }

  it('reports a signature prefix as incomplete', () => {
    for (const prefix of ['P', 'PROX', 'PROXY', 'PROXY ', 'PROXY TCP4 1.2.3.4']) assert.equal(ProxyProtocolParser.decode(Buffer.from(prefix)).status, 'incomplete');
    for (let n = 1; n < 16; n++) assert.equal(ProxyProtocolParser.decode(v2(0x21, 0x11, '').subarray(0, n)).status, 'incomplete');
  });

  it('refuses a version that is switched off', () => {
    assert.equal(codeOf(() => ProxyProtocolParser.decode(validVectors[0].input, { allowV1: false })), 'ERR_PP_VERSION_DISABLED');
    assert.equal(codeOf(() => ProxyProtocolParser.decode(v2(0x21, 0x00, ''), { allowV2: false })), 'ERR_PP_VERSION_DISABLED');
  });

  it('honours a larger maxHeaderSize for headers with big TLVs', () => {
    const big = v2(0x21, 0x11, 'c0a80001c0a8000bdc0401bb' + '040bb8' + '00'.repeat(3000));
    assert.equal(codeOf(() => ProxyProtocolParser.decode(big, { maxHeaderSize: 2048 })), 'ERR_PP_HEADER_TOO_LARGE');
    assert.equal(ProxyProtocolParser.decode(big, { maxHeaderSize: 8192 }).status, 'complete');
  });
});

describe('every value of the v2 version/command and family/transport bytes', () => {
  const validFamilies = new Set([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32]);
  const body = '00'.repeat(216);
  it('accepts exactly the seven valid family/transport bytes', () => {
    for (let byte = 0; byte < 256; byte++) {
      const code = codeOf(() => ProxyProtocolParser.decode(v2(0x21, byte, body)));
      assert.equal(code, validFamilies.has(byte) ? 'no error' : 'ERR_PP_V2_BAD_FAMILY', `family byte 0x${byte.toString(16)}`);
    }
  });
  it('accepts version 2 with LOCAL or PROXY only', () => {
    for (let byte = 0; byte < 256; byte++) {
      const expected = byte >> 4 !== 2 ? 'ERR_PP_V2_BAD_VERSION' : (byte & 0xf) > 1 ? 'ERR_PP_V2_BAD_COMMAND' : 'no error';
      assert.equal(codeOf(() => ProxyProtocolParser.decode(v2(byte, 0x11, body))), expected, `version/command byte 0x${byte.toString(16)}`);
    }
  });
});

describe('SmartProxy 21-compatible parse()', () => {
  it('returns proxyInfo and the bytes after the header', () => {
    const { proxyInfo, remainingData } = ProxyProtocolParser.parse(Buffer.from('PROXY TCP4 10.1.2.3 10.0.0.1 5555 443\r\nhello'));
    assert.deepEqual(proxyInfo, { protocol: 'TCP4', sourceIP: '10.1.2.3', sourcePort: 5555, destinationIP: '10.0.0.1', destinationPort: 443 });
    assert.equal(remainingData.toString(), 'hello');
  });
  it('returns null and the whole input for no header or part of one', () => {
    for (const text of ['GET /', 'PROXY TCP4 1.2']) {
      const input = Buffer.from(text);
      const { proxyInfo, remainingData } = ProxyProtocolParser.parse(input);
      assert.equal(proxyInfo, null);
      assert.equal(remainingData, input);
    }
  });
  it('throws ProxyProtocolError for an invalid header', () => {
    assert.throws(() => ProxyProtocolParser.parse(Buffer.from('PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n')), ProxyProtocolError);
  });
  it('summarises UNKNOWN and LOCAL as protocol UNKNOWN', () => {
    assert.equal(ProxyProtocolParser.parse(Buffer.from('PROXY UNKNOWN\r\n')).proxyInfo?.protocol, 'UNKNOWN');
    assert.equal(ProxyProtocolParser.parse(v2(0x20, 0x00, '')).proxyInfo?.protocol, 'UNKNOWN');
  });
});

describe('generation', () => {
  const src4 = { address: '203.0.113.7', port: 40000 };
  const dst4 = { address: '198.51.100.1', port: 443 };
  const src6 = { address: '2001:db8::7', port: 40000 };
  const dst6 = { address: '2001:db8::1', port: 443 };
  const table: Array<[string, Parameters<typeof ProxyProtocolParser.generate>, string]> = [
    ['v1 TCP4', [{ source: src4, destination: dst4 }, { version: 1 }], 'PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n'],
    ['v1 TCP6', [{ source: src6, destination: dst6 }, { version: 1 }], 'PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n'],
    ['v1 TCP6 in RFC 5952 form whatever the spelling given', [{ source: { address: '2001:0DB8:0:0::0001', port: 1 }, destination: { address: '2001:db8:0:0:0:0:0:2', port: 2 } }, { version: 1 }], 'PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n'],
    ['v1 mixed families as short UNKNOWN', [{ source: src4, destination: dst6 }, { version: 1 }], 'PROXY UNKNOWN\r\n'],
    ['v1 both IPv4-mapped as TCP4', [{ source: { address: '::ffff:203.0.113.7', port: 1 }, destination: { address: '::FFFF:198.51.100.1', port: 2 } }, { version: 1 }], 'PROXY TCP4 203.0.113.7 198.51.100.1 1 2\r\n'],
    ['v1 LOCAL as short UNKNOWN', [{ command: 'LOCAL' }, { version: 1 }], 'PROXY UNKNOWN\r\n'],
    ['v1 from IProxyInfo', [{ protocol: 'TCP4', sourceIP: '1.2.3.4', sourcePort: 5, destinationIP: '6.7.8.9', destinationPort: 10 }, {}], 'PROXY TCP4 1.2.3.4 6.7.8.9 5 10\r\n'],
    ['v2 INET', [{ source: src4, destination: dst4 }, { version: 2 }], '0d0a0d0a000d0a515549540a2111000ccb007107c6336401' + '9c4001bb'],
    ['v2 mixed families as IPv4-mapped INET6', [{ source: src4, destination: dst6 }, { version: 2 }], '0d0a0d0a000d0a515549540a21210024' + '00000000000000000000ffffcb007107' + '20010db8000000000000000000000001' + '9c4001bb'],
    ['v2 both mapped as INET', [{ source: { address: '::ffff:203.0.113.7', port: 40000 }, destination: { address: '::ffff:198.51.100.1', port: 443 } }, { version: 2 }], '0d0a0d0a000d0a515549540a2111000ccb007107c63364019c4001bb'],
    ['v2 LOCAL', [{ command: 'LOCAL' }, { version: 2 }], '0d0a0d0a000d0a515549540a20000000'],
    ['v2 PROXY UNSPEC', [{}, { version: 2 }], '0d0a0d0a000d0a515549540a21000000'],
  ];
  for (const [what, args, expected] of table) {
    it(`writes ${what}`, () => {
      const out = ProxyProtocolParser.generate(...args);
      assert.equal(expected.startsWith('0d0a') ? out.toString('hex') : out.toString('latin1'), expected);
    });
  }

  it('round-trips UNIX paths and every TLV builder, with CRC32C computed last', () => {
    const tlvs = [
      alpnTlv('h2'),
      authorityTlv('api.example.com'),
      uniqueIdTlv('conn-1'),
      netnsTlv('blue'),
      noopTlv(3),
      sslTlv({ version: 'TLSv1.3', cn: 'client', cipher: 'TLS_AES_128_GCM_SHA256', sigAlg: 'SHA256', keyAlg: 'EC256', subTlvs: [{ type: 0x28, value: Buffer.from('der') }] }),
      awsVpceTlv('vpce-123'),
      azureLinkIdTlv(7),
      gcpPscTlv(99n),
    ];
    const out = ProxyProtocolParser.generate({ source: { path: '/run/a.sock' }, destination: { path: '/run/b.sock' } }, { version: 2, tlvs, crc32c: true });
    const result = ProxyProtocolParser.decode(out);
    assert.equal(result.status, 'complete');
    if (result.status !== 'complete') return;
    const h = result.header;
    assert.deepEqual([h.family, h.source, h.destination], ['UNIX', { path: '/run/a.sock' }, { path: '/run/b.sock' }]);
    assert.deepEqual([h.alpn, h.authority, h.uniqueId?.toString(), h.netns, h.awsVpceId, h.azureLinkId, h.gcpPscConnectionId], ['h2', 'api.example.com', 'conn-1', 'blue', 'vpce-123', 7, 99n]);
    assert.deepEqual({ ...h.ssl, subTlvs: h.ssl?.subTlvs.map((t) => t.type) }, { client: 1, verify: 0, version: 'TLSv1.3', cn: 'client', cipher: 'TLS_AES_128_GCM_SHA256', sigAlg: 'SHA256', keyAlg: 'EC256', subTlvs: [0x21, 0x22, 0x23, 0x24, 0x25, 0x28] });
    assert.equal(h.tlvs.at(-1)?.type, 0x03);
    assert.equal(typeof h.crc32c, 'number');
  });

  it('refuses what a receiver would refuse', () => {
    assert.equal(codeOf(() => authorityTlv('a'.repeat(256))), 'ERR_PP_BAD_INPUT');
    assert.equal(codeOf(() => uniqueIdTlv(Buffer.alloc(129))), 'ERR_PP_BAD_INPUT');
    assert.equal(codeOf(() => ProxyProtocolParser.generate({ source: src4, destination: dst4 }, { version: 2, tlvs: [noopTlv(65535)] })), 'ERR_PP_HEADER_TOO_LARGE');
    assert.equal(codeOf(() => ProxyProtocolParser.generate({ source: { address: 'not-an-ip', port: 1 }, destination: dst4 }, { version: 2 })), 'ERR_PP_BAD_INPUT');
    assert.equal(codeOf(() => ProxyProtocolParser.generate({ source: { ...src4, port: 70000 }, destination: dst4 }, { version: 1 })), 'ERR_PP_BAD_INPUT');
    assert.equal(codeOf(() => ProxyProtocolParser.generate({ source: src4 }, { version: 2 })), 'ERR_PP_BAD_INPUT');
  });

  it('fits a header right at the 65551-byte maximum', () => {
    const out = ProxyProtocolParser.generate({ source: src4, destination: dst4 }, { version: 2, tlvs: [noopTlv(65535 - 12 - 3)] });
    assert.equal(out.length, 65551);
    assert.equal(ProxyProtocolParser.decode(out, { maxHeaderSize: 65551 }).status, 'complete');
  });
});

describe('CRC32C', () => {
  it('matches the check vector crc32c("123456789") = 0xE3069283', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  });
});

describe('properties', () => {
  const ipv4 = fc.ipV4();
  const ipv6 = fc.ipV6();
  const port = fc.integer({ min: 0, max: 65535 });
  const tlvArb = fc.record({ type: fc.integer({ min: 0x04, max: 0xff }).filter((t) => t !== 0x05 && t !== 0x20 && t !== 0x03), value: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) });

  it('generate then decode is the identity for IPv4, IPv6 and UNIX with random TLVs', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({ source: fc.record({ address: ipv4, port }), destination: fc.record({ address: ipv4, port }) }),
          fc.record({ source: fc.record({ address: ipv6, port }), destination: fc.record({ address: ipv6, port }) }),
          fc.record({ source: fc.record({ path: fc.string({ minLength: 1, maxLength: 100 }).map((s) => s.replace(/\0/g, '')).filter((s) => s.length > 0) }), destination: fc.record({ path: fc.constant('/x') }) }),
        ),
        fc.array(tlvArb, { maxLength: 8 }),
        fc.boolean(),
        fc.constantFrom(1, 2),
        (init, tlvs, withCrc, version) => {
          const isUnix = 'path' in init.source;
          if (version === 1 && isUnix) return;
          const out = ProxyProtocolParser.generate(init as never, { version: version as 1 | 2, tlvs: version === 2 ? tlvs : undefined, crc32c: version === 2 && withCrc });
          const result = ProxyProtocolParser.decode(out, { maxHeaderSize: 65551 });
          assert.equal(result.status, 'complete');
          if (result.status !== 'complete') return;
          assert.equal(result.consumed, out.length);
          if (isUnix) {
            assert.deepEqual(result.header.source, { path: (init.source as { path: string }).path });
            return;
          }
          const norm = (a: string) => ProxyProtocolParser.decode(ProxyProtocolParser.generate({ source: { address: a, port: 1 }, destination: { address: a, port: 1 } }, { version: 2 }));
          const expectedSource = (norm((init.source as { address: string }).address) as { header: IProxyHeader }).header.source;
          if (version === 2) assert.deepEqual(result.header.source, { ...(expectedSource as object), port: (init.source as { port: number }).port });
          else assert.equal((result.header.source as { port: number }).port, (init.source as { port: number }).port);
          if (version === 2) assert.deepEqual(result.header.tlvs.slice(0, tlvs.length).map((t) => [t.type, t.value.toString('hex')]), tlvs.map((t) => [t.type, t.value.toString('hex')]));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('random bytes only ever raise ProxyProtocolError, never over-consume, never over-buffer', () => {
    const maxHeaderSize = 512;
    const prefixes = fc.constantFrom(Buffer.alloc(0), Buffer.from('PROXY '), Buffer.from('PROXY TCP4 '), Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from('0d0a0d0a000d0a515549540a21', 'hex'), Buffer.from('0d0a0d0a000d0a515549540a2111', 'hex'));
    fc.assert(
      fc.property(prefixes, fc.uint8Array({ maxLength: 700 }), fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }), (prefix, bytes, steps) => {
        const input = Buffer.concat([prefix, Buffer.from(bytes)]);
        const decoder = new ProxyProtocolDecoder({ maxHeaderSize });
        let off = 0;
        try {
          for (const step of [...steps, input.length]) {
            const chunk = input.subarray(off, off + step);
            off += chunk.length;
            const result = decoder.push(chunk);
            assert.ok(decoder.bufferedLength <= maxHeaderSize);
            if (result.status === 'complete') {
              assert.ok(result.consumed <= off);
              return;
            }
            if (result.status === 'none') return;
            if (off >= input.length) return;
          }
        } catch (err) {
          assert.ok(err instanceof ProxyProtocolError, `unexpected ${String(err)}`);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
