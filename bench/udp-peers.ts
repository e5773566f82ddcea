/**
 * Processes for `npm run bench:udp`, one role each (first stdout line: "ready"):
 *   backend <port>                   echo that removes a PROXY v2 header when one is there
 *   relay <port>:<targetPort>        the Node floor: one backend socket per client, no header
 *   smartproxy <port>:<targetPort>   SmartProxy, one UDP route sending v2
 */
import dgram from 'node:dgram';
import { decodeDatagram } from '../ts/protocols/proxy/datagram.js';
import { SmartProxy } from '../ts/proxies/smart-proxy/smart-proxy.js';

function bind(socket: dgram.Socket, port: number): Promise<void> {
  return new Promise((resolve) => socket.bind(port, '127.0.0.1', resolve));
}

async function backend(port: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => socket.send(decodeDatagram(msg).payload, rinfo.port, rinfo.address));
  await bind(socket, port);
}

/** The least a Node UDP relay does: a map from client to backend socket, payloads copied through untouched. */
async function relay(port: number, target: number): Promise<void> {
  const front = dgram.createSocket('udp4');
  const flows = new Map<string, dgram.Socket>();
  const pending = new Map<dgram.Socket, Buffer[]>();
  front.on('message', (msg, rinfo) => {
    const key = `${rinfo.address} ${rinfo.port}`;
    let back = flows.get(key);
    if (back === undefined) {
      const socket = dgram.createSocket('udp4');
      socket.on('message', (reply) => front.send(reply, rinfo.port, rinfo.address));
      // Connected, as SmartProxy's are: no address lookup per datagram. Sends wait for the connect.
      socket.connect(target, '127.0.0.1', () => {
        for (const queued of pending.get(socket) ?? []) socket.send(queued);
        pending.delete(socket);
      });
      pending.set(socket, []);
      flows.set(key, (back = socket));
    }
    const queue = pending.get(back);
    if (queue !== undefined) queue.push(msg);
    else back.send(msg);
  });
  await bind(front, port);
}

async function smartproxy(port: number, target: number): Promise<void> {
  const proxy = new SmartProxy({
    listenAddress: '127.0.0.1',
    routes: [{ name: 'udp', match: { ports: port, transport: 'udp' }, action: { type: 'forward', target: { host: '127.0.0.1', port: target }, sendProxyProtocol: { version: 2 } } }],
  });
  await proxy.start();
}

const [role, spec] = process.argv.slice(2);
const [port, target] = spec.split(':').map(Number);
if (role === 'backend') await backend(port);
else if (role === 'relay') await relay(port, target);
else await smartproxy(port, target);
console.log('ready');
process.on('SIGTERM', () => process.exit(0));
