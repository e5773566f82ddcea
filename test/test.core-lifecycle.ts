import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { ConfigError, SmartProxy, WrappedSocket, collectConfigErrors, getUnderlyingSocket, isWrappedSocket } from '../ts/index.js';
import type { ISmartProxyOptions } from '../ts/index.js';
import { closed, connect, freePort, readLine, startEchoServer, startServer, waitFor } from './helpers/net.js';
import { cleanupAfterAll } from './helpers/cleanup.js';

const onCleanup = cleanupAfterAll();

const target = { host: '127.0.0.1', port: 9 };
const route = (extra: Record<string, unknown> = {}) => ({ name: 'r', match: { ports: 8443 }, action: { type: 'forward' as const, target }, ...extra });

// Each row: options → expected code and field of the first ConfigError.
const badConfigs: Array<[string, unknown, string, string]> = [
  ['unknown action type', { routes: [{ ...route(), action: { type: 'teleport', target } }] }, 'ERR_CONFIG_ACTION_TYPE', 'routes[0].action.type'],
  ['port out of range', { routes: [{ ...route(), match: { ports: 70000 } }] }, 'ERR_CONFIG_PORT', 'routes[0].match.ports'],
  ['port range upside down', { routes: [{ ...route(), match: { ports: [{ from: 9, to: 3 }] } }] }, 'ERR_CONFIG_PORT', 'routes[0].match.ports[0]'],
  ['target port missing', { routes: [{ ...route(), action: { type: 'forward', target: { host: 'x' } } }] }, 'ERR_CONFIG_PORT', 'routes[0].action.target.port'],
  ['bad CIDR in an allow list', { routes: [{ ...route(), action: { type: 'forward', target, security: { ipAllowList: ['10.0.0.0/33'] } } }] }, 'ERR_CONFIG_CIDR', 'routes[0].action.security.ipAllowList[0]'],
  ['bad client IP match', { routes: [{ ...route(), match: { ports: 1, clientIp: ['nope'] } }] }, 'ERR_CONFIG_CIDR', 'routes[0].match.clientIp[0]'],
  ['terminate without certificate', { routes: [{ ...route(), action: { type: 'forward', target, tls: { mode: 'terminate' } } }] }, 'ERR_CONFIG_TLS', 'routes[0].action.tls.certificate'],
  ['unknown TLS mode', { routes: [{ ...route(), action: { type: 'forward', target, tls: { mode: 'sideways' } } }] }, 'ERR_CONFIG_TLS', 'routes[0].action.tls.mode'],
  ['unusable certificate', { routes: [{ ...route(), action: { type: 'forward', target, tls: { mode: 'terminate', certificate: { key: 'x', cert: 'y' } } } }] }, 'ERR_CONFIG_TLS', 'routes[0].action.tls.certificate'],
  ['duplicate route names', { routes: [route(), route()] }, 'ERR_CONFIG_ROUTE_NAME', 'routes[1].name'],
  ['missing route name', { routes: [{ ...route(), name: '' }] }, 'ERR_CONFIG_ROUTE_NAME', 'routes[0].name'],
  ['bad domain pattern', { routes: [{ ...route(), match: { ports: 1, domains: ['a.*.com'] } }] }, 'ERR_CONFIG_DOMAIN', 'routes[0].match.domains[0]'],
  ['negative timeout', { routes: [], inactivityTimeout: -1 }, 'ERR_CONFIG_OPTION', 'inactivityTimeout'],
  ['routes not an array', { routes: 'all' }, 'ERR_CONFIG_ROUTES', 'routes'],
  ['bad proxyIPs entry', { routes: [], proxyIPs: ['10.0.0.1', 'proxy.example.com'] }, 'ERR_CONFIG_CIDR', 'proxyIPs[1]'],
  ['catch-all proxyIPs', { routes: [], proxyIPs: ['0.0.0.0/0'] }, 'ERR_CONFIG_TRUST_ALL', 'proxyIPs[0]'],
  ['catch-all IPv6 proxyIPs', { routes: [], proxyIPs: ['::/0'] }, 'ERR_CONFIG_TRUST_ALL', 'proxyIPs[0]'],
  ['star proxyIPs', { routes: [], proxyIPs: ['*'] }, 'ERR_CONFIG_TRUST_ALL', 'proxyIPs[0]'],
  ['bad PROXY version', { routes: [], proxyProtocolVersion: 3 }, 'ERR_CONFIG_OPTION', 'proxyProtocolVersion'],
  ['header size over the v2 maximum', { routes: [], proxyProtocolMaxHeaderSize: 70000 }, 'ERR_CONFIG_OPTION', 'proxyProtocolMaxHeaderSize'],
  ['a misspelt option', { routes: [], acceptProxyprotocol: true }, 'ERR_CONFIG_UNKNOWN_OPTION', 'acceptProxyprotocol'],
  ['a misspelt route field', { routes: [{ ...route(), match: { ports: 1, domain: 'a.example' } }] }, 'ERR_CONFIG_UNKNOWN_OPTION', 'routes[0].match.domain'],
  ['a misspelt TLV option', { routes: [], proxyProtocolTlvs: { crc32: true } }, 'ERR_CONFIG_UNKNOWN_OPTION', 'proxyProtocolTlvs.crc32'],
];

