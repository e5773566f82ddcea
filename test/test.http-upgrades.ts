import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import type net from 'node:net';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { SmartProxy } from '../ts/index.js';
import type { IRouteConfig } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { type IBackendReport, startHttpBackend } from './helpers/http.js';
import { freePort, makeCertificate, sha256 } from './helpers/net.js';
import { skipUnless } from './helpers/peers.js';

const onCleanup = cleanupAfterAll();
const CERT = makeCertificate(['a.test']);
const MIB = 1024 * 1024;

async function terminatingProxy(port: number, target: number, http: IRouteConfig['action']['http'] = {}): Promise<SmartProxy> {
  const proxy = new SmartProxy({
    listenAddress: '127.0.0.1',
    routes: [{ name: 'tls-http', match: { ports: port, domains: ['a.test'] }, action: { type: 'forward', target: { host: '127.0.0.1', port: target }, tls: { mode: 'terminate', certificate: CERT }, http } }],
  });
  await proxy.start();
  onCleanup(() => proxy.stop());
  return proxy;
}

describe('HTTP routes: WebSocket through TLS termination', () => {
  it('echoes 1 MiB messages both ways and keeps the close code and reason', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    onCleanup(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const forwardedFor: string[] = [];
    wss.on('connection', (socket, req) => {
      forwardedFor.push(String(req.headers['x-forwarded-for']));
      socket.on('message', (data, binary) => {
        const text = binary ? '' : data.toString();
        if (text === 'bye') socket.close(4001, 'server says bye');
        else socket.send(data, { binary });
      });
    });
    const port = await freePort();
    const proxy = await terminatingProxy(port, (wss.address() as net.AddressInfo).port);
    // ws passes options it does not know (servername: the SNI) on to tls.connect.
    const options = { rejectUnauthorized: false, servername: 'a.test', headers: { host: 'a.test' } };
    const client = new WebSocket(`wss://127.0.0.1:${port}/chat`, options);
    await once(client, 'open');
    const echoes: Buffer[] = [];
    client.on('message', (data) => echoes.push(data as Buffer));
    const payloads = [Buffer.alloc(MIB, 1), Buffer.alloc(MIB, 2).fill(7, 1000, 5000)];
    for (const payload of payloads) client.send(payload);
    const deadline = Date.now() + 5000;
    while (echoes.length < payloads.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(echoes.map(sha256), payloads.map(sha256));
    client.send('bye');
    const [code, reason] = (await once(client, 'close')) as [number, Buffer];
    assert.equal(code, 4001);
    assert.equal(reason.toString(), 'server says bye');
    assert.deepEqual(forwardedFor, ['127.0.0.1']);
    assert.equal(proxy.getStatistics().http.upgrades, 1);
  });
});

function h2Request(port: number, path: string, headers: http2.OutgoingHttpHeaders = {}, body?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, servername: 'a.test' });
    session.on('error', reject);
    const stream = session.request({ ':path': path, ':authority': `a.test:${port}`, ':method': body ? 'POST' : 'GET', ...headers });
    let status = 0;
    let text = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c) => (text += c));
    stream.on('end', () => {
      session.close();
      resolve({ status, body: text });
    });
    stream.on('error', reject);
    stream.end(body);
  });
}

describe('HTTP routes: HTTP/2 clients to an HTTP/1.1 backend', () => {
  it("Node's http2 client: requests and a body arrive as HTTP/1.1 with the forwarded headers; cookies joined", async () => {
    const backend = await startHttpBackend();
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = await terminatingProxy(port, backend.port);
    const get = await h2Request(port, '/h2/get?x=1', { cookie: ['a=1', 'b=2'] });
    assert.equal(get.status, 200);
    const seen = JSON.parse(get.body) as IBackendReport;
    assert.equal(seen.url, '/h2/get?x=1');
    assert.equal(seen.headers.host, `a.test:${port}`);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers.cookie, 'a=1; b=2');
    const post = JSON.parse((await h2Request(port, '/h2/post', {}, Buffer.alloc(200_000, 3))).body) as IBackendReport;
    assert.equal(post.bodyLength, 200_000);
    assert.equal(proxy.getStatistics().http.h2Sessions, 2);
  });

  it('curl --http2: negotiates h2 and reaches the backend', { skip: skipUnless('curl') }, async () => {
    const backend = await startHttpBackend();
    onCleanup(() => backend.close());
    const port = await freePort();
    await terminatingProxy(port, backend.port);
    const { stdout } = await promisify(execFile)('curl', ['-sk', '--http2', '-w', '\n%{http_version}', '--resolve', `a.test:${port}:127.0.0.1`, `https://a.test:${port}/curl`]);
    const [body, version] = stdout.split('\n');
    assert.equal(version, '2');
    assert.equal((JSON.parse(body) as IBackendReport).headers['x-forwarded-proto'], 'https');
  });

  it('an HTTP/2 client may open at most 128 streams at once (each is a backend request)', async () => {
    const backend = await startHttpBackend();
    onCleanup(() => backend.close());
    const port = await freePort();
    await terminatingProxy(port, backend.port);
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, servername: 'a.test' });
    session.on('error', () => undefined);
    const [settings] = (await once(session, 'remoteSettings')) as [http2.Settings];
    session.close();
    assert.equal(settings.maxConcurrentStreams, 128);
  });

  it('h2: false offers only http/1.1', { skip: skipUnless('curl') }, async () => {
    const backend = await startHttpBackend();
    onCleanup(() => backend.close());
    const port = await freePort();
    await terminatingProxy(port, backend.port, { h2: false });
    const { stdout } = await promisify(execFile)('curl', ['-sk', '--http2', '-o', '/dev/null', '-w', '%{http_version}', '--resolve', `a.test:${port}:127.0.0.1`, `https://a.test:${port}/`]);
    assert.equal(stdout, '1.1');
  });
});
