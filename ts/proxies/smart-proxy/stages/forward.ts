/**
 * Forwarding and closing: bytes both ways with explicit backpressure (cheaper than stream.pipe: a
 * full destination pauses its source until it drains), ends passed on by the half-open policy,
 * and once one side is gone the other gets flushTimeout to flush before it is destroyed.
 */
import type net from 'node:net';
import type { Connection, IStage } from '../connection-manager.js';
import { EMPTY, type ITaggedSocket, kConn, kPeer } from './common.js';

function forwardData(this: ITaggedSocket, chunk: Buffer): void {
  if (!this[kPeer].write(chunk)) this.pause();
}

function resumePeer(this: ITaggedSocket): void {
  this[kPeer].resume();
}

function onStreamEnd(this: ITaggedSocket): void {
  passEnd(this[kConn], this, this[kPeer]);
}

function destroyThis(this: net.Socket): void {
  this.destroy();
}

/** Closes a socket once everything written to it has been handed to the kernel. */
function closeWhenFlushed(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.writableFinished) socket.destroy();
  else socket.on('finish', destroyThis);
}

/** Starts both directions; ends follow the half-open policy. */
export function bridge(conn: Connection, client: ITaggedSocket, backend: ITaggedSocket): void {
  client[kPeer] = backend;
  backend[kPeer] = client;
  client.on('data', forwardData);
  backend.on('drain', resumePeer);
  backend.on('data', forwardData);
  client.on('drain', resumePeer);
  client.on('end', onStreamEnd);
  backend.on('end', onStreamEnd);
  // The client may have sent FIN while we were still routing.
  if (client.readableEnded) passEnd(conn, client, backend);
  client.resume();
}

/** `from` sent FIN: pass it on; without half-open, both sides close once their data is out. */
function passEnd(conn: Connection, from: net.Socket, to: net.Socket): void {
  if (conn.closed) return;
  to.end();
  if (conn.manager.config.enableHalfOpen) return;
  from.end();
  startClosing(conn, from === conn.clientStream ? 'client-closed' : 'backend-closed');
  closeWhenFlushed(to);
}

function startClosing(conn: Connection, reason: 'client-closed' | 'backend-closed'): void {
  if (conn.endingReason === undefined) conn.endingReason = reason;
  if (conn.stage !== 'closing') conn.manager.advance(conn, 'closing', EMPTY);
}

/** One side closed: the other may still be flushing what this side sent; then it closes too. */
function sideClosed(conn: Connection, side: 'client' | 'backend'): void {
  if (conn.closed) return;
  const other = side === 'client' ? conn.backendStream : conn.clientStream;
  if (!conn.forwarded || other === null || other.destroyed) {
    const reason = conn.forwarded ? `${side}-closed` as const : side === 'client' ? 'ERR_CLIENT_CLOSED' : 'ERR_BACKEND_CLOSED';
    conn.manager.close(conn, conn.endingReason ?? reason);
    return;
  }
  startClosing(conn, `${side}-closed`);
  if (!other.writableEnded) other.end();
  closeWhenFlushed(other);
}

export function onClientClose(this: ITaggedSocket): void {
  sideClosed(this[kConn], 'client');
}

export function onBackendClose(this: ITaggedSocket): void {
  sideClosed(this[kConn], 'backend');
}

export function onClientError(this: ITaggedSocket): void {
  const conn = this[kConn];
  conn.manager.close(conn, conn.forwarded ? 'client-error' : 'ERR_CLIENT_ERROR');
}

/** Client FIN at any stage: a stage still waiting for bytes decides now (forwarding has its own). */
export function onClientEnd(this: ITaggedSocket): void {
  const conn = this[kConn];
  conn.manager.clientEnded(conn);
}

/** Both directions are set up in the connecting stage; reaching here only ends its deadline. */
export const forwardingStage: IStage = {
  enter() {},
};

/** One side is gone or ended: the other has flushTimeout to flush, then the connection closes. */
export const closingStage: IStage = {
  enter(conn) {
    conn.manager.setDeadline(conn, conn.manager.config.flushTimeout);
  },
  deadline(conn) {
    conn.manager.close(conn, conn.endingReason ?? 'client-closed');
  },
};
