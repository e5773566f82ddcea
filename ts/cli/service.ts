/**
 * The running service: start-up, reloads and the stop, driven by signals. Handlers are installed
 * before anything slow happens (reading certificates, building TLS contexts, listening), so a
 * signal during start-up never meets its default action (which kills the process). With more than
 * one worker, the service reads and checks the file, then hands the rest (and the signals) to a
 * Supervisor (workers/supervisor.ts).
 */
import type { Server } from 'node:http';
import type { Logger, LevelWithSilent } from 'pino';
import { ConfigError } from '../protocols/errors.js';
import type { ISmartProxyOptions } from '../proxies/smart-proxy/models/interfaces.js';
import { SmartProxy } from '../proxies/smart-proxy/smart-proxy.js';
import { cliChanges, EXIT_CONFIG, EXIT_RUNTIME, loadChecked, report, routeCount, workerCount } from './checked-config.js';
import { allProblems, type ILoaded, loadConfig, problemLines, type WorkerCount } from './config-file.js';
import { logTraffic } from './events-log.js';
import { Reloads, type ServiceState } from './reloads.js';
import { createLogger, stderr } from './log.js';
import { openMetricsEndpoint, proxyMetricsSource, stopMetricsEndpoint } from './metrics-endpoint.js';
import { Supervisor } from './workers/supervisor.js';

/**
 * Lets signals that arrived during the synchronous loading run their handlers before listening.
 * Two turns of the event loop: in the first one after start-up, a signal already pending is not
 * yet seen by the poll phase (observed on Node 20).
 */
async function yieldToSignals(): Promise<void> {
  for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
}

export class Service {
  private state: ServiceState = 'starting';
  private proxy: SmartProxy | undefined;
  /** The /metrics and /stats endpoint, when the file has a `metrics` section. */
  private metrics: Server | undefined;
  private readonly reloads = new Reloads(() => this.state, () => this.log, () => this.reloadOnce());

  /** The settings the service started with (the file is read again on SIGHUP). */
  private loaded: ILoaded | undefined;

  /** With more than one worker, the supervisor the service hands over to once the file is read. */
  private supervisor: Supervisor | undefined;

  /**
   * `log` starts as text at `levelOverride` (or info) and follows the file's `log` section once
   * read; `workers` (from --workers) overrides the file's `"workers"`.
   */
  constructor(
    private readonly file: string,
    private readonly levelOverride: LevelWithSilent | undefined,
    private readonly workers?: WorkerCount,
    private log: Logger = createLogger('text', levelOverride ?? 'info'),
  ) {}

  installSignalHandlers(): void {
    process.on('SIGHUP', () => this.onReloadSignal());
    process.on('SIGTERM', () => this.onStopSignal('SIGTERM'));
    process.on('SIGINT', () => this.onStopSignal('SIGINT'));
  }

  /** A signal may have changed the state during any await. */
  private stopping(): boolean {
    return this.state === 'stopping';
  }

  private onReloadSignal(): void {
    if (this.supervisor !== undefined) return this.supervisor.onReloadSignal();
    this.reloads.signal();
  }

  private onStopSignal(signal: string): void {
    if (this.supervisor !== undefined) return this.supervisor.onStopSignal(signal);
    if (this.state === 'stopping') {
      this.log.warn(`${signal} again while stopping: exiting now, cutting the connections still draining`);
      process.exit(EXIT_RUNTIME);
    }
    const running = this.state === 'running';
    this.state = 'stopping';
    const drainMs = this.proxy?.options.gracefulShutdownTimeout ?? 0;
    this.log.info(`${signal}: stopping${running ? ` (draining up to ${drainMs} ms; send it again to exit at once)` : ' during start-up'}`);
    if (running) void this.shutdown();
  }

  private async shutdown(): Promise<void> {
    try {
      if (this.metrics !== undefined) await stopMetricsEndpoint(this.metrics);
      await this.proxy?.stop();
      this.log.info('stopped');
    } catch (err) {
      this.log.error(`stop failed: ${(err as Error).message}`);
      process.exitCode = EXIT_RUNTIME;
    }
  }

