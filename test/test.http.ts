import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { describe, it } from 'node:test';
import { SmartProxy, collectConfigErrors } from '../ts/index.js';
import type { IHttpErrorEvent, IRouteConfig, ISmartProxyOptions } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { type IHttpBackend, reportOf, request, startHttpBackend } from './helpers/http.js';
import { connect, freePort, makeCertificate, readAll, waitFor } from './helpers/net.js';

const onCleanup = cleanupAfterAll();
const CERT = makeCertificate(['a.test', 'b.test']);

async function backend(options: Parameters<typeof startHttpBackend>[0] = {}): Promise<IHttpBackend> {
  const server = await startHttpBackend(options);
  onCleanup(() => server.close());
  return server;
}

async function proxy(routes: IRouteConfig[], options: Partial<ISmartProxyOptions> = {}): Promise<{ proxy: SmartProxy; errors: IHttpErrorEvent[] }> {
  const instance = new SmartProxy({ listenAddress: '127.0.0.1', routes, ...options });
  const errors: IHttpErrorEvent[] = [];
  instance.on('http-error', (e) => errors.push(e));
  await instance.start();
  onCleanup(() => instance.stop());
  return { proxy: instance, errors };
}

function route(name: string, port: number, target: number, match: Partial<IRouteConfig['match']> = {}, action: Partial<IRouteConfig['action']> = {}): IRouteConfig {
  return { name, match: { ports: port, ...match }, action: { type: 'forward', target: { host: '127.0.0.1', port: target }, http: {}, ...action } };
}

describe('HTTP routes: routing per request', () => {
  it('routes by exact path, path prefix, Host and header; no route is a 404 with a short body and an http-error event', async () => {
    const [api, health, admin, site] = [await backend(), await backend(), await backend(), await backend()];
    const port = await freePort();
    const { proxy: p, errors } = await proxy([
      route('health', port, health.port, { path: '/health' }),
      route('api', port, api.port, { path: '/api/*' }),
      route('admin', port, admin.port, { headers: { 'x-role': 'admin' } }),
      route('site', port, site.port, { domains: ['a.test'] }),
    ]);
    assert.equal(reportOf(await request(port, { path: '/health' })).url, '/health');
    assert.equal(reportOf(await request(port, { path: '/api' })).url, '/api');
    assert.equal(reportOf(await request(port, { path: '/api/v1/x?y=1' })).url, '/api/v1/x?y=1');
    assert.equal(reportOf(await request(port, { path: '/x', headers: { 'X-Role': 'admin' } })).url, '/x');
    assert.equal(reportOf(await request(port, { path: '/page', headers: { host: 'a.test' } })).headers.host, 'a.test');
    const missing = await request(port, { path: '/apix', headers: { host: 'b.test' } });
    assert.equal(missing.status, 404);
    assert.equal(missing.body, '404 Not Found\n');
    assert.deepEqual([api.reports.length, health.reports.length, admin.reports.length, site.reports.length], [2, 1, 1, 1]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].code, 'ERR_HTTP_NO_ROUTE');
    const stats = p.getStatistics().http;
    assert.equal(stats.requests, 6);
    assert.equal(stats.byRoute.api['2xx'], 2);
    assert.equal(stats.byRoute['']['4xx'], 1);
    assert.equal(stats.answered.ERR_HTTP_NO_ROUTE, 1);
  });

  it("checks allow and block lists per request against the request's route: a client off one route's list still reaches the port's others", async () => {
    const [guarded, open] = [await backend(), await backend()];
    const port = await freePort();
    const { errors } = await proxy([route('admin', port, guarded.port, { domains: ['admin.test'] }, { security: { ipAllowList: ['10.0.0.1'] } }), route('rest', port, open.port)]);
    assert.equal((await request(port, { headers: { host: 'other.test' } })).status, 200);
    assert.equal((await request(port, { headers: { host: 'admin.test' } })).status, 403);
    assert.deepEqual([guarded.reports.length, open.reports.length], [0, 1]);
    assert.deepEqual(errors.map((e) => e.code), ['ERR_SECURITY_NOT_ALLOWED']);
  });

  it('routes a Host in any case, with a port or a trailing dot to the route for that host; an empty label is a 400', async () => {
    const [guarded, open] = [await backend(), await backend()];
    const port = await freePort();
    await proxy([route('admin', port, guarded.port, { domains: ['admin.test'] }, { security: { ipAllowList: ['10.0.0.1'] } }), route('rest', port, open.port)]);
    for (const host of ['admin.test', 'ADMIN.Test', 'admin.test:80', 'admin.test.', 'Admin.Test.:80']) {
      assert.equal((await request(port, { headers: { host } })).status, 403, `Host ${host} is admin.test's`);
    }
    for (const host of ['admin..test', '.admin.test', 'admin.test..']) assert.equal((await request(port, { headers: { host } })).status, 400, `Host ${host}`);
    assert.equal((await request(port, { headers: { host: 'other.test' } })).status, 200);
    assert.deepEqual([guarded.reports.length, open.reports.length], [0, 1]);
  });

  it('answers 421 when TLS ends here and the Host is not one the SNI route serves', async () => {
    const target = await backend();
    const port = await freePort();
    const tls = { mode: 'terminate' as const, certificate: CERT };
    await proxy([route('a', port, target.port, { domains: ['a.test'] }, { tls }), route('b', port, target.port, { domains: ['b.test'] }, { tls })]);
    const ask = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port, servername: 'a.test', headers: { host }, rejectUnauthorized: false, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await ask('a.test'), 200);
    assert.equal(await ask('b.test'), 421);
    assert.equal(target.reports.length, 1);
  });
});

