/**
 * npm run bench:parser — PROXY header parse/generate cost, ns/op, beside proxy-protocol-js,
 * @balena/proxy-protocol-parser and a hand-written minimal v2 IPv4 decode (the floor).
 * Ratios are within this one run; absolute numbers depend on the machine.
 */
import os from 'node:os';
import { createRequire } from 'node:module';
import { V1BinaryProxyProtocol, V1ProxyProtocol, V2ProxyProtocol } from 'proxy-protocol-js';
// The protocol layer directly: the bench measures the parser, not whatever else index.ts pulls in.
import { ProxyProtocolParser, alpnTlv, authorityTlv } from '../ts/protocols/proxy/index.js';
import { median, runInterleaved } from './micro.js';

const require = createRequire(import.meta.url);
const balena = require('@balena/proxy-protocol-parser') as { decode(buf: Buffer): unknown; v1_decode(b: Buffer): unknown; v2_decode(b: Buffer): unknown };

const v1Tcp4 = Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
/** Issue #12's case: a short TCP4 line followed by 64 bytes of payload, as one chunk from a socket. */
const v1Tcp4Payload = Buffer.concat([Buffer.from('PROXY TCP4 192.168.0.1 10.0.0.1 56324 443\r\n'), Buffer.alloc(64, 0x61)]);
const v1Tcp6 = Buffer.from('PROXY TCP6 2001:db8::1 2001:db8:0:0:1::2 56324 443\r\n');
const src4 = { address: '192.168.0.1', port: 56324 };
const dst4 = { address: '192.168.0.11', port: 443 };
const v2Ipv4 = ProxyProtocolParser.generate({ source: src4, destination: dst4 }, { version: 2 });
const v2Ipv6Tlvs = ProxyProtocolParser.generate(
  { source: { address: '2001:db8::1', port: 56324 }, destination: { address: '2001:db8::2', port: 443 } },
  { version: 2, tlvs: [alpnTlv('h2'), authorityTlv('api.example.com')] },
);
const v2Crc = ProxyProtocolParser.generate({ source: src4, destination: dst4 }, { version: 2, tlvs: [authorityTlv('api.example.com')], crc32c: true });

/** The floor: signature check + dotted quads + ports, nothing validated beyond the fixed bytes. */
function minimalV2Ipv4(b: Buffer): { src: string; dst: string; sport: number; dport: number } | null {
  if (b.length < 28 || b[0] !== 0x0d || b[11] !== 0x0a || b[12] !== 0x21 || b[13] !== 0x11) return null;
  return {
    src: `${b[16]}.${b[17]}.${b[18]}.${b[19]}`,
    dst: `${b[20]}.${b[21]}.${b[22]}.${b[23]}`,
    sport: (b[24] << 8) | b[25],
    dport: (b[26] << 8) | b[27],
  };
}

/** Validating decode; address strings stay undecoded until asked for (as on the proxy's hot path). */
function ours(buf: Buffer): unknown {
  const r = ProxyProtocolParser.decode(buf);
  if (r.status !== 'complete') throw new Error('bench input did not decode');
  return r.header;
}

/** Decode, then the source address string read (what the proxy does with a believed header). */
function oursWithSource(buf: Buffer): unknown {
  const r = ProxyProtocolParser.decode(buf);
  if (r.status !== 'complete') throw new Error('bench input did not decode');
  return r.header.source;
}

/** The same, then the address strings read (what a caller pays who wants them). */
function oursWithStrings(buf: Buffer): unknown {
  const r = ProxyProtocolParser.decode(buf);
  if (r.status !== 'complete') throw new Error('bench input did not decode');
  return r.header.source && r.header.destination;
}

