/** Real sockets on loopback for tests: free ports, backends, clients, certificates. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ProxyProtocolDecoder } from '../../ts/protocols/proxy/parser.js';
import type { IProxyHeader } from '../../ts/protocols/proxy/types.js';

// Ports are picked below the kernel's ephemeral range (32768+ here), so the client sockets tests
// open can never take a port between the check and the listen.
const PORT_POOL_START = 20000;
const PORT_POOL_END = 32000;

function canListen(port: number, host: string): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** A port nothing listens on, or `count` consecutive ones (for port-range routes). */
export async function freePort(host = '127.0.0.1', count = 1): Promise<number> {
  for (;;) {
    const base = PORT_POOL_START + Math.floor(Math.random() * (PORT_POOL_END - PORT_POOL_START - count));
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await canListen(base + i, host);
    if (ok) return base;
  }
}

export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export interface ITestServer {
  port: number;
  server: net.Server;
  sockets: Set<net.Socket>;
  connections: number;
  close(): Promise<void>;
}

/** A TCP server on loopback; `onSocket` gets every connection. close() destroys what is left. */
export async function startServer(onSocket: (socket: net.Socket) => void, opts: { port?: number; host?: string; allowHalfOpen?: boolean } = {}): Promise<ITestServer> {
  const sockets = new Set<net.Socket>();
  const state: ITestServer = {
    port: 0,
    server: net.createServer({ allowHalfOpen: opts.allowHalfOpen ?? false }, (socket) => {
      state.connections++;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      onSocket(socket);
    }),
    sockets,
    connections: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => state.server.close(() => resolve()));
    },
  };
  await new Promise<void>((resolve, reject) => {
    state.server.once('error', reject);
    state.server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  state.port = (state.server.address() as net.AddressInfo).port;
  return state;
}

/** Echoes every byte back. */
export function startEchoServer(opts: { port?: number; allowHalfOpen?: boolean } = {}): Promise<ITestServer> {
  return startServer((socket) => socket.pipe(socket), opts);
}

/** Answers each connection with a fixed tag then echoes: tells tests which backend they reached. */
export function startTaggedEchoServer(tag: string): Promise<ITestServer> {
  return startServer((socket) => {
    socket.write(`${tag}\n`);
    socket.pipe(socket);
  });
}

export interface IHeaderReport {
  peer: string;
  header: null | {
    version: number;
    command: string;
    family: string;
    source: unknown;
    destination: unknown;
    authority?: string;
    alpn?: string;
    uniqueId?: string;
    crc32c?: number;
    tlvTypes: number[];
    ssl?: { version?: string; cipher?: string; cn?: string; client: number; verify: number };
  };
  error?: string;
}

/**
 * A PROXY-aware backend: reads one header, answers with a JSON line describing it, then echoes.
 * `reports` keeps every report for assertions.
 */
export async function startHeaderReportingServer(): Promise<ITestServer & { reports: IHeaderReport[] }> {
  const reports: IHeaderReport[] = [];
  const server = await startServer((socket) => {
    const decoder = new ProxyProtocolDecoder();
    const onData = (chunk: Buffer): void => {
      let report: IHeaderReport;
      try {
        const result = decoder.push(chunk);
        if (result.status === 'incomplete') return;
        const h: IProxyHeader | null = result.status === 'complete' ? result.header : null;
        report = {
          peer: socket.remoteAddress ?? '',
          header: h && {
            version: h.version,
            command: h.command,
            family: h.family,
            source: h.source,
            destination: h.destination,
            authority: h.authority,
            alpn: h.alpn,
            uniqueId: h.uniqueId?.toString('latin1'),
            crc32c: h.crc32c,
            tlvTypes: h.tlvs.map((t) => t.type),
            ssl: h.ssl && { version: h.ssl.version, cipher: h.ssl.cipher, cn: h.ssl.cn, client: h.ssl.client, verify: h.ssl.verify },
          },
        };
      } catch (err) {
        report = { peer: socket.remoteAddress ?? '', header: null, error: (err as { code?: string }).code };
      }
      socket.off('data', onData);
      reports.push(report);
      socket.write(JSON.stringify(report) + '\n');
      if (decoder.remaining.length > 0) socket.write(decoder.remaining);
      socket.pipe(socket);
    };
    socket.on('data', onData);
  });
  return Object.assign(server, { reports });
}

export interface IClientOptions {
  port: number;
  host?: string;
  localAddress?: string;
  allowHalfOpen?: boolean;
}

export function connect(opts: IClientOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: opts.port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress, allowHalfOpen: opts.allowHalfOpen });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Collects everything a socket sends until it closes (or `timeoutMs`). */
export function readAll(socket: net.Socket, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(done, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('close', done);
    socket.on('error', () => undefined);
    function done(): void {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    }
  });
}

const leftovers = new WeakMap<net.Socket, string>();

/** Reads one newline-terminated line; bytes after it are kept for the next readLine on that socket. */
export function readLine(socket: net.Socket, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = leftovers.get(socket) ?? '';
    leftovers.delete(socket);
    const finish = (): boolean => {
      const nl = text.indexOf('\n');
      if (nl < 0) return false;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (nl + 1 < text.length) leftovers.set(socket, text.slice(nl + 1));
      resolve(text.slice(0, nl));
      return true;
    };
    const onData = (c: Buffer): void => {
      text += c.toString('latin1');
      finish();
    };
    const onClose = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(text);
    };
    const timer = setTimeout(() => {
      socket.off('data', onData);
      socket.off('close', onClose);
      reject(new Error(`no line within ${timeoutMs} ms (got ${JSON.stringify(text)})`));
    }, timeoutMs);
    if (finish()) return;
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** Resolves when the socket closes; `true` if it did within `timeoutMs`. */
export function closed(socket: net.Socket, timeoutMs = 5000): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.on('error', () => undefined);
  });
}

export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ICertificate {
  key: string;
  cert: string;
}

const certCache = new Map<string, ICertificate>();

/** A self-signed certificate for `names` (first is the CN), made with the openssl binary. */
export function makeCertificate(names: string[]): ICertificate {
  const id = names.join(',');
  const cached = certCache.get(id);
  if (cached) return cached;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smartproxy-cert-'));
  const san = names.map((n) => (net.isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2',
    '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${san}`,
  ], { stdio: 'ignore' });
  const result = {
    key: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'),
    cert: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
  };
  fs.rmSync(dir, { recursive: true, force: true });
  certCache.set(id, result);
  return result;
}
