/**
 * What every stage shares: the socket tags that let module-level listeners find their connection
 * (as `ws`'s `socketOnData` finds `this[kWebSocket]`), and the two ways a stage refuses one.
 */
import type net from 'node:net';
import type { ConnectionErrorCode, ProxyProtocolErrorCode } from '../../../protocols/errors.js';
import type { Connection } from '../connection-manager.js';
import type { IProxyProtocolErrorEvent } from '../models/interfaces.js';

export const EMPTY: Buffer = Buffer.alloc(0);
export const kConn = Symbol('smartproxy.connection');
/** On a bridged stream: the stream its bytes go to. */
export const kPeer = Symbol('smartproxy.peer');

export interface ITaggedSocket extends net.Socket {
  [kConn]: Connection;
  [kPeer]: net.Socket;
}

export function tag<T extends net.Socket>(socket: T, conn: Connection): T & ITaggedSocket {
  const tagged = socket as T & ITaggedSocket;
  tagged[kConn] = conn;
  return tagged;
}

/** Refuses a connection before it reaches a backend: event, then close. */
export function reject(conn: Connection, code: ConnectionErrorCode, message: string): void {
  conn.manager.events.emit('connection-rejected', { code, message, clientIP: conn.clientIP, localPort: conn.localPort, connection: conn });
  conn.manager.close(conn, code);
}

/** A PROXY failure: counted by code, reported with the peer (and a hint when the bytes tell one), closed. */
export function proxyError(conn: Connection, code: ProxyProtocolErrorCode, message: string, hint?: string): void {
  const manager = conn.manager;
  manager.countProxyRejection(code);
  const event: IProxyProtocolErrorEvent = {
    code,
    message,
    peerAddress: conn.peerIP,
    peerPort: conn.wrapped.socket.remotePort ?? 0,
    localPort: conn.localPort,
    trusted: conn.wrapped.isFromTrustedProxy,
    policy: conn.policy,
  };
  if (hint !== undefined) event.hint = hint;
  manager.events.emit('proxy-protocol-error', event);
  manager.close(conn, code);
}
