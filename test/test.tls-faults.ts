/**
 * TLS termination under attack and with client certificates (issue "Faults in TLS termination
 * and in the CLI service"): real TLS clients and servers on loopback, certificates from openssl.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { SmartProxy } from '../ts/index.js';
import type { ISmartProxyOptions } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { closed, freePort, makeCertificate, readLine, startHeaderReportingServer, startServer, waitFor } from './helpers/net.js';

const onCleanup = cleanupAfterAll();
const serverCert = makeCertificate(['proxy.test']);

type Route = ISmartProxyOptions['routes'][number];

async function started(options: ISmartProxyOptions): Promise<SmartProxy> {
  const proxy = new SmartProxy({ listenAddress: '127.0.0.1', ...options });
  await proxy.start();
  onCleanup(() => proxy.stop());
  return proxy;
}

function terminating(port: number, target: number, tlsExtra: Record<string, unknown> = {}, actionExtra: Partial<Route['action']> = {}): Route {
  return {
    name: `t${port}`,
    match: { ports: port },
    action: { type: 'forward', target: { host: '127.0.0.1', port: target }, tls: { mode: 'terminate', certificate: serverCert, ...tlsExtra }, ...actionExtra },
  };
}

function tlsClient(port: number, options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'proxy.test', rejectUnauthorized: false, ...options }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A backend that counts its connections and reports when each closes. */
async function trackedBackend() {
  const state = { open: 0, closedCount: 0 };
  const backend = await startServer((s) => {
    state.open++;
    s.on('close', () => state.closedCount++);
    s.pipe(s);
  });
  onCleanup(() => backend.close());
  return Object.assign(backend, { state });
}

/** A terminating proxy in front of `backendPort`, with the close reasons it reports. */
async function terminatingProxy(backendPort: number): Promise<{ port: number; reasons: string[] }> {
  const port = await freePort();
  const proxy = await started({ routes: [terminating(port, backendPort)] });
  const reasons: string[] = [];
  proxy.on('connection-close', (c: { closeReason: string }) => reasons.push(c.closeReason));
  return { port, reasons };
}

/** A TLS client whose TCP socket (`raw`) the test can write garbage to or reset. */
async function rawTlsClient(port: number): Promise<{ raw: net.Socket; client: tls.TLSSocket }> {
  const raw = net.connect({ port, host: '127.0.0.1' });
  raw.on('error', () => undefined);
  const client = tls.connect({ socket: raw, servername: 'proxy.test', rejectUnauthorized: false });
  client.on('error', () => undefined);
  await new Promise((r) => client.once('secureConnect', r));
  return { raw, client };
}

describe('TLS errors after the handshake close both sides with a code', () => {
  it('a TLS 1.2 client that renegotiates is closed with ERR_TLS_CLIENT at the first attempt, and the backend with it', async () => {
    const backend = await trackedBackend();
    const { port, reasons } = await terminatingProxy(backend.port);
    const client = await tlsClient(port, { maxVersion: 'TLSv1.2' });
    client.on('error', () => undefined);
    client.write('ping\n');
    assert.equal(await readLine(client), 'ping');
    client.renegotiate({}, () => undefined);
    assert.equal(await closed(client, 3000), true, 'the client is closed');
    await waitFor(() => reasons.length === 1 && backend.state.closedCount === 1, 3000, 'both sides to close');
    assert.deepEqual(reasons, ['ERR_TLS_CLIENT']);
  });

  it('garbage after the handshake closes the client and the backend at once with ERR_TLS_CLIENT', async () => {
    const backend = await trackedBackend();
    const { port, reasons } = await terminatingProxy(backend.port);
    const { raw, client } = await rawTlsClient(port);
    client.write('ping\n');
    assert.equal(await readLine(client), 'ping');
    raw.write(Buffer.from('this is not a TLS record, it is garbage\r\n'));
    await waitFor(() => reasons.length === 1 && backend.state.closedCount === 1, 3000, 'both sides to close');
    assert.deepEqual(reasons, ['ERR_TLS_CLIENT']);
  });
});

describe('a reset behind backpressure is noticed under TLS too', () => {
  it('a TLS client that resets while the backend is not reading frees its connection', async () => {
    const backend = await startServer((s) => s.pause());
    onCleanup(() => backend.close());
    const { port, reasons } = await terminatingProxy(backend.port);
    const { raw, client } = await rawTlsClient(port);
    for (let i = 0; i < 16; i++) client.write(Buffer.alloc(1 << 20));
    await new Promise((r) => setTimeout(r, 300));
    raw.resetAndDestroy();
    await waitFor(() => reasons.length === 1, 3000, 'the connection to close');
    assert.deepEqual(reasons, ['client-error']);
  });
});

