/**
 * SmartProxy: listeners per port, routes, statistics, start/stop/updateRoutes.
 * Connection handling itself is RouteConnectionHandler's job.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { SmartProxyError } from '../../protocols/errors.js';
import { isCatchAll } from '../../core/utils/ip-utils.js';
import { type IResolvedConfig, resolveConfig, resolveRoutesOrThrow } from './config.js';
import { ConnectionManager } from './connection-manager.js';
import type { IRouteConfig } from './models/route-types.js';
import type { ISmartProxyOptions, ISmartProxyStatistics } from './models/interfaces.js';
import { RouteConnectionHandler } from './route-connection-handler.js';
import { RouteManager } from './route-manager.js';

/**
 * Events: `connection-open` (record), `connection-close` (record, with `closeReason`),
 * `connection-rejected` ({ code, message, clientIP, localPort }), `proxy-protocol-error`
 * (IProxyProtocolErrorEvent), `listening` (port), `warning` (message).
 */
export class SmartProxy extends EventEmitter {
  public readonly options: ISmartProxyOptions;
  public readonly connectionManager: ConnectionManager;
  public readonly routeConnectionHandler: RouteConnectionHandler;
  private readonly config: IResolvedConfig;
  private readonly servers = new Map<number, net.Server>();
  private readonly closingServers = new Set<Promise<void>>();
  private started = false;

  /** Validates everything now: a bad option or route throws a ConfigError naming the field. */
  constructor(options: ISmartProxyOptions) {
    super();
    this.options = options;
    this.config = resolveConfig(options);
    this.connectionManager = new ConnectionManager(this.config, this);
    this.routeConnectionHandler = new RouteConnectionHandler(
      this.config,
      new RouteManager(this.config.routes),
      this.connectionManager,
      this,
    );
  }

  /** Opens one listener per port named by any route. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.config.trustAllProxyIPs && (this.options.proxyIPs ?? []).some(isCatchAll)) {
      const message = 'proxyIPs trusts every address (trustAllProxyIPs: true): anyone who can reach this proxy can claim any client address';
      this.emit('warning', message);
      console.warn(`[smartproxy] warning: ${message}`);
    }
    this.connectionManager.start();
    try {
      await Promise.all(this.routeConnectionHandler.routeManager.ports().map((port) => this.listen(port)));
    } catch (err) {
      await this.stop();
      throw err;
    }
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
   * accepted there are gone too (net.Server semantics), so stop() awaits it and updateRoutes
   * does not.
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
   * Replaces the routes. New ports start listening, ports no route names any more stop; live
   * connections keep the route they were matched with.
   */
  async updateRoutes(routes: IRouteConfig[]): Promise<void> {
    const resolved = resolveRoutesOrThrow(routes, this.options);
    const manager = new RouteManager(resolved);
    this.routeConnectionHandler.routeManager = manager;
    this.options.routes = routes;
    if (!this.started) return;
    const wanted = new Set(manager.ports());
    for (const port of [...this.servers.keys()]) if (!wanted.has(port)) void this.closeServer(port);
    await Promise.all([...wanted].filter((port) => !this.servers.has(port)).map((port) => this.listen(port)));
  }

  /**
   * Stops accepting, lets live connections drain for up to `gracefulShutdownTimeout`, then
   * closes the rest. Afterwards no socket, timer or record of this proxy is left.
   */
  async stop(): Promise<void> {
    for (const port of [...this.servers.keys()]) void this.closeServer(port);
    const drainMs = this.config.gracefulShutdownTimeout;
    if (drainMs > 0 && this.connectionManager.connections.size > 0) {
      await new Promise<void>((resolve) => {
        const finish = (): void => {
          clearTimeout(deadline);
          this.off('connection-close', onClose);
          resolve();
        };
        const onClose = (): void => {
          if (this.connectionManager.connections.size === 0) finish();
        };
        const deadline = setTimeout(finish, drainMs);
        this.on('connection-close', onClose);
      });
    }
    this.connectionManager.closeAll('proxy-stopped');
    this.connectionManager.stopSweep();
    await Promise.all(this.closingServers);
    this.started = false;
  }

  /** Plain-number counters; safe to serialise. */
  getStatistics(): ISmartProxyStatistics {
    return this.connectionManager.statistics(this.getListeningPorts());
  }

  /** Ports with an open listener. */
  getListeningPorts(): number[] {
    return [...this.servers.keys()].sort((a, b) => a - b);
  }
}
