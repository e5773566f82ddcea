/**
 * PROXY protocol test vectors as data: adding a case is adding a row.
 * Valid rows: input bytes → expected header fields and bytes consumed.
 * Invalid rows: input bytes → expected ProxyProtocolError code.
 */

/** Builds a v2 header: signature + version/command + family + length (computed unless given) + body. */
export function v2(versionCommand: number, family: number, bodyHex: string, length?: number): Buffer {
  const body = Buffer.from(bodyHex.replace(/\s+/g, ''), 'hex');
  const fixed = Buffer.from('0d0a0d0a000d0a515549540a000000', 'hex');
  const head = Buffer.alloc(16);
  fixed.copy(head);
  head[12] = versionCommand;
  head[13] = family;
  head.writeUInt16BE(length ?? body.length, 14);
  return Buffer.concat([head, body]);
}

export function tlv(type: number, valueHex: string): string {
  const value = valueHex.replace(/\s+/g, '');
  return type.toString(16).padStart(2, '0') + (value.length / 2).toString(16).padStart(4, '0') + value;
}

export const hex = (text: string): string => Buffer.from(text, 'latin1').toString('hex');

const INET_ADDRESSES = 'c0a80001 c0a8000b dc04 01bb'; // 192.168.0.1 → 192.168.0.11, 56324 → 443
const INET6_ADDRESSES = '20010db8000000000000000000000001 20010db8000000000000000000000002 1f90 0050';

export interface IExpectedHeader {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL';
  family: string;
  transport?: string;
  source: unknown;
  destination: unknown;
  tlvTypes?: number[];
  alpn?: string;
  authority?: string;
  uniqueId?: string;
  crc32c?: number;
  ssl?: Record<string, unknown>;
  netns?: string;
  awsVpceId?: string;
  azureLinkId?: number;
  gcpPscConnectionId?: bigint;
}

export interface IValidVector {
  name: string;
  input: Buffer;
  /** How many of the input bytes are the header (the rest is payload). */
  consumed: number;
  expected: IExpectedHeader;
}

const ip = (address: string, port: number) => ({ address, port });

/**
 * Real captures from HAProxy 2.6.12 on this machine (client bound to 127.0.0.2x, followed by the
 * payload "hello"): `server ... send-proxy`; `send-proxy-v2`; and `send-proxy-v2 proxy-v2-options
 * crc32c,unique-id,authority,ssl,cert-cn,ssl-cipher,cert-sig,cert-key` behind `bind ... ssl alpn h2`
 * with `unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid`.
 */
export const HAPROXY_CAPTURES = {
  sendProxy: Buffer.from('50524f58592054435034203132372e302e302e3233203132372e302e302e312034363130312031373030310d0a68656c6c6f', 'hex'),
  sendProxyV2: Buffer.from('0d0a0d0a000d0a515549540a2111000c7f0000187f000001afa3426b68656c6c6f', 'hex'),
  sendProxyV2AllOptions: Buffer.from(
    '0d0a0d0a000d0a515549540a211100a67f0000197f000001a1d7426a03000456c814870100026832020013636170747572652e6578616d706c652e636f6d05002e37463030303031393a413144375f37463030303030313a343236415f36423037314339435f303030323a304631392000440100000000210007544c5376312e33250005454332353624001165636473612d776974682d534841323536230016544c535f4145535f3235365f47434d5f53484133383468656c6c6f',
    'hex',
  ),
};

