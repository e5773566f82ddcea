import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { ProxyProtocolParser, SmartProxy, authorityTlv, uniqueIdTlv } from '../ts/index.js';
import type { IProxyProtocolErrorEvent, ISmartProxyOptions } from '../ts/index.js';
import {
  type IHeaderReport,
  closed,
  connect,
  freePort,
  makeCertificate,
  readLine,
  startEchoServer,
  startHeaderReportingServer,
  waitFor,
} from './helpers/net.js';
import { startTlsTaggedServer, tlsConnectFrom, writeSplit } from './helpers/tls.js';
import { cleanupAfterAll } from './helpers/cleanup.js';

const onCleanup = cleanupAfterAll();

async function startProxy(options: Omit<ISmartProxyOptions, 'routes'> & { routes?: ISmartProxyOptions['routes'] }, port: number, target: number, extra: Partial<ISmartProxyOptions['routes'][number]['action']> = {}): Promise<SmartProxy> {
  const proxy = new SmartProxy({
    listenAddress: '127.0.0.1',
    routes: [{ name: `to-${target}`, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target }, ...extra } }],
    ...options,
  });
  await proxy.start();
  onCleanup(() => proxy.stop());
  return proxy;
}

async function reporter() {
  const backend = await startHeaderReportingServer();
  onCleanup(() => backend.close());
  return backend;
}

/** Connects from `localAddress`, sends a line, returns the backend's header report and the echo. */
async function askThrough(port: number, localAddress: string): Promise<{ report: IHeaderReport; echo: string; clientPort: number }> {
  const socket = await connect({ port, localAddress });
  socket.write('ping\n');
  const report = JSON.parse(await readLine(socket)) as IHeaderReport;
  const echo = await readLine(socket);
  const clientPort = socket.localPort as number;
  socket.destroy();
  return { report, echo, clientPort };
}

