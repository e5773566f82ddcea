/**
 * Every kind of Node server withProxyProtocol supports, each with a real client of its protocol,
 * plus an injector: a relay that writes a PROXY header in two real writes cut at a chosen byte,
 * the second carrying the client's first bytes, so the header and what follows arrive split
 * exactly as a test asks.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { getProxyHeader } from '../../ts/index.js';
import { makeCertificate, readLine } from './net.js';

export const CERT = makeCertificate(['localhost', '127.0.0.1']);
const TLS_OPTIONS = { key: CERT.key, cert: CERT.cert };

/** What a server saw of one connection's socket. */
export interface IPeerReport {
  address: string | undefined;
  port: number | undefined;
  family: string | undefined;
  version: number | null;
  command: string | null;
  authority: string | null;
}

/** A server's answer: the socket the app got, and for HTTP/2 also the session's socket. */
export interface IReply {
  socket: IPeerReport;
  session?: IPeerReport;
  httpVersion?: string;
  echo?: string;
}

export function report(socket: Duplex): IPeerReport {
  const s = socket as net.Socket;
  const header = getProxyHeader(socket);
  return {
    address: s.remoteAddress,
    port: s.remotePort,
    family: s.remoteFamily,
    version: header?.version ?? null,
    command: header?.command ?? null,
    authority: header?.authority ?? null,
  };
}

function answerLine(socket: net.Socket): void {
  socket.on('error', () => undefined);
  void readLine(socket).then((echo) => socket.end(JSON.stringify({ socket: report(socket), echo } satisfies IReply) + '\n'), () => socket.destroy());
}

function answerHttp(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void {
  const reply: IReply = { socket: report(req.socket), httpVersion: req.httpVersion };
  if ('stream' in req && req.stream !== undefined) reply.session = report(req.stream.session?.socket as Duplex);
  res.end(JSON.stringify(reply));
}

export interface IServerKind {
  name: string;
  create(): net.Server;
  /** One exchange through `port`; `localPort` is the client's own TCP port. */
  ask(port: number, localAddress?: string): Promise<{ reply: IReply; localPort: number }>;
}

async function askLine(socket: net.Socket, ready: 'connect' | 'secureConnect'): Promise<{ reply: IReply; localPort: number }> {
  await new Promise<void>((resolve, reject) => {
    socket.once(ready, () => resolve());
    socket.once('error', reject);
  });
  const localPort = socket.localPort as number;
  socket.write('ping\n');
  const line = await readLine(socket);
  socket.destroy();
  return { reply: JSON.parse(line) as IReply, localPort };
}

function askHttp1(port: number, secure: boolean, localAddress?: string): Promise<{ reply: IReply; localPort: number }> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, path: '/', agent: false, localAddress, ca: CERT.cert, servername: 'localhost' };
    const req = (secure ? https : http).get(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ reply: JSON.parse(Buffer.concat(chunks).toString()) as IReply, localPort: req.socket?.localPort as number }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function askHttp2(port: number, secure: boolean, localAddress?: string): Promise<{ reply: IReply; localPort: number }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`${secure ? 'https' : 'http'}://127.0.0.1:${port}`, {
      ca: CERT.cert,
      servername: 'localhost',
      createConnection: localAddress === undefined ? undefined : () => tlsOrPlain(port, secure, localAddress),
    });
    session.on('error', reject);
    const stream = session.request({ ':path': '/' });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const localPort = session.socket.localPort as number;
      session.close();
      resolve({ reply: JSON.parse(Buffer.concat(chunks).toString()) as IReply, localPort });
    });
    stream.on('error', reject);
  });
}

function tlsOrPlain(port: number, secure: boolean, localAddress: string): Duplex {
  if (!secure) return net.connect({ port, host: '127.0.0.1', localAddress });
  return tls.connect({ socket: net.connect({ port, host: '127.0.0.1', localAddress }), ca: CERT.cert, servername: 'localhost', ALPNProtocols: ['h2'] });
}

export const SERVER_KINDS: readonly IServerKind[] = [
  {
    name: 'net.Server',
    create: () => net.createServer(answerLine),
    ask: (port, localAddress) => askLine(net.connect({ port, host: '127.0.0.1', localAddress }), 'connect'),
  },
  {
    name: 'tls.Server',
    create: () => tls.createServer(TLS_OPTIONS, answerLine),
    ask: (port, localAddress) => askLine(tls.connect({ socket: net.connect({ port, host: '127.0.0.1', localAddress }), ca: CERT.cert, servername: 'localhost' }), 'secureConnect'),
  },
  { name: 'http.Server', create: () => http.createServer(answerHttp), ask: (port, la) => askHttp1(port, false, la) },
  { name: 'https.Server', create: () => https.createServer(TLS_OPTIONS, answerHttp), ask: (port, la) => askHttp1(port, true, la) },
  { name: 'http2.createServer', create: () => http2.createServer(answerHttp), ask: (port, la) => askHttp2(port, false, la) },
  { name: 'http2.createSecureServer', create: () => http2.createSecureServer(TLS_OPTIONS, answerHttp), ask: (port, la) => askHttp2(port, true, la) },
  {
    name: 'http2.createSecureServer allowHTTP1, HTTP/2 client',
    create: () => http2.createSecureServer({ ...TLS_OPTIONS, allowHTTP1: true }, answerHttp),
    ask: (port, la) => askHttp2(port, true, la),
  },
  {
    name: 'http2.createSecureServer allowHTTP1, HTTP/1.1 client',
    create: () => http2.createSecureServer({ ...TLS_OPTIONS, allowHTTP1: true }, answerHttp),
    ask: (port, la) => askHttp1(port, true, la),
  },
];

/** Listens on loopback (on `port`, or one the system picks); close() also ends what clients left open. */
export async function listen(server: net.Server, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface IInjector {
  port: number;
  /** Cuts taken by connections so far, in arrival order. */
  used: number[];
  close(): Promise<void>;
}

/**
 * A relay to `target` that, for each connection, takes the next cut from `cuts`, waits for the
 * client's first bytes, writes `header(clientPort)` up to the cut, then after `gapMs` the rest of
 * the header together with those first bytes, then relays both ways.
 */
export async function startInjector(target: number, header: (clientPort: number) => Buffer, cuts: number[], gapMs = 10): Promise<IInjector> {
  const queue = [...cuts];
  const used: number[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };
  const server = net.createServer((client) => {
    track(client);
    const upstream = net.connect({ port: target, host: '127.0.0.1', noDelay: true });
    track(upstream);
    const cut = queue.shift() ?? 0;
    const bytes = header(client.remotePort as number);
    client.once('data', (first: Buffer) => {
      client.pause();
      used.push(cut);
      if (cut > 0) upstream.write(bytes.subarray(0, cut));
      setTimeout(() => {
        upstream.write(Buffer.concat([bytes.subarray(cut), first]));
        client.pipe(upstream);
        upstream.pipe(client);
      }, cut > 0 ? gapMs : 0);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    used,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
