/**
 * SmartProxy: listeners per port, routes, statistics, start/stop/updateRoutes/reloadOptions.
 * Connection handling itself is RouteConnectionHandler's job.
 *
 * Lifecycle calls run one after another in call order (a queue), so every promise settles and the
 * end state is what the last call asked for: start() then stop() without awaiting ends stopped;
 * start() while stop() drains starts again once the drain is over. A route change that arrives
 * while stopping applies to the next start and opens nothing.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { SmartProxyError } from '../../protocols/errors.js';
import { isCatchAll } from '../../core/utils/ip-utils.js';
import { type IResolvedConfig, resolveConfig, resolveRoutesOrThrow } from './config.js';
import type { ConnectionManager } from './connection-manager.js';
import type { IRouteConfig } from './models/route-types.js';
import type { ISmartProxyEventMap, ISmartProxyOptions, ISmartProxyStatistics, IUdpStatistics } from './models/interfaces.js';
import { collectMetrics, type IMetricsOptions, type ISmartProxyMetrics } from './metrics.js';
import { RouteConnectionHandler } from './route-connection-handler.js';
import { RouteManager } from './route-manager.js';
import { UdpProxy } from './udp/udp-proxy.js';

/** Options that only a restart applies (listeners are bound with them). */
const RESTART_OPTIONS = ['listenAddress'] as const;

function noop(): void {}

/** Events and their order: ISmartProxyEventMap (every `on`/`emit` is checked against it). */
export class SmartProxy extends EventEmitter<ISmartProxyEventMap> {
  /** @internal Records, counters and stages; for diagnostics and tests, not a stable API. */
  public readonly connectionManager: ConnectionManager;
  /** The dispatcher: `handleConnection(socket, port)` and `setupDirectConnection(conn, route, bytes)`. */
  public readonly routeConnectionHandler: RouteConnectionHandler;
  /** UDP routes: sockets, sessions, per-datagram PROXY. */
  public readonly udp: UdpProxy;
  private currentOptions: ISmartProxyOptions;
  private readonly servers = new Map<number, net.Server>();
  private readonly closingServers = new Set<Promise<void>>();
  private running = false;
  private queue: Promise<void> = Promise.resolve();

  /** Validates everything now: a bad option or route throws a ConfigError naming the field. */
  constructor(options: ISmartProxyOptions) {
    super();
    this.currentOptions = options;
    const config = resolveConfig(options);
    this.routeConnectionHandler = new RouteConnectionHandler(config, new RouteManager(config.routes), this);
    this.connectionManager = this.routeConnectionHandler.manager;
    this.udp = new UdpProxy(this.connectionManager);
  }

  /** The options in force (as given to the constructor or the last reloadOptions). */
  get options(): ISmartProxyOptions {
    return this.currentOptions;
  }

  private get config(): IResolvedConfig {
    return this.connectionManager.config;
  }

  /** Runs lifecycle operations strictly one after another; a failure does not block later ones. */
  private enqueue(op: () => Promise<void>): Promise<void> {
    const run = this.queue.then(op);
    this.queue = run.then(noop, noop);
    return run;
  }

  /** Opens one listener per port named by any route. */
  start(): Promise<void> {
    return this.enqueue(() => this.doStart());
  }

  private async doStart(): Promise<void> {
    if (this.running) return;
    this.warnIfTrustingAll();
    this.connectionManager.start();
    try {
      await this.openAll(this.connectionManager.routes);
    } catch (err) {
      this.connectionManager.stopSweep();
      throw err;
    }
    this.running = true;
  }

  /** Opens the TCP listeners and UDP sockets `manager` needs and this proxy lacks, all or none. */
  private async openAll(manager: RouteManager): Promise<void> {
    const tcp = manager.ports().filter((port) => !this.servers.has(port));
    await this.openListeners(tcp);
    try {
      await this.udp.open(manager.udpPorts().filter((port) => !this.udp.listeners.has(port)));
    } catch (err) {
      for (const port of tcp) void this.closeServer(port);
      throw err;
    }
  }

  /** A catch-all trust entry is allowed only with trustAllProxyIPs, and then said out loud at every (re)start. */
  private warnIfTrustingAll(): void {
    if (this.config.trustAllProxyIPs && (this.options.proxyIPs ?? []).some(isCatchAll)) {
      this.emit('warning', 'proxyIPs trusts every address (trustAllProxyIPs: true): anyone who can reach this proxy can claim any client address');
    }
  }

