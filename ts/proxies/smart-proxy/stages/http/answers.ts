/**
 * The proxy's own answers (400, 403, 404, 408, 421, 431, 502, 503, 504): a short body, an
 * `http-error` event and a count by code. Details go to the event, never to the client.
 */
import http from 'node:http';
import type net from 'node:net';
import type { HttpErrorCode, ConnectionErrorCode } from '../../../../protocols/errors.js';
import type { IResolvedRoute } from '../../config.js';
import type { Connection } from '../../connection-manager.js';

export type AnswerCode = HttpErrorCode | ConnectionErrorCode;

/** Why the proxy answers a request itself. */
export interface IRefusal {
  status: number;
  code: AnswerCode;
  message: string;
  /** The framing is not to be trusted: the connection closes after the answer. */
  close?: boolean;
}

/** The part of Node's HTTP/1 and HTTP/2 compatibility responses an answer uses. */
export interface IAnswerable {
  headersSent: boolean;
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  end(body?: string): unknown;
  destroy(error?: Error): unknown;
}

export interface IRequestFacts {
  method?: string;
  url?: string;
}

export function report(conn: Connection, refusal: IRefusal, route: IResolvedRoute | null, request: IRequestFacts | null): void {
  const manager = conn.manager;
  manager.http.countAnswer(refusal.code);
  if (manager.events.listenerCount('http-error') === 0) return;
  manager.events.emit('http-error', {
    code: refusal.code,
    status: refusal.status,
    message: refusal.message,
    clientIP: conn.clientIP,
    localPort: conn.localPort,
    route: route?.name,
    method: request?.method,
    url: request?.url,
  });
}

function body(status: number): string {
  return `${status} ${http.STATUS_CODES[status] ?? 'Error'}\n`;
}

/** Answers through a response object (HTTP/1 or HTTP/2); one that already started is cut instead. */
export function answer(conn: Connection, res: IAnswerable, refusal: IRefusal, route: IResolvedRoute | null, request: IRequestFacts | null): void {
  report(conn, refusal, route, request);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = body(refusal.status);
  const headers: Record<string, string | number> = { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) };
  if (refusal.close === true && conn.negotiatedAlpn !== 'h2') {
    headers.connection = 'close';
    conn.endingReason ??= refusal.code;
  }
  res.writeHead(refusal.status, headers);
  res.end(text);
}

/** Answers on a socket no HTTP parser owns any more (parse errors, upgrades), then ends it. */
export function answerRaw(conn: Connection, socket: net.Socket, refusal: IRefusal, route: IResolvedRoute | null, request: IRequestFacts | null): void {
  report(conn, refusal, route, request);
  conn.manager.http.countStatus(route?.name ?? '', refusal.status);
  conn.endingReason ??= refusal.code;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const text = body(refusal.status);
  socket.end(
    `HTTP/1.1 ${refusal.status} ${http.STATUS_CODES[refusal.status] ?? 'Error'}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}
