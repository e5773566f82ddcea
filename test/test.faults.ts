/**
 * Faults that must stay inside one connection (issue "Faults that escape one connection"): each
 * test names the rule and attacks it on real sockets.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { describe, it } from 'node:test';
import { ProxyProtocolParser, SmartProxy } from '../ts/index.js';
import type { IProxyProtocolErrorEvent, ISmartProxyOptions } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { closed, connect, freePort, readLine, startServer, startTaggedEchoServer, waitFor } from './helpers/net.js';
import { findBinary } from './helpers/peers.js';

const onCleanup = cleanupAfterAll();

type Route = ISmartProxyOptions['routes'][number];

function route(port: number, target: number, extra: Partial<Route['action']> = {}): Route {
  return { name: `r${port}`, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target }, ...extra } };
}

async function started(options: ISmartProxyOptions): Promise<SmartProxy> {
  const proxy = new SmartProxy({ listenAddress: '127.0.0.1', ...options });
  await proxy.start();
  onCleanup(() => proxy.stop());
  return proxy;
}

async function echo(tag: string) {
  const backend = await startTaggedEchoServer(tag);
  onCleanup(() => backend.close());
  return backend;
}

/** A direct client that writes a line and reads the tagged echo. */
async function ask(port: number, localAddress = '127.0.0.1', prefix: Buffer = Buffer.alloc(0)): Promise<string> {
  const client = await connect({ port, localAddress });
  client.write(Buffer.concat([prefix, Buffer.from('hello\n')]));
  const line = await readLine(client);
  client.destroy();
  return line;
}

describe('a header we cannot send closes that connection only', () => {
  it('a 65,551-byte header with a 65,520-byte passed-through TLV is ERR_PP_SEND, with an event and a counter', async () => {
    const backend = await echo('b');
    const port = await freePort();
    const proxy = await started({
      acceptProxyProtocol: true,
      proxyIPs: ['127.0.0.1'],
      proxyProtocolMaxHeaderSize: 65551,
      sendProxyProtocol: true,
      proxyProtocolVersion: 2,
      proxyProtocolTlvs: { passThrough: [0xe0], uniqueId: true, crc32c: true },
      routes: [route(port, backend.port)],
    });
    const errors: IProxyProtocolErrorEvent[] = [];
    proxy.on('proxy-protocol-error', (e: IProxyProtocolErrorEvent) => errors.push(e));
    const header = ProxyProtocolParser.generate(
      { source: { address: '203.0.113.9', port: 4000 }, destination: { address: '127.0.0.1', port } },
      { version: 2, tlvs: [{ type: 0xe0, value: Buffer.alloc(65_520, 1) }] },
    );
    assert.equal(header.length, 65_551);
    const client = await connect({ port });
    client.write(Buffer.concat([header, Buffer.from('x\n')]));
    assert.equal(await closed(client), true, 'the connection is closed');
    await waitFor(() => errors.length === 1);
    assert.equal(errors[0].code, 'ERR_PP_SEND');
    assert.equal(proxy.getStatistics().proxyProtocol.rejected.ERR_PP_SEND, 1);
    const small = ProxyProtocolParser.generate({ source: { address: '203.0.113.10', port: 4001 }, destination: { address: '127.0.0.1', port } }, { version: 2 });
    assert.equal(await ask(port, '127.0.0.1', small), 'b', 'the proxy still serves the next client');
  });
});

