/**
 * One client connection in the HTTP stage: its requests in flight, since when it waits for the
 * next request head, and (on routes that send PROXY headers) its own backend connections. Found
 * from any socket or request through `kSession` on the client stream.
 */
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { IResolvedRoute } from '../../config.js';
import type { Connection } from '../../connection-manager.js';

export const kSession = Symbol('smartproxy.http.session');

export interface ISessionSocket {
  [kSession]: HttpSession;
}

/** An HTTP/1.1 request pipelined behind another (an exchange of exchange.ts), begun when those before it are answered. */
export interface IPipelinedRequest {
  begin(): void;
}

export class HttpSession {
  /** Requests (and upgraded tunnels) started and not yet answered. */
  inFlight = 0;
  /** Monotonic time since which the connection waits for a request head, and the bytes read by then. */
  readySince: number;
  bytesAtReady: number;
  /** Routes that send PROXY headers: this client's own backend connections, never shared. */
  agents: Map<IResolvedRoute, http.Agent> | null = null;
  /**
   * HTTP/1.1 requests that came pipelined behind the one in progress, oldest first. HTTP/1.1 answers
   * in order anyway, so they wait (reading paused) instead of each taking a backend connection.
   */
  pipelined: IPipelinedRequest[] | null = null;
  /** The route of an upgraded tunnel, whose in-flight count is released when the connection ends. */
  tunnelRoute: IResolvedRoute | null = null;

  constructor(
    readonly conn: Connection,
    /** TLS ends here: X-Forwarded-Proto https, and Host must be one the SNI route serves. */
    readonly tls: boolean,
    /** Bytes the earlier stages already read from the client that belong to the first request. */
    initialBytes: number,
  ) {
    this.readySince = performance.now();
    this.bytesAtReady = conn.clientStream.bytesRead - initialBytes;
  }
}
