/**
 * UDP routes with PROXY v2 DGRAM headers, on real sockets: one hop and a two-hop chain keep every
 * client's address; untrusted headers, missing headers and oversize datagrams are dropped and
 * counted; sessions expire; nothing is left after stop().
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ConfigError } from '../ts/protocols/errors.js';
import { decodeDatagram } from '../ts/protocols/proxy/datagram.js';
import { ProxyProtocolParser } from '../ts/protocols/proxy/parser.js';
import { SmartProxy } from '../ts/proxies/smart-proxy/smart-proxy.js';
import type { ISmartProxyOptions } from '../ts/proxies/smart-proxy/models/interfaces.js';
import { freeUdpPort, type IUdpClient, type IUdpEcho, startUdpEcho, udpClient, udpHandles } from './helpers/udp.js';

const CLIENTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const DATAGRAMS = 1000;

function udpRoute(name: string, port: number, targetPort: number, send: ISmartProxyOptions['routes'][number]['action']['sendProxyProtocol'] = { version: 2 }) {
  return { name, match: { ports: port, transport: 'udp' as const }, action: { type: 'forward' as const, target: { host: '127.0.0.1', port: targetPort }, sendProxyProtocol: send } };
}

/** Header bytes as a trusted balancer at 127.0.0.1 would put them before `payload`. */
function withHeader(source: string, sourcePort: number, payload: string, transport: 'DGRAM' | 'STREAM' = 'DGRAM'): Buffer {
  const header = ProxyProtocolParser.generate({ transport, source: { address: source, port: sourcePort }, destination: { address: '127.0.0.1', port: 53 } }, { version: 2 });
  return Buffer.concat([header, Buffer.from(payload)]);
}

/** Sends `count` datagrams spread over `clients`, one request in flight per client; checks each reply names its sender. */
async function exchange(clients: IUdpClient[], count: number): Promise<void> {
  await Promise.all(
    clients.map(async (client, c) => {
      for (let i = c; i < count; i += clients.length) {
        const reply = (await client.request(`n${i}`)).toString();
        assert.equal(reply, `${client.address} ${client.port}|n${i}`);
      }
    }),
  );
}