describe('HTTP routes: the real client in forwarded headers', () => {
  it("removes a direct client's X-Forwarded-*, Forwarded and X-Real-IP, and names the client in both forms", async () => {
    const target = await backend();
    const port = await freePort();
    await proxy([route('both', port, target.port, {}, { http: { forwardedHeaders: 'both' } })]);
    const spoof = { 'X-Forwarded-For': '6.6.6.6', Forwarded: 'for=6.6.6.6', 'X-Real-IP': '6.6.6.6', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'evil' };
    // Spelt with underscores, in other cases, and repeated: CGI-style servers read X_Forwarded_For as X-Forwarded-For.
    const variants = { x_forwarded_for: '6.6.6.6', X_REAL_IP: '6.6.6.6', 'x-FORWARDED-for': ['6.6.6.6', '7.7.7.7'], FORWARDED: 'for=6.6.6.6', x_forwarded_proto: 'https' };
    const seen = reportOf(await request(port, { localAddress: '127.0.0.5', headers: { ...spoof, ...variants } })).headers;
    assert.deepEqual(Object.keys(seen).filter((name) => name.includes('_')), [], 'no underscore variant reached the backend');
    assert.equal(seen['x-forwarded-for'], '127.0.0.5');
    assert.equal(seen['x-real-ip'], '127.0.0.5');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], `127.0.0.1:${port}`);
    assert.equal(seen['x-forwarded-port'], String(port));
    assert.equal(seen.forwarded, `for=127.0.0.5;proto=http;host="127.0.0.1:${port}";by=127.0.0.1`);
  });

  it('keeps and appends to them when the TCP peer is trusted (trustForwardedFrom)', async () => {
    const target = await backend();
    const port = await freePort();
    await proxy([route('trusting', port, target.port, {}, { http: { forwardedHeaders: 'both', trustForwardedFrom: ['127.0.0.6'] } })]);
    const headers = { 'X-Forwarded-For': '203.0.113.9', Forwarded: 'for=203.0.113.9;proto=https', 'X-Forwarded-Proto': 'https', 'X-Real-IP': '203.0.113.9' };
    const seen = reportOf(await request(port, { localAddress: '127.0.0.6', headers })).headers;
    assert.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.6');
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen['x-real-ip'], '203.0.113.9');
    assert.match(seen.forwarded as string, /^for=203\.0\.113\.9;proto=https, for=127\.0\.0\.6;proto=http;/);
    const untrusted = reportOf(await request(port, { localAddress: '127.0.0.7', headers })).headers;
    assert.equal(untrusted['x-forwarded-for'], '127.0.0.7');
  });

  for (const mode of ['x-forwarded', 'forwarded'] as const) {
    it(`a chain: client → outer SmartProxy (sends v2) → inner (accepts v2, terminates TLS, HTTP route, ${mode}) → backend sees the client, not the forwarded headers the client wrote`, async () => {
      const target = await backend();
      const [outer, inner] = [await freePort(), await freePort()];
      await proxy([route('inner', inner, target.port, { domains: ['a.test'] }, { tls: { mode: 'terminate', certificate: CERT }, http: { forwardedHeaders: mode } })], { acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'] });
      await proxy([{ name: 'outer', match: { ports: outer }, action: { type: 'forward', target: { host: '127.0.0.1', port: inner }, sendProxyProtocol: { version: 2 } } }]);
      const seen = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
        // The outer proxy relays the client's bytes: what the client wrote there is not the outer proxy's word.
        const spoof = { 'X-Forwarded-For': '6.6.6.6', 'X-Real-IP': '6.6.6.6', Forwarded: 'for=6.6.6.6', 'X-Forwarded-Proto': 'gopher' };
        const req = https.request({ host: '127.0.0.1', port: outer, localAddress: '127.0.0.9', servername: 'a.test', headers: { host: 'a.test', ...spoof }, rejectUnauthorized: false, agent: false, path: '/x' }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve((JSON.parse(body) as { headers: http.IncomingHttpHeaders }).headers));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(seen.host, 'a.test');
      if (mode === 'x-forwarded') {
        assert.equal(seen['x-forwarded-for'], '127.0.0.9');
        assert.equal(seen['x-forwarded-proto'], 'https');
        assert.equal(seen['x-forwarded-port'], String(outer), 'the port the client connected to, from the PROXY header');
        assert.equal(seen['x-real-ip'], '127.0.0.9');
        assert.equal(seen.forwarded, undefined);
      } else {
        assert.equal(seen.forwarded, 'for=127.0.0.9;proto=https;host=a.test;by=127.0.0.1');
        assert.equal(seen['x-forwarded-for'], undefined);
      }
    });
  }

  it('quotes an IPv6 client in Forwarded', async () => {
    const target = await backend();
    const port = await freePort('::1');
    await proxy([route('v6', port, target.port, {}, { http: { forwardedHeaders: 'both' } })], { listenAddress: '::1' });
    const seen = reportOf(await request(port, { host: '::1' })).headers;
    assert.equal(seen['x-forwarded-for'], '::1');
    assert.equal(seen.forwarded, `for="[::1]";proto=http;host="[::1]:${port}";by="[::1]"`);
  });
});