export const validVectors: IValidVector[] = [
  // v1
  { name: 'v1 TCP4', input: Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'), consumed: 47, expected: { version: 1, command: 'PROXY', family: 'INET', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443) } },
  { name: 'v1 TCP4 with payload after it', input: Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n'), consumed: 32, expected: { version: 1, command: 'PROXY', family: 'INET', source: ip('1.2.3.4', 1), destination: ip('5.6.7.8', 2) } },
  { name: 'v1 TCP4 ports 0 and 65535', input: Buffer.from('PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n'), consumed: 44, expected: { version: 1, command: 'PROXY', family: 'INET', source: ip('0.0.0.0', 0), destination: ip('255.255.255.255', 65535) } },
  { name: 'v1 TCP6', input: Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 8080 80\r\n'), consumed: 44, expected: { version: 1, command: 'PROXY', family: 'INET6', source: ip('2001:db8::1', 8080), destination: ip('2001:db8::2', 80) } },
  { name: 'v1 TCP6 with IPv4-mapped addresses', input: Buffer.from('PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n'), consumed: 36, expected: { version: 1, command: 'PROXY', family: 'INET6', source: ip('::ffff:10.0.0.1', 1), destination: ip('::1', 2) } },
  { name: 'v1 TCP6 longest form (104 bytes)', input: Buffer.from('PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n'), consumed: 104, expected: { version: 1, command: 'PROXY', family: 'INET6', source: ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65535), destination: ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65535) } },
  // TCP6 addresses in any legal spelling come back in RFC 5952 form (lower case, no leading zeros,
  // the longest zero run as "::", the first of equal runs, never one lone zero group).
  ...[
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:DB8::A', '2001:db8::a'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
    ['FE80::0:0:00AB:CDEF', 'fe80::ab:cdef'],
    ['::FFFF:10.0.0.1', '::ffff:10.0.0.1'],
    ['0:0:0:0:0:ffff:a00:1', '::ffff:10.0.0.1'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
  ].map(([written, canonical]): IValidVector => {
    const line = `PROXY TCP6 ${written} ${written} 1 2\r\n`;
    return { name: `v1 TCP6 ${written} as ${canonical}`, input: Buffer.from(line), consumed: line.length, expected: { version: 1, command: 'PROXY', family: 'INET6', source: ip(canonical, 1), destination: ip(canonical, 2) } };
  }),
  { name: 'v1 UNKNOWN short form', input: Buffer.from('PROXY UNKNOWN\r\n'), consumed: 15, expected: { version: 1, command: 'PROXY', family: 'UNSPEC', source: null, destination: null } },
  { name: 'v1 UNKNOWN ignores the rest of its line', input: Buffer.from('PROXY UNKNOWN ffff:: 1.2.3.4 x y\r\nrest'), consumed: 34, expected: { version: 1, command: 'PROXY', family: 'UNSPEC', source: null, destination: null } },
  { name: 'v1 from HAProxy send-proxy (capture)', input: HAPROXY_CAPTURES.sendProxy, consumed: 45, expected: { version: 1, command: 'PROXY', family: 'INET', source: ip('127.0.0.23', 46101), destination: ip('127.0.0.1', 17001) } },
  // v2
  { name: 'v2 PROXY TCP4', input: v2(0x21, 0x11, INET_ADDRESSES), consumed: 28, expected: { version: 2, command: 'PROXY', family: 'INET', transport: 'STREAM', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443), tlvTypes: [] } },
  { name: 'v2 PROXY UDP4', input: v2(0x21, 0x12, INET_ADDRESSES), consumed: 28, expected: { version: 2, command: 'PROXY', family: 'INET', transport: 'DGRAM', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443) } },
  { name: 'v2 PROXY TCP6', input: v2(0x21, 0x21, INET6_ADDRESSES), consumed: 52, expected: { version: 2, command: 'PROXY', family: 'INET6', transport: 'STREAM', source: ip('2001:db8::1', 8080), destination: ip('2001:db8::2', 80) } },
  { name: 'v2 PROXY TCP6 IPv4-mapped', input: v2(0x21, 0x21, '00000000000000000000ffff0a000001 00000000000000000000000000000001 0001 0002'), consumed: 52, expected: { version: 2, command: 'PROXY', family: 'INET6', source: ip('::ffff:10.0.0.1', 1), destination: ip('::1', 2) } },
  { name: 'v2 PROXY UNIX stream', input: v2(0x21, 0x31, hex('/var/run/src.sock').padEnd(216, '0') + hex('/var/run/dst.sock').padEnd(216, '0')), consumed: 232, expected: { version: 2, command: 'PROXY', family: 'UNIX', transport: 'STREAM', source: { path: '/var/run/src.sock' }, destination: { path: '/var/run/dst.sock' } } },
  { name: 'v2 PROXY UNSPEC has no addresses', input: v2(0x21, 0x00, ''), consumed: 16, expected: { version: 2, command: 'PROXY', family: 'UNSPEC', transport: 'UNSPEC', source: null, destination: null } },
  { name: 'v2 LOCAL with no addresses', input: v2(0x20, 0x00, ''), consumed: 16, expected: { version: 2, command: 'LOCAL', family: 'UNSPEC', source: null, destination: null } },
  { name: 'v2 LOCAL AWS NLB-style health check (INET addresses, non-zero length)', input: v2(0x20, 0x11, INET_ADDRESSES + tlv(0x04, '000000')), consumed: 34, expected: { version: 2, command: 'LOCAL', family: 'INET', source: null, destination: null, tlvTypes: [] } },
  { name: 'v2 LOCAL skips a block shorter than its family addresses', input: v2(0x20, 0x21, '00'), consumed: 17, expected: { version: 2, command: 'LOCAL', family: 'INET6', source: null, destination: null } },
  { name: 'v2 TLV ALPN and AUTHORITY', input: v2(0x21, 0x11, INET_ADDRESSES + tlv(0x01, hex('h2')) + tlv(0x02, hex('example.com'))), consumed: 47, expected: { version: 2, command: 'PROXY', family: 'INET', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443), tlvTypes: [1, 2], alpn: 'h2', authority: 'example.com' } },
  { name: 'v2 duplicate TLVs keep their order', input: v2(0x21, 0x11, INET_ADDRESSES + tlv(0x02, hex('a.example')) + tlv(0x04, '') + tlv(0x02, hex('b.example'))), consumed: 55, expected: { version: 2, command: 'PROXY', family: 'INET', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443), tlvTypes: [2, 4, 2], authority: 'a.example' } },
  { name: 'v2 UNIQUE_ID of 128 bytes', input: v2(0x21, 0x11, INET_ADDRESSES + tlv(0x05, '61'.repeat(128))), consumed: 159, expected: { version: 2, command: 'PROXY', family: 'INET', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443), uniqueId: 'a'.repeat(128) } },
  { name: 'v2 NETNS', input: v2(0x21, 0x11, INET_ADDRESSES + tlv(0x30, hex('blue'))), consumed: 35, expected: { version: 2, command: 'PROXY', family: 'INET', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443), netns: 'blue' } },
  { name: 'v2 SSL with sub-TLVs', input: v2(0x21, 0x11, INET_ADDRESSES + tlv(0x20, '07' + '00000000' + tlv(0x21, hex('TLSv1.3')) + tlv(0x22, hex('client.example')) + tlv(0x28, 'deadbeef'))), consumed: 70, expected: { version: 2, command: 'PROXY', family: 'INET', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443), ssl: { client: 7, verify: 0, version: 'TLSv1.3', cn: 'client.example' } } },
  { name: 'v2 AWS VPC endpoint id', input: v2(0x21, 0x11, INET_ADDRESSES + tlv(0xea, '01' + hex('vpce-08d2bf15fac5001c9'))), consumed: 54, expected: { version: 2, command: 'PROXY', family: 'INET', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443), awsVpceId: 'vpce-08d2bf15fac5001c9' } },
  { name: 'v2 Azure private link id', input: v2(0x21, 0x11, INET_ADDRESSES + tlv(0xee, '01' + '2a000000')), consumed: 36, expected: { version: 2, command: 'PROXY', family: 'INET', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443), azureLinkId: 42 } },
  { name: 'v2 GCP PSC connection id', input: v2(0x21, 0x11, INET_ADDRESSES + tlv(0xe0, '0000000000000102')), consumed: 39, expected: { version: 2, command: 'PROXY', family: 'INET', source: ip('192.168.0.1', 56324), destination: ip('192.168.0.11', 443), gcpPscConnectionId: 258n } },
  { name: 'v2 from HAProxy send-proxy-v2 (capture)', input: HAPROXY_CAPTURES.sendProxyV2, consumed: 28, expected: { version: 2, command: 'PROXY', family: 'INET', source: ip('127.0.0.24', 44963), destination: ip('127.0.0.1', 17003), tlvTypes: [] } },
  {
    name: 'v2 from HAProxy with crc32c,unique-id,authority,ssl (capture, checksum verified)',
    input: HAPROXY_CAPTURES.sendProxyV2AllOptions,
    consumed: 182,
    expected: {
      version: 2, command: 'PROXY', family: 'INET',
      source: ip('127.0.0.25', 41431), destination: ip('127.0.0.1', 17002),
      tlvTypes: [0x03, 0x01, 0x02, 0x05, 0x20],
      alpn: 'h2', authority: 'capture.example.com', uniqueId: '7F000019:A1D7_7F000001:426A_6B071C9C_0002:0F19', crc32c: 0x56c81487,
      ssl: { client: 1, verify: 0, version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', sigAlg: 'ecdsa-with-SHA256', keyAlg: 'EC256' },
    },
  },
];