describe('configuration is checked at construction', () => {
  for (const [what, options, code, field] of badConfigs) {
    it(`rejects ${what} with ${code} at ${field}`, () => {
      assert.throws(
        () => new SmartProxy(options as ISmartProxyOptions),
        (err: unknown) => err instanceof ConfigError && err.code === code && err.field === field,
      );
    });
  }

  it('names the route in the message', () => {
    assert.throws(() => new SmartProxy({ routes: [{ ...route(), name: 'api', match: { ports: 0 } }] }), /route "api": routes\[0\]\.match\.ports/);
  });

  it('lists every problem at once for tools', () => {
    const problems = collectConfigErrors({ routes: [{ ...route(), match: { ports: 0 } }, { ...route(), name: 'b', action: { type: 'x', target } }], inactivityTimeout: 'soon' });
    assert.deepEqual(problems.map((p) => p.field), ['inactivityTimeout', 'routes[0].match.ports', 'routes[1].action.type']);
  });

  it('accepts a catch-all proxyIPs only with trustAllProxyIPs, and warns once at start', async () => {
    const proxy = new SmartProxy({ routes: [], proxyIPs: ['0.0.0.0/0'], trustAllProxyIPs: true });
    const warnings: string[] = [];
    proxy.on('warning', (m: string) => warnings.push(m));
    const originalWarn = console.warn;
    console.warn = () => undefined;
    try {
      await proxy.start();
    } finally {
      console.warn = originalWarn;
    }
    await proxy.stop();
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /trusts every address/);
  });
});

describe('WrappedSocket', () => {
  it('reports the socket address until proxy info is set, then the real client, and behaves as its socket otherwise', async () => {
    const server = await startServer((s) => s.pipe(s));
    onCleanup(() => server.close());
    const raw = await connect({ port: server.port, localAddress: '127.0.0.7' });
    const wrapped = new WrappedSocket(raw, true);
    assert.equal(wrapped.remoteAddress, '127.0.0.1');
    assert.equal(wrapped.realClientIP, undefined);
    assert.equal(wrapped.isFromTrustedProxy, true);
    wrapped.setProxyInfo('::ffff:203.0.113.9', 4711);
    assert.equal(wrapped.remoteAddress, '203.0.113.9');
    assert.equal(wrapped.remotePort, 4711);
    assert.equal(wrapped.remoteFamily, 'IPv4');
    assert.equal(wrapped.localPort, raw.localPort);
    assert.ok(isWrappedSocket(wrapped));
    assert.equal(getUnderlyingSocket(wrapped), raw);
    assert.equal(getUnderlyingSocket(raw), raw);
    // Writes and events go through to the raw socket: an echo comes back to a wrapped listener.
    const echoed = new Promise<string>((resolve) => wrapped.once('data', (d: Buffer) => resolve(d.toString())));
    assert.equal(wrapped.write('ping'), true);
    assert.equal(await echoed, 'ping');
    assert.equal(wrapped.bytesWritten, 4);
    const closedEvent = new Promise((resolve) => wrapped.once('close', resolve));
    wrapped.destroy();
    await closedEvent;
    assert.equal(raw.destroyed, true);
  });
});

