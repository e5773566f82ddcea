/**
 * Connection records, counters, stage changes, deadlines and the one idempotent cleanup every
 * ending goes through. Deadlines (each stage's own, lifetime, inactivity) are checked by one sweep
 * timer for the whole proxy instead of timers per connection, on the monotonic clock: a wall-clock
 * step never holds or cuts a connection.
 */
import type { EventEmitter } from 'node:events';
import type net from 'node:net';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { WrappedSocket } from '../../core/models/wrapped-socket.js';
import type { ProxyPolicy } from '../../core/utils/proxy-policy.js';
import type { ConnectionErrorCode } from '../../protocols/errors.js';
import type { ProxyProtocolDecoder } from '../../protocols/proxy/parser.js';
import type { ClientHelloReader } from '../../protocols/tls/client-hello.js';
import type { IProxyHeader } from '../../protocols/proxy/types.js';
import type { IResolvedConfig, IResolvedRoute } from './config.js';
import type { IClosedConnectionRecord, IConnectionRecord, IProxyProtocolStatistics, ISmartProxyEventMap, ISmartProxyStatistics } from './models/interfaces.js';
import { release, retain } from './counts.js';
import type { RouteManager } from './route-manager.js';
import { addRouteTotals, type IByteTotals, type IRouteTotals, type ITrafficTotals, TrafficMeter } from './traffic-meter.js';
import { HttpState } from './stages/http/state.js';

/**
 * Where a connection is. Each waiting stage lives in its own module under `stages/`; the
 * dispatcher (RouteConnectionHandler) maps names to modules.
 */
export type StageName =
  | 'accepting'
  | 'proxy-header'
  | 'spoof-check'
  | 'admission'
  | 'client-hello'
  | 'routing'
  | 'tls-handshake'
  | 'connecting'
  | 'http'
  | 'forwarding'
  | 'closing'
  | 'closed';

/** How a forwarded connection ended normally (anything else is a ConnectionErrorCode). */
export type NormalEnding = 'client-closed' | 'backend-closed' | 'client-error' | 'backend-error' | 'proxy-stopped';
export type CloseReason = ConnectionErrorCode | NormalEnding;

/** One stage: how it starts, and what it does when its deadline passes or the client ends early. */
export interface IStage {
  enter(conn: Connection, initial: Buffer): void;
  deadline?(conn: Connection): void;
  /** The client sent FIN while this stage waited for its bytes. */
  clientEnded?(conn: Connection): void;
}

export type StageTable = Record<Exclude<StageName, 'accepting' | 'closed'>, IStage>;

/** Stages that hold a connection before its real client is known (capped by proxyProtocolMaxPending). */
const PENDING_STAGES: ReadonlySet<StageName> = new Set(['proxy-header', 'spoof-check']);

const SWEEP_MIN_MS = 20;
const SWEEP_MAX_MS = 1000;
const SWEEP_DIVISOR = 10;
const NOTHING = Buffer.alloc(0);

export class Connection implements IConnectionRecord {
  /** Wall-clock start, for records and logs. */
  readonly startTime: number;
  /** Monotonic start, for the lifetime limit. */
  readonly startedAt: number;
  stage: StageName = 'accepting';
  serverName: string | undefined = undefined;
  closeReason: CloseReason | undefined = undefined;
  /** Why the connection is closing once the side that is still open has flushed. */
  endingReason: CloseReason | undefined = undefined;

