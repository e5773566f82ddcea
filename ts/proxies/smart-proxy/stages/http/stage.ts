/**
 * HTTP stage, for connections whose route is HTTP-aware: the client stream (decrypted when TLS
 * ended here, else the raw socket with the bytes already read handed back) goes to the route's
 * HTTP/1.1 server, or its HTTP/2 server when ALPN chose h2. Requests are then routed one by one
 * (exchange.ts). Between requests the connection waits under one deadline: idle (keepAliveTimeout)
 * while no byte of a next request came, head incomplete (headersTimeout → 408) once one did.
 */
import { performance } from 'node:perf_hooks';
import type { IResolvedHttp, IResolvedRoute } from '../../config.js';
import type { Connection, IStage } from '../../connection-manager.js';
import { answerRaw } from './answers.js';
import { closeSessionAgents } from './backend.js';
import { serversFor } from './servers.js';
import { HttpSession, type ISessionSocket, kSession } from './session.js';

type SessionSocket = Connection['clientStream'] & ISessionSocket;

/** The client stream closed: its own backend connections and its tunnel's place on the route go. */
function onSessionClose(this: SessionSocket): void {
  const session = this[kSession];
  closeSessionAgents(session);
  const route = session.tunnelRoute;
  if (route === null) return;
  session.tunnelRoute = null;
  const inFlight = session.conn.manager.http.inFlight;
  const left = (inFlight.get(route) ?? 1) - 1;
  if (left > 0) inFlight.set(route, left);
  else inFlight.delete(route);
}

function settings(conn: Connection): IResolvedHttp {
  return (conn.route as IResolvedRoute).http as IResolvedHttp;
}

export const httpStage: IStage = {
  enter(conn, initial) {
    const route = conn.route as IResolvedRoute;
    const stream = conn.clientStream as SessionSocket;
    const session = new HttpSession(conn, stream !== conn.wrapped.socket, initial.length);
    stream[kSession] = session;
    stream.on('close', onSessionClose);
    const http = settings(conn);
    conn.manager.setDeadline(conn, Math.min(http.keepAliveTimeout, http.headersTimeout));
    stream.pause();
    if (initial.length > 0) stream.unshift(initial);
    const servers = serversFor(route);
    if (conn.negotiatedAlpn === 'h2') servers.h2.emit('connection', stream);
    else servers.h1.emit('connection', stream);
    stream.resume();
  },
  deadline(conn) {
    const session = (conn.clientStream as SessionSocket)[kSession];
    if (session.inFlight > 0) return;
    const http = settings(conn);
    const waited = performance.now() - session.readySince;
    // HTTP/2 clients send frames (SETTINGS, PING) between requests: only idleness counts there.
    const started = conn.negotiatedAlpn !== 'h2' && conn.clientStream.bytesRead !== session.bytesAtReady;
    const limit = started ? http.headersTimeout : http.keepAliveTimeout;
    if (waited < limit) conn.manager.setDeadline(conn, limit - waited);
    else if (!started) conn.manager.close(conn, 'ERR_HTTP_IDLE_TIMEOUT');
    else answerRaw(conn, conn.clientStream, { status: 408, code: 'ERR_HTTP_HEADERS_TIMEOUT', message: `request head not complete within ${http.headersTimeout} ms` }, null, null);
  },
};
