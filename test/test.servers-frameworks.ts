import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { ProxyProtocolParser, getProxyHeader, withProxyProtocol } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { readAll } from './helpers/net.js';
import { CERT, listen, startInjector } from './helpers/servers.js';

const onCleanup = cleanupAfterAll();
const TRUST = { proxyIPs: ['127.0.0.1'] };

const header = (version: 1 | 2) => (clientPort: number) =>
  ProxyProtocolParser.generate({ source: { address: '198.51.100.7', port: clientPort }, destination: { address: '203.0.113.1', port: 80 } }, { version });

/** GET / through a relay that writes the header; X-Forwarded-For must not be believed. */
async function getThrough(port: number, version: 1 | 2): Promise<{ body: { ip: string; port: number; version: number }; clientPort: number }> {
  const injector = await startInjector(port, header(version), [0]);
  onCleanup(() => injector.close());
  const socket = net.connect({ port: injector.port, host: '127.0.0.1' });
  await new Promise((resolve) => socket.once('connect', resolve));
  const clientPort = socket.localPort as number;
  const all = readAll(socket);
  socket.write('GET / HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n');
  const text = (await all).toString();
  return { body: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)), clientPort };
}

describe('frameworks behind withProxyProtocol see the real client (trust proxy off)', () => {
  for (const version of [1, 2] as const) {
    it(`Express: req.ip is the client from a v${version} header, not X-Forwarded-For`, async () => {
      const app = express();
      app.get('/', (req, res) => {
        res.json({ ip: req.ip, port: req.socket.remotePort, version: getProxyHeader(req.socket)?.version });
      });
      const listening = await listen(withProxyProtocol(http.createServer(app), TRUST));
      onCleanup(() => listening.close());
      const { body, clientPort } = await getThrough(listening.port, version);
      assert.deepEqual(body, { ip: '198.51.100.7', port: clientPort, version });
    });

    it(`Fastify (serverFactory): request.ip is the client from a v${version} header, not X-Forwarded-For`, async () => {
      const app = Fastify({ serverFactory: (handler) => withProxyProtocol(http.createServer(handler), TRUST) });
      app.get('/', async (request) => ({ ip: request.ip, port: request.socket.remotePort, version: getProxyHeader(request.socket)?.version }));
      await app.listen({ port: 0, host: '127.0.0.1' });
      onCleanup(() => app.close());
      const { body, clientPort } = await getThrough((app.server.address() as net.AddressInfo).port, version);
      assert.deepEqual(body, { ip: '198.51.100.7', port: clientPort, version });
    });
  }

  it('Fastify over HTTP/2 with TLS (wrapping app.server): request.ip is the client', async () => {
    const app = Fastify({ http2: true, https: { key: CERT.key, cert: CERT.cert } });
    withProxyProtocol(app.server, TRUST);
    app.get('/', async (request) => ({ ip: request.ip, version: getProxyHeader(request.socket)?.version }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    onCleanup(() => app.close());
    const injector = await startInjector((app.server.address() as net.AddressInfo).port, header(2), [0]);
    onCleanup(() => injector.close());
    const session = http2.connect(`https://127.0.0.1:${injector.port}`, { ca: CERT.cert, servername: 'localhost' });
    const stream = session.request({ ':path': '/' });
    let text = '';
    stream.on('data', (c: Buffer) => (text += c));
    await new Promise((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    session.close();
    assert.deepEqual(JSON.parse(text), { ip: '198.51.100.7', version: 2 });
  });
});