  /** The stream the client's bytes come from: the raw socket, or a TLSSocket when terminating. */
  clientStream: net.Socket;
  backend: net.Socket | null = null;
  /** The stream to the backend: `backend`, or a TLSSocket over it when re-encrypting. */
  backendStream: net.Socket | null = null;
  route: IResolvedRoute | null = null;
  /** Whether `clientIP` is counted in the per-IP table. */
  ipCounted = false;
  /** Whether the connection is counted among those waiting in the PROXY stage. */
  pendingCounted = false;
  /** Monotonic time at which the current stage gives up; 0 for none. */
  deadline = 0;
  /** Stage state: the PROXY decoder, the ClientHello reader, or the bytes held while looking for a signature. */
  decoder: ProxyProtocolDecoder | null = null;
  helloReader: ClientHelloReader | null = null;
  pending: Buffer | null = null;
  negotiatedAlpn: string | undefined = undefined;
  /** HTTP requests this connection carried (HTTP routes). */
  requests = 0;
  /** Client bytes in + out at the last sweep, and (monotonic) when that number last changed. */
  lastTraffic = 0;
  lastActive: number;
  private idText: string | undefined;

  constructor(
    /** The manager this connection belongs to: module-level listeners reach everything through it. */
    readonly manager: ConnectionManager,
    private readonly seq: number,
    public readonly wrapped: WrappedSocket,
    public readonly peerIP: string,
    private readonly peerPort: number,
    public readonly localPort: number,
    /** What the peer's PROXY policy says about a header from it. */
    public readonly policy: ProxyPolicy,
  ) {
    this.startTime = Date.now();
    this.startedAt = performance.now();
    this.lastActive = this.startedAt;
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
  /** A route accepted the connection; an ending before that counts as rejected. */
  get forwarded(): boolean {
    return this.route !== null;
  }
  get closed(): boolean {
    return this.closeReason !== undefined;
  }
  get bytesFromClient(): number {
    return this.wrapped.socket.bytesRead;
  }
  get bytesToClient(): number {
    return this.wrapped.socket.bytesWritten;
  }

  /** Unique per process (random prefix + sequence); built on first use. */
  get id(): string {
    if (this.idText === undefined) this.idText = `${this.manager.idPrefix}-${this.seq.toString(36)}`;
    return this.idText;
  }
}

export function emptyProxyStats(): IProxyProtocolStatistics {
  return {
    acceptedV1: 0,
    acceptedV2: 0,
    local: 0,
    unknown: 0,
    rejected: {},
    spoofing: 0,
    timeouts: 0,
    sent: 0,
    ignored: 0,
    byPolicy: { require: 0, use: 0, ignore: 0, reject: 0, skip: 0 },
    byVersion: { v1: 0, v2: 0 },
  };
}

export class ConnectionManager {
  readonly connections = new Set<Connection>();
  readonly idPrefix = randomBytes(6).toString('hex');
  private readonly perIP = new Map<string, number>();
  private readonly perRoute = new Map<IResolvedRoute, number>();
  private readonly pendingPerPort = new Map<number, number>();
  private readonly pendingPerPeer = new Map<string, number>();
  /** Round-robin position per route with several hosts. */
  private readonly hostCursor = new WeakMap<IResolvedRoute, number>();
  private nextId = 0;
  private totalConnections = 0;
  private rejectedConnections = 0;
  private goneBeforeAccept = 0;
  private bytesFromClients = 0;
  private bytesToClients = 0;
  private readonly proxyStats = emptyProxyStats();
  /** Connections closed before a backend, by close reason (getMetrics().rejections). */
  readonly rejections: Record<string, number> = {};
  /** Per route name: connections and bytes of those that ended (live ones are added when read). */
  readonly routeTotals = new Map<string, IRouteTotals>();
  /** Throughput, sampled by the sweep from byte counters. */
  readonly traffic = new TrafficMeter();
  /** HTTP routes: backend pools, requests in flight, counters (stages/http). */
  readonly http = new HttpState();
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(
    public config: IResolvedConfig,
    public routes: RouteManager,
    readonly events: EventEmitter<ISmartProxyEventMap>,
    private readonly stages: StageTable,
  ) {}

