/**
 * PROXY policies per source and port, accepted versions, the pending cap, and hints that say why
 * a header failed. Distinct sources are distinct 127.0.0.X addresses on real sockets.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { ProxyProtocolParser, SmartProxy, collectConfigErrors } from '../ts/index.js';
import type { IProxyProtocolErrorEvent, ISmartProxyOptions } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { type IHeaderReport, connect, freePort, readLine, startHeaderReportingServer, startServer, startTaggedEchoServer, waitFor } from './helpers/net.js';
import { type IPeer, haproxyCommand, skipUnless, startHaproxy, withPeerLogs } from './helpers/peers.js';

const onCleanup = cleanupAfterAll();
const skipHaproxy = skipUnless('haproxy');

type Route = ISmartProxyOptions['routes'][number];
const SOURCES = { require: '127.0.0.2', use: '127.0.0.3', ignore: '127.0.0.4', skip: '127.0.0.5', other: '127.0.0.6' };

function route(port: number, target: number): Route {
  return { name: `r${port}`, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target } } };
}

async function started(options: ISmartProxyOptions): Promise<SmartProxy & { errors: IProxyProtocolErrorEvent[] }> {
  const proxy = new SmartProxy({ listenAddress: '127.0.0.1', ...options });
  const errors: IProxyProtocolErrorEvent[] = [];
  proxy.on('proxy-protocol-error', (e: IProxyProtocolErrorEvent) => errors.push(e));
  await proxy.start();
  onCleanup(() => proxy.stop());
  return Object.assign(proxy, { errors });
}

function header(port: number, source = '198.51.100.7', version: 1 | 2 = 1): Buffer {
  return ProxyProtocolParser.generate({ source: { address: source, port: 4242 }, destination: { address: '127.0.0.1', port } }, { version });
}

/**
 * Sends `first` then a line from `from`, and returns what a header-reporting backend behind a
 * v2-sending proxy said the client was ('closed' when the proxy closed the connection instead).
 */
async function clientSeen(port: number, from: string, first: Buffer): Promise<{ client: string; data?: string } | 'closed'> {
  const socket = await connect({ port, localAddress: from });
  socket.write(Buffer.concat([first, Buffer.from('hi\n')]));
  const line = await readLine(socket, 3000).catch(() => '');
  if (line === '') return 'closed';
  const report = JSON.parse(line) as IHeaderReport;
  const data = await readLine(socket, 3000);
  socket.destroy();
  return { client: (report.header?.source as { address: string }).address, data };
}

async function reportingBackend() {
  const backend = await startHeaderReportingServer();
  onCleanup(() => backend.close());
  return backend;
}

const rules = [
  { from: [SOURCES.require], policy: 'require' as const },
  { from: [SOURCES.use], policy: 'use' as const },
  { from: [SOURCES.ignore], policy: 'ignore' as const },
  { from: [SOURCES.skip], policy: 'skip' as const },
];