  /** Builds the proxy from the loaded file; on a bad configuration reports every problem and exits 2. */
  private create(): SmartProxy | undefined {
    const loaded = loadChecked(this.file, (file) => (this.log = createLogger(file.cli.log.format, this.levelOverride ?? file.cli.log.level)));
    this.loaded = loaded;
    if (loaded === undefined) {
      process.exitCode = EXIT_CONFIG;
      return undefined;
    }
    return workerCount(this.workers ?? loaded.cli.workers) > 1 ? undefined : new SmartProxy(loaded.options as ISmartProxyOptions);
  }

  async start(): Promise<void> {
    const proxy = this.create();
    await yieldToSignals();
    if (this.loaded === undefined) return;
    if (this.stopping()) return this.log.info('stopped before listening');
    if (proxy === undefined) return this.supervise(this.loaded);
    this.proxy = proxy;
    this.watch(proxy);
    try {
      await proxy.start();
    } catch (err) {
      this.log.error({ code: (err as ConfigError).code }, `cannot start: ${(err as Error).message}`);
      process.exitCode = EXIT_RUNTIME;
      this.state = 'stopping';
      return this.shutdown();
    }
    if (!(await this.serveMetrics(proxy)) || this.stopping()) return this.shutdown();
    this.state = 'running';
    this.log.info(`started with ${routeCount(proxy.options)}`);
    this.reloads.started();
  }

  /** Hands signals and the rest of the start to a supervisor of workers. */
  private supervise(loaded: ILoaded): Promise<void> {
    const supervisor = new Supervisor(this.file, workerCount(this.workers ?? loaded.cli.workers), this.levelOverride, this.log, loaded, this.workers !== undefined);
    this.supervisor = supervisor;
    if (this.reloads.wanted) supervisor.onReloadSignal();
    return supervisor.start();
  }

  /** Serves /metrics and /stats when the file asks for it; false when it cannot listen (the service then stops with exit 1). */
  private async serveMetrics(proxy: SmartProxy): Promise<boolean> {
    const listen = this.loaded?.cli.metricsListen;
    if (listen === undefined) return true;
    this.metrics = await openMetricsEndpoint(proxyMetricsSource(proxy), listen, this.log);
    if (this.metrics !== undefined) return true;
    process.exitCode = EXIT_RUNTIME;
    this.state = 'stopping';
    return false;
  }

  private watch(proxy: SmartProxy): void {
    proxy.on('listening', (port: number) => this.log.info(`listening on ${proxy.options.listenAddress ?? '*'}:${port}`));
    proxy.on('warning', (message: string) => this.log.warn(`warning: ${message}`));
    logTraffic(proxy, this.log);
  }

  private async reloadOnce(): Promise<void> {
    const proxy = this.proxy as SmartProxy;
    const loaded = loadConfig(this.file);
    if (!report(this.file, loaded, this.log)) return this.log.warn({ code: 'ERR_CONFIG' }, 'SIGHUP: the configuration has problems; nothing changed');
    const before = new Set(proxy.getListeningPorts());
    try {
      const { needsRestart } = await proxy.reloadOptions(loaded.options as ISmartProxyOptions);
      const after = new Set(proxy.getListeningPorts());
      const opened = [...after].filter((p) => !before.has(p));
      const closed = [...before].filter((p) => !after.has(p));
      const restart = [...needsRestart, ...cliChanges((this.loaded as ILoaded).cli, loaded.cli, this.workers !== undefined)];
      const pending = restart.length > 0 ? `; ${restart.join(', ')} change only on restart` : '';
      this.log.info({ opened, closed }, `SIGHUP: configuration reloaded (${routeCount(loaded.options as ISmartProxyOptions)})${pending}`);
    } catch (err) {
      if (err instanceof ConfigError) for (const line of problemLines(this.file, allProblems(loaded))) stderr.write(`${line}\n`);
      this.log.warn(`SIGHUP: ${err instanceof ConfigError ? 'the configuration has problems' : `reload failed: ${(err as Error).message}`}; nothing changed`);
    }
  }
}