  /** Starts the deadline sweep (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.sweepTimer !== null) return;
    this.sweepTimer = setInterval(sweep, sweepInterval(this.config), this);
    this.sweepTimer.unref();
  }

  stopSweep(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  open(wrapped: WrappedSocket, peerIP: string, peerPort: number, localPort: number, policy: ProxyPolicy): Connection {
    const conn = new Connection(this, this.nextId++, wrapped, peerIP, peerPort, localPort, policy);
    this.connections.add(conn);
    this.totalConnections++;
    this.proxyStats.byPolicy[policy]++;
    return conn;
  }

  /**
   * Moves a connection to `stage` and runs the stage's entry. A throw from stage code (a bug, or
   * a platform call that throws) closes this connection only, with ERR_INTERNAL and a warning.
   */
  advance(conn: Connection, stage: Exclude<StageName, 'accepting' | 'closed'>, initial: Buffer): void {
    if (conn.closed) return;
    if (conn.pendingCounted && !PENDING_STAGES.has(stage)) this.leavePending(conn);
    conn.stage = stage;
    conn.deadline = 0;
    try {
      this.stages[stage].enter(conn, initial);
    } catch (err) {
      this.fail(conn, err);
    }
  }

  /** Closes a connection whose stage code threw; the process and other connections go on. */
  fail(conn: Connection, err: unknown): void {
    this.events.emit('warning', `connection ${conn.id} in stage ${conn.stage}: ${(err as Error)?.message ?? String(err)}`);
    this.close(conn, 'ERR_INTERNAL');
  }

  /** The current stage gives up `ms` from now (0: never). */
  setDeadline(conn: Connection, ms: number): void {
    conn.deadline = ms > 0 ? performance.now() + ms : 0;
  }

  clearDeadline(conn: Connection): void {
    conn.deadline = 0;
  }

  /** Counts a connection against its real client IP; false when over maxConnectionsPerIP. */
  admitIP(conn: Connection): boolean {
    if (conn.ipCounted) return true;
    const limit = this.config.maxConnectionsPerIP;
    if (limit > 0 && (this.perIP.get(conn.clientIP) ?? 0) >= limit) return false;
    retain(this.perIP, conn.clientIP);
    conn.ipCounted = true;
    return true;
  }

  connectionsFromIP(ip: string): number {
    return this.perIP.get(ip) ?? 0;
  }

  /** Counts a connection as waiting for its header; false when the listener or the peer is at its cap. */
  enterPending(conn: Connection): boolean {
    const { proxyProtocolMaxPending: perPort, proxyProtocolMaxPendingPerIP: perPeer } = this.config;
    if (perPort > 0 && (this.pendingPerPort.get(conn.localPort) ?? 0) >= perPort) return false;
    if (perPeer > 0 && (this.pendingPerPeer.get(conn.peerIP) ?? 0) >= perPeer) return false;
    retain(this.pendingPerPort, conn.localPort);
    retain(this.pendingPerPeer, conn.peerIP);
    conn.pendingCounted = true;
    return true;
  }

  private leavePending(conn: Connection): void {
    conn.pendingCounted = false;
    release(this.pendingPerPort, conn.localPort);
    release(this.pendingPerPeer, conn.peerIP);
  }

  /**
   * Binds the connection to its route and counts it there; false when the route is at
   * maxConnections. An HTTP route's maxConnections limits requests in flight instead (the HTTP
   * stage answers 503), so its connections are counted but never refused here.
   */
  admitRoute(conn: Connection, route: IResolvedRoute): boolean {
    const count = this.perRoute.get(route) ?? 0;
    if (route.http === null && route.maxConnections > 0 && count >= route.maxConnections) return false;
    retain(this.perRoute, route);
    conn.route = route;
    return true;
  }

  /** The next backend host of a route (round-robin when it has several). */
  nextHost(route: IResolvedRoute): string {
    const hosts = route.hosts;
    if (hosts.length === 1) return hosts[0];
    const index = (this.hostCursor.get(route) ?? 0) % hosts.length;
    this.hostCursor.set(route, index + 1);
    return hosts[index];
  }

