/** TLS helpers: real ClientHellos captured from Node's TLS client, re-framed as tests need. */
import net from 'node:net';
import tls from 'node:tls';
import { startServer } from './net.js';

/** The exact bytes Node's TLS client sends first for `servername` (undefined: no SNI). */
export async function captureClientHello(servername: string | undefined, alpn?: string[]): Promise<Buffer> {
  let resolveHello!: (b: Buffer) => void;
  const hello = new Promise<Buffer>((r) => (resolveHello = r));
  const server = await startServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
        resolveHello(all);
        socket.destroy();
      }
    });
  });
  const client = tls.connect({ port: server.port, host: '127.0.0.1', servername, ALPNProtocols: alpn, rejectUnauthorized: false });
  client.on('error', () => undefined);
  const bytes = await hello;
  client.destroy();
  await server.close();
  return bytes;
}

/** Splits the handshake of a single-record ClientHello into records of at most `size` bytes. */
export function reframe(hello: Buffer, size: number): Buffer {
  const version = hello.subarray(1, 3);
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let off = 0; off < body.length; off += size) {
    const part = body.subarray(off, Math.min(off + size, body.length));
    const head = Buffer.from([0x16, version[0], version[1], 0, 0]);
    head.writeUInt16BE(part.length, 3);
    records.push(head, part);
  }
  return Buffer.concat(records);
}

/** Writes `data` in pieces cut at `offsets`, waiting between writes so they are separate segments. */
export async function writeSplit(socket: net.Socket, data: Buffer, offsets: number[], gapMs = 15): Promise<void> {
  let start = 0;
  for (const cut of [...offsets, data.length]) {
    if (cut <= start) continue;
    socket.write(data.subarray(start, cut));
    start = cut;
    await new Promise((r) => setTimeout(r, gapMs));
  }
}

/** A TLS server that answers each connection with `tag` and its SNI, then echoes. */
export async function startTlsTaggedServer(tag: string, cert: { key: string; cert: string }): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key: cert.key, cert: cert.cert }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write(`${tag} ${(socket as tls.TLSSocket & { servername?: string }).servername ?? '-'}\n`);
    socket.pipe(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A TLS client whose TCP connection leaves from `localAddress` (to look like a distinct host). */
export function tlsConnectFrom(port: number, localAddress: string, options: tls.ConnectionOptions): tls.TLSSocket {
  const raw = net.connect({ port, host: '127.0.0.1', localAddress });
  raw.on('error', () => undefined);
  return tls.connect({ ...options, socket: raw });
}
