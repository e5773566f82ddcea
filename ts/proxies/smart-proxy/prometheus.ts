/**
 * getMetrics() in Prometheus' text exposition format (version 0.0.4): names `smartproxy_...`,
 * base units (bytes), `_total` on counters, HELP and TYPE lines, label values escaped. Throughput
 * is left out on purpose: Prometheus derives it from the byte counters with rate().
 */
import type { ISmartProxyMetrics } from './metrics.js';

/** The Content-Type of the text this module writes. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;
/** One sample of a metric family: its labels and its value. */
export type PrometheusSample = [labels: Labels, value: number];
type Sample = PrometheusSample;

/** A label value as the format wants it: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}

function formatLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabelValue(value)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

/** Collects metric families; each family is written once with its HELP and TYPE lines. */
export class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]): void {
    const full = `smartproxy_${name}`;
    this.lines.push(`# HELP ${full} ${escapeHelp(help)}`, `# TYPE ${full} ${type}`);
    for (const [labels, value] of samples) this.lines.push(`${full}${formatLabels(labels)} ${formatValue(value)}`);
  }

  single(name: string, type: 'counter' | 'gauge', help: string, value: number): void {
    this.family(name, type, help, [[{}, value]]);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** One sample per key of `counts`, the key under label `label`. */
function byKey(counts: Record<string, number>, label: string): Sample[] {
  return Object.keys(counts)
    .sort()
    .map((key) => [{ [label]: key }, counts[key]]);
}

function perRoute<T>(records: Record<string, T>, value: (r: T) => number): Sample[] {
  return Object.keys(records).map((route) => [{ route }, value(records[route])]);
}

function connectionFamilies(out: Exposition, m: ISmartProxyMetrics): void {
  const c = m.connections;
  out.single('connections_active', 'gauge', 'Open TCP connections, in any stage.', c.active);
  out.single('connections_total', 'counter', 'TCP connections accepted.', c.total);
  out.family('connections_rejected_total', 'counter', 'TCP connections ended before reaching a backend, by code.', byKey(m.rejections, 'code'));
  out.single('connections_gone_before_accept_total', 'counter', 'Sockets whose peer was gone before they could be handled.', c.goneBeforeAccept);
  out.family('route_connections_active', 'gauge', 'Open TCP connections per route.', perRoute(c.byRoute, (r) => r.active));
  out.family('route_connections_total', 'counter', 'TCP connections routed, per route.', perRoute(c.byRoute, (r) => r.total));
  out.family('client_connections_active', 'gauge', 'Open TCP connections of the real client IPs with the most of them (top N only).', c.topClients.map((t): Sample => [{ client: t.ip }, t.active]));
  out.single('client_received_bytes_total', 'counter', 'Bytes read from clients (TCP, PROXY headers included).', m.bytes.fromClients);
  out.single('client_sent_bytes_total', 'counter', 'Bytes written to clients (TCP).', m.bytes.toClients);
  out.family('route_received_bytes_total', 'counter', 'Bytes read from clients, per route.', perRoute(m.bytes.byRoute, (b) => b.fromClients));
  out.family('route_sent_bytes_total', 'counter', 'Bytes written to clients, per route.', perRoute(m.bytes.byRoute, (b) => b.toClients));
}

function proxyProtocolFamilies(out: Exposition, m: ISmartProxyMetrics): void {
  const pp = m.proxyProtocol;
  out.family('proxy_protocol_headers_total', 'counter', 'Complete PROXY headers read, believed or not, by version.', [[{ version: '1' }, pp.byVersion.v1], [{ version: '2' }, pp.byVersion.v2]]);
  out.family('proxy_protocol_accepted_total', 'counter', 'PROXY headers believed (command PROXY), by version.', [[{ version: '1' }, pp.acceptedV1], [{ version: '2' }, pp.acceptedV2]]);
  out.single('proxy_protocol_local_total', 'counter', 'PROXY LOCAL headers (health checks).', pp.local);
  out.single('proxy_protocol_unknown_total', 'counter', 'PROXY UNKNOWN/UNSPEC headers (the peer address is used).', pp.unknown);
  out.single('proxy_protocol_ignored_total', 'counter', 'PROXY headers read and removed but not believed (policy ignore).', pp.ignored);
  out.family('proxy_protocol_rejected_total', 'counter', 'PROXY headers refused, by code.', byKey(pp.rejected, 'code'));
  out.family('proxy_protocol_connections_total', 'counter', 'TCP connections by the PROXY policy that applied to their peer.', byKey(pp.byPolicy, 'policy'));
  out.single('proxy_protocol_sent_total', 'counter', 'PROXY headers written to backends.', pp.sent);
}

function httpFamilies(out: Exposition, m: ISmartProxyMetrics): void {
  const h = m.http;
  out.single('http_requests_total', 'counter', 'HTTP requests on HTTP routes.', h.requests);
  out.single('http_upgrades_total', 'counter', 'HTTP requests that became tunnels (WebSocket and other upgrades).', h.upgrades);
  out.single('http2_sessions_total', 'counter', 'HTTP/2 sessions from clients.', h.h2Sessions);
  const responses: Sample[] = [];
  for (const route of Object.keys(h.byRoute).sort()) {
    for (const [status, count] of Object.entries(h.byRoute[route])) responses.push([{ route, class: status }, count]);
  }
  out.family('http_responses_total', 'counter', 'HTTP responses by route ("" before one was chosen) and status class.', responses);
  out.family('http_proxy_answers_total', 'counter', 'HTTP answers the proxy made itself (404, 502, ...), by code.', byKey(h.answered, 'code'));
}

function udpFamilies(out: Exposition, m: ISmartProxyMetrics): void {
  const u = m.udp;
  out.single('udp_sessions_active', 'gauge', 'Open UDP sessions (client flows).', u.activeSessions);
  out.single('udp_sessions_total', 'counter', 'UDP sessions opened.', u.totalSessions);
  out.family('udp_datagrams_total', 'counter', 'UDP datagrams forwarded, by direction.', [[{ direction: 'to_backend' }, u.datagramsToBackends], [{ direction: 'to_client' }, u.datagramsToClients]]);
  out.family('udp_bytes_total', 'counter', 'UDP payload bytes forwarded, by direction.', [[{ direction: 'to_backend' }, u.bytesToBackends], [{ direction: 'to_client' }, u.bytesToClients]]);
  out.family('udp_proxy_headers_total', 'counter', 'PROXY v2 headers on UDP datagrams, received (believed) and sent.', [[{ direction: 'received' }, u.headersReceived], [{ direction: 'sent' }, u.headersSent]]);
  out.family('udp_dropped_total', 'counter', 'UDP datagrams dropped, by code.', byKey(u.dropped, 'code'));
}

/**
 * The metrics of `source` (a SmartProxy, or metrics already taken) as Prometheus text, for
 * users who serve it themselves; the CLI serves it on `/metrics`.
 */
export function formatPrometheusMetrics(source: { getMetrics(): ISmartProxyMetrics } | ISmartProxyMetrics): string {
  const m = 'getMetrics' in source ? source.getMetrics() : source;
  const out = new Exposition();
  connectionFamilies(out, m);
  proxyProtocolFamilies(out, m);
  httpFamilies(out, m);
  udpFamilies(out, m);
  return out.text();
}
