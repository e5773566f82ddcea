/** UDP on loopback for tests: free ports, a header-reading echo backend, clients bound to 127.0.0.X. */
import dgram from 'node:dgram';
import net from 'node:net';
import { decodeDatagram } from '../../ts/protocols/proxy/datagram.js';
import type { IProxyHeader } from '../../ts/protocols/proxy/types.js';

const PORT_POOL_START = 20000;
const PORT_POOL_END = 32000;

function canBind(port: number, kind: 'udp' | 'tcp'): Promise<boolean> {
  return new Promise((resolve) => {
    if (kind === 'tcp') {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
      return;
    }
    const socket = dgram.createSocket('udp6');
    socket.once('error', () => resolve(false));
    socket.bind(port, '::', () => socket.close(() => resolve(true)));
  });
}

/** A port free for UDP (on every address) and for TCP on 127.0.0.1: UDP and TCP routes may share it. */
export async function freeUdpPort(): Promise<number> {
  for (;;) {
    const port = PORT_POOL_START + Math.floor(Math.random() * (PORT_POOL_END - PORT_POOL_START));
    if ((await canBind(port, 'udp')) && (await canBind(port, 'tcp'))) return port;
  }
}

export interface IUdpEcho {
  port: number;
  /** Headers seen, in order of arrival (null for a datagram without one). */
  headers: Array<IProxyHeader | null>;
  datagrams: number;
  close(): Promise<void>;
}

/**
 * A UDP backend that reads a PROXY v2 header when one is there and answers
 * `<client ip> <client port>|<payload>`: the client it saw (the header's source, else the peer).
 */
export function startUdpEcho(host = '127.0.0.1'): Promise<IUdpEcho> {
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const echo: IUdpEcho = {
    port: 0,
    headers: [],
    datagrams: 0,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (msg, rinfo) => {
    echo.datagrams++;
    const decoded = decodeDatagram(msg);
    const header = decoded.status === 'header' ? decoded.header : null;
    echo.headers.push(header);
    const source = header?.source;
    const client = source && 'address' in source ? `${source.address} ${source.port}` : `${rinfo.address} ${rinfo.port}`;
    socket.send(Buffer.concat([Buffer.from(`${client}|`), decoded.payload]), rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => {
      echo.port = socket.address().port;
      resolve(echo);
    });
  });
}

export interface IUdpClient {
  address: string;
  port: number;
  socket: dgram.Socket;
  /** Sends `payload` and resolves with the next datagram back, or rejects after `timeoutMs`. */
  request(payload: Buffer | string, timeoutMs?: number): Promise<Buffer>;
  /** Sends and expects nothing back within `ms`; resolves true when nothing came. */
  silent(payload: Buffer | string, ms?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** A UDP client bound to `address` (e.g. 127.0.0.5), talking to 127.0.0.1:`port` by default. */
export function udpClient(address: string, port: number, host = '127.0.0.1'): Promise<IUdpClient> {
  const socket = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  const waiting: Array<(msg: Buffer) => void> = [];
  socket.on('message', (msg) => waiting.shift()?.(msg));
  const receive = (ms: number): Promise<Buffer | null> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = waiting.indexOf(done);
        if (i >= 0) waiting.splice(i, 1);
        resolve(null);
      }, ms);
      const done = (msg: Buffer): void => {
        clearTimeout(timer);
        resolve(msg);
      };
      waiting.push(done);
    });
  const client: IUdpClient = {
    address,
    port: 0,
    socket,
    request: async (payload, timeoutMs = 2000) => {
      const reply = receive(timeoutMs);
      socket.send(payload, port, host);
      const msg = await reply;
      if (msg === null) throw new Error(`no reply within ${timeoutMs} ms to ${address}:${client.port}`);
      return msg;
    },
    silent: async (payload, ms = 150) => {
      const reply = receive(ms);
      socket.send(payload, port, host);
      return (await reply) === null;
    },
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, address, () => {
      client.port = socket.address().port;
      resolve(client);
    });
  });
}

/** How many UDP sockets this process holds (to show nothing leaked); Node names them 'UDPWrap'. */
export function udpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
}
