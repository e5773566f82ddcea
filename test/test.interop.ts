/**
 * Interoperability with the real programs users put in front of and behind SmartProxy:
 * HAProxy 2.6, nginx 1.22 (stream module) and curl, from Debian packages.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { SmartProxy } from '../ts/index.js';
import type { IConnectionRecord, ISmartProxyOptions } from '../ts/index.js';
import { type IHeaderReport, connect, freePort, makeCertificate, readLine, startHeaderReportingServer, waitFor } from './helpers/net.js';
import { type IPeer, haproxyCommand, skipUnless, startHaproxy, startNginx, withPeerLogs } from './helpers/peers.js';
import { cleanupAfterAll } from './helpers/cleanup.js';

const run = promisify(execFile);
const onCleanup = cleanupAfterAll();

async function peer(start: Promise<IPeer>): Promise<IPeer> {
  const p = await start;
  onCleanup(() => p.stop());
  return p;
}

async function smartProxy(options: ISmartProxyOptions): Promise<SmartProxy> {
  const proxy = new SmartProxy({ listenAddress: '127.0.0.1', ...options });
  await proxy.start();
  onCleanup(() => proxy.stop());
  return proxy;
}

function forward(port: number, target: number, extra: Record<string, unknown> = {}): ISmartProxyOptions['routes'][number] {
  return { name: `fwd-${port}`, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target }, ...extra } };
}

async function reporter() {
  const backend = await startHeaderReportingServer();
  onCleanup(() => backend.close());
  return backend;
}

/** HTTP GET from a chosen loopback address; resolves with the body. */
function get(port: number, localAddress: string, path = '/'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, localAddress, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
}

function getTls(port: number, localAddress: string, servername: string, ca: string): Promise<{ body: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', localAddress, servername, ca, agent: false }, (res) => {
      let body = '';
      const localPort = res.socket.localPort as number;
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ body, localPort }));
    });
    req.on('error', reject);
  });
}

/**
 * Waits until the peer's start-up probes (the harness connects to see it listen) have passed
 * through the proxy, and returns the PROXY counters as they then stand.
 */
async function settled(proxy: SmartProxy) {
  await new Promise((r) => setTimeout(r, 50));
  await waitFor(() => proxy.getStatistics().activeConnections === 0, 3000, 'start-up probes to finish');
  return proxy.getStatistics().proxyProtocol;
}

/** HAProxy `mode http` frontend behind accept-proxy that answers with what it believed. */
function haproxyEcho(port: number, answer = '%[src]:%[src_port]'): string {
  return `frontend echo\n  mode http\n  bind 127.0.0.1:${port} accept-proxy\n  http-request return status 200 content-type text/plain lf-string "${answer}\\n"\n`;
}

const skipHaproxy = skipUnless('haproxy');
const skipNginx = skipUnless('nginx');
const skipCurl = skipUnless('curl', 'haproxy');
const skipChain = skipUnless('haproxy', 'nginx');

