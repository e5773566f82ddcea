/**
 * WrappedSocket: a net.Socket plus the real client address (from a PROXY header, when one was
 * believed). Socket methods and properties are forwarded explicitly — no JS Proxy trap per call —
 * and the proxy's byte-moving path uses `socket` (the raw one) directly.
 */
import type net from 'node:net';
import { normalizeIP } from '../utils/ip-utils.js';
import type { IProxyHeader } from '../../protocols/proxy/types.js';

export class WrappedSocket {
  /** The raw socket. */
  public readonly socket: net.Socket;
  /** Whether the TCP peer is in `proxyIPs` (so its PROXY header is believed). */
  public readonly isFromTrustedProxy: boolean;
  /** The received PROXY header, when one was read. */
  public proxyHeader: IProxyHeader | null = null;
  private realIP: string | undefined;
  private realPort: number | undefined;

  constructor(socket: net.Socket, isFromTrustedProxy = false) {
    this.socket = socket;
    this.isFromTrustedProxy = isFromTrustedProxy;
  }

  /** Records the real client behind a trusted proxy. IPv4-mapped addresses are unmapped. */
  setProxyInfo(ip: string, port: number): void {
    this.realIP = normalizeIP(ip);
    this.realPort = port;
  }

  /** The real client address if a PROXY header set one, else undefined. */
  get realClientIP(): string | undefined {
    return this.realIP;
  }

  get realClientPort(): number | undefined {
    return this.realPort;
  }

  /** Whether a PROXY header gave this connection a client address other than the TCP peer's. */
  get hasProxyInfo(): boolean {
    return this.realIP !== undefined;
  }

  /** The real client address once set, else the TCP peer's. */
  get remoteAddress(): string | undefined {
    return this.realIP ?? this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.realPort ?? this.socket.remotePort;
  }

  get remoteFamily(): string | undefined {
    if (this.realIP === undefined) return this.socket.remoteFamily;
    return this.realIP.includes(':') ? 'IPv6' : 'IPv4';
  }

  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.socket.localPort;
  }
  get destroyed(): boolean {
    return this.socket.destroyed;
  }
  get readable(): boolean {
    return this.socket.readable;
  }
  get writable(): boolean {
    return this.socket.writable;
  }
  get bytesRead(): number {
    return this.socket.bytesRead;
  }
  get bytesWritten(): number {
    return this.socket.bytesWritten;
  }

  write(data: string | Uint8Array, cb?: (err?: Error | null) => void): boolean {
    return this.socket.write(data, cb);
  }
  end(data?: string | Uint8Array): this {
    if (data === undefined) this.socket.end();
    else this.socket.end(data);
    return this;
  }
  destroy(error?: Error): this {
    this.socket.destroy(error);
    return this;
  }
  pause(): this {
    this.socket.pause();
    return this;
  }
  resume(): this {
    this.socket.resume();
    return this;
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.socket.setTimeout(ms, cb);
    return this;
  }
  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.socket.setKeepAlive(enable, initialDelay);
    return this;
  }
  pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    return this.socket.pipe(destination, options);
  }
  unshift(chunk: Buffer): void {
    this.socket.unshift(chunk);
  }

  // Events go straight to the raw socket: listeners see exactly what the socket emits.
  on(event: string, listener: (...args: any[]) => void): this {
    this.socket.on(event, listener);
    return this;
  }
  once(event: string, listener: (...args: any[]) => void): this {
    this.socket.once(event, listener);
    return this;
  }
  off(event: string, listener: (...args: any[]) => void): this {
    this.socket.off(event, listener);
    return this;
  }
  removeListener(event: string, listener: (...args: any[]) => void): this {
    return this.off(event, listener);
  }
  removeAllListeners(event?: string): this {
    this.socket.removeAllListeners(event);
    return this;
  }
  emit(event: string, ...args: unknown[]): boolean {
    return this.socket.emit(event, ...args);
  }
  listenerCount(event: string): number {
    return this.socket.listenerCount(event);
  }
}
