/**
 * npm start — the PROXY protocol chain on loopback, nothing else to install:
 *
 *   client 127.0.0.11/12/13 → outer SmartProxy (sends v2) → inner SmartProxy (trusts outer,
 *   accepts v2, sends v2) → echo backend (reads the header)
 *
 * Prints what each hop saw per connection, then exits 0. `npm start -- --serve` keeps the chain up.
 */
import net from 'node:net';
import { ProxyProtocolDecoder, SmartProxy } from '../ts/index.js';
import type { IConnectionRecord, IProxyHeader } from '../ts/index.js';

const CLIENTS = ['127.0.0.11', '127.0.0.12', '127.0.0.13'];
const serve = process.argv.includes('--serve');

interface IHopView {
  hop: string;
  peer: string;
  client: string;
  header: string;
  tlvs: string;
}

const TLV_NAMES: Record<number, string> = { 0x01: 'ALPN', 0x02: 'AUTHORITY', 0x03: 'CRC32C', 0x04: 'NOOP', 0x05: 'UNIQUE_ID', 0x20: 'SSL', 0x30: 'NETNS' };

function describeHeader(header: IProxyHeader | null): { header: string; tlvs: string } {
  if (header === null) return { header: '-', tlvs: '-' };
  const tlvs = header.tlvs.map((t) => TLV_NAMES[t.type] ?? `0x${t.type.toString(16)}`).join(',');
  return { header: `v${header.version} ${header.command}`, tlvs: tlvs || '-' };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The backend: reads one PROXY header, records what it says, then echoes. */
function startBackend(views: Map<string, IHopView[]>): Promise<net.Server> {
  const server = net.createServer((socket) => {
    const decoder = new ProxyProtocolDecoder();
    socket.on('error', () => undefined);
    const onData = (chunk: Buffer): void => {
      const result = decoder.push(chunk);
      if (result.status === 'incomplete') return;
      socket.off('data', onData);
      const header = result.status === 'complete' ? result.header : null;
      const source = header?.source && 'address' in header.source ? `${header.source.address}:${header.source.port}` : '-';
      const id = header?.uniqueId?.toString() ?? '?';
      let rows = views.get(id);
      if (rows === undefined) views.set(id, (rows = []));
      const view = { hop: 'backend', peer: `${socket.remoteAddress}:${socket.remotePort}`, client: source, ...describeHeader(header) };
      rows.push(view);
      if (serve) console.log(`backend: connection from ${view.peer}, real client ${view.client} (${view.header}, TLVs ${view.tlvs})`);
      socket.write(decoder.remaining);
      socket.pipe(socket);
    };
    socket.on('data', onData);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function printTable(rows: IHopView[][]): void {
  const header = ['conn', 'hop', 'TCP peer', 'real client', 'PROXY header', 'TLVs'];
  const lines = rows.flatMap((hops, i) => hops.map((h) => [String(i + 1), h.hop, h.peer, h.client, h.header, h.tlvs]));
  const widths = header.map((_, c) => Math.max(header[c].length, ...lines.map((l) => l[c].length)));
  const fmt = (cells: string[]) => cells.map((cell, c) => cell.padEnd(widths[c])).join('  ');
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const line of lines) console.log(fmt(line));
}

async function main(): Promise<void> {
  const views = new Map<string, IHopView[]>();
  const backend = await startBackend(views);
  const backendPort = (backend.address() as net.AddressInfo).port;
  const [outerPort, innerPort] = [await freePort(), await freePort()];

  const inner = new SmartProxy({
    listenAddress: '127.0.0.1',
    proxyIPs: ['127.0.0.1'],
    acceptProxyProtocol: true,
    sendProxyProtocol: true,
    proxyProtocolVersion: 2,
    proxyProtocolTlvs: { uniqueId: true, crc32c: true },
    routes: [{ name: 'to-backend', match: { ports: innerPort }, action: { type: 'forward', target: { host: '127.0.0.1', port: backendPort } } }],
  });
  const outer = new SmartProxy({
    listenAddress: '127.0.0.1',
    sendProxyProtocol: true,
    proxyProtocolVersion: 2,
    proxyProtocolTlvs: { uniqueId: true },
    routes: [{ name: 'to-inner', match: { ports: outerPort }, action: { type: 'forward', target: { host: '127.0.0.1', port: innerPort } } }],
  });
  await inner.start();
  await outer.start();

  // The outer hop's connection id travels as UNIQUE_ID; the inner hop and backend report under it.
  const byInnerId = new Map<string, string>();
  outer.on('connection-open', (r: IConnectionRecord) => {
    views.set(r.id, [{ hop: 'outer', peer: `${r.peerIP}:${r.clientPort}`, client: `${r.clientIP}:${r.clientPort}`, header: '-', tlvs: '-' }]);
  });
  inner.on('connection-close', (r: IConnectionRecord) => {
    const outerId = r.proxyHeader?.uniqueId?.toString();
    if (outerId === undefined) return;
    byInnerId.set(r.id, outerId);
    const list = views.get(outerId);
    list?.splice(1, 0, { hop: 'inner', peer: `${r.peerIP}:${r.wrapped.socket.remotePort ?? '?'}`, client: `${r.clientIP}:${r.clientPort}`, ...describeHeader(r.proxyHeader) });
  });
  console.log(`echo backend 127.0.0.1:${backendPort}  ←  inner SmartProxy 127.0.0.1:${innerPort} (accepts v2 from 127.0.0.1, sends v2)  ←  outer SmartProxy 127.0.0.1:${outerPort} (sends v2)`);
  if (serve) {
    console.log(`chain is up on 127.0.0.1:${outerPort}. Connect from any loopback address, e.g.  nc -s 127.0.0.42 127.0.0.1 ${outerPort}`);
    console.log('every line you type comes back; the backend prints the client it saw. Ctrl-C stops.');
    const stop = async () => {
      await outer.stop();
      await inner.stop();
      backend.close();
    };
    process.once('SIGINT', () => void stop());
    process.once('SIGTERM', () => void stop());
    return;
  }

  for (const address of CLIENTS) {
    const socket = net.connect({ port: outerPort, host: '127.0.0.1', localAddress: address });
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`hello from ${address}\n`);
    await new Promise((resolve) => socket.once('data', resolve));
    socket.end();
    await new Promise((resolve) => socket.once('close', resolve));
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  // Backend rows arrived under the inner hop's id; move them next to their outer rows.
  for (const [innerId, outerId] of byInnerId) {
    const backendRows = views.get(innerId);
    if (backendRows) views.get(outerId)?.push(...backendRows);
    views.delete(innerId);
  }
  printTable([...views.values()].filter((hops) => hops[0]?.hop === 'outer'));
  await outer.stop();
  await inner.stop();
  await new Promise((resolve) => backend.close(resolve));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