describe('HAProxy in front of SmartProxy', () => {
  it('HAProxy send-proxy (v1) → SmartProxy: the real client address is reported', { skip: skipHaproxy }, async () => {
    const backend = await reporter();
    const [hp, sp] = [await freePort(), await freePort()];
    const proxy = await smartProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 2, routes: [forward(sp, backend.port)] });
    const haproxy = await peer(startHaproxy(`frontend fe\n  mode tcp\n  bind 127.0.0.1:${hp}\n  default_backend be\nbackend be\n  mode tcp\n  server s 127.0.0.1:${sp} send-proxy\n`, [hp]));
    await withPeerLogs([haproxy], async () => {
      const before = await settled(proxy);
      const records: IConnectionRecord[] = [];
      proxy.on('connection-close', (r: IConnectionRecord) => records.push(r));
      const client = await connect({ port: hp, localAddress: '127.0.0.31' });
      client.write('ping\n');
      const report = JSON.parse(await readLine(client)) as IHeaderReport;
      assert.deepEqual(report.header?.source, { address: '127.0.0.31', port: client.localPort });
      client.destroy();
      await waitFor(() => records.length === 1);
      assert.equal(records[0].clientIP, '127.0.0.31');
      assert.equal(proxy.getStatistics().proxyProtocol.acceptedV1 - before.acceptedV1, 1);
    });
  });

  it('HAProxy send-proxy-v2 with crc32c,unique-id,authority,ssl → SmartProxy: checksum verified, TLVs as sent', { skip: skipHaproxy }, async () => {
    const cert = makeCertificate(['edge.example.com']);
    const backend = await reporter();
    const [hp, sp] = [await freePort(), await freePort()];
    const proxy = await smartProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, routes: [forward(sp, backend.port)] });
    const haproxy = await peer(
      startHaproxy(
        `frontend fe\n  mode tcp\n  bind 127.0.0.1:${hp} ssl crt $DIR/edge.pem alpn h2,http/1.1\n  unique-id-format edge-%{+X}o%ci:%cp\n  default_backend be\n` +
          `backend be\n  mode tcp\n  server s 127.0.0.1:${sp} send-proxy-v2 proxy-v2-options crc32c,unique-id,authority,ssl,ssl-cipher,cert-sig,cert-key\n`,
        [hp],
        { 'edge.pem': `${cert.cert}\n${cert.key}` },
      ),
    );
    await withPeerLogs([haproxy], async () => {
      const before = await settled(proxy);
      const records: IConnectionRecord[] = [];
      proxy.on('connection-close', (r: IConnectionRecord) => records.push(r));
      const socket = tls.connect({ port: hp, host: '127.0.0.1', servername: 'edge.example.com', ca: cert.cert, ALPNProtocols: ['h2'] });
      socket.once('secureConnect', () => socket.write('ping\n'));
      const body = await readLine(socket);
      const localPort = socket.localPort;
      socket.destroy();
      const report = JSON.parse(body) as IHeaderReport;
      assert.deepEqual(report.header?.source, { address: '127.0.0.1', port: localPort });
      await waitFor(() => records.length === 1);
      const h = records[0].proxyHeader;
      assert.equal(h?.version, 2);
      assert.equal(typeof h?.crc32c, 'number', 'CRC32C present and verified');
      assert.equal(h?.authority, 'edge.example.com');
      assert.equal(h?.alpn, 'h2');
      assert.match(h?.uniqueId?.toString() ?? '', /^edge-7F000001:[0-9A-F]+$/);
      assert.equal(h?.ssl?.version, 'TLSv1.3');
      assert.equal(h?.ssl?.client, 1);
      assert.equal(proxy.getStatistics().proxyProtocol.acceptedV2 - before.acceptedV2, 1);
    });
  });
});

describe('SmartProxy in front of HAProxy', () => {
  it('SmartProxy sends v1 → HAProxy accept-proxy: HAProxy believes the original client', { skip: skipHaproxy }, async () => {
    const [hp, sp] = [await freePort(), await freePort()];
    const haproxy = await peer(startHaproxy(haproxyEcho(hp), [hp]));
    await smartProxy({ sendProxyProtocol: true, proxyProtocolVersion: 1, routes: [forward(sp, hp)] });
    await withPeerLogs([haproxy], async () => {
      const body = await get(sp, '127.0.0.32');
      assert.match(body, /^127\.0\.0\.32:\d+\n$/);
    });
  });

  it('SmartProxy sends v2 with CRC32C, AUTHORITY and UNIQUE_ID → HAProxy accepts the checksum and reports them', { skip: skipHaproxy }, async () => {
    const cert = makeCertificate(['api.example.com']);
    const [hp, sp] = [await freePort(), await freePort()];
    const haproxy = await peer(startHaproxy(haproxyEcho(hp, '%[src]:%[src_port] %[fc_pp_authority] %[fc_pp_unique_id]'), [hp]));
    const proxy = await smartProxy({
      sendProxyProtocol: true,
      proxyProtocolVersion: 2,
      proxyProtocolTlvs: { crc32c: true, authority: true, uniqueId: true },
      routes: [forward(sp, hp, { tls: { mode: 'terminate', certificate: cert } })],
    });
    await withPeerLogs([haproxy], async () => {
      const ids: string[] = [];
      proxy.on('connection-open', (r: IConnectionRecord) => ids.push(r.id));
      const { body, localPort } = await getTls(sp, '127.0.0.33', 'api.example.com', cert.cert);
      assert.equal(body, `127.0.0.33:${localPort} api.example.com ${ids[0]}\n`);
    });
  });
});

describe('SmartProxy and nginx', () => {
  it('SmartProxy sends v1 and v2 → nginx listen proxy_protocol reports the client', { skip: skipNginx }, async () => {
    const ng = await freePort();
    const nginx = await peer(startNginx(`http {\n  access_log off;\n  server {\n    listen 127.0.0.1:${ng} proxy_protocol;\n    return 200 "$proxy_protocol_addr:$proxy_protocol_port\\n";\n  }\n}\n`, [ng]));
    await withPeerLogs([nginx], async () => {
      for (const version of [1, 2] as const) {
        const sp = await freePort();
        await smartProxy({ sendProxyProtocol: true, proxyProtocolVersion: version, routes: [forward(sp, ng)] });
        assert.match(await get(sp, `127.0.0.4${version}`), new RegExp(`^127\\.0\\.0\\.4${version}:\\d+\\n$`), `v${version}`);
      }
    });
  });

  it('nginx stream proxy_protocol on (v1) → SmartProxy reads the client', { skip: skipNginx }, async () => {
    const backend = await reporter();
    const [ng, sp] = [await freePort(), await freePort()];
    const proxy = await smartProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 2, routes: [forward(sp, backend.port)] });
    const nginx = await peer(startNginx(`stream {\n  server {\n    listen 127.0.0.1:${ng};\n    proxy_pass 127.0.0.1:${sp};\n    proxy_protocol on;\n  }\n}\n`, [ng]));
    await withPeerLogs([nginx], async () => {
      const before = await settled(proxy);
      const client = await connect({ port: ng, localAddress: '127.0.0.34' });
      client.write('ping\n');
      const report = JSON.parse(await readLine(client)) as IHeaderReport;
      assert.deepEqual(report.header?.source, { address: '127.0.0.34', port: client.localPort });
      client.destroy();
      assert.equal(proxy.getStatistics().proxyProtocol.acceptedV1 - before.acceptedV1, 1);
    });
  });
});