describe('lifecycle calls always settle and end where the last call asked', () => {
  it('start() then stop() without awaiting: both settle and the proxy ends stopped', async () => {
    const port = await freePort();
    const proxy = new SmartProxy({ listenAddress: '127.0.0.1', routes: [route(port, 1)] });
    const results = await Promise.race([
      Promise.allSettled([proxy.start(), proxy.stop()]),
      new Promise((r) => setTimeout(() => r('hung'), 3000)),
    ]);
    assert.notEqual(results, 'hung');
    assert.deepEqual(proxy.getListeningPorts(), []);
    await assert.rejects(connect({ port }), 'nothing listens');
  });

  it('start() while stop() drains starts again once the drain is over', async () => {
    const backend = await echo('s');
    const port = await freePort();
    const proxy = new SmartProxy({ listenAddress: '127.0.0.1', gracefulShutdownTimeout: 300, routes: [route(port, backend.port)] });
    onCleanup(() => proxy.stop());
    await proxy.start();
    const held = await connect({ port });
    held.write('hold\n');
    await readLine(held);
    const stopping = proxy.stop();
    const starting = proxy.start();
    await Promise.all([stopping, starting]);
    assert.deepEqual(proxy.getListeningPorts(), [port]);
    assert.equal(await ask(port), 's');
    held.destroy();
  });

  it('overlapping updateRoutes calls all settle, and the last one wins', async () => {
    const [a, b] = [await echo('a'), await echo('b')];
    const [port, extra] = [await freePort(), await freePort()];
    const proxy = await started({ routes: [route(port, a.port)] });
    // The first call opens a port that the second, made before the first finished, drops again.
    const calls = [proxy.updateRoutes([route(port, a.port), route(extra, a.port)]), proxy.updateRoutes([route(port, b.port)])];
    const results = await Promise.race([Promise.allSettled(calls), new Promise((r) => setTimeout(() => r('hung'), 3000))]);
    assert.notEqual(results, 'hung', 'every call settles');
    assert.equal(await ask(port), 'b');
    assert.deepEqual(proxy.getListeningPorts(), [port]);
  });

  it('updateRoutes() during stop() opens no listener', async () => {
    const backend = await echo('u');
    const [port, newPort] = [await freePort(), await freePort()];
    const proxy = new SmartProxy({ listenAddress: '127.0.0.1', gracefulShutdownTimeout: 200, routes: [route(port, backend.port)] });
    onCleanup(() => proxy.stop());
    await proxy.start();
    const held = await connect({ port });
    const stopping = proxy.stop();
    await proxy.updateRoutes([route(newPort, backend.port)]);
    await stopping;
    held.destroy();
    assert.deepEqual(proxy.getListeningPorts(), []);
    await assert.rejects(connect({ port: newPort }));
  });
});

describe('trusting everyone is said out loud', () => {
  it('a reload that trusts 0.0.0.0/0 with trustAllProxyIPs emits a warning, as a start does', async () => {
    const backend = await echo('w');
    const port = await freePort();
    const proxy = await started({ routes: [route(port, backend.port)] });
    const warnings: string[] = [];
    proxy.on('warning', (w: string) => warnings.push(w));
    await proxy.reloadOptions({ listenAddress: '127.0.0.1', acceptProxyProtocol: true, proxyIPs: ['0.0.0.0/0'], trustAllProxyIPs: true, routes: [route(port, backend.port)] });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /trusts every address/);
  });
});

