import type net from 'node:net';
import { WrappedSocket } from './wrapped-socket.js';

export function isWrappedSocket(value: unknown): value is WrappedSocket {
  return value instanceof WrappedSocket;
}

/** The raw net.Socket behind a WrappedSocket, or the socket itself. */
export function getUnderlyingSocket(socket: net.Socket | WrappedSocket): net.Socket {
  return socket instanceof WrappedSocket ? socket.socket : socket;
}