describe('curl', () => {
  it('curl --haproxy-protocol → SmartProxy trusting loopback: the header is believed and passed on', { skip: skipCurl }, async () => {
    const [hp, sp] = [await freePort(), await freePort()];
    const haproxy = await peer(startHaproxy(haproxyEcho(hp), [hp]));
    const proxy = await smartProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.0/24'], sendProxyProtocol: true, routes: [forward(sp, hp)] });
    await withPeerLogs([haproxy], async () => {
      const { stdout } = await run('curl', ['-sS', '--max-time', '5', '--haproxy-protocol', '--interface', '127.0.0.35', `http://127.0.0.1:${sp}/`]);
      assert.match(stdout, /^127\.0\.0\.35:\d+\n$/);
      assert.equal(proxy.getStatistics().proxyProtocol.acceptedV1, 1);
    });
  });
});

describe('the whole chain: client → HAProxy → SmartProxy outer → SmartProxy inner → nginx', () => {
  it('keeps the client address over plain TCP', { skip: skipChain }, async () => {
    const [hp, outer, inner, ng] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const nginx = await peer(startNginx(`http {\n  access_log off;\n  server {\n    listen 127.0.0.1:${ng} proxy_protocol;\n    return 200 "$proxy_protocol_addr\\n";\n  }\n}\n`, [ng]));
    await smartProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 2, routes: [forward(inner, ng)] });
    await smartProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 1, routes: [forward(outer, inner)] });
    const haproxy = await peer(startHaproxy(`frontend fe\n  mode tcp\n  bind 127.0.0.1:${hp}\n  default_backend be\nbackend be\n  mode tcp\n  server s 127.0.0.1:${outer} send-proxy-v2\n`, [hp]));
    await withPeerLogs([haproxy, nginx], async () => {
      assert.equal(await get(hp, '127.0.0.36'), '127.0.0.36\n');
    });
  });

  it('keeps the client address with TLS passed through and routed on SNI at both SmartProxy hops', { skip: skipChain }, async () => {
    const cert = makeCertificate(['chain.example.com']);
    const [hp, outer, inner, ng, wrong] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const nginx = await peer(
      startNginx(
        `http {\n  access_log off;\n  server {\n    listen 127.0.0.1:${ng} ssl proxy_protocol;\n    ssl_certificate $DIR/c.pem;\n    ssl_certificate_key $DIR/k.pem;\n    return 200 "$proxy_protocol_addr $ssl_server_name\\n";\n  }\n}\n`,
        [ng],
        { 'c.pem': cert.cert, 'k.pem': cert.key },
      ),
    );
    const sni = (port: number, target: number) => [
      { name: `sni-${port}`, match: { ports: port, domains: 'chain.example.com' }, action: { type: 'forward' as const, target: { host: '127.0.0.1', port: target }, tls: { mode: 'passthrough' as const } } },
      { name: `other-${port}`, match: { ports: port, domains: '*.other.example' }, action: { type: 'forward' as const, target: { host: '127.0.0.1', port: wrong }, tls: { mode: 'passthrough' as const } } },
    ];
    await smartProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 2, routes: sni(inner, ng) });
    await smartProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 1, routes: sni(outer, inner) });
    const haproxy = await peer(startHaproxy(`frontend fe\n  mode tcp\n  bind 127.0.0.1:${hp}\n  default_backend be\nbackend be\n  mode tcp\n  server s 127.0.0.1:${outer} send-proxy-v2\n`, [hp]));
    await withPeerLogs([haproxy, nginx], async () => {
      const { body } = await getTls(hp, '127.0.0.37', 'chain.example.com', cert.cert);
      assert.equal(body, '127.0.0.37 chain.example.com\n');
    });
  });
});

