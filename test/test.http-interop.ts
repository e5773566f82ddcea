import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { SmartProxy } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { request } from './helpers/http.js';
import { freePort } from './helpers/net.js';
import { skipUnless, startNginx, withPeerLogs } from './helpers/peers.js';

const onCleanup = cleanupAfterAll();
const MIB = 1024 * 1024;

describe('HTTP routes with real peers', () => {
  it("nginx's realip module (set_real_ip_from, real_ip_header X-Forwarded-For) names the real client, not a spoofed one", { skip: skipUnless('nginx') }, async () => {
    const nginxPort = await freePort();
    const nginx = await startNginx(
      `http {\n  access_log off;\n  server {\n    listen 127.0.0.1:${nginxPort};\n    set_real_ip_from 127.0.0.1;\n    real_ip_header X-Forwarded-For;\n    location / { return 200 "$remote_addr\\n"; }\n  }\n}\n`,
      [nginxPort],
    );
    onCleanup(() => nginx.stop());
    const port = await freePort();
    const proxy = new SmartProxy({ listenAddress: '127.0.0.1', routes: [{ name: 'to-nginx', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: nginxPort }, http: {} } }] });
    await proxy.start();
    onCleanup(() => proxy.stop());
    await withPeerLogs([nginx], async () => {
      assert.equal((await request(port, { localAddress: '127.0.0.33' })).body, '127.0.0.33\n');
      assert.equal((await request(port, { localAddress: '127.0.0.34', headers: { 'X-Forwarded-For': '6.6.6.6' } })).body, '127.0.0.34\n');
    });
  });
});

describe('HTTP routes: bodies stream with backpressure', () => {
  it('50 MiB up and 50 MiB down with a reader that stalls: the proxy buffers a bounded amount', { timeout: 30_000 }, async () => {
    let received = 0;
    const backend = http.createServer((req, res) => {
      if (req.method === 'POST') {
        // A slow consumer: stalls before reading the upload.
        req.pause();
        setTimeout(() => {
          req.on('data', (c: Buffer) => (received += c.length));
          req.on('end', () => res.end(String(received)));
          req.resume();
        }, 300);
        return;
      }
      res.writeHead(200, { 'content-length': 50 * MIB });
      const chunk = Buffer.alloc(MIB, 5);
      let sent = 0;
      const pump = (): void => {
        while (sent < 50 && res.write(chunk)) sent++;
        if (sent >= 50) res.end();
      };
      res.on('drain', () => {
        sent++;
        pump();
      });
      pump();
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise<void>((resolve) => backend.close(() => resolve())));
    const port = await freePort();
    const proxy = new SmartProxy({ listenAddress: '127.0.0.1', routes: [{ name: 'bulk', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: (backend.address() as { port: number }).port }, http: {} } }] });
    await proxy.start();
    onCleanup(() => proxy.stop());
    // What the proxy holds: bytes queued on its client streams and on its pooled backend sockets.
    const held = (): number => {
      let bytes = 0;
      for (const conn of proxy.connectionManager.connections) bytes += conn.clientStream.writableLength + conn.clientStream.readableLength;
      for (const agent of proxy.connectionManager.http.pools.values()) {
        for (const sockets of Object.values(agent.sockets)) for (const socket of sockets ?? []) bytes += socket.writableLength + socket.readableLength;
      }
      return bytes;
    };
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, held())), 5);
    onCleanup(() => clearInterval(sampler));

    const down = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/down', agent: false }, (res) => {
        let got = 0;
        res.pause();
        setTimeout(() => {
          res.on('data', (c: Buffer) => (got += c.length));
          res.on('end', () => resolve(got));
          res.resume();
        }, 300);
      }).on('error', reject);
    });
    assert.equal(down, 50 * MIB);
    const upload = Buffer.alloc(MIB, 6);
    const up = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/up', agent: false, headers: { 'content-length': 50 * MIB } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      let sent = 0;
      const pump = (): void => {
        while (sent < 50) {
          sent++;
          if (!req.write(upload)) return;
        }
        req.end();
      };
      req.on('drain', pump);
      pump();
    });
    clearInterval(sampler);
    assert.equal(up, String(50 * MIB));
    assert.ok(peak > 0, 'the sampler saw the transfer');
    assert.ok(peak < 4 * MIB, `the proxy held ${(peak / MIB).toFixed(1)} MiB at once while moving 50 MiB each way`);
  });
});