describe('a peer cannot hold more than its share while a stage waits', () => {
  it('an untrusted peer is counted at accept: 300 silent connections under maxConnectionsPerIP 2 leave 2, and another client is served', async () => {
    const backend = await echo('ok');
    const port = await freePort();
    const proxy = await started({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.200'], maxConnectionsPerIP: 2, routes: [route(port, backend.port)] });
    const attackers: net.Socket[] = [];
    for (let i = 0; i < 300; i++) {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.50' });
      s.on('error', () => undefined);
      attackers.push(s);
    }
    onCleanup(() => attackers.forEach((s) => s.destroy()));
    await waitFor(() => proxy.getStatistics().totalConnections >= 300, 5000, 'all attackers accepted');
    await waitFor(() => proxy.getStatistics().activeConnections === 2, 3000, 'the excess to be closed at once');
    assert.equal(proxy.connectionManager.connectionsFromIP('127.0.0.50'), 2);
    assert.equal(await ask(port, '127.0.0.60'), 'ok');
  });

  it('connections waiting for a header are capped per peer and per listener with ERR_PP_TOO_MANY_PENDING', async () => {
    const backend = await echo('ok');
    const port = await freePort();
    const proxy = await started({
      acceptProxyProtocol: true,
      proxyIPs: ['127.0.0.0/24'],
      proxyProtocolMaxPendingPerIP: 5,
      proxyProtocolMaxPending: 8,
      routes: [route(port, backend.port)],
    });
    const codes: string[] = [];
    proxy.on('proxy-protocol-error', (e: IProxyProtocolErrorEvent) => codes.push(e.code));
    const silent: net.Socket[] = [];
    const open = (from: string): void => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
      s.on('error', () => undefined);
      silent.push(s);
    };
    onCleanup(() => silent.forEach((s) => s.destroy()));
    for (let i = 0; i < 7; i++) open('127.0.0.7');
    await waitFor(() => codes.length === 2, 3000, 'two over the per-peer cap');
    for (let i = 0; i < 4; i++) open('127.0.0.8');
    await waitFor(() => codes.length === 3, 3000, 'one over the listener cap');
    assert.deepEqual(new Set(codes), new Set(['ERR_PP_TOO_MANY_PENDING']));
    assert.equal(proxy.getStatistics().activeConnections, 8);
    silent.splice(0, 3).forEach((s) => s.destroy());
    await waitFor(() => proxy.getStatistics().activeConnections === 5, 3000, 'the slots to be released');
    const header = ProxyProtocolParser.generate({ source: { address: '198.51.100.1', port: 1 }, destination: { address: '127.0.0.1', port } });
    assert.equal(await ask(port, '127.0.0.9', header), 'ok', 'a released slot serves a new client');
  });
});

describe('one client is one client, however its address is spelt', () => {
  it('four v1 spellings of one IPv6 client count as one address under maxConnectionsPerIP 2', async () => {
    const backend = await echo('ok');
    const port = await freePort();
    const proxy = await started({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], maxConnectionsPerIP: 2, routes: [route(port, backend.port)] });
    const spellings = ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:DB8::1', '2001:db8:0:0::1', '2001:db8::0:1'];
    const clients = await Promise.all(spellings.map(async (address, i) => {
      const client = await connect({ port });
      client.write(`PROXY TCP6 ${address} ::1 ${5000 + i} ${port}\r\n`);
      return client;
    }));
    onCleanup(() => clients.forEach((c) => c.destroy()));
    const answers = await Promise.all(clients.map((c) => readLine(c, 3000).catch(() => '')));
    assert.equal(answers.filter((a) => a === 'ok').length, 2);
    assert.equal(proxy.connectionManager.connectionsFromIP('2001:db8::1'), 2);
  });
});

describe('once one side is gone, the other may only flush for a bounded time', () => {
  it('a client that resets while the backend is not reading is noticed and frees its route and per-IP slots', async () => {
    const backend = await startServer((s) => s.pause());
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = await started({ maxConnectionsPerIP: 1, routes: [route(port, backend.port, { security: { maxConnections: 1 } })] });
    const reasons: string[] = [];
    proxy.on('connection-close', (c: { closeReason: string }) => reasons.push(c.closeReason));
    const client = await connect({ port });
    const chunk = Buffer.alloc(1 << 20, 1);
    for (let i = 0; i < 16; i++) client.write(chunk);
    await new Promise((r) => setTimeout(r, 300));
    client.resetAndDestroy();
    await waitFor(() => proxy.getStatistics().activeConnections === 0, 3000, 'the zombie to be closed');
    assert.deepEqual(reasons, ['client-error']);
    assert.equal(proxy.connectionManager.connectionsFromIP('127.0.0.1'), 0);
  });

  it('a client that sends FIN but reads nothing gets flushTimeout for what is queued to it, then is closed', async () => {
    const backend = await startServer((s) => {
      const chunk = Buffer.alloc(1 << 20, 2);
      for (let i = 0; i < 16; i++) s.write(chunk);
    });
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = await started({ flushTimeout: 300, routes: [route(port, backend.port)] });
    const reasons: string[] = [];
    proxy.on('connection-close', (c: { closeReason: string }) => reasons.push(c.closeReason));
    const client = await connect({ port, allowHalfOpen: true });
    client.pause();
    client.on('error', () => undefined);
    onCleanup(() => client.destroy());
    await new Promise((r) => setTimeout(r, 300));
    client.end();
    await waitFor(() => reasons.length === 1, 3000, 'the connection to close');
    assert.deepEqual(reasons, ['client-closed']);
  });
});