describe('each policy on one port, from distinct sources', () => {
  it('require: a header is believed; none is ERR_PP_MISSING', async () => {
    const backend = await reportingBackend();
    const port = await freePort();
    const proxy = await started({ acceptProxyProtocol: true, proxyProtocolRules: rules, sendProxyProtocol: true, proxyProtocolVersion: 2, routes: [route(port, backend.port)] });
    assert.deepEqual(await clientSeen(port, SOURCES.require, header(port)), { client: '198.51.100.7', data: 'hi' });
    assert.equal(await clientSeen(port, SOURCES.require, Buffer.alloc(0)), 'closed');
    await waitFor(() => proxy.errors.length === 1);
    assert.equal(proxy.errors[0].code, 'ERR_PP_MISSING');
    assert.equal(proxy.errors[0].policy, 'require');
  });

  it('use: a header is believed; without one the peer is the client', async () => {
    const backend = await reportingBackend();
    const port = await freePort();
    await started({ acceptProxyProtocol: true, proxyProtocolRules: rules, sendProxyProtocol: true, proxyProtocolVersion: 2, routes: [route(port, backend.port)] });
    assert.deepEqual(await clientSeen(port, SOURCES.use, header(port)), { client: '198.51.100.7', data: 'hi' });
    assert.deepEqual(await clientSeen(port, SOURCES.use, Buffer.alloc(0)), { client: SOURCES.use, data: 'hi' });
  });

  it('ignore: a header is read and removed but never believed', async () => {
    const backend = await reportingBackend();
    const port = await freePort();
    const proxy = await started({ acceptProxyProtocol: true, proxyProtocolRules: rules, sendProxyProtocol: true, proxyProtocolVersion: 2, routes: [route(port, backend.port)] });
    assert.deepEqual(await clientSeen(port, SOURCES.ignore, header(port)), { client: SOURCES.ignore, data: 'hi' }, 'the header is gone and the peer is the client');
    assert.deepEqual(await clientSeen(port, SOURCES.ignore, Buffer.alloc(0)), { client: SOURCES.ignore, data: 'hi' });
    assert.equal(proxy.getStatistics().proxyProtocol.ignored, 1);
  });

  it('reject (no rule matches): a header is spoofing, with a hint naming the peer and the option that would trust it; no header is a normal client', async () => {
    const backend = await reportingBackend();
    const port = await freePort();
    const proxy = await started({ acceptProxyProtocol: true, proxyProtocolRules: rules, sendProxyProtocol: true, proxyProtocolVersion: 2, routes: [route(port, backend.port)] });
    assert.equal(await clientSeen(port, SOURCES.other, header(port)), 'closed');
    assert.deepEqual(await clientSeen(port, SOURCES.other, Buffer.alloc(0)), { client: SOURCES.other, data: 'hi' });
    await waitFor(() => proxy.errors.length === 1);
    const [error] = proxy.errors;
    assert.equal(error.code, 'ERR_PP_UNTRUSTED_PEER');
    assert.match(error.hint ?? '', new RegExp(`peer ${SOURCES.other.replace(/\./g, '\\.')} sent a PROXY header`));
    assert.match(error.hint ?? '', /proxyIPs/);
    assert.deepEqual(proxy.getStatistics().proxyProtocol.byPolicy, { require: 0, use: 0, ignore: 0, reject: 2, skip: 0 });
  });

  it('skip: nothing is read, so a header from such a source reaches the backend as data', async () => {
    const backend = await startTaggedEchoServer('raw');
    onCleanup(() => backend.close());
    const port = await freePort();
    await started({ acceptProxyProtocol: true, proxyProtocolRules: rules, routes: [route(port, backend.port)] });
    const socket = await connect({ port, localAddress: SOURCES.skip });
    socket.write(header(port));
    assert.equal(await readLine(socket), 'raw');
    assert.equal(await readLine(socket), `PROXY TCP4 198.51.100.7 127.0.0.1 4242 ${port}\r`);
    socket.destroy();
  });
});

describe('rules by port, and server-first protocols', () => {
  async function greetingBackend() {
    const backend = await startServer((s) => s.write('220 mail.test ESMTP\n'));
    onCleanup(() => backend.close());
    return backend;
  }

  it('skip lets a greeting backend reach a direct client at once, where reject waits for proxyProtocolTimeout', async () => {
    const backend = await greetingBackend();
    const [smtp, other] = [await freePort(), await freePort()];
    await started({
      acceptProxyProtocol: true,
      proxyProtocolTimeout: 1500,
      proxyProtocolRules: [{ from: ['0.0.0.0/0', '::/0'], ports: [smtp], policy: 'skip' }],
      routes: [route(smtp, backend.port), route(other, backend.port)],
    });
    const greetingAfter = async (port: number): Promise<number> => {
      const t0 = Date.now();
      const socket = await connect({ port, localAddress: SOURCES.other });
      assert.equal(await readLine(socket, 4000), '220 mail.test ESMTP');
      socket.destroy();
      return Date.now() - t0;
    };
    assert.ok((await greetingAfter(smtp)) < 500, 'skip: the greeting comes at once');
    assert.ok((await greetingAfter(other)) >= 1400, 'reject: the greeting waits for the spoof check');
  });

  it('the same source requires a header on one port and is skipped on another', async () => {
    const backend = await startTaggedEchoServer('ok');
    onCleanup(() => backend.close());
    const [a, b] = [await freePort(), await freePort()];
    const proxy = await started({
      acceptProxyProtocol: true,
      proxyProtocolRules: [{ from: ['127.0.0.0/8'], ports: [a], policy: 'require' }, { from: ['127.0.0.0/8'], ports: [b], policy: 'skip' }],
      routes: [route(a, backend.port), route(b, backend.port)],
    });
    const plain = async (port: number): Promise<string> => {
      const s = await connect({ port });
      s.write('x\n');
      const line = await readLine(s, 2000).catch(() => '');
      s.destroy();
      return line;
    };
    assert.equal(await plain(a), '');
    assert.equal(await plain(b), 'ok');
    assert.equal(proxy.errors[0]?.code, 'ERR_PP_MISSING');
  });
});

