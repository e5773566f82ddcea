/**
 * getMetrics(): the numbers an operator watches, as plain data, read at call time from the
 * counters the ConnectionManager and the UDP side keep anyway (nothing is counted for it on the
 * data path; throughput comes from the sweep's once-a-second samples of byte counters).
 */
import type { ConnectionManager } from './connection-manager.js';
import type { IHttpStatistics, IProxyProtocolStatistics, IUdpStatistics } from './models/interfaces.js';
import type { IByteTotals, IThroughput } from './traffic-meter.js';

/** Bytes each way: from clients (read on their TCP connections, a PROXY header included) and to them. */
export interface IMetricsBytes {
  fromClients: number;
  toClients: number;
}

/** Bytes per second each way: over the last sample interval (about a second) and over the last minute. */
export interface IMetricsThroughput {
  instant: IMetricsBytes;
  lastMinute: IMetricsBytes;
}

export interface IMetricsOptions {
  /** How many real client IPs `connections.topClients` lists. Default 10. */
  topClients?: number;
}

/** What getMetrics() returns: plain numbers, safe to serialise. Route keys are route names. */
export interface ISmartProxyMetrics {
  /** Wall-clock time of this snapshot (ms since the epoch). */
  time: number;
  listeningPorts: number[];
  connections: {
    /** Open TCP connections, in any stage. */
    active: number;
    /** TCP connections accepted since the proxy was made. */
    total: number;
    /** Ended before reaching a backend; by reason in `rejections`. */
    rejected: number;
    /** Sockets whose peer was gone before they could be handled (not in `total`). */
    goneBeforeAccept: number;
    /** Per route: open connections and all that were routed there (open and ended). */
    byRoute: Record<string, { active: number; total: number }>;
    /** The real client IPs with the most open (admitted) connections, most first. */
    topClients: Array<{ ip: string; active: number }>;
  };
  /** TCP connections that ended before a backend, by code (ERR_PP_MISSING, ERR_ROUTE_NOT_FOUND, ...) or ending (client-closed). */
  rejections: Record<string, number>;
  /** Bytes of open and ended connections, overall and per route. */
  bytes: IMetricsBytes & { byRoute: Record<string, IMetricsBytes> };
  /** Bytes per second, overall and per route (zero until the proxy has run for two samples). */
  throughput: IMetricsThroughput & { byRoute: Record<string, IMetricsThroughput> };
  /** PROXY outcomes: by version, by policy, rejected by code, and the rest of getStatistics().proxyProtocol. */
  proxyProtocol: IProxyProtocolStatistics;
  /** HTTP routes: requests, responses by route and status class, the proxy's own answers by code. */
  http: IHttpStatistics;
  udp: IUdpStatistics;
}

const DEFAULT_TOP_CLIENTS = 10;

function bytes(totals: IByteTotals | undefined): IMetricsBytes {
  return { fromClients: totals?.in ?? 0, toClients: totals?.out ?? 0 };
}

function throughput(t: IThroughput): IMetricsThroughput {
  return { instant: bytes(t.instant), lastMinute: bytes(t.lastMinute) };
}

/** The `n` keys with the largest counts, largest first (ties by key, so the answer is stable). */
function top(counts: ReadonlyMap<string, number>, n: number): Array<{ ip: string; active: number }> {
  return [...counts]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, n)
    .map(([ip, active]) => ({ ip, active }));
}

/** Builds the metrics of a proxy from its connection manager, its UDP statistics and its listening ports. */
export function collectMetrics(manager: ConnectionManager, udp: IUdpStatistics, listeningPorts: number[], options: IMetricsOptions = {}): ISmartProxyMetrics {
  const traffic = manager.trafficTotals();
  const statistics = manager.statistics(listeningPorts, traffic);
  const active = manager.activeBy();
  const names = new Set([...manager.routeTotals.keys(), ...active.route.keys()]);
  const byRoute: ISmartProxyMetrics['connections']['byRoute'] = {};
  const bytesByRoute: Record<string, IMetricsBytes> = {};
  const throughputByRoute: Record<string, IMetricsThroughput> = {};
  for (const name of [...names].sort()) {
    const open = active.route.get(name) ?? 0;
    byRoute[name] = { active: open, total: (manager.routeTotals.get(name)?.connections ?? 0) + open };
    bytesByRoute[name] = bytes(traffic.byRoute.get(name));
    throughputByRoute[name] = throughput(manager.traffic.throughput(name));
  }
  return {
    time: Date.now(),
    listeningPorts,
    connections: {
      active: statistics.activeConnections,
      total: statistics.totalConnections,
      rejected: statistics.rejectedConnections,
      goneBeforeAccept: statistics.goneBeforeAccept,
      byRoute,
      topClients: top(active.client, options.topClients ?? DEFAULT_TOP_CLIENTS),
    },
    rejections: { ...manager.rejections },
    bytes: { ...bytes(traffic), byRoute: bytesByRoute },
    throughput: { ...throughput(manager.traffic.throughput()), byRoute: throughputByRoute },
    proxyProtocol: statistics.proxyProtocol,
    http: statistics.http,
    udp,
  };
}
