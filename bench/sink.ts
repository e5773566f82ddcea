/**
 * Backend servers for npm run bench, in their own process. Each reads an optional PROXY header
 * first (through the real decoder), then:
 *   bulk: sinks what it receives and streams back as fast as the socket drains;
 *   rate: reads 100 bytes, answers 100 bytes, ends.
 *   hold: keeps the connection open, reading nothing (idle-memory test).
 * Prints one JSON line with the ports.
 */
import net from 'node:net';
import { ProxyProtocolDecoder } from '../ts/index.js';

const PAYLOAD = 100;
const CHUNK = Buffer.alloc(256 * 1024, 0x61);

function withHeader(expectHeader: boolean, then: (socket: net.Socket, first: Buffer) => void): (socket: net.Socket) => void {
  return (socket) => {
    socket.on('error', () => undefined);
    if (!expectHeader) {
      then(socket, Buffer.alloc(0));
      return;
    }
    const decoder = new ProxyProtocolDecoder();
    const onData = (chunk: Buffer): void => {
      const result = decoder.push(chunk);
      if (result.status === 'incomplete') return;
      socket.off('data', onData);
      if (result.status !== 'complete') {
        socket.destroy();
        return;
      }
      then(socket, decoder.remaining);
    };
    socket.on('data', onData);
  };
}

function bulk(socket: net.Socket): void {
  socket.on('data', () => undefined);
  const pump = (): void => {
    while (!socket.destroyed && socket.write(CHUNK));
  };
  socket.on('drain', pump);
  pump();
}

function rate(socket: net.Socket, first: Buffer): void {
  let got = first.length;
  const check = (): void => {
    if (got >= PAYLOAD) {
      socket.off('data', onData);
      socket.end(CHUNK.subarray(0, PAYLOAD));
    }
  };
  const onData = (chunk: Buffer): void => {
    got += chunk.length;
    check();
  };
  socket.on('data', onData);
  check();
}

function hold(socket: net.Socket): void {
  socket.pause();
}

async function listen(handler: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer({ noDelay: true }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

const ports = {
  bulkPlain: await listen(withHeader(false, bulk)),
  bulkHeader: await listen(withHeader(true, bulk)),
  ratePlain: await listen(withHeader(false, rate)),
  rateHeader: await listen(withHeader(true, rate)),
  holdHeader: await listen(withHeader(true, hold)),
};
console.log(JSON.stringify(ports));
process.on('SIGTERM', () => process.exit(0));
