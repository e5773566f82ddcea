import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { ConfigError, SmartProxy } from '../ts/index.js';
import {
  closed,
  connect,
  freePort,
  freePorts,
  makeCertificate,
  readAll,
  readLine,
  sha256,
  startEchoServer,
  startServer,
  startTaggedEchoServer,
  waitFor,
} from './helpers/net.js';
import { captureClientHello, reframe, startTlsTaggedServer, writeSplit } from './helpers/tls.js';
import { cleanupAfterAll } from './helpers/cleanup.js';

const onCleanup = cleanupAfterAll();

async function proxyFor(options: ConstructorParameters<typeof SmartProxy>[0]): Promise<SmartProxy> {
  const proxy = new SmartProxy({ listenAddress: '127.0.0.1', ...options });
  await proxy.start();
  onCleanup(() => proxy.stop());
  return proxy;
}

describe('plain TCP forwarding', () => {
  it('moves several MB each way intact through a forward route', async () => {
    const backend = await startEchoServer();
    onCleanup(() => backend.close());
    const port = await freePort();
    await proxyFor({ routes: [{ name: 'echo', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
    const payload = randomBytes(6 * 1024 * 1024);
    const client = await connect({ port });
    const received = new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      let total = 0;
      client.on('data', (c: Buffer) => {
        chunks.push(c);
        total += c.length;
        if (total >= payload.length) resolve(Buffer.concat(chunks));
      });
    });
    client.write(payload);
    assert.equal(sha256(await received), sha256(payload));
    client.destroy();
  });

  it('listens on every port of a range and forwards each', async () => {
    const backend = await startTaggedEchoServer('ranged');
    onCleanup(() => backend.close());
    const base = await freePort('127.0.0.1', 3);
    await proxyFor({ routes: [{ name: 'range', match: { ports: [{ from: base, to: base + 2 }] }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
    for (const p of [base, base + 1, base + 2]) {
      const client = await connect({ port: p });
      assert.equal(await readLine(client), 'ranged');
      client.destroy();
    }
  });

  it('round-robins across an array of target hosts', async () => {
    const backend = await startServer((s) => s.end(`${s.localAddress}\n`), { host: '0.0.0.0' });
    onCleanup(() => backend.close());
    const port = await freePort();
    await proxyFor({ routes: [{ name: 'rr', match: { ports: port }, action: { type: 'forward', target: { host: ['127.0.0.1', '127.0.0.2'], port: backend.port } } }] });
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(await readLine(await connect({ port })));
    assert.deepEqual(seen, ['127.0.0.1', '127.0.0.2', '127.0.0.1', '127.0.0.2']);
  });
});

describe('TLS routing by SNI', () => {
  const certA = makeCertificate(['a.example.com']);
  const certB = makeCertificate(['b.example.org']);

  async function sniSetup() {
    const a = await startTlsTaggedServer('backend-a', certA);
    const b = await startTlsTaggedServer('backend-b', certB);
    const fallback = await startTaggedEchoServer('fallback');
    onCleanup(() => a.close(), () => b.close(), () => fallback.close());
    const port = await freePort();
    const proxy = await proxyFor({
      routes: [
        { name: 'a', match: { ports: port, domains: ['a.example.com'] }, action: { type: 'forward', target: { host: '127.0.0.1', port: a.port }, tls: { mode: 'passthrough' } } },
        { name: 'b', match: { ports: port, domains: '*.example.org' }, action: { type: 'forward', target: { host: '127.0.0.1', port: b.port }, tls: { mode: 'passthrough' } } },
        { name: 'no-sni', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: fallback.port } } },
      ],
    });
    return { port, proxy };
  }

  function tlsLine(port: number, servername: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false }, () => {
        socket.once('data', (d) => {
          resolve(d.toString().trim());
          socket.destroy();
        });
      });
      socket.on('error', reject);
    });
  }

  it('sends two host names on one port to two different passthrough backends', async () => {
    const { port } = await sniSetup();
    assert.equal(await tlsLine(port, 'a.example.com'), 'backend-a a.example.com');
    assert.equal(await tlsLine(port, 'B.Example.ORG'), 'backend-b B.Example.ORG', 'matched case-insensitively, forwarded untouched');
  });

  it('routes a ClientHello split across TCP writes and across TLS records', async () => {
    const { port } = await sniSetup();
    const hello = await captureClientHello('a.example.com');
    for (const bytes of [hello, reframe(hello, 40)]) {
      const client = await connect({ port });
      const gotData = new Promise<boolean>((resolve) => {
        client.once('data', () => resolve(true));
        client.once('close', () => resolve(false));
      });
      await writeSplit(client, bytes, [1, 3, 5, 6, 11, 50, 120]);
      assert.equal(await gotData, true, 'the a-backend answered the split hello');
      client.destroy();
    }
  });

  it('sends a client without SNI to the route without domains, and closes when there is none', async () => {
    const { port } = await sniSetup();
    const plain = await connect({ port });
    plain.write('hello');
    assert.equal(await readLine(plain), 'fallback');
    plain.destroy();

    const strictPort = await freePort();
    const a = await startTlsTaggedServer('only-a', certA);
    onCleanup(() => a.close());
    const proxy = await proxyFor({ routes: [{ name: 'a-only', match: { ports: strictPort, domains: 'a.example.com' }, action: { type: 'forward', target: { host: '127.0.0.1', port: a.port }, tls: { mode: 'passthrough' } } }] });
    const rejected: string[] = [];
    proxy.on('connection-rejected', (e: { code: string }) => rejected.push(e.code));
    const noSni = await connect({ port: strictPort });
    noSni.write(await captureClientHello(undefined));
    assert.equal(await closed(noSni), true);
    const otherName = await connect({ port: strictPort });
    otherName.write(await captureClientHello('c.example.net'));
    assert.equal(await closed(otherName), true);
    assert.deepEqual(rejected, ['ERR_ROUTE_NOT_FOUND', 'ERR_ROUTE_NOT_FOUND']);
  });

  it('terminates TLS with the route certificate and forwards plain bytes', async () => {
    const backend = await startEchoServer();
    onCleanup(() => backend.close());
    const port = await freePort();
    await proxyFor({ routes: [{ name: 'term', match: { ports: port, domains: 'a.example.com' }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port }, tls: { mode: 'terminate', certificate: certA } } }] });
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'a.example.com', ca: certA.cert });
    await new Promise((r) => socket.once('secureConnect', r));
    assert.equal(socket.authorized, true);
    socket.write('through terminate\n');
    assert.equal(await readLine(socket), 'through terminate');
    socket.destroy();
  });

  it('terminates and re-encrypts to a TLS backend it verifies', async () => {
    const backendCert = makeCertificate(['backend.internal']);
    const backend = await startTlsTaggedServer('secure-backend', backendCert);
    onCleanup(() => backend.close());
    const port = await freePort();
    await proxyFor({
      routes: [{
        name: 'reenc',
        match: { ports: port },
        action: {
          type: 'forward',
          target: { host: '127.0.0.1', port: backend.port },
          tls: { mode: 'terminate-and-reencrypt', certificate: certA, backend: { ca: backendCert.cert, servername: 'backend.internal' } },
        },
      }],
    });
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'a.example.com', ca: certA.cert });
    assert.equal(await readLine(socket), 'secure-backend backend.internal');
    socket.write('round trip\n');
    assert.equal(await readLine(socket), 'round trip');
    socket.destroy();
  });
});

