/**
 * The CLI's metrics endpoint: `/metrics` (Prometheus text) and `/stats` (JSON) on
 * `"metrics": { "listen" }`, closed on stop; and a real Prometheus scraping it and answering a
 * query for a counter after traffic.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import type { ISmartProxyMetrics } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import * as cli from './helpers/cli.js';
import { closed, connect, freePort, readLine, startEchoServer } from './helpers/net.js';
import { startProxyToEcho } from './helpers/proxy.js';
import { METRICS_MAX_CONNECTIONS, proxyMetricsSource, startMetricsEndpoint, stopMetricsEndpoint } from '../ts/cli/metrics-endpoint.js';
import { skipUnless, startPeer, withPeerLogs } from './helpers/peers.js';

const onCleanup = cleanupAfterAll();

/** The CLI with one route to an echo backend and the metrics endpoint on a free loopback port. */
async function serviceWithMetrics(): Promise<{ run: cli.IRun; port: number; metricsPort: number }> {
  const backend = await startEchoServer();
  onCleanup(() => backend.close());
  const [port, metricsPort] = [await freePort(), await freePort()];
  const file = cli.writeConfig(
    {
      listenAddress: '127.0.0.1',
      metrics: { listen: `127.0.0.1:${metricsPort}` },
      routes: [{ name: 'web', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }],
    },
    onCleanup,
  );
  const run = cli.runNode(['ts/cli.ts', '--config', file], onCleanup);
  await run.waitFor(/started with 1 route/);
  return { run, port, metricsPort };
}

async function exchanges(port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const socket = await connect({ port });
    socket.write('ping\n');
    await readLine(socket);
    socket.end();
    await closed(socket);
  }
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('the CLI metrics endpoint', () => {
  it('serves /metrics as Prometheus text and /stats as JSON, and closes both on stop', async () => {
    const { run, port, metricsPort } = await serviceWithMetrics();
    assert.match(run.output(), new RegExp(`metrics on http://127\\.0\\.0\\.1:${metricsPort}/metrics`));
    await exchanges(port, 2);
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(metrics.status, 200);
    assert.equal(metrics.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(await metrics.text(), /^smartproxy_route_connections_total\{route="web"\} 2$/m);
    const stats = (await (await fetch(`http://127.0.0.1:${metricsPort}/stats`)).json()) as ISmartProxyMetrics;
    assert.equal(stats.connections.total, 2);
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status, 404);

    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0);
    assert.ok(await refused(metricsPort), 'metrics port still open after stop');
  });

  it('holds at most METRICS_MAX_CONNECTIONS connections, so a flood of idle ones cannot take the proxy\'s file descriptors, and answers again once they go', async () => {
    const { proxy } = await startProxyToEcho(onCleanup, 'web');
    const metricsPort = await freePort();
    const server = await startMetricsEndpoint(proxyMetricsSource(proxy), '127.0.0.1', metricsPort, () => undefined);
    onCleanup(() => stopMetricsEndpoint(server));
    const idle: net.Socket[] = [];
    for (let i = 0; i < METRICS_MAX_CONNECTIONS + 40; i++) idle.push((await connect({ port: metricsPort })).on('error', () => undefined));
    const over = await Promise.all(idle.slice(METRICS_MAX_CONNECTIONS).map((socket) => closed(socket, 2000)));
    assert.ok(over.every(Boolean), 'the connections over the cap are closed');
    const held = await new Promise<number>((resolve) => server.getConnections((_, n) => resolve(n)));
    assert.equal(held, METRICS_MAX_CONNECTIONS);
    for (const socket of idle) socket.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const post = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status, 200);
  });

  it('is scraped by a real Prometheus, which answers a query for smartproxy_connections_total after traffic', { skip: skipUnless('prometheus') }, async () => {
    const { port, metricsPort } = await serviceWithMetrics();
    const webPort = await freePort();
    const config = `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: smartproxy\n    static_configs:\n      - targets: ['127.0.0.1:${metricsPort}']\n`;
    const prometheus = await startPeer(
      'prometheus',
      'prometheus',
      (dir) => [`--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/data`, `--web.listen-address=127.0.0.1:${webPort}`],
      { 'prometheus.yml': config },
      [webPort],
    );
    onCleanup(() => prometheus.stop());
    await exchanges(port, 3);
    let value: string | undefined;
    await withPeerLogs([prometheus], async () => {
      const deadline = Date.now() + 15000;
      while (value !== '3' && Date.now() < deadline) {
        const res = await fetch(`http://127.0.0.1:${webPort}/api/v1/query?query=smartproxy_connections_total`).catch(() => undefined);
        const body = res?.ok ? ((await res.json()) as { data: { result: Array<{ value: [number, string] }> } }) : undefined;
        value = body?.data.result[0]?.value[1];
        if (value !== '3') await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(value, '3');
    });
  });
});