describe('versions', () => {
  it('a version outside proxyProtocolVersions is ERR_PP_VERSION_NOT_ALLOWED; an allowed one is believed', async () => {
    const backend = await reportingBackend();
    const port = await freePort();
    const proxy = await started({
      acceptProxyProtocol: true,
      proxyIPs: ['127.0.0.1'],
      proxyProtocolVersions: [2],
      sendProxyProtocol: true,
      proxyProtocolVersion: 2,
      routes: [route(port, backend.port)],
    });
    assert.equal(await clientSeen(port, '127.0.0.1', header(port, '198.51.100.1', 1)), 'closed');
    assert.deepEqual(await clientSeen(port, '127.0.0.1', header(port, '198.51.100.2', 2)), { client: '198.51.100.2', data: 'hi' });
    await waitFor(() => proxy.errors.length === 1);
    assert.equal(proxy.errors[0].code, 'ERR_PP_VERSION_NOT_ALLOWED');
    assert.deepEqual(proxy.getStatistics().proxyProtocol.byVersion, { v1: 1, v2: 1 });
  });
});

describe('hints for a source that must send a header', () => {
  const openings: Array<[string, Buffer, RegExp]> = [
    ['TLS', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]), /a TLS ClientHello/],
    ['HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /an HTTP\/1 request line/],
    ['SSH', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), /an SSH banner/],
  ];
  for (const [name, bytes, what] of openings) {
    it(`${name} first bytes: the hint says what came, names the peer, the sender switches, policy "use" and hairpin traffic`, async () => {
      const port = await freePort();
      const proxy = await started({ acceptProxyProtocol: true, proxyProtocolRules: rules, routes: [route(port, 1)] });
      const socket = await connect({ port, localAddress: SOURCES.require });
      socket.on('error', () => undefined);
      socket.write(bytes);
      await waitFor(() => proxy.errors.length === 1);
      const hint = proxy.errors[0].hint ?? '';
      assert.match(hint, what);
      assert.match(hint, /peer 127\.0\.0\.2/);
      assert.match(hint, /send-proxy-v2/);
      assert.match(hint, /proxy_protocol on/);
      assert.match(hint, /proxy_protocol_v2\.enabled/);
      assert.match(hint, /policy "use"/);
      assert.match(hint, /hairpin/);
      socket.destroy();
    });
  }
});