describe('no leaks', () => {
  it('returns to zero active connections after 500 connections, some of them failing', async () => {
    const backend = await startEchoServer();
    onCleanup(() => backend.close());
    const port = await freePort();
    const deadPort = await freePort();
    const proxy = new SmartProxy({
      listenAddress: '127.0.0.1',
      maxConnectionsPerIP: 1000,
      routes: [
        { name: 'echo', match: { ports: port, clientIp: ['127.0.0.1', '127.0.0.2'] }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } },
        { name: 'dead', match: { ports: port, clientIp: ['127.0.0.3'] }, action: { type: 'forward', target: { host: '127.0.0.1', port: deadPort } } },
      ],
    });
    await proxy.start();
    onCleanup(() => proxy.stop());
    const kinds = ['ok', 'reset', 'dead', 'unrouted', 'half'];
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const kind = kinds[i % kinds.length];
          const local = { ok: '127.0.0.1', reset: '127.0.0.2', dead: '127.0.0.3', unrouted: '127.0.0.4', half: '127.0.0.1' }[kind];
          const socket = await connect({ port, localAddress: local, allowHalfOpen: kind === 'half' });
          socket.on('error', () => undefined);
          if (kind === 'ok') {
            socket.write('ping\n');
            assert.equal(await readLine(socket), 'ping');
            socket.end();
          } else if (kind === 'reset') {
            socket.write('ping\n');
            await readLine(socket);
            socket.resetAndDestroy();
          } else if (kind === 'half') {
            socket.end('bye\n');
          }
          assert.equal(await closed(socket, 5000), true, `${kind} connection closed`);
        }),
      );
    }
    await waitFor(() => proxy.getStatistics().activeConnections === 0, 5000, 'zero active connections');
    const stats = proxy.getStatistics();
    assert.equal(stats.totalConnections, 500);
    assert.equal(proxy.connectionManager.connectionsFromIP('127.0.0.1'), 0);
    await waitFor(() => backend.sockets.size === 0, 3000, 'backend sockets to close');
  });

  it('lets the process exit on its own after stop()', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/exit-after-stop.ts'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 15000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(code, 0, `child did not exit by itself: ${out}`);
    assert.doesNotMatch(out, /still alive/);
  });
});

describe('graceful shutdown and defaults', () => {
  it('stop() lets a live connection finish within gracefulShutdownTimeout, then closes the rest', async () => {
    const backend = await startServer((s) => {
      s.on('data', () => setTimeout(() => s.end('done\n'), 150));
    });
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = new SmartProxy({ listenAddress: '127.0.0.1', gracefulShutdownTimeout: 2000, routes: [{ name: 'g', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
    await proxy.start();
    const finishing = await connect({ port });
    finishing.write('work\n');
    const idle = await connect({ port });
    await waitFor(() => proxy.getStatistics().activeConnections === 2);
    const started = Date.now();
    const answer = readLine(finishing);
    await proxy.stop();
    assert.equal(await answer, 'done', 'the busy connection finished its work');
    assert.equal(await closed(idle, 100), true, 'the idle one was closed at the deadline');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1900 && elapsed < 4000, `stop() took ${elapsed} ms`);
    await assert.rejects(connect({ port }), 'no longer listening');
  });

  it('fills a route target and security from defaults', async () => {
    const backend = await startServer((s) => s.end('from defaults\n'));
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = new SmartProxy({
      listenAddress: '127.0.0.1',
      defaults: { target: { host: '127.0.0.1', port: backend.port }, security: { ipBlockList: ['127.0.0.9'] } },
      routes: [{ name: 'd', match: { ports: port }, action: { type: 'forward' } }],
    });
    await proxy.start();
    onCleanup(() => proxy.stop());
    assert.equal(await readLine(await connect({ port })), 'from defaults');
    assert.equal(await closed(await connect({ port, localAddress: '127.0.0.9' })), true);
  });
});