  /** Runs a stage's deadline handler; called by the sweep. */
  expire(conn: Connection): void {
    conn.deadline = 0;
    if (conn.stage === 'accepting' || conn.stage === 'closed') return;
    const stage = this.stages[conn.stage];
    try {
      if (stage.deadline !== undefined) stage.deadline(conn);
    } catch (err) {
      this.fail(conn, err);
    }
  }

  /** The client sent FIN: a stage still waiting for its bytes decides now. */
  clientEnded(conn: Connection): void {
    if (conn.closed || conn.stage === 'accepting' || conn.stage === 'closed') return;
    const stage = this.stages[conn.stage];
    try {
      if (stage.clientEnded !== undefined) stage.clientEnded(conn);
    } catch (err) {
      this.fail(conn, err);
    }
  }

  countGoneBeforeAccept(): void {
    this.goneBeforeAccept++;
  }

  /** PROXY outcome counters; `rejected` counts refused headers by code. */
  get proxyProtocol(): IProxyProtocolStatistics {
    return this.proxyStats;
  }

  countProxyRejection(code: ConnectionErrorCode): void {
    this.proxyStats.rejected[code] = (this.proxyStats.rejected[code] ?? 0) + 1;
  }

  /**
   * Ends a connection now: both sockets destroyed, counters released, event emitted. Idempotent;
   * every path (errors, timeouts, graceful close, stop) ends here.
   */
  close(conn: Connection, reason: CloseReason): void {
    if (conn.closed) return;
    conn.closeReason = reason;
    conn.stage = 'closed';
    conn.deadline = 0;
    const client = conn.wrapped.socket;
    if (conn.clientStream !== client) conn.clientStream.destroy();
    client.destroy();
    if (conn.backendStream !== conn.backend) conn.backendStream?.destroy();
    conn.backend?.destroy();
    this.bytesFromClients += conn.bytesFromClient;
    this.bytesToClients += conn.bytesToClient;
    if (conn.route !== null) addRouteTotals(this.routeTotals, conn.route.name, conn.bytesFromClient, conn.bytesToClient);
    else {
      this.rejectedConnections++;
      this.rejections[reason] = (this.rejections[reason] ?? 0) + 1;
    }
    conn.decoder = null;
    conn.helloReader = null;
    conn.pending = null;
    if (conn.pendingCounted) this.leavePending(conn);
    if (conn.ipCounted) release(this.perIP, conn.clientIP);
    if (conn.route !== null) release(this.perRoute, conn.route);
    this.connections.delete(conn);
    // closeReason was set at the top of this method.
    this.events.emit('connection-close', conn as IClosedConnectionRecord);
  }

  closeAll(reason: CloseReason): void {
    for (const conn of [...this.connections]) this.close(conn, reason);
    this.http.close();
  }

  /** Bytes each way so far, overall and per route: ended connections plus the live ones' counters. */
  trafficTotals(): ITrafficTotals {
    const byRoute = new Map<string, IByteTotals>();
    for (const [name, totals] of this.routeTotals) byRoute.set(name, { in: totals.in, out: totals.out });
    const all = { in: this.bytesFromClients, out: this.bytesToClients, byRoute };
    for (const conn of this.connections) {
      const bytesIn = conn.bytesFromClient;
      const bytesOut = conn.bytesToClient;
      all.in += bytesIn;
      all.out += bytesOut;
      const name = conn.routeName;
      if (name === undefined) continue;
      const route = byRoute.get(name);
      if (route === undefined) byRoute.set(name, { in: bytesIn, out: bytesOut });
      else {
        route.in += bytesIn;
        route.out += bytesOut;
      }
    }
    return all;
  }

  /** Live connections per route name, and per real client IP (admitted ones). */
  activeBy(): { route: Map<string, number>; client: ReadonlyMap<string, number> } {
    const route = new Map<string, number>();
    for (const [r, count] of this.perRoute) route.set(r.name, (route.get(r.name) ?? 0) + count);
    return { route, client: this.perIP };
  }