describe('chains of SmartProxy instances keep the real client', () => {
  it('2 hops, v1 then v2: the backend sees the original client address and port', async () => {
    const backend = await reporter();
    const [outerPort, innerPort] = [await freePort(), await freePort()];
    await startProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 2 }, innerPort, backend.port);
    await startProxy({ sendProxyProtocol: true, proxyProtocolVersion: 1 }, outerPort, innerPort);
    const { report, echo, clientPort } = await askThrough(outerPort, '127.0.0.11');
    assert.equal(echo, 'ping');
    assert.equal(report.header?.version, 2);
    assert.deepEqual(report.header?.source, { address: '127.0.0.11', port: clientPort });
    assert.deepEqual(report.header?.destination, { address: '127.0.0.1', port: outerPort }, 'destination is where the client connected');
  });

  for (const versions of [[1, 1, 1], [2, 2, 2], [2, 1, 2], [1, 2, 1]] as const) {
    it(`3 hops sending v${versions.join(', v')}: the last backend sees the original client`, async () => {
      const backend = await reporter();
      const ports = [await freePort(), await freePort(), await freePort()];
      const trust = { acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'] };
      await startProxy({ ...trust, sendProxyProtocol: true, proxyProtocolVersion: versions[2] }, ports[2], backend.port);
      await startProxy({ ...trust, sendProxyProtocol: true, proxyProtocolVersion: versions[1] }, ports[1], ports[2]);
      await startProxy({ sendProxyProtocol: true, proxyProtocolVersion: versions[0] }, ports[0], ports[1]);
      const { report, clientPort } = await askThrough(ports[0], '127.0.0.12');
      assert.equal(report.header?.version, versions[2]);
      assert.deepEqual(report.header?.source, { address: '127.0.0.12', port: clientPort });
    });
  }

  for (const version of [1, 2] as const) {
    it(`carries an IPv6 client through 2 hops over IPv6 loopback (v${version} between the hops)`, async () => {
      const backend = await reporter();
      const [outerPort, innerPort] = [await freePort(), await freePort()];
      const inner = new SmartProxy({
        listenAddress: '::1',
        acceptProxyProtocol: true,
        proxyIPs: ['::1/128'],
        sendProxyProtocol: true,
        proxyProtocolVersion: 2,
        routes: [{ name: 'v6-inner', match: { ports: innerPort }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }],
      });
      const outer = new SmartProxy({
        listenAddress: '::1',
        sendProxyProtocol: true,
        proxyProtocolVersion: version,
        routes: [{ name: 'v6-outer', match: { ports: outerPort }, action: { type: 'forward', target: { host: '::1', port: innerPort } } }],
      });
      await inner.start();
      await outer.start();
      onCleanup(() => outer.stop(), () => inner.stop());
      const socket = await connect({ port: outerPort, host: '::1' });
      socket.write('ping\n');
      const report = JSON.parse(await readLine(socket)) as IHeaderReport;
      const clientPort = socket.localPort;
      socket.destroy();
      // The inner hop had an IPv6 client and an IPv4 backend link: v2 keeps the IPv6 client.
      assert.equal(report.header?.family, 'INET6');
      assert.deepEqual(report.header?.source, { address: '::1', port: clientPort });
      assert.deepEqual(report.header?.destination, { address: '::1', port: outerPort });
    });
  }

  it('routes TLS passthrough by SNI behind a header, with route matching on the real client', async () => {
    const cert = makeCertificate(['app.example.com']);
    const tagged = await startTlsTaggedServer('app-backend', cert);
    onCleanup(() => tagged.close());
    const [outerPort, innerPort] = [await freePort(), await freePort()];
    const inner = new SmartProxy({
      listenAddress: '127.0.0.1',
      acceptProxyProtocol: true,
      proxyIPs: ['127.0.0.1'],
      routes: [
        { name: 'for-client-13', match: { ports: innerPort, domains: 'app.example.com', clientIp: ['127.0.0.13'] }, action: { type: 'forward', target: { host: '127.0.0.1', port: tagged.port }, tls: { mode: 'passthrough' } } },
      ],
    });
    await inner.start();
    onCleanup(() => inner.stop());
    await startProxy({ sendProxyProtocol: true, proxyProtocolVersion: 2 }, outerPort, innerPort, { tls: { mode: 'passthrough' } });
    const line = await new Promise<string>((resolve, reject) => {
      const s = tlsConnectFrom(outerPort, '127.0.0.13', { servername: 'app.example.com', ca: cert.cert });
      s.once('secureConnect', () => {
        s.once('data', (d) => {
          resolve(d.toString().trim());
          s.destroy();
        });
      });
      s.on('error', reject);
    });
    assert.equal(line, 'app-backend app.example.com');
    // Another real client does not match the route's clientIp, although the TCP peer is the same.
    const other = tlsConnectFrom(outerPort, '127.0.0.14', { servername: 'app.example.com', ca: cert.cert });
    other.on('error', () => undefined);
    assert.equal(await closed(other as unknown as net.Socket), true);
  });

  it('terminates TLS behind a header and sends AUTHORITY, ALPN, UNIQUE_ID, SSL and CRC32C onwards', async () => {
    const cert = makeCertificate(['secure.example.com']);
    const backend = await reporter();
    const [outerPort, innerPort] = [await freePort(), await freePort()];
    const inner = await startProxy(
      { acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 2, proxyProtocolTlvs: { authority: true, alpn: true, uniqueId: true, ssl: true, crc32c: true } },
      innerPort,
      backend.port,
      { tls: { mode: 'terminate', certificate: cert, alpnProtocols: ['h2', 'http/1.1'] } },
    );
    await startProxy({ sendProxyProtocol: true, proxyProtocolVersion: 1 }, outerPort, innerPort, { tls: { mode: 'passthrough' } });
    const socket = tlsConnectFrom(outerPort, '127.0.0.15', { servername: 'secure.example.com', ca: cert.cert, ALPNProtocols: ['h2'] });
    const report = JSON.parse(await readLine(socket)) as IHeaderReport;
    const clientPort = socket.localPort;
    const record = [...inner.connectionManager.connections][0];
    assert.equal(record.proxyHeader?.version, 1, 'the received header is on the record');
    assert.equal(record.wrapped.proxyHeader, record.proxyHeader);
    socket.destroy();
    assert.deepEqual(report.header?.source, { address: '127.0.0.15', port: clientPort });
    assert.equal(report.header?.authority, 'secure.example.com');
    assert.equal(report.header?.alpn, 'h2');
    assert.match(report.header?.uniqueId ?? '', /^[0-9a-f]{12}-/);
    assert.equal(report.header?.ssl?.version, 'TLSv1.3');
    assert.equal(report.header?.ssl?.client, 1);
    assert.equal(typeof report.header?.ssl?.cipher, 'string');
    assert.equal(typeof report.header?.crc32c, 'number');
  });

  it('passes received TLVs through to the next hop in order', async () => {
    const backend = await reporter();
    const [outerPort, innerPort] = [await freePort(), await freePort()];
    await startProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 2, proxyProtocolTlvs: { passThrough: [0x02, 0x05], crc32c: true } }, innerPort, backend.port);
    const socket = await connect({ port: innerPort });
    socket.write(Buffer.concat([
      ProxyProtocolParser.generate({ source: { address: '198.51.100.20', port: 4000 }, destination: { address: '203.0.113.1', port: 443 } }, { version: 2, tlvs: [uniqueIdTlv('edge-42'), authorityTlv('shop.example.com')], crc32c: true }),
      Buffer.from('ping\n'),
    ]));
    const report = JSON.parse(await readLine(socket)) as IHeaderReport;
    socket.destroy();
    assert.deepEqual(report.header?.source, { address: '198.51.100.20', port: 4000 });
    assert.deepEqual(report.header?.destination, { address: '203.0.113.1', port: 443 });
    assert.deepEqual(report.header?.tlvTypes, [0x05, 0x02, 0x03]);
    assert.equal(report.header?.uniqueId, 'edge-42');
    assert.equal(report.header?.authority, 'shop.example.com');
  });

  it('lets a route override the global sending settings', async () => {
    const backend = await reporter();
    const port = await freePort();
    await startProxy({ sendProxyProtocol: false }, port, backend.port, { sendProxyProtocol: { version: 2, tlvs: { uniqueId: true } } });
    const { report } = await askThrough(port, '127.0.0.16');
    assert.equal(report.header?.version, 2);
    assert.deepEqual(report.header?.tlvTypes, [0x05]);
  });
});