describe('re-encryption offers the backend a fitting ALPN', () => {
  async function alpnBackend() {
    const backendCert = makeCertificate(['backend.test']);
    const server = tls.createServer({ ...backendCert, ALPNProtocols: ['h2', 'http/1.1'] }, (s) => {
      s.end(`${s.alpnProtocol || 'none'}\n`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onCleanup(() => new Promise<void>((r) => server.close(() => r())));
    return (server.address() as net.AddressInfo).port;
  }

  it('the protocol the client negotiated (h2) is offered to the backend', async () => {
    const backendPort = await alpnBackend();
    const port = await freePort();
    await started({ routes: [terminating(port, backendPort, { mode: 'terminate-and-reencrypt', alpnProtocols: ['h2', 'http/1.1'], backend: { rejectUnauthorized: false } })] });
    const client = await tlsClient(port, { ALPNProtocols: ['h2'] });
    assert.equal(client.alpnProtocol, 'h2');
    assert.equal(await readLine(client), 'h2');
    client.destroy();
  });

  it('a route setting names what the backend is offered', async () => {
    const backendPort = await alpnBackend();
    const port = await freePort();
    await started({
      routes: [terminating(port, backendPort, { mode: 'terminate-and-reencrypt', alpnProtocols: ['h2'], backend: { rejectUnauthorized: false, alpnProtocols: ['http/1.1'] } })],
    });
    const client = await tlsClient(port, { ALPNProtocols: ['h2'] });
    assert.equal(await readLine(client), 'http/1.1');
    client.destroy();
  });
});

interface IPki {
  ca: string;
  client: { key: string; cert: string };
  stranger: { key: string; cert: string };
}

/** A CA, a client certificate it signed (CN alice), and one signed by nobody we trust (CN mallory). */
function makePki(): IPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smartproxy-pki-'));
  const f = (name: string): string => path.join(dir, name);
  const run = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=Test CA');
  run('req', ...ec, '-keyout', f('alice.key'), '-out', f('alice.csr'), '-subj', '/CN=alice');
  run('x509', '-req', '-in', f('alice.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('alice.pem'), '-days', '2');
  run('req', '-x509', ...ec, '-keyout', f('mallory.key'), '-out', f('mallory.pem'), '-days', '2', '-subj', '/CN=mallory');
  const read = (name: string): string => fs.readFileSync(f(name), 'utf8');
  const pki = { ca: read('ca.pem'), client: { key: read('alice.key'), cert: read('alice.pem') }, stranger: { key: read('mallory.key'), cert: read('mallory.pem') } };
  fs.rmSync(dir, { recursive: true, force: true });
  return pki;
}

describe('client certificates', () => {
  const pki = makePki();
  const ssl = { sendProxyProtocol: { version: 2 as const, tlvs: { ssl: true } } };

  async function setup(clientCertificate: 'request' | 'require') {
    const backend = await startHeaderReportingServer();
    onCleanup(() => backend.close());
    const port = await freePort();
    const proxy = await started({ routes: [terminating(port, backend.port, { clientCertificate, clientCa: pki.ca }, ssl)] });
    const reasons: string[] = [];
    proxy.on('connection-close', (c: { closeReason: string }) => reasons.push(c.closeReason));
    return { backend, port, reasons };
  }

  it('require: a certificate from clientCa reaches the backend in the SSL TLV with its CN and verify 0', async () => {
    const { backend, port } = await setup('require');
    const client = await tlsClient(port, pki.client);
    client.write('x');
    const report = JSON.parse(await readLine(client));
    assert.equal(report.header.ssl.cn, 'alice');
    assert.equal(report.header.ssl.verify, 0);
    assert.equal(report.header.ssl.client & 0x02, 0x02, 'PP2_CLIENT_CERT_CONN');
    assert.equal(backend.reports.length, 1);
    client.destroy();
  });

  it('require: no certificate ends the handshake; one from another CA is ERR_TLS_CLIENT_CERT; neither reaches the backend', async () => {
    const { backend, port, reasons } = await setup('require');
    // With TLS 1.3 the client may finish its side before the server refuses: either way no answer comes.
    const answer = await tlsClient(port).then(async (c) => {
      c.on('error', () => undefined);
      c.write('x');
      return readLine(c, 2000);
    }, () => '');
    assert.equal(answer, '');
    const stranger = await tlsClient(port, pki.stranger).catch(() => null);
    if (stranger !== null) assert.equal(await closed(stranger, 3000), true);
    await waitFor(() => reasons.length === 2, 3000, 'both connections to close');
    assert.deepEqual(reasons.sort(), ['ERR_TLS_CLIENT_CERT', 'ERR_TLS_HANDSHAKE']);
    assert.equal(backend.reports.length, 0);
  });

  it('request: a client without a certificate is served and the SSL TLV says no certificate', async () => {
    const { port } = await setup('request');
    const client = await tlsClient(port);
    client.write('x');
    const report = JSON.parse(await readLine(client));
    assert.equal(report.header.ssl.client & 0x02, 0);
    assert.equal(report.header.ssl.cn, undefined);
    client.destroy();
  });

  it('request: a certificate from another CA is passed on with verify ≠ 0', async () => {
    const { port } = await setup('request');
    const client = await tlsClient(port, pki.stranger);
    client.write('x');
    const report = JSON.parse(await readLine(client));
    assert.equal(report.header.ssl.cn, 'mallory');
    assert.notEqual(report.header.ssl.verify, 0);
    client.destroy();
  });
});
