/**
 * One request through an HTTP route: routed, its head rewritten, sent to a backend with its body
 * streamed (backpressure both ways through pipe), the response passed back with trailers. Listeners
 * are module-level and find their exchange through `kExchange`, as the stages find connections.
 */
import http from 'node:http';
import type http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { framingProblem } from '../../../../protocols/http/headers.js';
import type { IResolvedHttp, IResolvedRoute } from '../../config.js';
import { answer, type IAnswerable, type IRefusal } from './answers.js';
import { agentFor } from './backend.js';
import { backendHeaders, responseHeaders } from './forwarding.js';
import { chooseRoute, isRefusal, type IRequestTarget, requestTarget } from './request-routing.js';
import { type HttpSession, type ISessionSocket, kSession } from './session.js';

const kExchange = Symbol('smartproxy.http.exchange');

type ClientRequest = (http.IncomingMessage | http2.Http2ServerRequest) & { [kExchange]?: Exchange };
type ClientResponse = (http.ServerResponse | http2.Http2ServerResponse) & IAnswerable & { [kExchange]?: Exchange };
type Tagged<T> = T & { [kExchange]: Exchange };

/** Methods whose request a backend may see twice without harm (RFC 9110 9.2.2), when they carry no body. */
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE', 'PUT', 'TRACE']);

class Exchange {
  route: IResolvedRoute | null = null;
  backendRequest: http.ClientRequest | null = null;
  backendResponse: http.IncomingMessage | null = null;
  target: IRequestTarget | null = null;
  headers: string[] = [];
  retried = false;

  constructor(
    readonly session: HttpSession,
    readonly req: ClientRequest,
    readonly res: ClientResponse,
  ) {}

  begin(): void {
    begin(this);
  }
}

/** Where a request's session is: on the client stream (HTTP/1) or the session's socket (HTTP/2, through Node's socket proxy). */
export function sessionOf(req: http.IncomingMessage | http2.Http2ServerRequest): HttpSession {
  return (req.socket as unknown as ISessionSocket)[kSession];
}

/** A request head arrived: the connection is busy until its response is done. */
export function requestStarted(session: HttpSession): void {
  session.inFlight++;
  session.conn.requests++;
  session.conn.manager.http.countRequest();
  session.conn.manager.clearDeadline(session.conn);
}

/** A response is done (or cut): when nothing else is in flight, the connection waits for the next request. */
export function requestEnded(session: HttpSession): void {
  session.inFlight--;
  if (session.inFlight > 0 || session.conn.stage !== 'http') return;
  session.readySince = performance.now();
  session.bytesAtReady = session.conn.clientStream.bytesRead;
  const http = (session.conn.route as IResolvedRoute).http as IResolvedHttp;
  session.conn.manager.setDeadline(session.conn, Math.min(http.keepAliveTimeout, http.headersTimeout));
}

function refuse(ex: Exchange, refusal: IRefusal): void {
  answer(ex.session.conn, ex.res, refusal, ex.route, ex.req);
}

/** Routing facts of a request: framing checked (HTTP/1), Host and path, and the route. */
export function routeRequest(session: HttpSession, req: ClientRequest): { route: IResolvedRoute; target: IRequestTarget } | IRefusal {
  if (req.httpVersionMajor === 1) {
    const problem = framingProblem(req.rawHeaders, req.httpVersion);
    if (problem !== null) return { status: 400, code: 'ERR_HTTP_BAD_REQUEST', message: problem, close: true };
  }
  const authority = req.httpVersionMajor === 2 ? ((req as http2.Http2ServerRequest).authority ?? req.headers.host) : req.headers.host;
  const target = requestTarget(req.url ?? '/', authority);
  if (isRefusal(target)) return target;
  const route = chooseRoute(session, target, req.headers);
  return isRefusal(route) ? route : { route, target };
}

export function onRequest(req: ClientRequest, res: ClientResponse): void {
  const session = sessionOf(req);
  const ex = new Exchange(session, req, res);
  (req as Tagged<ClientRequest>)[kExchange] = ex;
  (res as Tagged<ClientResponse>)[kExchange] = ex;
  requestStarted(session);
  res.on('close', onResponseClose);
  if (session.inFlight > 1 && session.conn.negotiatedAlpn !== 'h2') {
    (session.pipelined ??= []).push(ex);
    session.conn.clientStream.pause();
    return;
  }
  begin(ex);
}

/** Routes the request and sends it on, or answers it. */
function begin(ex: Exchange): void {
  const session = ex.session;
  const routed = routeRequest(session, ex.req);
  if (isRefusal(routed)) {
    refuse(ex, routed);
    return;
  }
  ex.route = routed.route;
  ex.target = routed.target;
  const state = session.conn.manager.http;
  state.inFlight.set(routed.route, (state.inFlight.get(routed.route) ?? 0) + 1);
  ex.headers = backendHeaders(session, routed.route, ex.req.rawHeaders, routed.target, undefined);
  send(ex);
}

/** The request in progress is answered: the next pipelined one begins, and with none left, reading resumes. */
function beginPipelined(session: HttpSession): void {
  const queue = session.pipelined;
  if (queue === null || session.conn.closed) return;
  const next = queue.shift();
  if (queue.length === 0) {
    session.pipelined = null;
    session.conn.clientStream.resume();
  }
  next?.begin();
}