describe('HTTP routes: connections', () => {
  it('carries 100 keep-alive requests on one client connection, each with the right headers', async () => {
    const target = await backend();
    const port = await freePort();
    const { proxy: p } = await proxy([route('keep', port, target.port)]);
    const closed: number[] = [];
    p.on('connection-close', (record) => closed.push(record.requests));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const clientPorts = new Set<number>();
    for (let i = 0; i < 100; i++) {
      const response = await request(port, { agent, localAddress: '127.0.0.8', path: `/n/${i}` });
      clientPorts.add(response.clientPort);
      const seen = reportOf(response);
      assert.equal(seen.url, `/n/${i}`);
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.8');
    }
    agent.destroy();
    assert.equal(clientPorts.size, 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(closed, [100]);
    assert.ok(target.connections < 100, 'backend connections are pooled');
  });

  it('takes pipelined requests one at a time: 200 in one write are answered in order over one backend connection', async () => {
    const target = await backend();
    const port = await freePort();
    const { proxy: p } = await proxy([route('pipelined', port, target.port)]);
    const socket = await connect({ port });
    socket.write(Array.from({ length: 200 }, (_, i) => `GET /p/${i} HTTP/1.1\r\nHost: a\r\n${i === 199 ? 'Connection: close\r\n' : ''}\r\n`).join(''));
    const answers = (await readAll(socket, 3000)).toString('latin1');
    const urls = [...answers.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(urls, Array.from({ length: 200 }, (_, i) => `/p/${i}`));
    assert.equal(target.connections, 1, 'one backend connection, not one per pipelined request');
    await waitFor(() => p.connectionManager.http.inFlight.size === 0, 1000, 'no request left in flight');
  });

  it('a client that resets with pipelined requests unanswered leaves nothing in flight (maxConnections stays usable)', async () => {
    const slow = await backend({ delayMs: 200 });
    const port = await freePort();
    const { proxy: p } = await proxy([route('slow', port, slow.port, {}, { security: { maxConnections: 2 } })]);
    const socket = await connect({ port });
    socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(5));
    await new Promise((r) => setTimeout(r, 50));
    socket.resetAndDestroy();
    await waitFor(() => p.connectionManager.connections.size === 0, 1000, 'the client connection closed');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual([...p.connectionManager.http.inFlight.values()], []);
    assert.equal((await request(port)).status, 200);
  });

  it('an upgrade pipelined behind an unanswered request closes the connection instead of tunnelling ahead of the answer', async () => {
    const slow = await backend({ delayMs: 300 });
    const port = await freePort();
    const { errors } = await proxy([route('slow', port, slow.port)]);
    const started = Date.now();
    const answer = await raw(port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    assert.equal(answer, '');
    assert.ok(Date.now() - started < 1000);
    assert.deepEqual(errors.map((e) => [e.code, e.message]), [['ERR_HTTP_BAD_REQUEST', 'upgrade request pipelined behind unanswered requests']]);
  });

  it('on a route that sends PROXY, no backend connection ever carries two clients', async () => {
    const target = await backend({ proxy: true });
    const port = await freePort();
    await proxy([route('pp', port, target.port, {}, { sendProxyProtocol: { version: 2 } })]);
    const agents = [new http.Agent({ keepAlive: true, maxSockets: 2 }), new http.Agent({ keepAlive: true, maxSockets: 2 })];
    await Promise.all(
      agents.flatMap((agent, i) => Array.from({ length: 20 }, (_, n) => request(port, { agent, localAddress: `127.0.0.${21 + i}`, path: `/${n}` }))),
    );
    for (const agent of agents) agent.destroy();
    const clientsPerBackendConnection = new Map<number, Set<string>>();
    for (const seen of target.reports) {
      const set = clientsPerBackendConnection.get(seen.connection) ?? new Set();
      set.add(seen.proxySource ?? 'none');
      clientsPerBackendConnection.set(seen.connection, set);
      assert.equal(seen.proxySource?.split(':')[0], seen.headers['x-forwarded-for']);
    }
    assert.equal(target.reports.length, 40);
    for (const [connection, clients] of clientsPerBackendConnection) assert.equal(clients.size, 1, `backend connection ${connection} carried ${[...clients].join(' and ')}`);
  });
});

/** Sends raw bytes and returns everything the proxy answers until it closes. */
async function raw(port: number, bytes: string): Promise<string> {
  const socket = await connect({ port });
  socket.write(bytes);
  return (await readAll(socket, 3000)).toString('latin1');
}

describe('HTTP routes: requests that could be smuggled get 400 and never reach a backend', () => {
  const vectors: Record<string, string> = {
    'Content-Length and Transfer-Encoding': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'Transfer-Encoding and Content-Length': 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n',
    'two different Content-Lengths': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
    'obs-fold': 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n',
    'an invalid header name': 'GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n',
    'a space before the colon': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello',
    'Transfer-Encoding not ending in chunked': 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n',
    'Transfer-Encoding in HTTP/1.0': 'POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'two Host headers': 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'no Host header in HTTP/1.1': 'GET / HTTP/1.1\r\n\r\n',
  };
  for (const [name, bytes] of Object.entries(vectors)) {
    it(name, async () => {
      const target = await backend();
      const port = await freePort();
      const { errors } = await proxy([route('guarded', port, target.port)]);
      const answer = await raw(port, bytes);
      assert.match(answer, /^HTTP\/1\.1 400 /);
      assert.equal(target.connections, 0, 'nothing reached the backend');
      assert.equal(errors[0]?.code, 'ERR_HTTP_BAD_REQUEST');
    });
  }
});

describe('HTTP routes: limits and errors', () => {
  it('431 for a head over maxHeaderSize', async () => {
    const target = await backend();
    const port = await freePort();
    const { errors } = await proxy([route('small', port, target.port, {}, { http: { maxHeaderSize: 2048 } })]);
    const answer = await raw(port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(4096)}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assert.equal(errors[0].code, 'ERR_HTTP_HEADERS_TOO_LARGE');
    assert.equal(target.connections, 0);
  });

  it('408 for a head not complete within headersTimeout; an idle keep-alive connection closes after keepAliveTimeout', async () => {
    const target = await backend();
    const port = await freePort();
    const { proxy: p } = await proxy([route('slow', port, target.port, {}, { http: { headersTimeout: 300, keepAliveTimeout: 400 } })], { connectTimeout: 500 });
    const reasons: string[] = [];
    p.on('connection-close', (record) => reasons.push(record.closeReason));
    const slow = await connect({ port });
    slow.write('GET / HTTP/1.1\r\nHost: a\r\n');
    const started = Date.now();
    assert.match((await readAll(slow, 3000)).toString(), /^HTTP\/1\.1 408 /);
    assert.ok(Date.now() - started < 1500);
    const idle = await connect({ port });
    idle.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.match((await readAll(idle, 3000)).toString(), /^HTTP\/1\.1 200 /);
    assert.deepEqual(reasons.sort(), ['ERR_HTTP_HEADERS_TIMEOUT', 'ERR_HTTP_IDLE_TIMEOUT']);
  });

  it('502 when the backend refuses, 504 when it stays silent, 503 when the route is at maxConnections', async () => {
    const silent = await backend({ delayMs: 1500 });
    const downPort = await freePort();
    const port = await freePort();
    const { errors } = await proxy([
      route('down', port, downPort, { path: '/down' }),
      route('silent', port, silent.port, { path: '/silent' }, { http: { backendTimeout: 300 } }),
      route('one', port, silent.port, { path: '/one' }, { security: { maxConnections: 1 } }),
    ]);
    assert.equal((await request(port, { path: '/down' })).status, 502);
    assert.equal((await request(port, { path: '/silent' })).status, 504);
    const first = request(port, { path: '/one' });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await request(port, { path: '/one' })).status, 503);
    assert.equal((await first).status, 200);
    assert.deepEqual(errors.map((e) => e.code), ['ERR_BACKEND_CONNECT', 'ERR_HTTP_BACKEND_TIMEOUT', 'ERR_LIMIT_ROUTE']);
  });

  it('a backend that resets mid-response cuts the client off instead of leaving it waiting (plain request and refused upgrade)', async () => {
    const resetting = http.createServer((req, res) => {
      res.writeHead(req.headers.upgrade ? 403 : 200, { 'content-length': 1000 });
      res.write('partial');
      setTimeout(() => req.socket.destroy(), 50);
    });
    await new Promise<void>((resolve) => resetting.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise<void>((resolve) => resetting.close(() => resolve())));
    const port = await freePort();
    const { proxy: p } = await proxy([route('resetting', port, (resetting.address() as { port: number }).port)]);
    for (const head of ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n']) {
      const started = Date.now();
      const answer = await raw(port, head);
      assert.match(answer, /partial$/);
      assert.ok(Date.now() - started < 1500, `the client waited ${Date.now() - started} ms for a response that could not complete`);
    }
    await waitFor(() => p.connectionManager.connections.size === 0, 1000, 'the client connections closed');
  });

  it('passes 100-continue through: the client sends its body after the backend agreed', async () => {
    const target = await backend();
    const port = await freePort();
    await proxy([route('expect', port, target.port)]);
    const result = await new Promise<{ continued: boolean; body: string }>((resolve, reject) => {
      let continued = false;
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { expect: '100-continue', 'content-length': 5 }, agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ continued, body }));
      });
      req.on('continue', () => {
        continued = true;
        req.end('hello');
      });
      req.on('error', reject);
    });
    assert.ok(result.continued);
    assert.equal((JSON.parse(result.body) as { bodyLength: number }).bodyLength, 5);
  });
});

