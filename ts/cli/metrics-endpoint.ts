/**
 * The CLI's `"metrics": { "listen": "host:port" }`: `/metrics` in Prometheus' text format and
 * `/stats` as JSON (getMetrics()), both computed per request: from the proxy's counters, or with
 * workers, from every worker's, summed (see workers/supervisor.ts).
 */
import http from 'node:http';
import type { Logger } from 'pino';
import { SmartProxyError } from '../protocols/errors.js';
import { formatPrometheusMetrics, PROMETHEUS_CONTENT_TYPE } from '../proxies/smart-proxy/prometheus.js';
import type { SmartProxy } from '../proxies/smart-proxy/smart-proxy.js';

/** What the endpoint serves: Prometheus text for /metrics, a JSON-able value for /stats. */
export interface IMetricsSource {
  prometheus(): Promise<string>;
  stats(): Promise<unknown>;
}

/** One proxy's metrics, as the single-process service serves them. */
export function proxyMetricsSource(proxy: SmartProxy): IMetricsSource {
  return {
    prometheus: async () => formatPrometheusMetrics(proxy),
    stats: async () => proxy.getMetrics(),
  };
}

/**
 * Scrapers are few. The endpoint shares the process's file descriptors with the proxy, so a flood
 * of idle connections to it must not take the ones the proxy needs: past this, new ones are closed.
 */
export const METRICS_MAX_CONNECTIONS = 64;

function answer(res: http.ServerResponse, status: number, type: string, body: string, extra: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...extra });
  res.end(body);
}

async function route(source: IMetricsSource, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return answer(res, 405, 'text/plain', 'only GET\n', { Allow: 'GET, HEAD' });
  if (path === '/metrics') return answer(res, 200, PROMETHEUS_CONTENT_TYPE, await source.prometheus());
  if (path === '/stats') return answer(res, 200, 'application/json', `${JSON.stringify(await source.stats(), null, 2)}\n`);
  answer(res, 404, 'text/plain', 'try /metrics or /stats\n');
}

/** Listens on `host:port`; rejects with ERR_LISTEN when it cannot. Later failures go to `warn`. */
export function startMetricsEndpoint(source: IMetricsSource, host: string, port: number, warn: (message: string) => void): Promise<http.Server> {
  // A scrape that never finishes must not hold a socket for long; the timeouts are checked each
  // second (Node's default is every 30 s, which would let a slow client stay 40 s).
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 10_000, connectionsCheckingInterval: 1000 }, (req, res) => {
    route(source, req, res).catch((err: Error) => {
      warn(`metrics request ${req.url}: ${err.message}`);
      if (!res.headersSent && !res.destroyed) answer(res, 500, 'text/plain', 'internal error\n');
    });
  });
  server.maxConnections = METRICS_MAX_CONNECTIONS;
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new SmartProxyError('ERR_LISTEN', `cannot serve metrics on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      server.on('error', (err) => warn(`metrics endpoint: ${err.message}`));
      resolve(server);
    });
  });
}

/** Closes the endpoint and the scrapers' keep-alive connections. */
export function stopMetricsEndpoint(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * The CLI's way to start the endpoint: the address it serves on goes to the log at info, a
 * failure to listen at error (undefined then: the caller stops with exit 1).
 */
export async function openMetricsEndpoint(source: IMetricsSource, listen: { host: string; port: number }, log: Logger, note = ''): Promise<http.Server | undefined> {
  let server: http.Server;
  try {
    server = await startMetricsEndpoint(source, listen.host, listen.port, (message) => log.warn(message));
  } catch (err) {
    log.error({ code: (err as SmartProxyError).code }, `cannot start: ${(err as Error).message}`);
    return undefined;
  }
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  log.info(`metrics on http://${host}:${listen.port}/metrics (Prometheus${note === '' ? '' : `, ${note}`}) and /stats (JSON)`);
  return server;
}