  /** Opens listeners on all `ports` or on none: on any failure the ones opened are closed again. */
  private async openListeners(ports: number[]): Promise<void> {
    const results = await Promise.allSettled(ports.map((port) => this.listen(port)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed === undefined) return;
    ports.forEach((port, i) => {
      if (results[i].status === 'fulfilled') void this.closeServer(port);
    });
    throw failed.reason;
  }

  private listen(port: number): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      this.routeConnectionHandler.handleConnection(socket, port);
    });
    this.servers.set(port, server);
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.servers.delete(port);
        reject(new SmartProxyError('ERR_LISTEN', `cannot listen on port ${port}: ${err.message}`, { cause: err }));
      };
      server.once('error', onError);
      server.listen({ port, host: this.config.listenAddress }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.emit('warning', `listener on port ${port}: ${err.message}`));
        this.emit('listening', port);
        resolve();
      });
    });
  }

  /**
   * Stops accepting on a port at once. The returned promise settles only when the connections
   * accepted there are gone too (net.Server semantics), so stop() awaits it and route changes
   * do not.
   */
  private closeServer(port: number): Promise<void> {
    const server = this.servers.get(port);
    this.servers.delete(port);
    if (server === undefined) return Promise.resolve();
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    this.closingServers.add(done);
    void done.then(() => this.closingServers.delete(done));
    return done;
  }

  /**
   * Replaces the routes, all or nothing: new ports start listening first, and only when every
   * one of them listens do new connections see the new routes and unused ports close. Live
   * connections keep the route they were matched with.
   */
  updateRoutes(routes: IRouteConfig[]): Promise<void> {
    let resolved;
    try {
      resolved = resolveRoutesOrThrow(routes, this.options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.enqueue(async () => {
      await this.applyRoutes(new RouteManager(resolved));
      this.currentOptions = { ...this.currentOptions, routes };
    });
  }

  private async applyRoutes(manager: RouteManager): Promise<void> {
    if (this.running) {
      await this.openAll(manager);
      const wanted = new Set(manager.ports());
      for (const port of [...this.servers.keys()]) if (!wanted.has(port)) void this.closeServer(port);
      const wantedUdp = new Set(manager.udpPorts());
      for (const port of [...this.udp.listeners.keys()]) if (!wantedUdp.has(port)) void this.udp.closePort(port);
    }
    this.connectionManager.routes = manager;
  }

  /**
   * Replaces every option at once (what the CLI's reload does): the new options are validated
   * whole, and an invalid set changes nothing. Trust lists, PROXY options, timeouts, limits and
   * routes apply to new connections at once; the names of changed options that need a restart
   * are returned (they keep their old value until then).
   */
  reloadOptions(options: ISmartProxyOptions): Promise<{ needsRestart: string[] }> {
    let config: IResolvedConfig;
    try {
      config = resolveConfig(options);
    } catch (err) {
      return Promise.reject(err);
    }
    const needsRestart = RESTART_OPTIONS.filter((key) => options[key] !== this.options[key]);
    return this.enqueue(async () => {
      await this.applyRoutes(new RouteManager(config.routes));
      const manager = this.connectionManager;
      manager.config = { ...config, listenAddress: this.config.listenAddress };
      this.currentOptions = options;
      if (this.running) {
        this.warnIfTrustingAll();
        manager.stopSweep();
        manager.start();
        this.udp.restartSweep();
      }
    }).then(() => ({ needsRestart: [...needsRestart] }));
  }

  /**
   * Stops accepting, lets live connections drain for up to `gracefulShutdownTimeout`, then
   * closes the rest. Afterwards no socket, timer or record of this proxy is left.
   */
  stop(): Promise<void> {
    return this.enqueue(() => this.doStop());
  }

  private async doStop(): Promise<void> {
    this.running = false;
    for (const port of [...this.servers.keys()]) void this.closeServer(port);
    await this.udp.closeAll();
    await this.drain(this.config.gracefulShutdownTimeout);
    this.connectionManager.closeAll('proxy-stopped');
    this.connectionManager.stopSweep();
    await Promise.all(this.closingServers);
  }

  /** Waits until no connection is left or `ms` passed. */
  private drain(ms: number): Promise<void> {
    if (ms <= 0 || this.connectionManager.connections.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(deadline);
        this.off('connection-close', onClose);
        resolve();
      };
      const onClose = (): void => {
        if (this.connectionManager.connections.size === 0) finish();
      };
      const deadline = setTimeout(finish, ms);
      this.on('connection-close', onClose);
    });
  }

  /** Plain-number counters; safe to serialise. */
  getStatistics(): ISmartProxyStatistics & { udp: IUdpStatistics } {
    return { ...this.connectionManager.statistics(this.getListeningPorts()), udp: this.udp.statistics() };
  }

  /**
   * What an operator watches, as plain data: connections by route and real client, bytes and
   * throughput, PROXY outcomes, rejections by code, HTTP and UDP (ISmartProxyMetrics). Read from
   * the counters at call time; formatPrometheusMetrics(proxy) gives the same as Prometheus text.
   */
  getMetrics(options?: IMetricsOptions): ISmartProxyMetrics {
    return collectMetrics(this.connectionManager, this.udp.statistics(), this.getListeningPorts(), options);
  }

  /** Ports with an open listener. */
  getListeningPorts(): number[] {
    return [...this.servers.keys()].sort((a, b) => a - b);
  }
}