const cases = [
  { name: 'v1 TCP4 parse: ours', fn: () => ours(v1Tcp4) },
  { name: 'v1 TCP4 parse + strings: ours', fn: () => oursWithStrings(v1Tcp4) },
  { name: 'v1 TCP4 parse: proxy-protocol-js', fn: () => V1BinaryProxyProtocol.parse(v1Tcp4) },
  { name: 'v1 TCP4 parse: balena', fn: () => balena.decode(v1Tcp4) },
  { name: 'v1 TCP4 + 64 B payload, source read: ours', fn: () => oursWithSource(v1Tcp4Payload) },
  // Its text path (its fastest), with the buffer-to-string conversion a socket reader must pay counted.
  { name: 'v1 TCP4 + 64 B payload: proxy-protocol-js text', fn: () => V1ProxyProtocol.parse(v1Tcp4Payload.toString('latin1')) },
  { name: 'v1 TCP6 parse: ours', fn: () => ours(v1Tcp6) },
  { name: 'v1 TCP6 parse + strings: ours', fn: () => oursWithStrings(v1Tcp6) },
  { name: 'v1 TCP6 parse: proxy-protocol-js', fn: () => V1BinaryProxyProtocol.parse(v1Tcp6) },
  { name: 'v2 IPv4 parse: ours', fn: () => ours(v2Ipv4) },
  { name: 'v2 IPv4 parse + strings: ours', fn: () => oursWithStrings(v2Ipv4) },
  { name: 'v2 IPv4 parse: proxy-protocol-js', fn: () => V2ProxyProtocol.parse(v2Ipv4) },
  { name: 'v2 IPv4 parse: balena', fn: () => balena.decode(v2Ipv4) },
  { name: 'v2 IPv4 parse: minimal floor', fn: () => minimalV2Ipv4(v2Ipv4) },
  { name: 'v2 IPv6+ALPN+AUTHORITY parse: ours', fn: () => ours(v2Ipv6Tlvs) },
  { name: 'v2 IPv6+ALPN+AUTHORITY parse: proxy-protocol-js', fn: () => V2ProxyProtocol.parse(v2Ipv6Tlvs) },
  { name: 'v2 CRC32C verify parse: ours', fn: () => ours(v2Crc) },
  { name: 'v1 generate: ours', fn: () => ProxyProtocolParser.generate({ source: src4, destination: dst4 }, { version: 1 }) },
  { name: 'v2 generate: ours', fn: () => ProxyProtocolParser.generate({ source: src4, destination: dst4 }, { version: 2 }) },
];

export function runParserBench(rounds = 5): Array<{ name: string; median: number; min: number; max: number }> {
  const results = runInterleaved(cases, rounds);
  return [...results].map(([name, values]) => ({ name, median: median(values), min: Math.min(...values), max: Math.max(...values) }));
}

export function printParserTable(rows: ReturnType<typeof runParserBench>): void {
  const get = (name: string) => rows.find((r) => r.name === name)?.median ?? NaN;
  console.log('| operation | ns/op (median) | min–max |');
  console.log('|---|---:|---:|');
  for (const r of rows) console.log(`| ${r.name} | ${r.median.toFixed(0)} | ${r.min.toFixed(0)}–${r.max.toFixed(0)} |`);
  const ratio = (a: string, b: string) => (get(b) / get(a)).toFixed(2);
  console.log('');
  // proxy-protocol-js v1 returns strings, so it is compared with ours + strings; its v2 returns byte arrays.
  console.log(`speed-up vs proxy-protocol-js, v1 TCP4 (both with strings): ${ratio('v1 TCP4 parse + strings: ours', 'v1 TCP4 parse: proxy-protocol-js')}x (target ≥ 1.5)`);
  console.log(`speed-up vs proxy-protocol-js text path, v1 TCP4 + payload (source string read): ${ratio('v1 TCP4 + 64 B payload, source read: ours', 'v1 TCP4 + 64 B payload: proxy-protocol-js text')}x (target ≥ 1.5)`);
  console.log(`speed-up vs proxy-protocol-js, v2 IPv4 (neither makes strings): ${ratio('v2 IPv4 parse: ours', 'v2 IPv4 parse: proxy-protocol-js')}x (target ≥ 1.5)`);
  console.log(`ours + strings / minimal floor (which makes strings), v2 IPv4: ${(get('v2 IPv4 parse + strings: ours') / get('v2 IPv4 parse: minimal floor')).toFixed(2)}x (target ≤ 1.5)`);
  console.log(`v2 with ALPN+AUTHORITY / v2 IPv4 plain: ${(get('v2 IPv6+ALPN+AUTHORITY parse: ours') / get('v2 IPv4 parse: ours')).toFixed(2)}x`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`parser micro-benchmarks — node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  printParserTable(runParserBench());
}
