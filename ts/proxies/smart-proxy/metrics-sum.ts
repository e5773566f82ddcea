/**
 * sumMetrics(): the getMetrics() of several SmartProxy instances (the CLI's workers, or processes
 * of a user's own cluster) as one, so that one /metrics or /stats shows the whole service.
 */
import { emptyProxyStats } from './connection-manager.js';
import type { ISmartProxyMetrics } from './metrics.js';
import { HttpState } from './stages/http/state.js';
import { emptyUdpStatistics } from './udp/udp-proxy.js';

type Tree = { [key: string]: number | Tree };

/** Adds every number of `source` into `target`, key by key, at any depth (keys missing in `target` are added). */
function addInto(target: Tree, source: Tree): void {
  for (const key of Object.keys(source)) {
    const value = source[key];
    const held = target[key];
    if (typeof value === 'number') target[key] = (typeof held === 'number' ? held : 0) + value;
    else if (typeof held === 'object') addInto(held, value);
    else target[key] = structuredClone(value);
  }
}

/**
 * The metrics of several proxies as one: every count, gauge and rate added, ports united,
 * `time` the latest. `topClients` merges the lists it is given, so a client that is in no
 * worker's top list is missing, and one in some but not all is counted low: read it as a lower
 * bound. An empty list gives the metrics of an idle proxy.
 */
export function sumMetrics(list: readonly ISmartProxyMetrics[], topClients = 10): ISmartProxyMetrics {
  const clients = new Map<string, number>();
  const ports = new Set<number>();
  const udpPorts = new Set<number>();
  const total = {} as Tree;
  let time = 0;
  for (const m of list) {
    const { time: at, listeningPorts, connections, udp, ...counts } = m;
    const { topClients: top, ...connectionCounts } = connections;
    const { listeningPorts: udpListening, ...udpCounts } = udp;
    time = Math.max(time, at);
    for (const port of listeningPorts) ports.add(port);
    for (const port of udpListening) udpPorts.add(port);
    for (const { ip, active } of top) clients.set(ip, (clients.get(ip) ?? 0) + active);
    addInto(total, { ...counts, connections: connectionCounts, udp: udpCounts } as unknown as Tree);
  }
  const sum = idleMetrics();
  Object.assign(sum, total);
  sum.time = list.length === 0 ? Date.now() : time;
  sum.listeningPorts = [...ports].sort((a, b) => a - b);
  sum.udp.listeningPorts = [...udpPorts].sort((a, b) => a - b);
  sum.connections.topClients = [...clients]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, topClients)
    .map(([ip, active]) => ({ ip, active }));
  return sum;
}

const zeroBytes = () => ({ fromClients: 0, toClients: 0 });

/**
 * An idle proxy's metrics: what sums start from. The PROXY, HTTP and UDP parts come from the
 * counters' own starting values, so a counter added there is summed without a change here.
 */
function idleMetrics(): ISmartProxyMetrics {
  return {
    time: 0,
    listeningPorts: [],
    connections: { active: 0, total: 0, rejected: 0, goneBeforeAccept: 0, byRoute: {}, topClients: [] },
    rejections: {},
    bytes: { ...zeroBytes(), byRoute: {} },
    throughput: { instant: zeroBytes(), lastMinute: zeroBytes(), byRoute: {} },
    proxyProtocol: emptyProxyStats(),
    http: new HttpState().snapshot(),
    udp: { listeningPorts: [], activeSessions: 0, ...emptyUdpStatistics() },
  };
}