describe('configuration of policies', () => {
  it('a catch-all source needs trustAllProxyIPs with require or use, not with skip, ignore or reject', () => {
    const base = { acceptProxyProtocol: true, routes: [route(1000, 1)] };
    for (const policy of ['require', 'use'] as const) {
      const errors = collectConfigErrors({ ...base, proxyProtocolRules: [{ from: ['10.0.0.0/0'], policy }] });
      assert.deepEqual(errors.map((e) => [e.code, e.field]), [['ERR_CONFIG_TRUST_ALL', 'proxyProtocolRules[0].from[0]']]);
      assert.deepEqual(collectConfigErrors({ ...base, trustAllProxyIPs: true, proxyProtocolRules: [{ from: ['10.0.0.0/0'], policy }] }), []);
    }
    for (const policy of ['skip', 'ignore', 'reject'] as const) {
      assert.deepEqual(collectConfigErrors({ ...base, proxyProtocolRules: [{ from: ['0.0.0.0/0', '::/0'], policy }] }), []);
    }
  });

  it('bad rules and versions are reported at their paths', () => {
    const errors = collectConfigErrors({
      acceptProxyProtocol: true,
      proxyProtocolRules: [{ from: ['nope'], policy: 'maybe', ports: [0] }, { policy: 'use' }, 'x'],
      proxyProtocolVersions: [3],
      routes: [route(1000, 1)],
    });
    assert.deepEqual(
      errors.map((e) => e.field).sort(),
      ['proxyProtocolRules[0].from[0]', 'proxyProtocolRules[0].policy', 'proxyProtocolRules[0].ports[0]', 'proxyProtocolRules[1].from', 'proxyProtocolRules[2]', 'proxyProtocolVersions[0]'].sort(),
    );
  });
});

describe('the pending cap under a flood', () => {
  it('2,000 silent connections from a require source: the excess over proxyProtocolMaxPending closes at once, and a skip client is still served', async () => {
    const backend = await startTaggedEchoServer('served');
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = await started({
      acceptProxyProtocol: true,
      proxyProtocolMaxPendingPerIP: 0,
      proxyProtocolRules: [{ from: ['127.0.1.0/24'], policy: 'require' }, { from: [SOURCES.skip], policy: 'skip' }],
      routes: [route(port, backend.port)],
    });
    const flood: net.Socket[] = [];
    onCleanup(() => flood.forEach((s) => s.destroy()));
    // In batches, so the listen backlog never overflows (a dropped SYN is retried a second later).
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 200; i++) {
        const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.1.${1 + i}` });
        s.on('error', () => undefined);
        flood.push(s);
      }
      await waitFor(() => proxy.getStatistics().totalConnections >= 200 * (batch + 1), 5000, 'a batch to be accepted');
    }
    await waitFor(() => proxy.getStatistics().activeConnections === 1000, 5000, 'the excess to be closed');
    assert.equal(proxy.getStatistics().proxyProtocol.rejected.ERR_PP_TOO_MANY_PENDING, 1000);
    const client = await connect({ port, localAddress: SOURCES.skip });
    assert.equal(await readLine(client), 'served');
    client.destroy();
  });
});

describe('HAProxy health checks from a "use" source', () => {
  it('LOCAL checks (check-send-proxy) keep the server UP; the peer is the client and nothing is an error', { skip: skipHaproxy }, async () => {
    const backend = await startTaggedEchoServer('health');
    onCleanup(() => backend.close());
    const [hp, sp] = [await freePort(), await freePort()];
    const proxy = await started({ acceptProxyProtocol: true, proxyProtocolRules: [{ from: ['127.0.0.1'], policy: 'use' }], routes: [route(sp, backend.port)] });
    const clients: string[] = [];
    proxy.on('connection-close', (c: { clientIP: string }) => clients.push(c.clientIP));
    const haproxy: IPeer = await startHaproxy(
      `frontend fe\n  mode tcp\n  bind 127.0.0.1:${hp}\n  default_backend be\n` +
        `backend be\n  mode tcp\n  option tcp-check\n  tcp-check expect string health\n` +
        `  server s 127.0.0.1:${sp} send-proxy-v2 check check-send-proxy inter 100 fall 1 rise 1\n`,
      [hp],
    );
    onCleanup(() => haproxy.stop());
    await withPeerLogs([haproxy], async () => {
      await waitFor(() => proxy.getStatistics().proxyProtocol.local >= 5, 5000, 'five LOCAL checks');
      const status = (await haproxyCommand(haproxy, 'show stat')).split('\n').find((l) => l.startsWith('be,s,'))?.split(',')[17];
      assert.equal(status, 'UP');
      assert.deepEqual(proxy.errors, []);
      assert.ok(clients.length > 0 && clients.every((c) => c === '127.0.0.1'));
    });
  });
});