describe('scale-out behind HAProxy', () => {
  it('load-balances 200 requests over two SmartProxy instances with LOCAL health checks, and survives losing one', { skip: skipHaproxy }, async () => {
    const backend = await reporter();
    const [hp, a, b] = [await freePort(), await freePort(), await freePort()];
    const options = { acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 2 as const };
    const proxyA = await smartProxy({ ...options, routes: [forward(a, backend.port)] });
    const proxyB = new SmartProxy({ listenAddress: '127.0.0.1', ...options, routes: [forward(b, backend.port)] });
    await proxyB.start();
    onCleanup(() => proxyB.stop());
    const errors: string[] = [];
    for (const p of [proxyA, proxyB]) p.on('proxy-protocol-error', (e: { code: string }) => errors.push(e.code));
    const haproxy = await peer(
      startHaproxy(
        `frontend fe\n  mode tcp\n  bind 127.0.0.1:${hp}\n  default_backend be\n` +
          // A bare L4 check ends with an RST right after the LOCAL header, often before the proxy has
          // even accepted it; a check that waits for the backend's answer shows the LOCAL path end to end.
          `backend be\n  mode tcp\n  balance roundrobin\n  option tcp-check\n  tcp-check send "health\\n"\n  tcp-check expect string health\n` +
          `  default-server send-proxy-v2 check check-send-proxy inter 100 fall 2 rise 1\n` +
          `  server a 127.0.0.1:${a}\n  server b 127.0.0.1:${b}\n`,
        [hp],
      ),
    );
    const serverStates = async () => {
      const out = await haproxyCommand(haproxy, 'show stat');
      return Object.fromEntries(out.split('\n').filter((l) => l.startsWith('be,') && !l.startsWith('be,BACKEND')).map((l) => [l.split(',')[1], l.split(',')[17]]));
    };
    await withPeerLogs([haproxy], async () => {
      await waitFor(() => proxyA.getStatistics().proxyProtocol.local > 2 && proxyB.getStatistics().proxyProtocol.local > 2, 5000, 'health checks on both');
      const ask = async (i: number) => {
        const address = `127.0.0.${50 + (i % 20)}`;
        const client = await connect({ port: hp, localAddress: address });
        client.write('ping\n');
        const report = JSON.parse(await readLine(client)) as IHeaderReport;
        const port = client.localPort;
        client.destroy();
        assert.deepEqual(report.header?.source, { address, port }, `request ${i}`);
      };
      for (let i = 0; i < 100; i++) await ask(i);
      assert.ok(proxyA.getStatistics().proxyProtocol.acceptedV2 >= 40 && proxyB.getStatistics().proxyProtocol.acceptedV2 >= 40, 'both instances served');
      assert.deepEqual(await serverStates(), { a: 'UP', b: 'UP' });
      await proxyB.stop();
      let states = await serverStates();
      for (let t = 0; t < 50 && states.b !== 'DOWN'; t++) {
        await new Promise((r) => setTimeout(r, 50));
        states = await serverStates();
      }
      assert.equal(states.b, 'DOWN', 'HAProxy marked the stopped instance down');
      for (let i = 100; i < 200; i++) await ask(i);
      assert.deepEqual(errors, [], 'LOCAL health checks are never counted as errors');
      assert.deepEqual(proxyA.getStatistics().proxyProtocol.rejected, {});
    });
  });
});

describe('health checks', () => {
  it("HAProxy's LOCAL health checks keep SmartProxy UP and count as local, never as errors", { skip: skipHaproxy }, async () => {
    const backend = await reporter();
    const [hp, sp] = [await freePort(), await freePort()];
    const proxy = await smartProxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, routes: [forward(sp, backend.port)] });
    const errors: string[] = [];
    proxy.on('proxy-protocol-error', (e: { code: string }) => errors.push(e.code));
    const haproxy = await peer(
      startHaproxy(
        `frontend fe\n  mode tcp\n  bind 127.0.0.1:${hp}\n  default_backend be\n` +
          `backend be\n  mode tcp\n  option tcp-check\n  tcp-check send "health\\n"\n  tcp-check expect string health\n` +
          `  server s 127.0.0.1:${sp} send-proxy-v2 check check-send-proxy inter 100 fall 1 rise 1\n`,
        [hp],
      ),
    );
    await withPeerLogs([haproxy], async () => {
      await waitFor(() => proxy.getStatistics().proxyProtocol.local >= 10, 5000, 'ten LOCAL checks');
      const status = (await haproxyCommand(haproxy, 'show stat')).split('\n').find((l) => l.startsWith('be,s,'))?.split(',')[17];
      assert.equal(status, 'UP');
      const stats = proxy.getStatistics().proxyProtocol;
      assert.deepEqual([stats.rejected, stats.spoofing, stats.timeouts, errors], [{}, 0, 0, []]);
    });
  });
});