describe('receiving is safe against bad and hostile peers', () => {
  async function guardedInner(extra: Partial<ISmartProxyOptions> = {}) {
    const backend = await reporter();
    const port = await freePort();
    const proxy = await startProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], proxyProtocolTimeout: 600, sendProxyProtocol: true, ...extra }, port, backend.port);
    const errors: IProxyProtocolErrorEvent[] = [];
    proxy.on('proxy-protocol-error', (e: IProxyProtocolErrorEvent) => errors.push(e));
    return { backend, port, proxy, errors };
  }

  it('refuses and counts a spoofed header from an untrusted peer; its bytes never reach a backend', async () => {
    const { backend, port, proxy, errors } = await guardedInner();
    for (const header of ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET /', ProxyProtocolParser.generate({ source: { address: '1.2.3.4', port: 1 }, destination: { address: '5.6.7.8', port: 2 } }, { version: 2 })]) {
      const socket = await connect({ port, localAddress: '127.0.0.66' });
      socket.write(header);
      assert.equal(await closed(socket), true);
    }
    assert.equal(backend.connections, 0);
    assert.equal(proxy.getStatistics().proxyProtocol.spoofing, 2);
    assert.deepEqual(errors.map((e) => [e.code, e.peerAddress, e.trusted]), [['ERR_PP_UNTRUSTED_PEER', '127.0.0.66', false], ['ERR_PP_UNTRUSTED_PEER', '127.0.0.66', false]]);
    // An untrusted peer without a header is an ordinary direct client.
    const { report } = await askThrough(port, '127.0.0.67');
    assert.equal((report.header?.source as { address: string }).address, '127.0.0.67');
  });

  it('closes a trusted peer that sends no header when one is required', async () => {
    const { port, errors } = await guardedInner();
    const socket = await connect({ port });
    socket.write('GET / HTTP/1.0\r\n\r\n');
    assert.equal(await closed(socket), true);
    assert.deepEqual(errors.map((e) => e.code), ['ERR_PP_MISSING']);
  });

  it('treats a trusted peer without a header as a direct client when headers are optional', async () => {
    const { port } = await guardedInner({ proxyProtocolRequired: false });
    const { report } = await askThrough(port, '127.0.0.1');
    assert.equal((report.header?.source as { address: string }).address, '127.0.0.1');
  });

  it('times out a header sent one byte at a time, and a peer that sends nothing', async () => {
    const { port, proxy, errors } = await guardedInner();
    const slow = await connect({ port });
    const header = Buffer.from('PROXY TCP4 10.0.0.1 10.0.0.2 1000 2000\r\n');
    let i = 0;
    const drip = setInterval(() => {
      if (!slow.destroyed && i < header.length) slow.write(header.subarray(i, ++i));
    }, 100);
    const silent = await connect({ port });
    const started = Date.now();
    assert.equal(await closed(slow, 3000), true);
    assert.equal(await closed(silent, 3000), true);
    clearInterval(drip);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 500 && elapsed < 2000, `closed after ${elapsed} ms`);
    assert.deepEqual(errors.map((e) => e.code), ['ERR_PP_TIMEOUT', 'ERR_PP_TIMEOUT']);
    assert.equal(proxy.getStatistics().proxyProtocol.timeouts, 2);
  });

  it('refuses oversize and malformed headers and keeps serving everyone else', async () => {
    const { port, proxy, errors } = await guardedInner();
    const oversize = ProxyProtocolParser.generate({ source: { address: '10.0.0.1', port: 1 }, destination: { address: '10.0.0.2', port: 2 } }, { version: 2, tlvs: [{ type: 0x04, value: Buffer.alloc(5000) }] });
    const bad = [oversize, Buffer.from('PROXY TCP4 10.0.0.1  10.0.0.2 1 2\r\n'), Buffer.from('PROXY TCP4 10.0.0.1 10.0.0.2 1 99999\r\n'), Buffer.concat([oversize.subarray(0, 12), Buffer.from([0x31, 0x11, 0, 12])])];
    for (const bytes of bad) {
      const socket = await connect({ port });
      socket.write(bytes);
      assert.equal(await closed(socket), true);
    }
    assert.deepEqual(errors.map((e) => e.code), ['ERR_PP_HEADER_TOO_LARGE', 'ERR_PP_V1_MALFORMED', 'ERR_PP_V1_BAD_PORT', 'ERR_PP_V2_BAD_VERSION']);
    assert.deepEqual(proxy.getStatistics().proxyProtocol.rejected, { ERR_PP_HEADER_TOO_LARGE: 1, ERR_PP_V1_MALFORMED: 1, ERR_PP_V1_BAD_PORT: 1, ERR_PP_V2_BAD_VERSION: 1 });
    const good = await connect({ port });
    good.write('PROXY TCP4 192.0.2.1 192.0.2.2 1111 2222\r\nping\n');
    const report = JSON.parse(await readLine(good)) as IHeaderReport;
    good.destroy();
    assert.deepEqual(report.header?.source, { address: '192.0.2.1', port: 1111 });
  });

  it('reads headers split at 1, 5, 6, 12, 13, 14, 15, 16 bytes and inside a TLV across socket writes', async () => {
    const { port, proxy } = await guardedInner();
    const v2 = ProxyProtocolParser.generate({ source: { address: '192.0.2.77', port: 7777 }, destination: { address: '192.0.2.1', port: 443 } }, { version: 2, tlvs: [authorityTlv('split.example.com')], crc32c: true });
    const v1 = Buffer.from('PROXY TCP4 192.0.2.78 192.0.2.1 7778 443\r\n');
    for (const [bytes, cuts, expected] of [
      [v2, [1, 5, 6, 12, 13, 14, 15, 16, 30, 33], '192.0.2.77'],
      [v1, [1, 5, 6, 12, 13, 14, 15, 16], '192.0.2.78'],
    ] as const) {
      const socket = await connect({ port });
      await writeSplit(socket, Buffer.concat([bytes, Buffer.from('ping\n')]), [...cuts]);
      const report = JSON.parse(await readLine(socket)) as IHeaderReport;
      assert.equal((report.header?.source as { address: string }).address, expected);
      assert.equal(await readLine(socket), 'ping');
      socket.destroy();
    }
    const stats = proxy.getStatistics().proxyProtocol;
    assert.deepEqual([stats.acceptedV1, stats.acceptedV2], [1, 1]);
  });

  it('decides at once when a client ends before a stage is done, instead of waiting for the deadline', async () => {
    const { port, errors } = await guardedInner({ proxyProtocolTimeout: 5000, enableHalfOpen: true });
    const started = Date.now();
    // Untrusted, a partial request and FIN: forwarded as it is, not held for 5 s.
    const direct = await connect({ port, localAddress: '127.0.0.70', allowHalfOpen: true });
    direct.end('P');
    const report = JSON.parse(await readLine(direct)) as IHeaderReport;
    assert.equal((report.header?.source as { address: string }).address, '127.0.0.70');
    // Trusted, half a header and FIN: refused as incomplete.
    const truncated = await connect({ port, allowHalfOpen: true });
    truncated.end('PROXY TCP4 10.0.0.1 ');
    assert.equal(await closed(truncated, 2000), true);
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    assert.deepEqual(errors.map((e) => e.code), ['ERR_PP_INCOMPLETE']);
  });

  it('uses the peer address for LOCAL and UNKNOWN headers and counts them apart', async () => {
    const { port, proxy, errors } = await guardedInner();
    for (const header of [ProxyProtocolParser.generate({ command: 'LOCAL' }, { version: 2 }), Buffer.from('PROXY UNKNOWN\r\n')]) {
      const socket = await connect({ port });
      socket.write(Buffer.concat([header, Buffer.from('ping\n')]));
      const report = JSON.parse(await readLine(socket)) as IHeaderReport;
      socket.destroy();
      assert.equal((report.header?.source as { address: string }).address, '127.0.0.1');
    }
    const stats = proxy.getStatistics().proxyProtocol;
    assert.deepEqual([stats.local, stats.unknown, errors.length], [1, 1, 0]);
  });

  it('trusts by CIDR, and unmaps IPv4-mapped peers on a dual-stack listener', async () => {
    const backend = await reporter();
    const port = await freePort();
    const proxy = new SmartProxy({
      listenAddress: '::',
      acceptProxyProtocol: true,
      proxyIPs: ['127.0.0.0/24', '2001:db8::/32'],
      sendProxyProtocol: true,
      routes: [{ name: 'dual', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }],
    });
    await proxy.start();
    onCleanup(() => proxy.stop());
    const socket = await connect({ port, host: '127.0.0.1', localAddress: '127.0.0.200' });
    socket.write('PROXY TCP4 198.51.100.9 198.51.100.1 999 443\r\nping\n');
    const report = JSON.parse(await readLine(socket)) as IHeaderReport;
    socket.destroy();
    assert.deepEqual(report.header?.source, { address: '198.51.100.9', port: 999 });
  });
});

