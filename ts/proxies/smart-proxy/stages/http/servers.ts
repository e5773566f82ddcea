/**
 * The HTTP servers client streams are fed to, one HTTP/1.1 and one HTTP/2 server per route that
 * takes connections (they never listen: `emit('connection', stream)`). Node parses; a parse error
 * is answered here with a code (400, 431), not by Node's default.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { IResolvedHttp, IResolvedRoute } from '../../config.js';
import { answerRaw, type IRefusal } from './answers.js';
import { onRequest } from './exchange.js';
import { type ISessionSocket, kSession } from './session.js';
import { onUpgrade } from './upgrade.js';

export interface IRouteServers {
  h1: http.Server;
  h2: http2.Http2Server;
}

const serversByRoute = new WeakMap<IResolvedRoute, IRouteServers>();

type ParseError = Error & { code?: string; reason?: string };

/** A request head Node's parser refused (or a connection reset): answered when nothing else is in flight. */
function onClientError(err: ParseError, socket: net.Socket): void {
  const session = (socket as net.Socket & Partial<ISessionSocket>)[kSession];
  if (session === undefined || err.code === 'ECONNRESET' || !socket.writable || session.inFlight > 0) {
    socket.destroy();
    return;
  }
  const refusal: IRefusal =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? { status: 431, code: 'ERR_HTTP_HEADERS_TOO_LARGE', message: `request head over ${(session.conn.route?.http as IResolvedHttp).maxHeaderSize} bytes` }
      : { status: 400, code: 'ERR_HTTP_BAD_REQUEST', message: `${err.code ?? 'parse error'}: ${err.reason ?? err.message}` };
  answerRaw(session.conn, socket, refusal, null, null);
}

/** CONNECT asks for a tunnel to anywhere: a reverse proxy does not offer that. */
function onConnectMethod(req: http.IncomingMessage, socket: net.Socket): void {
  const session = (socket as net.Socket & ISessionSocket)[kSession];
  answerRaw(session.conn, socket, { status: 405, code: 'ERR_HTTP_BAD_REQUEST', message: 'CONNECT is not proxied' }, null, req);
}

function onH2Session(this: http2.Http2Server, session: http2.ServerHttp2Session): void {
  const socket = session.socket as unknown as ISessionSocket;
  socket[kSession].conn.manager.http.countH2Session();
}

function ignore(): void {}

const H2_MAX_CONCURRENT_STREAMS = 128;

function createServers(settings: IResolvedHttp): IRouteServers {
  // Timeouts are the HTTP stage's (one sweep for every connection), so Node's own are off.
  const h1 = http.createServer({ maxHeaderSize: settings.maxHeaderSize, requireHostHeader: false, keepAliveTimeout: 0, requestTimeout: 0, headersTimeout: 0 });
  // A client that half-closes after its request still gets the answer.
  (h1 as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  h1.on('request', onRequest);
  h1.on('checkContinue', onRequest);
  h1.on('upgrade', onUpgrade);
  h1.on('connect', onConnectMethod);
  h1.on('clientError', onClientError);
  // Each stream is a backend request: cap them per session as nginx does (Node's default is 2^32 - 1),
  // so one client cannot open thousands of backend requests at once.
  const h2 = http2.createServer({ settings: { maxHeaderListSize: settings.maxHeaderSize, maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS } });
  h2.on('request', onRequest);
  h2.on('checkContinue', onRequest);
  h2.on('session', onH2Session);
  // A session's errors end its socket, and so the connection, which is where they are counted.
  h2.on('sessionError', ignore);
  return { h1, h2 };
}

export function serversFor(route: IResolvedRoute): IRouteServers {
  let servers = serversByRoute.get(route);
  if (servers === undefined) serversByRoute.set(route, (servers = createServers(route.http as IResolvedHttp)));
  return servers;
}
