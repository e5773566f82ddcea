/**
 * The UDP side of a SmartProxy: one listener per UDP port, the limits and counters their sessions
 * share, and one idle sweep for all of them. Configuration and routes are read from the TCP
 * side's ConnectionManager on every new session, so reloads and route changes apply at once.
 */
import type { EventEmitter } from 'node:events';
import type { ConnectionErrorCode } from '../../../protocols/errors.js';
import type { IResolvedRoute } from '../config.js';
import type { ConnectionManager } from '../connection-manager.js';
import { release, retain } from '../counts.js';
import type { ISmartProxyEventMap, IUdpStatistics } from '../models/interfaces.js';
import { type IFlow, type IUdpHost, UdpListener } from './listener.js';
import { UdpSession } from './session.js';

const SWEEP_MIN_MS = 20;
const SWEEP_MAX_MS = 1000;
const SWEEP_DIVISOR = 10;

export function emptyUdpStatistics(): Omit<IUdpStatistics, 'listeningPorts' | 'activeSessions'> {
  return { totalSessions: 0, datagramsToBackends: 0, bytesToBackends: 0, datagramsToClients: 0, bytesToClients: 0, headersReceived: 0, headersSent: 0, dropped: {} };
}

export class UdpProxy implements IUdpHost {
  readonly listeners = new Map<number, UdpListener>();
  /** Advanced by the sweep; a session remembers the tick of its last datagram. */
  tick = 0;
  private readonly perIP = new Map<string, number>();
  private readonly perRoute = new Map<IResolvedRoute, number>();
  private readonly counts = emptyUdpStatistics();
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweepMs = SWEEP_MAX_MS;
  private nextId = 0;

  constructor(readonly manager: ConnectionManager) {}

  get events(): EventEmitter<ISmartProxyEventMap> {
    return this.manager.events;
  }

  /** Opens UDP sockets on all `ports` or on none: on any failure the ones opened are closed again. */
  async open(ports: number[]): Promise<void> {
    const listenAddress = this.manager.config.listenAddress;
    const opened = ports.map((port) => new UdpListener(this, port, listenAddress));
    const results = await Promise.allSettled(opened.map((listener) => listener.bind(listenAddress)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(opened.map((listener) => listener.close()));
      throw failed.reason;
    }
    for (const listener of opened) this.listeners.set(listener.port, listener);
    if (this.listeners.size > 0) this.startSweep();
  }

  /** Closes the socket of `port` and its sessions. */
  async closePort(port: number): Promise<void> {
    const listener = this.listeners.get(port);
    if (listener === undefined) return;
    this.listeners.delete(port);
    await listener.close();
    if (this.listeners.size === 0) this.stopSweep();
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.listeners.keys()].map((port) => this.closePort(port)));
    this.stopSweep();
  }

  /** Restarts the sweep with the current udpSessionTimeout (after reloadOptions). */
  restartSweep(): void {
    if (this.sweepTimer === null) return;
    this.stopSweep();
    this.startSweep();
  }

  private startSweep(): void {
    if (this.sweepTimer !== null) return;
    const timeout = this.manager.config.udpSessionTimeout;
    this.sweepMs = Math.max(SWEEP_MIN_MS, Math.min(SWEEP_MAX_MS, Math.floor((timeout > 0 ? timeout : SWEEP_MAX_MS * SWEEP_DIVISOR) / SWEEP_DIVISOR)));
    this.sweepTimer = setInterval(sweep, this.sweepMs, this);
    this.sweepTimer.unref();
  }

  private stopSweep(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  /** Ends sessions idle for udpSessionTimeout; called by the sweep. */
  expireIdle(): void {
    this.tick++;
    const timeout = this.manager.config.udpSessionTimeout;
    if (timeout <= 0) return;
    const idleTicks = Math.ceil(timeout / this.sweepMs);
    for (const listener of this.listeners.values()) {
      for (const session of listener.sessions.values()) {
        if (this.tick - session.lastTick >= idleTicks) listener.endSession(session);
      }
    }
  }

  /** A new session for a flow, or the code it is refused with: route, security, limits. */
  openSession(listener: UdpListener, key: string, peerAddress: string, peerPort: number, flow: IFlow): UdpSession | ConnectionErrorCode {
    const config = this.manager.config;
    const clientIP = flow.clientAddress;
    const route = this.manager.routes.matchUdp(listener.port, clientIP);
    if (route === undefined) return 'ERR_ROUTE_NOT_FOUND';
    if (route.blockList !== null && route.blockList.has(clientIP)) return 'ERR_SECURITY_BLOCKED';
    if (route.allowList !== null && !route.allowList.has(clientIP)) return 'ERR_SECURITY_NOT_ALLOWED';
    if (config.udpMaxSessions > 0 && listener.sessions.size >= config.udpMaxSessions) return 'ERR_UDP_TOO_MANY_SESSIONS';
    if (config.maxConnectionsPerIP > 0 && (this.perIP.get(clientIP) ?? 0) >= config.maxConnectionsPerIP) return 'ERR_LIMIT_PER_IP';
    if (route.maxConnections > 0 && (this.perRoute.get(route) ?? 0) >= route.maxConnections) return 'ERR_LIMIT_ROUTE';
    const id = `${this.manager.idPrefix}-u${(this.nextId++).toString(36)}`;
    const client = { address: clientIP, port: flow.clientPort };
    const session = new UdpSession(id, key, listener, peerAddress, peerPort, client, route, this.manager.nextHost(route), flow.header, this.tick);
    retain(this.perIP, clientIP);
    retain(this.perRoute, route);
    this.counts.totalSessions++;
    return session;
  }

  /** A session ends: its share of the limits is given back. */
  released(session: UdpSession): void {
    release(this.perIP, session.client.address);
    release(this.perRoute, session.route);
  }

  drop(code: ConnectionErrorCode): void {
    this.counts.dropped[code] = (this.counts.dropped[code] ?? 0) + 1;
  }

  countToBackend(bytes: number, withHeader: boolean): void {
    this.counts.datagramsToBackends++;
    this.counts.bytesToBackends += bytes;
    if (withHeader) this.counts.headersSent++;
  }

  countToClient(bytes: number): void {
    this.counts.datagramsToClients++;
    this.counts.bytesToClients += bytes;
  }

  countHeaderReceived(): void {
    this.counts.headersReceived++;
  }

  statistics(): IUdpStatistics {
    let activeSessions = 0;
    for (const listener of this.listeners.values()) activeSessions += listener.sessions.size;
    return {
      listeningPorts: [...this.listeners.keys()].sort((a, b) => a - b),
      activeSessions,
      ...this.counts,
      dropped: { ...this.counts.dropped },
    };
  }
}

function sweep(proxy: UdpProxy): void {
  try {
    proxy.expireIdle();
  } catch (err) {
    proxy.events.emit('warning', `UDP sweep: ${(err as Error)?.message ?? String(err)}`);
  }
}
