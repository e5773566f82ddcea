/**
 * Connection records, counters, deadlines and the one idempotent cleanup every ending goes
 * through. Deadlines (PROXY header, first data, TLS handshake, lifetime, inactivity) are checked by
 * one sweep timer for the whole proxy instead of timers per connection.
 */
import type { EventEmitter } from 'node:events';
import type net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { WrappedSocket } from '../../core/models/wrapped-socket.js';
import type { ProxyProtocolDecoder } from '../../protocols/proxy/parser.js';
import type { IProxyHeader } from '../../protocols/proxy/types.js';
import type { IResolvedConfig, IResolvedRoute } from './config.js';
import type { IConnectionRecord, IProxyProtocolStatistics, ISmartProxyStatistics } from './models/interfaces.js';

/** What a connection is waiting for when its deadline passes. */
export type DeadlineKind = 'proxy-header' | 'spoof-check' | 'client-hello' | 'tls-handshake';

const SWEEP_MIN_MS = 20;
const SWEEP_MAX_MS = 1000;
const SWEEP_DIVISOR = 10;

export class Connection implements IConnectionRecord {
  readonly startTime: number;
  serverName: string | undefined = undefined;
  closeReason: string | undefined = undefined;

  /** The stream the client's bytes come from: the raw socket, or a TLSSocket when terminating. */
  clientStream: net.Socket;
  backend: net.Socket | null = null;
  /** The stream to the backend: `backend`, or a TLSSocket over it when re-encrypting. */
  backendStream: net.Socket | null = null;
  route: IResolvedRoute | null = null;
  /** Whether `clientIP` is counted in the per-IP table. */
  ipCounted = false;
  deadline = 0;
  deadlineKind: DeadlineKind | null = null;
  /** Stage state: the PROXY decoder, or the bytes held while looking for a signature or ClientHello. */
  decoder: ProxyProtocolDecoder | null = null;
  pending: Buffer | null = null;
  negotiatedAlpn: string | undefined = undefined;
  /** Set once a route accepted the connection; an ending before that counts as rejected. */
  forwarded = false;
  backendConnected = false;
  closed = false;
  /** Client bytes in + out at the last sweep, and when that number last changed. */
  lastTraffic = 0;
  lastActive: number;
  private idText: string | undefined;

  constructor(
    private readonly idPrefix: string,
    private readonly seq: number,
    public readonly wrapped: WrappedSocket,
    public readonly peerIP: string,
    private readonly peerPort: number,
    public readonly localPort: number,
  ) {
    this.startTime = Date.now();
    this.lastActive = this.startTime;
    this.clientStream = wrapped.socket;
  }

  // Derived, never copied: the WrappedSocket holds the real client and the received header.
  get clientIP(): string {
    return this.wrapped.realClientIP ?? this.peerIP;
  }
  get clientPort(): number {
    return this.wrapped.realClientPort ?? this.peerPort;
  }
  get proxyHeader(): IProxyHeader | null {
    return this.wrapped.proxyHeader;
  }
  get routeName(): string | undefined {
    return this.route?.name;
  }
  get bytesFromClient(): number {
    return this.wrapped.socket.bytesRead;
  }
  get bytesToClient(): number {
    return this.wrapped.socket.bytesWritten;
  }

  /** Unique per process (random prefix + sequence); built on first use. */
  get id(): string {
    if (this.idText === undefined) this.idText = `${this.idPrefix}-${this.seq.toString(36)}`;
    return this.idText;
  }
}

/** Takes one off a counter, dropping the key at zero so the table holds only live entries. */
function release<K>(counts: Map<K, number>, key: K): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

function emptyProxyStats(): IProxyProtocolStatistics {
  return { acceptedV1: 0, acceptedV2: 0, local: 0, unknown: 0, rejected: {}, spoofing: 0, timeouts: 0, sent: 0 };
}

export class ConnectionManager {
  readonly connections = new Set<Connection>();
  private readonly perIP = new Map<string, number>();
  private readonly perRoute = new Map<IResolvedRoute, number>();
  private readonly idPrefix = randomBytes(6).toString('hex');
  private nextId = 0;
  private totalConnections = 0;
  private rejectedConnections = 0;
  private goneBeforeAccept = 0;
  private bytesFromClients = 0;
  private bytesToClients = 0;
  readonly proxyStats = emptyProxyStats();
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly sweepInterval: number;

  /** Called by the sweep when a connection's stage deadline passes (set by the handler). */
  onDeadline: (conn: Connection, kind: DeadlineKind) => void = () => undefined;

  constructor(
    private readonly config: IResolvedConfig,
    private readonly events: EventEmitter,
  ) {
    const shortest = Math.min(
      ...[config.proxyProtocolTimeout, config.initialDataTimeout, config.maxConnectionLifetime, config.inactivityTimeout].filter((v) => v > 0),
      SWEEP_MAX_MS * SWEEP_DIVISOR,
    );
    this.sweepInterval = Math.max(SWEEP_MIN_MS, Math.min(SWEEP_MAX_MS, Math.floor(shortest / SWEEP_DIVISOR)));
  }