describe('half-open policy', () => {
  /** The backend answers 200 ms after the client's FIN reached it. */
  async function lateAnswerBackend() {
    const backend = await startServer((s) => {
      s.resume();
      s.on('end', () => setTimeout(() => s.end('late answer'), 200));
    }, { allowHalfOpen: true });
    onCleanup(() => backend.close());
    return backend;
  }

  for (const enableHalfOpen of [false, true]) {
    it(`${enableHalfOpen ? 'keeps' : 'does not keep'} the return direction open after the client half-closes when enableHalfOpen is ${enableHalfOpen}`, async () => {
      const backend = await lateAnswerBackend();
      const port = await freePort();
      const proxy = await proxyFor({ enableHalfOpen, routes: [{ name: 'h', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
      const client = await connect({ port, allowHalfOpen: true });
      client.end('question');
      const answer = (await readAll(client, 3000)).toString();
      assert.equal(answer, enableHalfOpen ? 'late answer' : '');
      await waitFor(() => proxy.getStatistics().activeConnections === 0, 3000, 'connections to close');
    });
  }
});

describe('failures on either side', () => {
  it('closes the client when the backend refuses, and keeps serving', async () => {
    const deadPort = await freePort();
    const port = await freePort();
    const proxy = await proxyFor({ routes: [{ name: 'dead', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: deadPort } } }] });
    const closes: string[] = [];
    proxy.on('connection-close', (c: { closeReason: string }) => closes.push(c.closeReason));
    for (let i = 0; i < 3; i++) {
      const client = await connect({ port });
      assert.equal(await closed(client), true);
    }
    await waitFor(() => closes.length === 3);
    assert.deepEqual(closes, ['ERR_BACKEND_CONNECT', 'ERR_BACKEND_CONNECT', 'ERR_BACKEND_CONNECT']);
    assert.equal(proxy.getStatistics().activeConnections, 0);
  });

  it('closes the client when the backend resets mid-stream', async () => {
    const backend = await startServer((s) => {
      s.write('partial');
      setTimeout(() => s.resetAndDestroy(), 50);
    });
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = await proxyFor({ routes: [{ name: 'rst', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
    const client = await connect({ port });
    const data = await readAll(client);
    assert.equal(data.toString(), 'partial');
    await waitFor(() => proxy.getStatistics().activeConnections === 0);
  });

  it('closes the backend when the client resets', async () => {
    let backendClosed = false;
    const backend = await startServer((s) => {
      s.on('close', () => (backendClosed = true));
      s.resume();
    });
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = await proxyFor({ routes: [{ name: 'crst', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
    const client = await connect({ port });
    client.write('x'.repeat(1000));
    await waitFor(() => backend.connections === 1);
    client.resetAndDestroy();
    await waitFor(() => backendClosed, 3000, 'backend to be closed');
    await waitFor(() => proxy.getStatistics().activeConnections === 0);
  });

  it('bounds proxy memory when the backend reads slowly (backpressure reaches the client)', async () => {
    const backendSockets: import('node:net').Socket[] = [];
    const backend = await startServer((s) => {
      s.pause();
      backendSockets.push(s);
    });
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = await proxyFor({ routes: [{ name: 'slow', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
    const client = await connect({ port });
    const chunk = Buffer.alloc(64 * 1024, 7);
    const target = 64 * 1024 * 1024;
    let written = 0;
    // Write as fast as the client's socket drains, yielding so the proxy (in this process) runs:
    // without backpressure in the proxy the client never waits and 64 MiB pile up in the proxy.
    const until = Date.now() + 1500;
    while (written < target && Date.now() < until) {
      if (client.writableNeedDrain) await new Promise((r) => setTimeout(r, 10));
      else {
        client.write(chunk);
        written += chunk.length;
        await new Promise((r) => setImmediate(r));
      }
    }
    const conn = [...proxy.connectionManager.connections][0];
    const heldByProxy = (conn.backendStream?.writableLength ?? 0) + conn.wrapped.socket.readableLength;
    assert.ok(heldByProxy < 4 * 1024 * 1024, `proxy holds ${heldByProxy} bytes`);
    assert.ok(written < target, 'the client saw backpressure');
    backendSockets[0].resume();
    client.destroy();
    await waitFor(() => proxy.getStatistics().activeConnections === 0);
  });
});

describe('route security', () => {
  it('enforces allow lists, block lists and maxConnectionsPerIP on the client address', async () => {
    const backend = await startTaggedEchoServer('ok');
    onCleanup(() => backend.close());
    const [allowPort, limitPort] = await freePorts(2);
    const proxy = await proxyFor({
      maxConnectionsPerIP: 2,
      routes: [
        {
          name: 'guarded',
          match: { ports: allowPort },
          action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port }, security: { ipAllowList: ['127.0.0.0/29'], ipBlockList: ['127.0.0.3'] } },
        },
        { name: 'limited', match: { ports: limitPort }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } },
      ],
    });
    const rejected: string[] = [];
    proxy.on('connection-rejected', (e: { code: string }) => rejected.push(e.code));
    const allowed = await connect({ port: allowPort, localAddress: '127.0.0.2' });
    assert.equal(await readLine(allowed), 'ok');
    allowed.destroy();
    assert.equal(await closed(await connect({ port: allowPort, localAddress: '127.0.0.3' })), true);
    assert.equal(await closed(await connect({ port: allowPort, localAddress: '127.0.0.9' })), true);

    const first = await connect({ port: limitPort, localAddress: '127.0.0.5' });
    const second = await connect({ port: limitPort, localAddress: '127.0.0.5' });
    assert.equal(await readLine(first), 'ok');
    assert.equal(await readLine(second), 'ok');
    assert.equal(await closed(await connect({ port: limitPort, localAddress: '127.0.0.5' })), true);
    const otherHost = await connect({ port: limitPort, localAddress: '127.0.0.6' });
    assert.equal(await readLine(otherHost), 'ok');
    assert.deepEqual(rejected, ['ERR_SECURITY_BLOCKED', 'ERR_SECURITY_NOT_ALLOWED', 'ERR_LIMIT_PER_IP']);
    for (const s of [first, second, otherHost]) s.destroy();
    await waitFor(() => proxy.getStatistics().activeConnections === 0);
  });

  it('enforces a route maxConnections', async () => {
    const backend = await startTaggedEchoServer('ok');
    onCleanup(() => backend.close());
    const port = await freePort();
    await proxyFor({ routes: [{ name: 'cap', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port }, security: { maxConnections: 1 } } }] });
    const first = await connect({ port });
    assert.equal(await readLine(first), 'ok');
    assert.equal(await closed(await connect({ port })), true);
    first.destroy();
  });
});

describe('routes and lifecycle', () => {
  it('updateRoutes opens new ports, closes dropped ones and keeps live connections', async () => {
    const backend = await startEchoServer();
    onCleanup(() => backend.close());
    const [p1, p2] = await freePorts(2);
    const proxy = await proxyFor({ routes: [{ name: 'one', match: { ports: p1 }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
    const live = await connect({ port: p1 });
    live.write('before\n');
    assert.equal(await readLine(live), 'before');
    await assert.rejects(
      proxy.updateRoutes([{ name: 'bad', match: { ports: 0 }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }]),
      (err: unknown) => err instanceof ConfigError && err.field === 'routes[0].match.ports',
    );
    assert.deepEqual(proxy.getListeningPorts(), [p1], 'a rejected update changes nothing');
    await proxy.updateRoutes([{ name: 'two', match: { ports: p2 }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }]);
    assert.deepEqual(proxy.getListeningPorts(), [p2]);
    live.write('after\n');
    assert.equal(await readLine(live), 'after');
    await assert.rejects(connect({ port: p1 }));
    const fresh = await connect({ port: p2 });
    fresh.write('new\n');
    assert.equal(await readLine(fresh), 'new');
    live.destroy();
    fresh.destroy();
  });

  it('closes idle connections at inactivityTimeout and old ones at maxConnectionLifetime', async () => {
    const backend = await startServer((s) => s.resume());
    onCleanup(() => backend.close());
    const [idlePort, lifePort] = await freePorts(2);
    const idleProxy = await proxyFor({ inactivityTimeout: 200, routes: [{ name: 'idle', match: { ports: idlePort }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
    const reasons: string[] = [];
    idleProxy.on('connection-close', (c: { closeReason: string }) => reasons.push(c.closeReason));
    const started = Date.now();
    assert.equal(await closed(await connect({ port: idlePort }), 3000), true);
    const idleFor = Date.now() - started;
    // The sweep runs every tenth of the shortest timeout, so the close comes soon after 200 ms.
    assert.ok(idleFor >= 150 && idleFor < 600, `closed after ${idleFor} ms`);
    assert.deepEqual(reasons, ['ERR_TIMEOUT_INACTIVITY']);

    const lifeProxy = await proxyFor({ maxConnectionLifetime: 300, routes: [{ name: 'life', match: { ports: lifePort }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }] });
    const lifeReasons: string[] = [];
    lifeProxy.on('connection-close', (c: { closeReason: string }) => lifeReasons.push(c.closeReason));
    const busy = await connect({ port: lifePort });
    const ticker = setInterval(() => busy.write('tick'), 50);
    assert.equal(await closed(busy, 3000), true);
    clearInterval(ticker);
    assert.deepEqual(lifeReasons, ['ERR_TIMEOUT_LIFETIME']);
  });
});