async function waitFor(check: () => boolean, ms = 2000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('PROXY v2 in UDP datagrams (parser helper)', () => {
  test('a datagram with a DGRAM header gives the header and a view of the payload', () => {
    const result = decodeDatagram(withHeader('198.51.100.7', 4242, 'query'));
    assert.equal(result.status, 'header');
    if (result.status !== 'header') return;
    assert.deepEqual(result.header.source, { address: '198.51.100.7', port: 4242 });
    assert.equal(result.header.transport, 'DGRAM');
    assert.equal(result.payload.toString(), 'query');
    assert.deepEqual(ProxyProtocolParser.decodeDatagram(withHeader('198.51.100.7', 4242, 'query')).payload, result.payload);
  });

  test('a datagram without the v2 signature is all payload, even one starting with the v1 text PROXY', () => {
    for (const text of ['plain', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n', '\r\n\r\n']) {
      const result = decodeDatagram(Buffer.from(text));
      assert.equal(result.status, 'none');
      assert.equal(result.payload.toString(), text);
    }
  });

  test('a datagram that ends inside its header, or carries a STREAM header, is refused with its code', () => {
    const whole = withHeader('198.51.100.7', 4242, '');
    assert.throws(() => decodeDatagram(whole.subarray(0, 20)), { code: 'ERR_PP_INCOMPLETE' });
    assert.throws(() => decodeDatagram(withHeader('198.51.100.7', 4242, 'x', 'STREAM')), { code: 'ERR_PP_V2_TRANSPORT' });
  });
});

describe('UDP routes', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  async function start(options: ISmartProxyOptions): Promise<SmartProxy> {
    const proxy = new SmartProxy(options);
    await proxy.start();
    cleanups.push(() => proxy.stop());
    return proxy;
  }

  async function echo(): Promise<IUdpEcho> {
    const backend = await startUdpEcho();
    cleanups.push(() => backend.close());
    return backend;
  }

  async function clients(port: number, addresses = CLIENTS): Promise<IUdpClient[]> {
    const list = await Promise.all(addresses.map((a) => udpClient(a, port)));
    for (const c of list) cleanups.push(() => c.close());
    return list;
  }

  test('1,000 datagrams from three clients through one hop: every reply reaches its client and names it', async () => {
    const backend = await echo();
    const port = await freeUdpPort();
    const proxy = await start({ routes: [udpRoute('dns', port, backend.port)] });
    await exchange(await clients(port), DATAGRAMS);
    const stats = proxy.getStatistics().udp;
    assert.equal(stats.datagramsToBackends, DATAGRAMS);
    assert.equal(stats.datagramsToClients, DATAGRAMS);
    assert.equal(stats.headersSent, DATAGRAMS);
    assert.equal(stats.totalSessions, 3);
    assert.equal(stats.activeSessions, 3);
    assert.ok(backend.headers.every((h) => h !== null && h.transport === 'DGRAM' && h.destination !== null && 'port' in h.destination && h.destination.port === port));
  });

  test('1,000 datagrams through a two-hop chain (outer sends v2, inner requires and sends v2): the backend sees each real client', async () => {
    const backend = await echo();
    const [outerPort, innerPort] = [await freeUdpPort(), await freeUdpPort()];
    const inner = await start({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], routes: [udpRoute('inner', innerPort, backend.port, { version: 2, tlvs: { uniqueId: true, crc32c: true } })] });
    await start({ routes: [udpRoute('outer', outerPort, innerPort)] });
    const list = await clients(outerPort);
    await exchange(list, DATAGRAMS);
    assert.equal(inner.getStatistics().udp.headersReceived, DATAGRAMS);
    const last = backend.headers.at(-1);
    assert.ok(last?.uniqueId !== undefined && last.crc32c !== undefined, 'the inner hop adds UNIQUE_ID and CRC32C');
    // The destination is what the client sent to: the outer hop's port, carried through the inner one.
    assert.ok(last?.destination !== null && last?.destination !== undefined && 'port' in last.destination && last.destination.port === outerPort);
  });

  test('a datagram with a PROXY header from an untrusted source is dropped and counted as spoofing; its plain datagrams pass', async () => {
    const backend = await echo();
    const port = await freeUdpPort();
    const proxy = await start({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], routes: [udpRoute('r', port, backend.port)] });
    const [stranger] = await clients(port, ['127.0.0.7']);
    assert.equal(await stranger.silent(withHeader('203.0.113.9', 1111, 'spoof')), true);
    assert.equal((await stranger.request('plain')).toString(), `127.0.0.7 ${stranger.port}|plain`);
    const stats = proxy.getStatistics().udp;
    assert.equal(stats.dropped.ERR_PP_UNTRUSTED_PEER, 1);
    assert.equal(backend.datagrams, 1);
  });

  test('from a require source, a datagram without a header or with a STREAM header is dropped with its code; a good one names the client', async () => {
    const backend = await echo();
    const port = await freeUdpPort();
    const proxy = await start({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], routes: [udpRoute('r', port, backend.port)] });
    const [balancer] = await clients(port, ['127.0.0.1']);
    assert.equal(await balancer.silent('no header'), true);
    assert.equal(await balancer.silent(withHeader('198.51.100.1', 5, 'tcp', 'STREAM')), true);
    assert.equal((await balancer.request(withHeader('198.51.100.1', 5353, 'q'))).toString(), '198.51.100.1 5353|q');
    const stats = proxy.getStatistics().udp;
    assert.deepEqual(stats.dropped, { ERR_PP_MISSING: 1, ERR_PP_V2_TRANSPORT: 1 });
    assert.equal(stats.headersReceived, 1);
  });

  test('allow/block lists and clientIp apply to the real client named by the header', async () => {
    const backend = await echo();
    const port = await freeUdpPort();
    const route = { ...udpRoute('r', port, backend.port), action: { ...udpRoute('r', port, backend.port).action, security: { ipBlockList: ['198.51.100.66'] } } };
    const proxy = await start({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], routes: [route] });
    const [balancer] = await clients(port, ['127.0.0.1']);
    assert.equal(await balancer.silent(withHeader('198.51.100.66', 1, 'blocked')), true);
    assert.equal((await balancer.request(withHeader('198.51.100.67', 1, 'ok'))).toString(), '198.51.100.67 1|ok');
    assert.equal(proxy.getStatistics().udp.dropped.ERR_SECURITY_BLOCKED, 1);
  });

  test('a datagram that would exceed 65,507 bytes with its header is dropped and counted; one that fits passes', async () => {
    const backend = await echo();
    const port = await freeUdpPort();
    const proxy = await start({ routes: [udpRoute('r', port, backend.port)] });
    const [client] = await clients(port, ['127.0.0.1']);
    client.socket.setSendBufferSize(1 << 20);
    assert.equal(await client.silent(Buffer.alloc(65_500, 1)), true);
    const fits = await client.request(Buffer.alloc(65_400, 1));
    assert.equal(fits.length, `127.0.0.1 ${client.port}|`.length + 65_400);
    assert.equal(proxy.getStatistics().udp.dropped.ERR_UDP_OVERSIZE, 1);
  });

  test('udpMaxSessions caps sessions per listener: a new flow past it is dropped, existing ones go on', async () => {
    const backend = await echo();
    const port = await freeUdpPort();
    const proxy = await start({ udpMaxSessions: 2, routes: [udpRoute('r', port, backend.port, false)] });
    const [a, b, c] = await clients(port);
    await a.request('a');
    await b.request('b');
    assert.equal(await c.silent('c'), true);
    await a.request('a again');
    assert.equal(proxy.getStatistics().udp.dropped.ERR_UDP_TOO_MANY_SESSIONS, 1);
  });

  test('maxConnectionsPerIP bounds sessions per real client: many source ports of one address, or many ports a trusted balancer names for one client', async () => {
    const backend = await echo();
    const port = await freeUdpPort();
    const proxy = await start({ maxConnectionsPerIP: 2, acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], routes: [udpRoute('r', port, backend.port)] });
    const [a, b, c] = await clients(port, ['127.0.0.4', '127.0.0.4', '127.0.0.4']);
    await a.request('a');
    await b.request('b');
    assert.equal(await c.silent('c'), true);
    const [balancer] = await clients(port, ['127.0.0.1']);
    for (const clientPort of [1, 2]) assert.equal((await balancer.request(withHeader('198.51.100.9', clientPort, 'q'))).toString(), `198.51.100.9 ${clientPort}|q`);
    assert.equal(await balancer.silent(withHeader('198.51.100.9', 3, 'q')), true);
    assert.equal((await balancer.request(withHeader('198.51.100.10', 3, 'q'))).toString(), '198.51.100.10 3|q');
    const stats = proxy.getStatistics().udp;
    assert.equal(stats.dropped.ERR_LIMIT_PER_IP, 2);
    assert.equal(stats.activeSessions, 5);
  });

  test('a backend that answers with ICMP port unreachable ends the session (counted, warned); the next datagram opens a new one', async () => {
    const [port, dead] = [await freeUdpPort(), await freeUdpPort()];
    const proxy = await start({ routes: [udpRoute('r', port, dead)] });
    const warnings: string[] = [];
    proxy.on('warning', (message) => warnings.push(message));
    const [client] = await clients(port, ['127.0.0.1']);
    for (let i = 1; i <= 3; i++) {
      assert.equal(await client.silent(`x${i}`, 50), true);
      await waitFor(() => proxy.getStatistics().udp.dropped.ERR_UDP_BACKEND === i);
      assert.equal(proxy.getStatistics().udp.activeSessions, 0);
    }
    assert.equal(proxy.getStatistics().udp.totalSessions, 3);
    assert.ok(warnings.length === 3 && warnings.every((w) => w.includes('ECONNREFUSED')), warnings.join('; '));
  });

  test('idle sessions expire after udpSessionTimeout and stop() leaves no UDP socket behind', async () => {
    const before = udpHandles();
    const backend = await startUdpEcho();
    const port = await freeUdpPort();
    const proxy = new SmartProxy({ udpSessionTimeout: 100, routes: [udpRoute('r', port, backend.port)] });
    await proxy.start();
    const list = await Promise.all(CLIENTS.map((a) => udpClient(a, port)));
    await exchange(list, 30);
    assert.equal(proxy.getStatistics().udp.activeSessions, 3);
    // Backend, listener, three clients and a backend socket per session: the count sees them all.
    assert.equal(udpHandles(), before + 8);
    await waitFor(() => proxy.getStatistics().udp.activeSessions === 0, 1000);
    await exchange(list, 3);
    assert.equal(proxy.getStatistics().udp.totalSessions, 6);
    await proxy.stop();
    assert.deepEqual(proxy.getStatistics().udp.listeningPorts, []);
    assert.equal(proxy.getStatistics().udp.activeSessions, 0);
    await Promise.all(list.map((c) => c.close()));
    await backend.close();
    await waitFor(() => udpHandles() === before);
  });

  test('TCP and UDP routes may share a port number; each transport gets its own listener', async () => {
    const backend = await echo();
    const port = await freeUdpPort();
    const proxy = await start({
      routes: [udpRoute('udp', port, backend.port), { name: 'tcp', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }],
    });
    assert.deepEqual(proxy.getListeningPorts(), [port]);
    assert.deepEqual(proxy.getStatistics().udp.listeningPorts, [port]);
  });

  test('updateRoutes opens new UDP ports and closes dropped ones', async () => {
    const backend = await echo();
    const [p1, p2] = [await freeUdpPort(), await freeUdpPort()];
    const proxy = await start({ routes: [udpRoute('a', p1, backend.port)] });
    await proxy.updateRoutes([udpRoute('b', p2, backend.port)]);
    assert.deepEqual(proxy.getStatistics().udp.listeningPorts, [p2]);
    const [client] = await clients(p2, ['127.0.0.1']);
    assert.equal((await client.request('x')).toString(), `127.0.0.1 ${client.port}|x`);
  });

  test('updateRoutes dropping a UDP port ends its live sessions and closes their backend sockets', async () => {
    const backend = await echo();
    const [p1, p2] = [await freeUdpPort(), await freeUdpPort()];
    const proxy = await start({ routes: [udpRoute('a', p1, backend.port), { ...udpRoute('b', p2, backend.port), name: 'b' }] });
    const list = await clients(p1);
    await exchange(list, 3);
    const live = udpHandles();
    await proxy.updateRoutes([udpRoute('b', p2, backend.port)]);
    await waitFor(() => udpHandles() === live - 4);
    const stats = proxy.getStatistics().udp;
    assert.equal(stats.activeSessions, 0);
    assert.deepEqual(stats.listeningPorts, [p2]);
    assert.equal(await list[0].silent('after'), true);
    assert.equal(backend.datagrams, 3);
  });

  test('configuration: v1 sending, TLS, domains or HTTP matching/options on a UDP route, and an unknown transport are ConfigErrors naming the field', () => {
    const base = udpRoute('r', 5353, 53);
    const cases: Array<[unknown, string]> = [
      [{ ...base, action: { ...base.action, sendProxyProtocol: { version: 1 } } }, 'routes[0].action.sendProxyProtocol'],
      [{ ...base, action: { ...base.action, tls: { mode: 'passthrough' } } }, 'routes[0].action.tls'],
      [{ ...base, match: { ...base.match, domains: ['example.com'] } }, 'routes[0].match.domains'],
      [{ ...base, match: { ...base.match, transport: 'sctp' } }, 'routes[0].match.transport'],
      [{ ...base, match: { ...base.match, path: '/api/*' } }, 'routes[0].match.path'],
      [{ ...base, match: { ...base.match, headers: { 'x-tenant': 'a' } } }, 'routes[0].match.headers'],
      [{ ...base, action: { ...base.action, http: {} } }, 'routes[0].action.http'],
    ];
    for (const [route, field] of cases) {
      assert.throws(() => new SmartProxy({ routes: [route as never] }), (err: unknown) => err instanceof ConfigError && err.field === field);
    }
    assert.throws(() => new SmartProxy({ sendProxyProtocol: true, routes: [{ ...base, action: { ...base.action, sendProxyProtocol: undefined } }] }), { field: 'routes[0].action.sendProxyProtocol' });
  });
});