/** Sends the request to the route's next host; its body follows as the client sends it. */
function send(ex: Exchange): void {
  const route = ex.route as IResolvedRoute;
  const manager = ex.session.conn.manager;
  let request: http.ClientRequest;
  try {
    request = http.request({
      agent: agentFor(ex.session, route),
      host: manager.nextHost(route),
      port: route.port,
      method: ex.req.method,
      path: (ex.target as IRequestTarget).path,
      headers: ex.headers,
      setHost: false,
      timeout: (route.http as IResolvedHttp).backendTimeout,
    });
  } catch (err) {
    // Building the PROXY header for the new backend connection failed.
    refuse(ex, { status: 502, code: 'ERR_PP_SEND', message: `cannot build the PROXY header for route "${route.name}": ${(err as Error).message}` });
    return;
  }
  (request as Tagged<http.ClientRequest>)[kExchange] = ex;
  ex.backendRequest = request;
  request.on('response', onBackendResponse);
  request.on('information', onBackendInformation);
  request.on('error', onBackendError);
  request.on('timeout', onBackendTimeout);
  if (ex.retried) return void request.end();
  // An expecting client sends its body only after our 100: the backend must see the head now.
  if (ex.req.headers.expect !== undefined) request.flushHeaders();
  ex.req.on('end', onRequestBodyEnd);
  ex.req.pipe(request, { end: false });
}

function onRequestBodyEnd(this: Tagged<ClientRequest>): void {
  const ex = this[kExchange];
  const request = ex.backendRequest;
  if (request === null || request.destroyed) return;
  if (this.rawTrailers.length > 0) request.addTrailers(pairs(this.rawTrailers));
  request.end();
}

function pairs(raw: readonly string[]): Array<[string, string]> {
  const list: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) list.push([raw[i], raw[i + 1]]);
  return list;
}

function onBackendInformation(this: Tagged<http.ClientRequest>, info: http.InformationEvent): void {
  if (info.statusCode === 100) this[kExchange].res.writeContinue();
}

function onBackendResponse(this: Tagged<http.ClientRequest>, response: http.IncomingMessage): void {
  const ex = this[kExchange];
  ex.backendResponse = response;
  (response as Tagged<http.IncomingMessage>)[kExchange] = ex;
  const res = ex.res;
  const headers = responseHeaders(response.rawHeaders);
  const status = response.statusCode as number;
  if (ex.session.conn.negotiatedAlpn === 'h2') (res as http2.Http2ServerResponse).writeHead(status, toObject(headers));
  else (res as http.ServerResponse).writeHead(status, response.statusMessage, headers);
  response.on('end', onBackendResponseEnd);
  response.on('close', onBackendResponseClose);
  response.pipe(res as http.ServerResponse, { end: false });
}

/** The backend went away before its response was complete: the client's is cut too, not left waiting. */
function onBackendResponseClose(this: Tagged<http.IncomingMessage>): void {
  if (!this.complete) this[kExchange].res.destroy();
}

/** HTTP/2 responses take an object; repeated names (Set-Cookie) become arrays. */
function toObject(headers: readonly string[]): http.OutgoingHttpHeaders {
  const object: http.OutgoingHttpHeaders = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    const before = object[name];
    if (before === undefined) object[name] = headers[i + 1];
    else object[name] = Array.isArray(before) ? [...before, headers[i + 1]] : [String(before), headers[i + 1]];
  }
  return object;
}

function onBackendResponseEnd(this: Tagged<http.IncomingMessage>): void {
  const ex = this[kExchange];
  if (this.rawTrailers.length > 0) ex.res.addTrailers(Object.fromEntries(pairs(this.rawTrailers)));
  ex.res.end();
}

/** A reused pooled connection the backend had just closed: a bodiless idempotent request may go again, once. */
function retryable(ex: Exchange, request: http.ClientRequest): boolean {
  const headers = ex.req.headers;
  return request.reusedSocket && !ex.retried && ex.backendResponse === null && RETRYABLE.has(ex.req.method ?? '') && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined;
}

function onBackendError(this: Tagged<http.ClientRequest>, err: NodeJS.ErrnoException): void {
  const ex = this[kExchange];
  if (ex.backendRequest !== this || ex.res.destroyed) return;
  if (retryable(ex, this)) {
    ex.retried = true;
    send(ex);
    return;
  }
  if (ex.res.headersSent) ex.res.destroy();
  else refuse(ex, { status: 502, code: 'ERR_BACKEND_CONNECT', message: `route "${ex.route?.name}": ${err.code ?? err.message}` });
}

function onBackendTimeout(this: Tagged<http.ClientRequest>): void {
  const ex = this[kExchange];
  ex.backendRequest = null;
  this.destroy();
  const ms = (ex.route?.http as IResolvedHttp).backendTimeout;
  refuse(ex, { status: 504, code: 'ERR_HTTP_BACKEND_TIMEOUT', message: `route "${ex.route?.name}": backend silent for ${ms} ms` });
}

/** The response is done or the client went away: account for it, and drop a backend request still running. */
function onResponseClose(this: Tagged<ClientResponse>): void {
  const ex = this[kExchange];
  const state = ex.session.conn.manager.http;
  const request = ex.backendRequest;
  if (request !== null && !(ex.backendResponse?.complete ?? false)) request.destroy();
  state.countStatus(ex.route?.name ?? '', this.statusCode);
  if (ex.route !== null) {
    const left = (state.inFlight.get(ex.route) ?? 1) - 1;
    if (left > 0) state.inFlight.set(ex.route, left);
    else state.inFlight.delete(ex.route);
  }
  requestEnded(ex.session);
  beginPipelined(ex.session);
}
