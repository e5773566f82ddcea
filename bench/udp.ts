/**
 * npm run bench:udp — datagrams/s, request/response, through one hop: SmartProxy sending PROXY v2,
 * the minimal Node relay (the floor) and nginx `stream` UDP (no PROXY, a reference), in one run.
 * Each hop and the backend in its own process; this process is the load generator. Contenders run
 * interleaved, medians reported with the ratio to the relay.
 *   --rounds N (default 3)   --seconds S per measurement (default 2)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import { findBinary, type IPeer, startNginx } from '../test/helpers/peers.js';
import { freeUdpPort } from '../test/helpers/udp.js';
import { median } from './micro.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '2' } } });
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const CLIENTS = 16;
const WINDOW = 4;
const SIZES = [64, 1200];

const children: ChildProcess[] = [];

function role(name: string, spec: string): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/udp-peers.ts', name, spec], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
  });
}

/** Replies per second from CLIENTS sockets with WINDOW requests each in flight, over SECONDS. */
async function measure(port: number, size: number): Promise<number> {
  const payload = Buffer.alloc(size, 0x61);
  let replies = 0;
  let running = true;
  const sockets = await Promise.all(
    Array.from({ length: CLIENTS }, () => {
      const socket = dgram.createSocket('udp4');
      socket.on('message', () => {
        replies++;
        if (running) socket.send(payload, port, '127.0.0.1');
      });
      return new Promise<dgram.Socket>((resolve) => socket.bind(0, '127.0.0.1', () => resolve(socket)));
    }),
  );
  for (const socket of sockets) for (let i = 0; i < WINDOW; i++) socket.send(payload, port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 300));
  const start = replies;
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const counted = replies - start;
  running = false;
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return counted / SECONDS;
}

async function main(): Promise<void> {
  const backendPort = await freeUdpPort();
  await role('backend', String(backendPort));
  const contenders: Array<{ name: string; port: number }> = [];
  const relayPort = await freeUdpPort();
  await role('relay', `${relayPort}:${backendPort}`);
  contenders.push({ name: 'node dgram relay (floor)', port: relayPort });
  const smartPort = await freeUdpPort();
  await role('smartproxy', `${smartPort}:${backendPort}`);
  contenders.push({ name: 'SmartProxy, PROXY v2 out', port: smartPort });
  let nginx: IPeer | null = null;
  if (findBinary('nginx')) {
    const nginxPort = await freeUdpPort();
    const tcpPort = await freeUdpPort();
    // startNginx waits for a TCP port: a tiny TCP server beside the UDP one says it is up.
    nginx = await startNginx(`stream { server { listen 127.0.0.1:${nginxPort} udp; proxy_pass 127.0.0.1:${backendPort}; proxy_responses 1; proxy_timeout 5s; } server { listen 127.0.0.1:${tcpPort}; return ok; } }`, [tcpPort]);
    contenders.push({ name: 'nginx stream udp (no PROXY)', port: nginxPort });
  }
  console.log(`method: ${ROUNDS} interleaved rounds × ${SECONDS} s; ${CLIENTS} clients × ${WINDOW} in flight; request/response; each hop its own process\n`);
  for (const size of SIZES) {
    const results = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    for (let r = 0; r < ROUNDS; r++) for (const c of contenders) results.get(c.name)?.push(await measure(c.port, size));
    const floor = median(results.get(contenders[0].name) ?? [0]);
    console.log(`${size}-byte payloads`);
    for (const c of contenders) {
      const m = median(results.get(c.name) ?? [0]);
      console.log(`  ${c.name.padEnd(30)} ${Math.round(m).toString().padStart(8)} datagrams/s   ${(m / floor).toFixed(2)}×`);
    }
  }
  await nginx?.stop();
}

try {
  await main();
} finally {
  for (const child of children) child.kill('SIGTERM');
}
