/**
 * What the supervisor and its workers say to each other over the cluster's IPC channel (JSON).
 * The supervisor reads and checks the configuration once and hands workers the options
 * themselves, so every worker runs exactly what was checked, even if the file changes meanwhile.
 */
import type { ISmartProxyMetrics } from '../../proxies/smart-proxy/metrics.js';
import type { ISmartProxyOptions } from '../../proxies/smart-proxy/models/interfaces.js';
import type { ICliSettings } from '../config-file.js';

/** Supervisor to worker. `id` pairs a request with its answer. */
export type ToWorker =
  | { type: 'start'; options: ISmartProxyOptions; log: ICliSettings['log'] }
  | { type: 'reload'; id: number; options: ISmartProxyOptions }
  | { type: 'metrics'; id: number }
  | { type: 'stop' };

/** Worker to supervisor. `ready` comes first: a message sent before the worker listens would be lost. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'started' }
  | { type: 'start-failed'; message: string; code?: string }
  | { type: 'reloaded'; id: number; needsRestart: string[] }
  | { type: 'reload-failed'; id: number; message: string }
  | { type: 'metrics'; id: number; metrics: ISmartProxyMetrics };

/** The environment variable that tells a worker its slot (1-based; a replacement takes its predecessor's). */
export const WORKER_SLOT_ENV = 'SMARTPROXY_WORKER';

/**
 * UDP routes run in worker 1 only. A UDP flow's datagrams must all reach one process, which
 * keeps the flow's session and backend socket; a socket shared by the workers (all Node 20
 * offers: no SO_REUSEPORT for dgram) hands each datagram to whichever worker reads first.
 */
export function optionsForSlot(options: ISmartProxyOptions, slot: number): ISmartProxyOptions {
  if (slot === 1 || !Array.isArray(options.routes)) return options;
  return { ...options, routes: options.routes.filter((route) => route.match?.transport !== 'udp') };
}
