/**
 * /metrics and /stats under a supervisor: every worker's getMetrics(), asked over IPC at scrape
 * time and summed, plus a few families about the workers themselves.
 */
import type { ISmartProxyMetrics } from '../../proxies/smart-proxy/metrics.js';
import { sumMetrics } from '../../proxies/smart-proxy/metrics-sum.js';
import { Exposition, formatPrometheusMetrics, type PrometheusSample } from '../../proxies/smart-proxy/prometheus.js';
import type { IMetricsSource } from '../metrics-endpoint.js';

/** What the supervisor knows of one worker slot at scrape time. */
export interface IWorkerReport {
  /** 1-based; a replacement keeps its predecessor's. */
  worker: number;
  pid: number | null;
  /** When the worker now in the slot reported itself started (ms since the epoch), or null. */
  startedAt: number | null;
  /** Replacements started in this slot after a worker died. */
  restarts: number;
  /** Workers of this slot that exited unasked (a crash loop shows here while `restarts` stands still). */
  exits: number;
  /** The worker's metrics: this scrape's, or (when it did not answer in time) the last it gave; undefined when it is down. */
  metrics?: ISmartProxyMetrics;
  /** Whether `metrics` are this scrape's. */
  fresh: boolean;
}

/** The per-worker lines of /stats: who answered, and its connections. */
function workerRows(reports: IWorkerReport[]): object[] {
  return reports.map(({ worker, pid, startedAt, restarts, exits, metrics, fresh }) => ({
    worker,
    pid,
    up: fresh,
    startedAt,
    restarts,
    exits,
    connections: metrics === undefined ? null : { active: metrics.connections.active, total: metrics.connections.total },
  }));
}

function workerFamilies(reports: IWorkerReport[]): string {
  const out = new Exposition();
  const per = (value: (m: ISmartProxyMetrics) => number): PrometheusSample[] =>
    reports.flatMap((r): PrometheusSample[] => (r.metrics === undefined ? [] : [[{ worker: String(r.worker) }, value(r.metrics)]]));
  out.single('workers', 'gauge', 'Worker processes configured.', reports.length);
  out.single('workers_up', 'gauge', 'Workers that answered this scrape (the sums take the last answer of the others still running).', reports.filter((r) => r.fresh).length);
  out.family('worker_restarts_total', 'counter', 'Workers started to replace one that died, per slot.', reports.map((r): PrometheusSample => [{ worker: String(r.worker) }, r.restarts]));
  out.family('worker_exits_total', 'counter', 'Workers that exited unasked (crashes, kills, failed starts), per slot.', reports.map((r): PrometheusSample => [{ worker: String(r.worker) }, r.exits]));
  out.family('worker_connections_active', 'gauge', 'Open TCP connections, per worker.', per((m) => m.connections.active));
  out.family('worker_connections_total', 'counter', 'TCP connections accepted, per worker (restarts from 0 with a replacement).', per((m) => m.connections.total));
  return out.text();
}

/** The endpoint's source under a supervisor: `collect` asks every worker once per scrape. */
export function workersMetricsSource(collect: () => Promise<IWorkerReport[]>): IMetricsSource {
  const summed = (reports: IWorkerReport[]) => sumMetrics(reports.flatMap((r) => (r.metrics === undefined ? [] : [r.metrics])));
  return {
    async prometheus() {
      const reports = await collect();
      return formatPrometheusMetrics(summed(reports)) + workerFamilies(reports);
    },
    async stats() {
      const reports = await collect();
      return { ...summed(reports), workers: workerRows(reports) };
    },
  };
}
