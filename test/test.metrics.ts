/**
 * getMetrics(): connections by route and real client, bytes (the wire's, a PROXY header included,
 * the same in getStatistics and the close record), throughput from the sweep's samples, PROXY
 * outcomes and rejections by code; and formatPrometheusMetrics(): valid exposition text.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPrometheusMetrics, ProxyProtocolParser, sumMetrics } from '../ts/index.js';
import type { IClosedConnectionRecord, ISmartProxyOptions } from '../ts/index.js';
import { escapeLabelValue } from '../ts/proxies/smart-proxy/prometheus.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { closed, connect, readLine, waitFor } from './helpers/net.js';
import { startProxyToEcho } from './helpers/proxy.js';

const onCleanup = cleanupAfterAll();

const startedProxy = (routeName: string, extra: Partial<ISmartProxyOptions> = {}) => startProxyToEcho(onCleanup, routeName, extra);

function v2Header(client: string, port: number): Buffer {
  return ProxyProtocolParser.generate({ source: { address: client, port: 5000 }, destination: { address: '127.0.0.1', port } }, { version: 2 });
}

describe('getMetrics', () => {
  it('counts live and ended connections by route and real client, bytes with the PROXY header, and refusals by code', async () => {
    const { proxy, port } = await startedProxy('web');
    const records: IClosedConnectionRecord[] = [];
    const codes: string[] = [];
    proxy.on('connection-close', (r) => records.push(r));
    proxy.on('proxy-protocol-error', (e) => codes.push(e.code));

    const header = v2Header('203.0.113.5', port);
    const client = await connect({ port });
    client.write(Buffer.concat([header, Buffer.from('hello\n')]));
    assert.equal(await readLine(client), 'hello');
    const live = proxy.getMetrics();
    assert.deepEqual(live.connections.byRoute, { web: { active: 1, total: 1 } });
    assert.deepEqual(live.connections.topClients, [{ ip: '203.0.113.5', active: 1 }]);
    // A live connection's bytes count already, on the wire: the header's bytes too.
    assert.deepEqual(live.bytes.byRoute.web, { fromClients: header.length + 6, toClients: 6 });
    assert.equal(proxy.getStatistics().bytesFromClients, header.length + 6);

    client.end();
    await closed(client);
    const refused = await connect({ port });
    refused.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed(refused);
    await waitFor(() => records.length === 2);

    const m = proxy.getMetrics();
    assert.equal(m.connections.active, 0);
    assert.equal(m.connections.total, 2);
    assert.equal(m.connections.rejected, 1);
    assert.deepEqual(m.connections.byRoute, { web: { active: 0, total: 1 } });
    assert.deepEqual(m.connections.topClients, []);
    assert.equal(codes.length, 1);
    assert.deepEqual(m.rejections, { [codes[0]]: 1 });
    assert.deepEqual(m.proxyProtocol.rejected, { [codes[0]]: 1 });
    assert.deepEqual(m.proxyProtocol.byVersion, { v1: 0, v2: 1 });
    assert.equal(m.proxyProtocol.byPolicy.require, 2);
    const forwarded = records.find((r) => r.routeName === 'web') as IClosedConnectionRecord;
    const allIn = records.reduce((sum, r) => sum + r.bytesFromClient, 0);
    assert.equal(forwarded.bytesFromClient, header.length + 6);
    assert.equal(m.bytes.fromClients, allIn);
    assert.equal(proxy.getStatistics().bytesFromClients, allIn);
    assert.deepEqual(m.bytes.byRoute.web, { fromClients: header.length + 6, toClients: 6 });
  });

  it('lists the real client IPs with the most open connections first, at most topClients of them', async () => {
    const { proxy, port } = await startedProxy('web');
    const sockets = [];
    for (const [ip, n] of [['198.51.100.1', 1], ['198.51.100.2', 3], ['198.51.100.3', 2]] as const) {
      for (let i = 0; i < n; i++) {
        const socket = await connect({ port });
        socket.write(Buffer.concat([v2Header(ip, port), Buffer.from('x\n')]));
        await readLine(socket);
        sockets.push(socket);
      }
    }
    assert.deepEqual(proxy.getMetrics({ topClients: 2 }).connections.topClients, [
      { ip: '198.51.100.2', active: 3 },
      { ip: '198.51.100.3', active: 2 },
    ]);
    for (const socket of sockets) socket.destroy();
  });

  it('reports throughput from the sweep samples: bytes sent after start show in the instant and last-minute rates', async () => {
    const { proxy, port } = await startedProxy('bulk', { acceptProxyProtocol: false, proxyIPs: [] });
    const client = await connect({ port });
    client.on('data', () => undefined);
    await new Promise((r) => setTimeout(r, 1100)); // the first samples see no bytes
    const payload = Buffer.alloc(256 * 1024, 1);
    client.write(payload);
    let sawInstant = false;
    await waitFor(() => {
      const t = proxy.getMetrics().throughput;
      sawInstant ||= t.instant.fromClients > 0;
      return sawInstant && t.lastMinute.fromClients > 0;
    }, 4000, 'throughput above zero');
    const t = proxy.getMetrics().throughput;
    // All bytes came within the window, and samples are at least 0.9 s apart: the average over the
    // window's span (0.9 s .. 60 s) is at most what was sent per 0.9 s and at least per 60 s.
    assert.ok(t.lastMinute.fromClients <= payload.length / 0.9 && t.lastMinute.fromClients >= payload.length / 60, JSON.stringify(t));
    assert.deepEqual(t.byRoute.bulk.lastMinute, t.lastMinute);
    client.destroy();
  });
});

describe('formatPrometheusMetrics', () => {
  it('writes HELP and TYPE once per family, counters ending in _total, and escaped label values', async () => {
    const name = 'we"b\\1\nx';
    const { proxy, port } = await startedProxy(name);
    const client = await connect({ port });
    client.write(Buffer.concat([v2Header('203.0.113.5', port), Buffer.from('hi\n')]));
    await readLine(client);
    const text = formatPrometheusMetrics(proxy);
    client.destroy();
    assert.ok(text.endsWith('\n'));
    const types = new Map<string, string>();
    for (const line of text.trimEnd().split('\n')) {
      const typeLine = /^# TYPE (\S+) (counter|gauge)$/.exec(line);
      if (typeLine !== null) {
        assert.ok(!types.has(typeLine[1]), `TYPE twice for ${typeLine[1]}`);
        types.set(typeLine[1], typeLine[2]);
        continue;
      }
      if (line.startsWith('# HELP ')) continue;
      const sample = /^(smartproxy_[a-z0-9_]+)(\{(?:[a-z_]+="(?:[^"\\\n]|\\["\\n])*",?)*\})? (\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/.exec(line);
      assert.ok(sample !== null, `not a valid sample line: ${JSON.stringify(line)}`);
      const type = types.get(sample[1]);
      assert.ok(type !== undefined, `${sample[1]} has no TYPE line before it`);
      if (type === 'counter') assert.match(sample[1], /_total$/);
    }
    assert.match(text, /^smartproxy_connections_total 1$/m);
    assert.ok(text.includes(`smartproxy_route_connections_total{route="we\\"b\\\\1\\nx"} 1`), text);
    assert.match(text, /^smartproxy_client_connections_active\{client="203\.0\.113\.5"\} 1$/m);
    assert.match(text, /^smartproxy_proxy_protocol_headers_total\{version="2"\} 1$/m);
  });

  it('escapes backslash, double quote and line feed in label values, and nothing else', () => {
    assert.equal(escapeLabelValue('a\\b"c\nd é'), 'a\\\\b\\"c\\nd é');
  });
});

describe('sumMetrics', () => {
  it('adds the metrics of two proxies: counts, per-route and per-code records, clients merged, ports united', async () => {
    const a = await startedProxy('web');
    const b = await startedProxy('web');
    const open: Array<Awaited<ReturnType<typeof connect>>> = [];
    for (const [{ port }, client] of [[a, '203.0.113.5'], [b, '203.0.113.5'], [b, '203.0.113.9']] as const) {
      const socket = await connect({ port });
      socket.write(Buffer.concat([v2Header(client, port), Buffer.from('hi\n')]));
      assert.equal(await readLine(socket), 'hi');
      open.push(socket);
    }
    const refused = await connect({ port: a.port });
    refused.write('GET / HTTP/1.1\r\n\r\n');
    await closed(refused);
    const [ma, mb] = [a.proxy.getMetrics(), b.proxy.getMetrics()];
    const sum = sumMetrics([ma, mb]);
    assert.equal(sum.connections.total, 4);
    assert.equal(sum.connections.active, 3);
    assert.deepEqual(sum.connections.byRoute, { web: { active: 3, total: 3 } });
    assert.deepEqual(sum.connections.topClients, [{ ip: '203.0.113.5', active: 2 }, { ip: '203.0.113.9', active: 1 }]);
    assert.deepEqual(sum.rejections, ma.rejections, 'the one refusal, under its code');
    assert.equal(sum.proxyProtocol.byVersion.v2, 3);
    assert.equal(sum.proxyProtocol.byPolicy.require, 4);
    assert.equal(sum.bytes.fromClients, ma.bytes.fromClients + mb.bytes.fromClients);
    assert.deepEqual(sum.bytes.byRoute.web, { fromClients: ma.bytes.byRoute.web.fromClients + mb.bytes.byRoute.web.fromClients, toClients: 9 });
    assert.deepEqual(sum.listeningPorts, [a.port, b.port].sort((x, y) => x - y));
    assert.equal(sum.time, Math.max(ma.time, mb.time));
    assert.equal(ma.connections.total, 2, 'the inputs are left as they were');
    assert.match(formatPrometheusMetrics(sum), /^smartproxy_connections_total 4$/m);
    for (const socket of open) socket.destroy();
  });

  it('gives an idle proxy\'s metrics for an empty list', () => {
    const sum = sumMetrics([]);
    assert.equal(sum.connections.total, 0);
    assert.deepEqual(sum.proxyProtocol.byPolicy, { require: 0, use: 0, ignore: 0, reject: 0, skip: 0 });
    assert.deepEqual(sum.udp.listeningPorts, []);
  });
});
