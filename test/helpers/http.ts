/** HTTP backends and clients for the HTTP route tests: real servers on loopback, reports as JSON. */
import http from 'node:http';
import type net from 'node:net';
import { getProxyHeader, withProxyProtocol } from '../../ts/index.js';

/** What the backend saw of one request. */
export interface IBackendReport {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bodyLength: number;
  /** Identifies the backend connection the request came on (the proxy's source port). */
  connection: number;
  /** The PROXY header's source on that connection, when the backend reads headers. */
  proxySource: string | null;
}

export interface IHttpBackend {
  port: number;
  reports: IBackendReport[];
  /** Backend connections accepted. */
  connections: number;
  close(): Promise<void>;
}

export interface IBackendOptions {
  /** Read a PROXY header from 127.0.0.1 first (withProxyProtocol). */
  proxy?: boolean;
  /** Answer after this many milliseconds. */
  delayMs?: number;
}

function sourceOf(socket: net.Socket): string | null {
  const header = getProxyHeader(socket);
  const source = header?.source;
  return source && 'address' in source ? `${source.address}:${source.port}` : null;
}

/** Answers every request with a JSON report of what it saw. */
export async function startHttpBackend(options: IBackendOptions = {}): Promise<IHttpBackend> {
  const reports: IBackendReport[] = [];
  const plain = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    let bodyLength = 0;
    req.on('data', (chunk: Buffer) => (bodyLength += chunk.length));
    req.on('end', () => {
      const report: IBackendReport = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyLength, connection: req.socket.remotePort ?? 0, proxySource: options.proxy ? sourceOf(req.socket) : null };
      reports.push(report);
      const answer = (): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(report));
      if (options.delayMs) setTimeout(answer, options.delayMs);
      else answer();
    });
  });
  const server = options.proxy ? withProxyProtocol(plain, { proxyIPs: ['127.0.0.1'] }) : plain;
  const state = { connections: 0 };
  server.on('connection', () => state.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    reports,
    get connections() {
      return state.connections;
    },
    close: () => {
      plain.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface IResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The client's local port: which client connection carried the request. */
  clientPort: number;
}

export interface IRequestOptions {
  method?: string;
  path?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  localAddress?: string;
  agent?: http.Agent | false;
  host?: string;
}

export function request(port: number, options: IRequestOptions = {}): Promise<IResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: options.host ?? '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers: options.headers, localAddress: options.localAddress, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), clientPort: req.socket?.localPort ?? 0 }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The backend's report in a 200 answer. */
export function reportOf(response: IResponse): IBackendReport {
  if (response.status !== 200) throw new Error(`expected 200, got ${response.status}: ${response.body}`);
  return JSON.parse(response.body) as IBackendReport;
}