describe('HTTP routes: configuration', () => {
  const base = (match: Record<string, unknown>, action: Record<string, unknown>) => ({ routes: [{ name: 'r', match: { ports: 8080, ...match }, action: { type: 'forward', target: { host: '127.0.0.1', port: 9 }, ...action } }] });
  const cases: Array<[string, ReturnType<typeof base>, string, string]> = [
    ['HTTP on a passthrough route', base({ path: '/x' }, { tls: { mode: 'passthrough' } }), 'ERR_CONFIG_HTTP', 'routes[0].action.http'],
    ['a path without a leading slash', base({ path: 'x' }, {}), 'ERR_CONFIG_HTTP', 'routes[0].match.path'],
    ['a "*" inside a path', base({ path: '/a*b' }, {}), 'ERR_CONFIG_HTTP', 'routes[0].match.path'],
    ['a header value that is not a string', base({ headers: { 'x-a': 1 } }, {}), 'ERR_CONFIG_HTTP', 'routes[0].match.headers.x-a'],
    ['an unknown forwardedHeaders', base({}, { http: { forwardedHeaders: 'xff' } }), 'ERR_CONFIG_HTTP', 'routes[0].action.http.forwardedHeaders'],
    ['trusting everybody to name the client', base({}, { http: { trustForwardedFrom: ['0.0.0.0/0'] } }), 'ERR_CONFIG_TRUST_ALL', 'routes[0].action.http.trustForwardedFrom[0]'],
    ['a misspelt http option', base({}, { http: { keepalive: 5 } }), 'ERR_CONFIG_UNKNOWN_OPTION', 'routes[0].action.http.keepalive'],
  ];
  for (const [name, options, code, field] of cases) {
    it(`refuses ${name} (${code} at ${field})`, () => {
      const errors = collectConfigErrors(options);
      assert.deepEqual(errors.map((e) => [e.code, e.field]), [[code, field]]);
    });
  }

  it('offers h2 and http/1.1 by ALPN on terminating HTTP routes that name no ALPN', () => {
    const cert = { certificate: CERT };
    const p = new SmartProxy(base({}, { http: {}, tls: { mode: 'terminate', ...cert } }) as ISmartProxyOptions);
    assert.deepEqual(p.connectionManager.routes.routes[0].alpnProtocols, ['h2', 'http/1.1']);
  });
});