  /** `traffic`: totals the caller already took (a pass over every connection), so they are not taken twice. */
  statistics(listeningPorts: number[], traffic: ITrafficTotals = this.trafficTotals()): ISmartProxyStatistics {
    const rejected = { ...this.proxyStats.rejected };
    // Live connections' bytes count too, so the totals grow smoothly instead of jumping at close.
    return {
      activeConnections: this.connections.size,
      totalConnections: this.totalConnections,
      rejectedConnections: this.rejectedConnections,
      goneBeforeAccept: this.goneBeforeAccept,
      bytesFromClients: traffic.in,
      bytesToClients: traffic.out,
      listeningPorts,
      // Spoofing and timeouts are views of `rejected`, derived so they cannot disagree.
      proxyProtocol: {
        ...this.proxyStats,
        rejected,
        byPolicy: { ...this.proxyStats.byPolicy },
        byVersion: { ...this.proxyStats.byVersion },
        spoofing: rejected.ERR_PP_UNTRUSTED_PEER ?? 0, timeouts: rejected.ERR_PP_TIMEOUT ?? 0,
      },
      http: this.http.snapshot(),
    };
  }
}

/** Sweep period: a tenth of the shortest timeout, between 20 ms and 1 s. */
function sweepInterval(config: IResolvedConfig): number {
  const timeouts = [config.proxyProtocolTimeout, config.initialDataTimeout, config.maxConnectionLifetime, config.inactivityTimeout, config.connectTimeout, config.flushTimeout];
  const shortest = Math.min(...timeouts.filter((v) => v > 0), SWEEP_MAX_MS * SWEEP_DIVISOR);
  return Math.max(SWEEP_MIN_MS, Math.min(SWEEP_MAX_MS, Math.floor(shortest / SWEEP_DIVISOR)));
}

/**
 * One pass over all connections: stage deadlines, lifetime, and inactivity. Inactivity compares
 * the client stream's byte counters with the last pass, so the data path pays nothing for it.
 */
function sweep(manager: ConnectionManager): void {
  const now = performance.now();
  const lifetime = manager.config.maxConnectionLifetime;
  for (const conn of manager.connections) {
    if (conn.deadline !== 0 && now >= conn.deadline) manager.expire(conn);
    else if (lifetime > 0 && now - conn.startedAt >= lifetime) manager.close(conn, 'ERR_TIMEOUT_LIFETIME');
    else checkActivity(manager, conn, now);
  }
  if (manager.traffic.due(now)) manager.traffic.sample(now, manager.trafficTotals());
}

function checkActivity(manager: ConnectionManager, conn: Connection, now: number): void {
  const client = conn.clientStream;
  const traffic = client.bytesRead + client.bytesWritten;
  if (traffic !== conn.lastTraffic) {
    conn.lastTraffic = traffic;
    conn.lastActive = now;
    return;
  }
  const inactivity = manager.config.inactivityTimeout;
  if (inactivity > 0 && now - conn.lastActive >= inactivity) manager.close(conn, 'ERR_TIMEOUT_INACTIVITY');
  else probeStalled(conn);
}

/**
 * A stream paused by backpressure reads nothing, so a reset from its peer goes unnoticed while
 * the other side does not read. A zero-length write asks the kernel: a reset peer answers with
 * an error, which closes the connection like any other reset. Nothing goes on the wire. The write
 * goes to the TCP socket itself, under TLS when there is TLS: an empty TLS write never reaches it.
 */
function probeStalled(conn: Connection): void {
  if (conn.stage !== 'forwarding' && conn.stage !== 'closing') return;
  probe(conn.clientStream, conn.wrapped.socket);
  if (conn.backendStream !== null) probe(conn.backendStream, conn.backend as net.Socket);
}

function probe(stream: net.Socket, tcp: net.Socket): void {
  if (stream.isPaused() && tcp.writable) tcp.write(NOTHING);
}