  /** Starts the deadline sweep (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.sweepTimer !== null) return;
    this.sweepTimer = setInterval(() => this.sweep(), this.sweepInterval);
    this.sweepTimer.unref();
  }

  stopSweep(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  open(wrapped: WrappedSocket, peerIP: string, peerPort: number, localPort: number): Connection {
    const conn = new Connection(this.idPrefix, this.nextId++, wrapped, peerIP, peerPort, localPort);
    this.connections.add(conn);
    this.totalConnections++;
    return conn;
  }

  /** Counts the connection against its real client IP; false when over maxConnectionsPerIP. */
  admitIP(conn: Connection): boolean {
    const limit = this.config.maxConnectionsPerIP;
    const count = this.perIP.get(conn.clientIP) ?? 0;
    if (limit > 0 && count >= limit) return false;
    this.perIP.set(conn.clientIP, count + 1);
    conn.ipCounted = true;
    return true;
  }

  connectionsFromIP(ip: string): number {
    return this.perIP.get(ip) ?? 0;
  }

  /** Binds the connection to its route; false when the route is at maxConnections. */
  admitRoute(conn: Connection, route: IResolvedRoute): boolean {
    const count = this.perRoute.get(route) ?? 0;
    if (route.maxConnections > 0 && count >= route.maxConnections) return false;
    this.perRoute.set(route, count + 1);
    conn.route = route;
    return true;
  }

  /** Marks what the connection waits for; with `ms` > 0, also until when. */
  setDeadline(conn: Connection, kind: DeadlineKind, ms: number): void {
    conn.deadline = ms > 0 ? Date.now() + ms : 0;
    conn.deadlineKind = kind;
  }

  clearDeadline(conn: Connection): void {
    conn.deadline = 0;
    conn.deadlineKind = null;
  }

  /**
   * One pass over all connections: stage deadlines, lifetime, and inactivity. Inactivity compares
   * the client stream's byte counters with the last pass, so the data path pays nothing for it.
   */
  private sweep(): void {
    const now = Date.now();
    const lifetime = this.config.maxConnectionLifetime;
    const inactivity = this.config.inactivityTimeout;
    for (const conn of this.connections) {
      if (conn.deadline !== 0 && now >= conn.deadline) {
        const kind = conn.deadlineKind as DeadlineKind;
        this.clearDeadline(conn);
        this.onDeadline(conn, kind);
      } else if (lifetime > 0 && now - conn.startTime >= lifetime) {
        this.close(conn, 'ERR_TIMEOUT_LIFETIME');
      } else if (inactivity > 0) {
        const client = conn.clientStream;
        const traffic = client.bytesRead + client.bytesWritten;
        if (traffic !== conn.lastTraffic) {
          conn.lastTraffic = traffic;
          conn.lastActive = now;
        } else if (now - conn.lastActive >= inactivity) {
          this.close(conn, 'ERR_TIMEOUT_INACTIVITY');
        }
      }
    }
  }

  countGoneBeforeAccept(): void {
    this.goneBeforeAccept++;
  }

  countProxyRejection(code: string): void {
    this.proxyStats.rejected[code] = (this.proxyStats.rejected[code] ?? 0) + 1;
  }

  /**
   * Ends a connection now: both sockets destroyed, counters released, event emitted. Idempotent;
   * every path (errors, timeouts, graceful close, stop) ends here.
   */
  close(conn: Connection, reason: string): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.closeReason = reason;
    this.clearDeadline(conn);
    const client = conn.wrapped.socket;
    if (conn.clientStream !== client) conn.clientStream.destroy();
    client.destroy();
    if (conn.backendStream !== conn.backend) conn.backendStream?.destroy();
    conn.backend?.destroy();
    this.bytesFromClients += conn.bytesFromClient;
    this.bytesToClients += conn.bytesToClient;
    if (!conn.forwarded) this.rejectedConnections++;
    conn.decoder = null;
    conn.pending = null;
    if (conn.ipCounted) release(this.perIP, conn.clientIP);
    if (conn.route !== null) release(this.perRoute, conn.route);
    this.connections.delete(conn);
    this.events.emit('connection-close', conn);
  }

  closeAll(reason: string): void {
    for (const conn of [...this.connections]) this.close(conn, reason);
  }

  statistics(listeningPorts: number[]): ISmartProxyStatistics {
    return {
      activeConnections: this.connections.size,
      totalConnections: this.totalConnections,
      rejectedConnections: this.rejectedConnections,
      goneBeforeAccept: this.goneBeforeAccept,
      bytesFromClients: this.bytesFromClients,
      bytesToClients: this.bytesToClients,
      listeningPorts,
      proxyProtocol: { ...this.proxyStats, rejected: { ...this.proxyStats.rejected } },
    };
  }
}