describe('limits and cleanup behind a chain', () => {
  it('counts per-IP limits on real clients: 150 connections from 3 clients pass an inner limit of 100', async () => {
    const backend = await startEchoServer();
    onCleanup(() => backend.close());
    const [outerPort, innerPort] = [await freePort(), await freePort()];
    const inner = await startProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], maxConnectionsPerIP: 100 }, innerPort, backend.port);
    await startProxy({ sendProxyProtocol: true, proxyProtocolVersion: 2 }, outerPort, innerPort);
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 150; i++) {
      const socket = await connect({ port: outerPort, localAddress: `127.0.0.${21 + (i % 3)}` });
      socket.write('x\n');
      assert.equal(await readLine(socket), 'x');
      sockets.push(socket);
    }
    assert.equal(inner.getStatistics().activeConnections, 150);
    assert.equal(inner.connectionManager.connectionsFromIP('127.0.0.21'), 50);
    // The limit is real: the 101st connection of one client is refused by the inner proxy.
    const crowd: net.Socket[] = [];
    for (let i = 0; i < 50; i++) {
      const socket = await connect({ port: outerPort, localAddress: '127.0.0.21' });
      socket.write('x\n');
      assert.equal(await readLine(socket), 'x');
      crowd.push(socket);
    }
    const refused = await connect({ port: outerPort, localAddress: '127.0.0.21' });
    refused.write('x\n');
    assert.equal(await closed(refused), true);
    for (const s of [...sockets, ...crowd]) s.destroy();
    await waitFor(() => inner.getStatistics().activeConnections === 0, 5000, 'inner to drain');
  });

  it('returns both proxies to zero after 500 connections with the backend up, down and up again', async () => {
    const backendPort = await freePort();
    const [outerPort, innerPort] = [await freePort(), await freePort()];
    const inner = await startProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'] }, innerPort, backendPort);
    const outer = await startProxy({ sendProxyProtocol: true, proxyProtocolVersion: 2 }, outerPort, innerPort);
    let backend = await startEchoServer({ port: backendPort });
    const round = async (expectEcho: boolean) => {
      await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        const socket = await connect({ port: outerPort, localAddress: `127.0.1.${1 + (i % 5)}` });
        socket.on('error', () => undefined);
        socket.write('ping\n');
        const line = await readLine(socket, 3000).catch(() => '');
        if (expectEcho) assert.equal(line, 'ping');
        socket.destroy();
        await closed(socket);
      }));
    };
    for (const phase of ['up', 'down', 'up'] as const) {
      if (phase === 'down') await backend.close();
      if (phase === 'up' && backend.server.listening === false) backend = await startEchoServer({ port: backendPort });
      for (let r = 0; r < (phase === 'down' ? 2 : 3); r++) await round(phase === 'up');
    }
    // Rapid connect/disconnect: sockets that close before sending anything.
    for (let i = 0; i < 100; i++) (await connect({ port: outerPort })).destroy();
    await waitFor(() => outer.getStatistics().activeConnections === 0 && inner.getStatistics().activeConnections === 0, 5000, 'both proxies to drain');
    assert.equal(outer.getStatistics().totalConnections, 500);
    await backend.close();
  });
});