describe('an HTTP route counts the connections it carries', () => {
  it('connections on an HTTP route with maxConnections 1 are all admitted and all counted as active on the route', async () => {
    const backend = await startServer((s) => s.on('data', () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')));
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = await started({ routes: [route(port, backend.port, { http: {}, security: { maxConnections: 1 } })] });
    const clients = await Promise.all([connect({ port }), connect({ port })]);
    onCleanup(() => clients.forEach((c) => c.destroy()));
    await waitFor(() => proxy.getStatistics().activeConnections === 2);
    assert.equal(proxy.getMetrics().connections.byRoute[`r${port}`].active, 2);
    clients.forEach((c) => c.destroy());
    await waitFor(() => proxy.getStatistics().activeConnections === 0);
    assert.equal(proxy.getMetrics().connections.byRoute[`r${port}`].active, 0);
  });
});

describe('route changes are all or nothing', () => {
  it('when a new port is busy, updateRoutes rejects with ERR_LISTEN and the old port keeps its old target', async () => {
    const [a, b] = [await echo('old'), await echo('new')];
    const port = await freePort();
    const busy = await startServer(() => undefined);
    onCleanup(() => busy.close());
    const proxy = await started({ routes: [route(port, a.port)] });
    await assert.rejects(proxy.updateRoutes([route(port, b.port), { ...route(busy.port, b.port), name: 'busy' }]), { code: 'ERR_LISTEN' });
    assert.equal(await ask(port), 'old');
    assert.deepEqual(proxy.getListeningPorts(), [port]);
  });
});

describe('backends that never answer', () => {
  const python = findBinary('python3');
  it('a backend that drops SYNs is ERR_BACKEND_CONNECT_TIMEOUT after connectTimeout', { skip: python === null && !process.env.CI ? 'python3 not installed' : false }, async () => {
    assert.ok(python, 'python3 is needed to make a listener whose accept queue is full');
    const blackhole = await freePort();
    // A listener that never accepts, with its one-slot queue filled: the kernel drops further SYNs.
    const script = `import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',${blackhole}))\ns.listen(0)\nprint('ready',flush=True)\ntime.sleep(30)`;
    const child = spawn(python, ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    onCleanup(() => child.kill());
    await new Promise((r) => child.stdout.once('data', r));
    const fillers: net.Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = net.connect({ port: blackhole, host: '127.0.0.1' });
      s.on('error', () => undefined);
      fillers.push(s);
    }
    onCleanup(() => fillers.forEach((s) => s.destroy()));
    await new Promise((r) => setTimeout(r, 200));
    const port = await freePort();
    const proxy = await started({ connectTimeout: 400, routes: [route(port, blackhole)] });
    const reasons: string[] = [];
    proxy.on('connection-close', (c: { closeReason: string }) => reasons.push(c.closeReason));
    const t0 = Date.now();
    const client = await connect({ port });
    client.write('x');
    assert.equal(await closed(client, 3000), true);
    assert.ok(Date.now() - t0 < 2000, `closed after ${Date.now() - t0} ms`);
    assert.deepEqual(reasons, ['ERR_BACKEND_CONNECT_TIMEOUT']);
  });
});

describe('deadlines follow a monotonic clock', () => {
  it('a wall clock stepped back an hour does not hold a silent trusted peer past its header deadline', async () => {
    const port = await freePort();
    const proxy = await started({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], proxyProtocolTimeout: 300, routes: [route(port, 1)] });
    const realNow = Date.now;
    const client = await connect({ port });
    await waitFor(() => proxy.getStatistics().activeConnections === 1);
    const stepped = realNow() - 3_600_000;
    Date.now = () => stepped;
    try {
      assert.equal(await closed(client, 2000), true, 'closed at its deadline');
    } finally {
      Date.now = realNow;
    }
    assert.equal(proxy.getStatistics().proxyProtocol.rejected.ERR_PP_TIMEOUT, 1);
  });
});
