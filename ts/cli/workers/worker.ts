/**
 * One worker of `smartproxy --workers N`: a SmartProxy run from the options the supervisor sends.
 * Its listeners go through node:cluster, so every worker serves the same ports. It never reads the
 * configuration file and never reloads on its own: the supervisor checks once and tells all.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { ISmartProxyOptions } from '../../proxies/smart-proxy/models/interfaces.js';
import { SmartProxy } from '../../proxies/smart-proxy/smart-proxy.js';
import { logTraffic } from '../events-log.js';
import { createLogger } from '../log.js';
import { type FromWorker, optionsForSlot, type ToWorker, WORKER_SLOT_ENV } from './messages.js';

function send(message: FromWorker): void {
  // The channel is gone when the supervisor died: there is nobody to tell.
  if (process.connected) process.send?.(message, undefined, undefined, () => undefined);
}

class WorkerProcess {
  private proxy: SmartProxy | undefined;
  private stopping = false;
  private log: Logger;

  constructor(private readonly slot: number) {
    this.log = createLogger('text', 'info').child({ worker: slot });
  }

  onMessage(message: ToWorker): void {
    if (message.type === 'start') this.start(message.options, message.log);
    else if (message.type === 'reload') void this.reload(message.id, message.options);
    else if (message.type === 'metrics') this.metrics(message.id);
    else if (message.type === 'stop') void this.stop('the supervisor', false);
  }

  /** Builds the proxy at once (a reload that follows is queued behind its start), then listens. */
  private start(options: ISmartProxyOptions, log: { format: 'text' | 'json'; level: string }): void {
    this.log = createLogger(log.format, log.level as Parameters<typeof createLogger>[1]).child({ worker: this.slot });
    let proxy: SmartProxy;
    try {
      proxy = new SmartProxy(optionsForSlot(options, this.slot));
    } catch (err) {
      return this.cannotStart(err as Error);
    }
    this.proxy = proxy;
    proxy.on('listening', (port: number) => this.log.debug(`listening on ${proxy.options.listenAddress ?? '*'}:${port}`));
    proxy.on('warning', (message: string) => this.log.warn(`warning: ${message}`));
    logTraffic(proxy, this.log);
    proxy.start().then(
      () => send({ type: 'started' }),
      (err: Error) => this.cannotStart(err),
    );
  }

  private cannotStart(err: Error): void {
    send({ type: 'start-failed', message: err.message, code: (err as { code?: string }).code });
    process.exitCode = 1;
    void this.stop('a failed start', false);
  }

  private async reload(id: number, options: ISmartProxyOptions): Promise<void> {
    try {
      const { needsRestart } = await (this.proxy as SmartProxy).reloadOptions(optionsForSlot(options, this.slot));
      send({ type: 'reloaded', id, needsRestart });
    } catch (err) {
      send({ type: 'reload-failed', id, message: (err as Error).message });
    }
  }

  private metrics(id: number): void {
    if (this.proxy !== undefined) send({ type: 'metrics', id, metrics: this.proxy.getMetrics() });
  }

  /**
   * Drains (the proxy's gracefulShutdownTimeout), then exits with the code that says how it went
   * (the supervisor reads it); a second signal exits at once.
   */
  async stop(by: string, signal: boolean): Promise<void> {
    if (this.stopping) {
      if (signal) process.exit(1);
      return;
    }
    this.stopping = true;
    try {
      await this.proxy?.stop();
    } catch (err) {
      this.log.error(`stop failed: ${(err as Error).message}`);
      process.exitCode = 1;
    }
    this.log.debug(`stopped (asked by ${by})`);
    process.exit();
  }
}

/** The worker's side of the CLI: waits for the supervisor's `start`. */
export function runWorker(): void {
  const worker = new WorkerProcess(Number(process.env[WORKER_SLOT_ENV]));
  process.on('message', (message) => worker.onMessage(message as ToWorker));
  // A terminal's signals reach the whole process group: SIGINT/SIGTERM drain here as the
  // supervisor will ask anyway, and SIGHUP is the supervisor's to act on (checked once, for all).
  process.on('SIGINT', () => void worker.stop('SIGINT', true));
  process.on('SIGTERM', () => void worker.stop('SIGTERM', true));
  process.on('SIGHUP', () => undefined);
  // The supervisor is gone (killed): nobody would restart or stop this worker, so it drains and
  // leaves. node:cluster's own handler would exit at once, cutting every connection, unless the
  // worker counts as leaving on purpose; with round-robin nothing new arrives meanwhile.
  (cluster.worker as Worker).exitedAfterDisconnect = true;
  process.on('disconnect', () => void worker.stop('the supervisor leaving', false));
  send({ type: 'ready' });
}
