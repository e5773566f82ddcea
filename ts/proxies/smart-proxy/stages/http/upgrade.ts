/**
 * Upgrades (WebSocket and others) on HTTP/1.1: the request goes to the backend with its Upgrade
 * header; a 101 is passed back and from then on the connection is a tunnel, bridged both ways
 * with backpressure under the same close and half-open rules as forwarded connections. Any other
 * answer is passed back and the connection closes.
 */
import http from 'node:http';
import type net from 'node:net';
import type { IResolvedHttp, IResolvedRoute } from '../../config.js';
import type { Connection } from '../../connection-manager.js';
import { EMPTY, type ITaggedSocket, kConn, tag } from '../common.js';
import { bridge, onBackendClose } from '../forward.js';
import { answerRaw, type IRefusal, report } from './answers.js';
import { agentFor } from './backend.js';
import { requestStarted, routeRequest, sessionOf } from './exchange.js';
import { backendHeaders, responseHeaders } from './forwarding.js';
import { isRefusal } from './request-routing.js';
import type { HttpSession } from './session.js';

const kTunnel = Symbol('smartproxy.http.tunnel');

interface ITunnel {
  session: HttpSession;
  route: IResolvedRoute;
  client: net.Socket;
  /** What the client sent after the request head (the first frames). */
  head: Buffer;
  req: http.IncomingMessage;
}

type TunnelRequest = http.ClientRequest & { [kTunnel]: ITunnel };
type TunnelResponse = http.IncomingMessage & { [kTunnel]: ITunnel };

function refuseTunnel(tunnel: ITunnel, refusal: IRefusal): void {
  answerRaw(tunnel.session.conn, tunnel.client, refusal, tunnel.route, tunnel.req);
}

/** An upgrade pipelined behind unanswered requests: no answer can be put in order, so the connection closes. */
const PIPELINED_UPGRADE: IRefusal = { status: 400, code: 'ERR_HTTP_BAD_REQUEST', message: 'upgrade request pipelined behind unanswered requests' };

export function onUpgrade(req: http.IncomingMessage, client: net.Socket, head: Buffer): void {
  const session = sessionOf(req);
  const conn = session.conn;
  if (session.inFlight > 0) {
    // The tunnel's bytes would go out before the answers to the requests ahead of it.
    report(conn, PIPELINED_UPGRADE, null, req);
    conn.manager.close(conn, PIPELINED_UPGRADE.code);
    return;
  }
  requestStarted(session);
  const routed = routeRequest(session, req);
  if (isRefusal(routed)) {
    answerRaw(conn, client, routed, null, req);
    return;
  }
  const { route, target } = routed;
  const state = conn.manager.http;
  state.inFlight.set(route, (state.inFlight.get(route) ?? 0) + 1);
  session.tunnelRoute = route;
  const tunnel: ITunnel = { session, route, client, head, req };
  const headers = backendHeaders(session, route, req.rawHeaders, target, req.headers.upgrade);
  let request: http.ClientRequest;
  try {
    request = http.request({ agent: agentFor(session, route), host: conn.manager.nextHost(route), port: route.port, method: req.method, path: target.path, headers, setHost: false, timeout: (route.http as IResolvedHttp).backendTimeout });
  } catch (err) {
    refuseTunnel(tunnel, { status: 502, code: 'ERR_PP_SEND', message: `cannot build the PROXY header for route "${route.name}": ${(err as Error).message}` });
    return;
  }
  (request as TunnelRequest)[kTunnel] = tunnel;
  request.on('upgrade', onBackendUpgrade);
  request.on('response', onBackendRefusedUpgrade);
  request.on('error', onTunnelBackendError);
  request.on('timeout', onTunnelBackendTimeout);
  request.end();
}

/** The head of a response, written by hand: no HTTP parser owns the client socket any more. */
function responseHead(response: http.IncomingMessage, extra: string): string {
  const headers = response.statusCode === 101 ? response.rawHeaders : responseHeaders(response.rawHeaders);
  let text = `HTTP/1.1 ${response.statusCode} ${response.statusMessage}\r\n`;
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${text}${extra}\r\n`;
}

function onTunnelBackendError(this: TunnelRequest, err: NodeJS.ErrnoException): void {
  const tunnel = this[kTunnel];
  refuseTunnel(tunnel, { status: 502, code: 'ERR_BACKEND_CONNECT', message: `route "${tunnel.route.name}": ${err.code ?? err.message}` });
}

function onTunnelBackendTimeout(this: TunnelRequest): void {
  const tunnel = this[kTunnel];
  this.off('error', onTunnelBackendError);
  this.on('error', ignore);
  this.destroy();
  refuseTunnel(tunnel, { status: 504, code: 'ERR_HTTP_BACKEND_TIMEOUT', message: `route "${tunnel.route.name}": no answer to the upgrade` });
}

function ignore(): void {}

/** 101: the head goes back as the backend wrote it, and the connection becomes a tunnel. */
function onBackendUpgrade(this: TunnelRequest, response: http.IncomingMessage, backend: net.Socket, backendHead: Buffer): void {
  const { session, route, client, head } = this[kTunnel];
  const conn = session.conn;
  this.setTimeout(0);
  conn.manager.http.countUpgrade();
  conn.manager.http.countStatus(route.name, 101);
  if (conn.closed) {
    backend.destroy();
    return;
  }
  client.write(responseHead(response, ''));
  if (backendHead.length > 0) client.write(backendHead);
  if (head.length > 0) backend.write(head);
  startTunnel(conn, client, backend);
}

function onTunnelSocketError(this: ITaggedSocket): void {
  const conn = this[kConn];
  conn.manager.close(conn, 'backend-error');
}

function startTunnel(conn: Connection, client: net.Socket, backend: net.Socket): void {
  const tagged = tag(backend, conn);
  backend.setTimeout(0);
  conn.backend = tagged;
  conn.backendStream = tagged;
  tagged.on('error', onTunnelSocketError);
  tagged.on('close', onBackendClose);
  conn.manager.advance(conn, 'forwarding', EMPTY);
  bridge(conn, client as ITaggedSocket, tagged);
  tagged.resume();
}

/** Not 101: the backend's answer goes back as it is, then the connection closes. */
function onBackendRefusedUpgrade(this: TunnelRequest, response: http.IncomingMessage): void {
  const { session, route, client } = this[kTunnel];
  session.conn.manager.http.countStatus(route.name, response.statusCode ?? 0);
  client.write(responseHead(response, 'connection: close\r\n'));
  (response as TunnelResponse)[kTunnel] = this[kTunnel];
  response.on('close', onRefusalClose);
  response.pipe(client);
}

/** The backend went away before its refusal was complete: the client is cut too, not left waiting. */
function onRefusalClose(this: TunnelResponse): void {
  if (!this.complete) this[kTunnel].client.destroy();
}