export interface IInvalidVector {
  name: string;
  input: Buffer;
  code: string;
}

const bad = (name: string, input: string | Buffer, code: string): IInvalidVector => ({ name, input: typeof input === 'string' ? Buffer.from(input, 'latin1') : input, code });

/** A v2 header with a CRC32C TLV whose value is wrong by one. */
function corruptedCrc(): Buffer {
  const copy = Buffer.from(HAPROXY_CAPTURES.sendProxyV2AllOptions);
  copy[31] ^= 0x01;
  return copy;
}

export const invalidVectors: IInvalidVector[] = [
  // Spec 2.2: the five bytes "PROXY" identify v1, so whatever follows them must be a valid line.
  bad('v1 PROXY followed by a tab', 'PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 PROXY without its space', 'PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 PROXY then CRLF', 'PROXY\r\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 PROXY then a NUL byte', 'PROXY\0', 'ERR_PP_V1_MALFORMED'),
  bad('v1 double space', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 trailing space', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 missing field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 unknown protocol word', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 lower-case protocol word', 'PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 LF without CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 lone CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n', 'ERR_PP_V1_MALFORMED'),
  bad('v1 no CRLF within 107 bytes', 'PROXY TCP6 ' + 'f'.repeat(100), 'ERR_PP_V1_TOO_LONG'),
  bad('v1 leading zero in an octet', 'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n', 'ERR_PP_V1_BAD_ADDRESS'),
  bad('v1 octet over 255', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', 'ERR_PP_V1_BAD_ADDRESS'),
  bad('v1 three octets', 'PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n', 'ERR_PP_V1_BAD_ADDRESS'),
  bad('v1 IPv6 in TCP4', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n', 'ERR_PP_V1_BAD_ADDRESS'),
  bad('v1 IPv4 in TCP6 (nginx quirk)', 'PROXY TCP6 1.2.3.4 ::1 1 2\r\n', 'ERR_PP_V1_BAD_ADDRESS'),
  bad('v1 IPv6 zone id', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', 'ERR_PP_V1_BAD_ADDRESS'),
  ...['1::2::3', '12345::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7::8', ':1::2', '1::2:', '::1.2.3', '::ffff:1.2.3.4.5', '1.2.3.4::', 'g::1', '::1:'].map((text) =>
    bad(`v1 TCP6 address ${text}`, `PROXY TCP6 ${text} ::1 1 2\r\n`, 'ERR_PP_V1_BAD_ADDRESS'),
  ),
  bad('v1 port 65536', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', 'ERR_PP_V1_BAD_PORT'),
  bad('v1 port with leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n', 'ERR_PP_V1_BAD_PORT'),
  bad('v1 negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', 'ERR_PP_V1_BAD_PORT'),
  bad('v1 six-digit port', 'PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n', 'ERR_PP_V1_BAD_PORT'),
  bad('v2 version 1', v2(0x11, 0x11, INET_ADDRESSES), 'ERR_PP_V2_BAD_VERSION'),
  bad('v2 version 3', v2(0x31, 0x11, INET_ADDRESSES), 'ERR_PP_V2_BAD_VERSION'),
  bad('v2 command 2', v2(0x22, 0x11, INET_ADDRESSES), 'ERR_PP_V2_BAD_COMMAND'),
  bad('v2 command 15', v2(0x2f, 0x11, INET_ADDRESSES), 'ERR_PP_V2_BAD_COMMAND'),
  bad('v2 family 4', v2(0x21, 0x41, INET_ADDRESSES), 'ERR_PP_V2_BAD_FAMILY'),
  bad('v2 transport 3', v2(0x21, 0x13, INET_ADDRESSES), 'ERR_PP_V2_BAD_FAMILY'),
  bad('v2 UNSPEC family with STREAM transport', v2(0x21, 0x01, ''), 'ERR_PP_V2_BAD_FAMILY'),
  bad('v2 INET family with UNSPEC transport', v2(0x21, 0x10, INET_ADDRESSES), 'ERR_PP_V2_BAD_FAMILY'),
  bad('v2 INET length shorter than addresses', v2(0x21, 0x11, 'c0a80001c0a8000b'), 'ERR_PP_V2_LENGTH'),
  bad('v2 INET6 with INET-sized block', v2(0x21, 0x21, INET_ADDRESSES), 'ERR_PP_V2_LENGTH'),
  bad('v2 UNIX block too short', v2(0x21, 0x31, INET6_ADDRESSES), 'ERR_PP_V2_LENGTH'),
  bad('v2 TLV overruns the header', v2(0x21, 0x11, INET_ADDRESSES + '010005' + hex('h2')), 'ERR_PP_V2_TLV'),
  bad('v2 dangling TLV byte', v2(0x21, 0x11, INET_ADDRESSES + tlv(0x01, hex('h2')) + '01'), 'ERR_PP_V2_TLV'),
  bad('v2 two dangling TLV bytes', v2(0x21, 0x11, INET_ADDRESSES + '0100'), 'ERR_PP_V2_TLV'),
  bad('v2 CRC32C of length 3', v2(0x21, 0x11, INET_ADDRESSES + tlv(0x03, '000000')), 'ERR_PP_V2_TLV'),
  bad('v2 CRC32C wrong value', corruptedCrc(), 'ERR_PP_CRC32C_MISMATCH'),
  bad('v2 UNIQUE_ID of 129 bytes', v2(0x21, 0x11, INET_ADDRESSES + tlv(0x05, '61'.repeat(129))), 'ERR_PP_V2_TLV'),
  bad('v2 SSL TLV shorter than 5 bytes', v2(0x21, 0x11, INET_ADDRESSES + tlv(0x20, '0100')), 'ERR_PP_V2_TLV'),
  bad('v2 SSL sub-TLV overruns', v2(0x21, 0x11, INET_ADDRESSES + tlv(0x20, '01' + '00000000' + '210009' + hex('TLS'))), 'ERR_PP_V2_TLV'),
  bad('v2 header over the 4096-byte default bound', v2(0x21, 0x11, INET_ADDRESSES + tlv(0x04, '00'.repeat(4100))), 'ERR_PP_HEADER_TOO_LARGE'),
];

/** Inputs that can never become a header. */
export const notHeaders: Array<[string, Buffer]> = [
  ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\n')],
  ['a TLS ClientHello', Buffer.from('160301020001', 'hex')],
  ['a near-miss v2 signature', Buffer.from('0d0a0d0a000d0a515549540b', 'hex')],
  ['lower-case proxy', Buffer.from('proxy TCP4 ')],
];
