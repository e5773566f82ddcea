import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { SmartProxy, withProxyProtocol } from '../ts/index.js';
import type { IProxyProtocolServerErrorEvent, IWithProxyProtocolOptions } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { freePort, waitFor } from './helpers/net.js';
import { type IPeer, haproxyCommand, skipUnless, startHaproxy, withPeerLogs } from './helpers/peers.js';
import { CERT, type IPeerReport, type IReply, listen, report } from './helpers/servers.js';

const run = promisify(execFile);
const onCleanup = cleanupAfterAll();
const skipCurl = skipUnless('curl');
const skipHaproxy = skipUnless('haproxy', 'curl');

const caFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'smartproxy-servers-')), 'ca.pem');
fs.writeFileSync(caFile, CERT.cert);
onCleanup(() => fs.rmSync(path.dirname(caFile), { recursive: true, force: true }));

function answer(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void {
  const reply: IReply = { socket: report(req.socket), httpVersion: req.httpVersion };
  if ('stream' in req && req.stream !== undefined) reply.session = report(req.stream.session?.socket as http2.Http2Session['socket']);
  res.end(JSON.stringify(reply));
}

async function serve<T extends http.Server | https.Server | http2.Http2SecureServer>(server: T, options: IWithProxyProtocolOptions) {
  const errors: IProxyProtocolServerErrorEvent[] = [];
  withProxyProtocol(server, options).on('proxyProtocolError', (e: IProxyProtocolServerErrorEvent) => errors.push(e));
  const listening = await listen(server);
  onCleanup(() => listening.close());
  return { port: listening.port, errors };
}

async function peer(start: Promise<IPeer>): Promise<IPeer> {
  const p = await start;
  onCleanup(() => p.stop());
  return p;
}

/** curl from `localAddress`; returns the body and curl's own TCP port. */
async function curl(url: string, localAddress: string, extra: string[] = []): Promise<{ reply: IReply; localPort: number }> {
  const { stdout } = await run('curl', ['-sS', '-m', '5', '--interface', localAddress, '--cacert', caFile, '-w', '\n%{local_port}', ...extra, url]);
  const nl = stdout.lastIndexOf('\n');
  return { reply: JSON.parse(stdout.slice(0, nl)) as IReply, localPort: Number(stdout.slice(nl + 1)) };
}

function client(address: string, port: number, version: number): IPeerReport {
  return { address, port, family: 'IPv4', version, command: 'PROXY', authority: null };
}

/** HAProxy in TCP mode from `hp` to the wrapped server on `sp`, with `serverLine` options. */
function haproxyTcp(hp: number, sp: number, serverLine: string, backendLines = ''): Promise<IPeer> {
  return peer(startHaproxy(`frontend fe\n  mode tcp\n  bind 127.0.0.1:${hp}\n  default_backend be\nbackend be\n  mode tcp\n${backendLines}  server s 127.0.0.1:${sp} ${serverLine}\n`, [hp]));
}

describe('withProxyProtocol behind real peers', () => {
  it('curl --haproxy-protocol → http.Server: the v1 header is read and the request served', { skip: skipCurl }, async () => {
    const { port, errors } = await serve(http.createServer(answer), { proxyIPs: ['127.0.0.41'] });
    const { reply, localPort } = await curl(`http://localhost:${port}/`, '127.0.0.41', ['--haproxy-protocol', '--resolve', `localhost:${port}:127.0.0.1`]);
    assert.deepEqual(reply.socket, client('127.0.0.41', localPort, 1));
    assert.deepEqual(errors, []);
  });

  const TLS = { key: CERT.key, cert: CERT.cert };
  const tlsServers = [
    ['https.Server: TLS after the header, the original client on req.socket', () => https.createServer(TLS, answer), '1.1', [], '127.0.0.42'],
    ['http2.createSecureServer driven by curl --http2: req.socket and the session socket name the client', () => http2.createSecureServer(TLS, answer), '2.0', ['--http2'], '127.0.0.43'],
  ] as const;
  for (const [name, create, httpVersion, flags, address] of tlsServers) {
    it(`HAProxy send-proxy-v2 → ${name}`, { skip: skipHaproxy }, async () => {
      const { port: sp, errors } = await serve(create(), { proxyIPs: ['127.0.0.1'] });
      const hp = await freePort();
      const haproxy = await haproxyTcp(hp, sp, 'send-proxy-v2');
      await withPeerLogs([haproxy], async () => {
        const { reply, localPort } = await curl(`https://localhost:${hp}/`, address, [...flags, '--resolve', `localhost:${hp}:127.0.0.1`]);
        assert.equal(reply.httpVersion, httpVersion);
        assert.deepEqual(reply.socket, client(address, localPort, 2));
        if (httpVersion === '2.0') assert.deepEqual(reply.session, client(address, localPort, 2));
        assert.deepEqual(errors, []);
      });
    });
  }

  it("HAProxy's check-send-proxy health checks (LOCAL) keep the server UP and see HAProxy's own address", { skip: skipHaproxy }, async () => {
    const checks: IPeerReport[] = [];
    const server = http.createServer((req, res) => {
      if (req.url === '/health') checks.push(report(req.socket));
      answer(req, res);
    });
    const { port: sp, errors } = await serve(server, { proxyIPs: ['127.0.0.1'] });
    const hp = await freePort();
    const haproxy = await haproxyTcp(hp, sp, 'send-proxy-v2 check check-send-proxy inter 100 fall 1 rise 1', '  option httpchk GET /health\n  http-check expect status 200\n');
    await withPeerLogs([haproxy], async () => {
      await waitFor(() => checks.length >= 5, 5000, 'five health checks');
      for (const seen of checks) assert.deepEqual({ ...seen, port: 0 }, { address: '127.0.0.1', port: 0, family: 'IPv4', version: 2, command: 'LOCAL', authority: null });
      const status = (await haproxyCommand(haproxy, 'show stat')).split('\n').find((l) => l.startsWith('be,s,'))?.split(',')[17];
      assert.equal(status, 'UP');
      const { reply, localPort } = await curl(`http://localhost:${hp}/`, '127.0.0.44', ['--resolve', `localhost:${hp}:127.0.0.1`]);
      assert.deepEqual(reply.socket, client('127.0.0.44', localPort, 2), 'traffic next to the checks still names the client');
      assert.deepEqual(errors, []);
    });
  });

  it('a SmartProxy chain (outer sends v2 → inner sends v1 → a withProxyProtocol backend) names the original client', async () => {
    const { port: backendPort, errors } = await serve(http.createServer(answer), { proxyIPs: ['127.0.0.1'] });
    const [outer, inner] = [await freePort(), await freePort()];
    const route = (port: number, target: number) => ({ name: `to-${target}`, match: { ports: port }, action: { type: 'forward' as const, target: { host: '127.0.0.1', port: target } } });
    const innerProxy = new SmartProxy({ listenAddress: '127.0.0.1', acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], sendProxyProtocol: true, proxyProtocolVersion: 1, routes: [route(inner, backendPort)] });
    const outerProxy = new SmartProxy({ listenAddress: '127.0.0.1', sendProxyProtocol: true, proxyProtocolVersion: 2, routes: [route(outer, inner)] });
    for (const p of [innerProxy, outerProxy]) {
      await p.start();
      onCleanup(() => p.stop());
    }
    const reply = await new Promise<{ body: IReply; localPort: number }>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: outer, localAddress: '127.0.0.45', agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ body: JSON.parse(text) as IReply, localPort: req.socket?.localPort as number }));
      });
      req.on('error', reject);
    });
    assert.deepEqual(reply.body.socket, client('127.0.0.45', reply.localPort, 1));
    assert.deepEqual(errors, []);
  });
});
