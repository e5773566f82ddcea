/**
 * npm run soak — does anything leak under churn? Client → outer SmartProxy (sends v2) → inner
 * SmartProxy (accepts v2 from the outer only, sends v2) → backend, each proxy in its own process.
 *
 * Every connection sends a random-sized payload and gets one back; both are verified by SHA-1, and
 * the backend checks the PROXY header names the real client. Mixed in: clients that reset
 * mid-stream, a backend restart, slowloris clients, spoofed headers. Exits non-zero on a leak
 * (active connections, file descriptors), a byte that differed, or an unexplained failure.
 *
 *   --connections N (20000)  --concurrency N (200)  --max-size BYTES (1048576)  --quiet
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { ProxyProtocolDecoder } from '../ts/index.js';
import type { ISmartProxyStatistics } from '../ts/index.js';
import { freePort } from '../test/helpers/net.js';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '200' },
    'max-size': { type: 'string', default: String(1024 * 1024) },
    quiet: { type: 'boolean', default: false },
  },
});
const CONNECTIONS = Number(args.connections);
const CONCURRENCY = Number(args.concurrency);
const MAX_SIZE = Number(args['max-size']);
const RESET_SHARE = 0.05;
const SLOWLORIS = 5;
const SPOOFS = 20;
const FD_TOLERANCE = 10;
const PROXY_HEADER_TIMEOUT = 1500;
const POOL = randomBytes(2 * 1024 * 1024);

const log = (line: string): void => {
  if (!args.quiet) console.log(line);
};

/** Log-uniform size in [1, MAX_SIZE]: many small payloads, some large, like real traffic. */
function randomSize(): number {
  return Math.max(1, Math.floor(Math.exp(Math.random() * Math.log(MAX_SIZE))));
}

function sha1(...parts: Buffer[]): string {
  const hash = createHash('sha1');
  for (const p of parts) hash.update(p);
  return hash.digest('hex');
}

// ---- proxies in child processes -------------------------------------------------------------

interface IHop {
  child: ChildProcess;
  ask(): Promise<{ stats: ISmartProxyStatistics; memory: NodeJS.MemoryUsage; fds: number }>;
  stop(): Promise<void>;
}

function startHop(options: unknown): Promise<IHop> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/smartproxy-hop.ts', JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buffer = '';
  const waiters: Array<(line: string) => void> = [];
  child.stdout?.on('data', (d) => {
    buffer += d;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      waiters.shift()?.(line);
    }
  });
  const next = () => new Promise<string>((resolve) => waiters.push(resolve));
  return next().then(() => ({
    child,
    ask: async () => {
      const reply = next();
      child.stdin?.write('stats\n');
      return JSON.parse(await reply);
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  }));
}

// ---- backend (in this process, so it can be restarted) -----------------------------------------

/**
 * Protocol after the PROXY header: the client sends "<up> <down> <offset> <ip>:<port>\n" and `up`
 * bytes; the backend answers "<sha1 of what it got> <ok|ERR reason>\n" and POOL[offset, offset+down).
 */
class Backend {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  wrongAddress = 0;

  constructor(readonly port: number) {}

  async start(): Promise<void> {
    this.server = net.createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve) => this.server?.listen(this.port, '127.0.0.1', resolve));
  }

  /** Stops accepting and drops every live connection, as a crashing backend would. */
  async crash(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const decoder = new ProxyProtocolDecoder();
    let stage: 'header' | 'request' | 'body' = 'header';
    let text = '';
    let want = 0;
    let down = 0;
    let offset = 0;
    let verdict = 'ok';
    const hash = createHash('sha1');
    const onBody = (chunk: Buffer): void => {
      hash.update(chunk);
      want -= chunk.length;
      if (want > 0) return;
      socket.off('data', onData);
      socket.write(`${hash.digest('hex')} ${verdict}\n`);
      socket.end(POOL.subarray(offset, offset + down));
    };
    const onData = (chunk: Buffer): void => {
      if (stage === 'header') {
        const r = decoder.push(chunk);
        if (r.status === 'incomplete') return;
        if (r.status !== 'complete') {
          socket.destroy();
          return;
        }
        const src = r.header.source;
        text = `${src && 'address' in src ? `${src.address}:${src.port}` : '?'}|`;
        stage = 'request';
        chunk = decoder.remaining;
      }
      if (stage === 'request') {
        const before = text.length;
        text += chunk.toString('latin1');
        const nl = text.indexOf('\n');
        if (nl < 0) return;
        const [claimed, line] = text.slice(0, nl).split('|');
        const [up, dn, off, client] = line.split(' ');
        if (client !== claimed) {
          verdict = `ERR PROXY header said ${claimed}, client is ${client}`;
          this.wrongAddress++;
        }
        want = Number(up);
        down = Number(dn);
        offset = Number(off);
        stage = 'body';
        chunk = chunk.subarray(nl + 1 - before);
      }
      onBody(chunk);
    };
    socket.on('data', onData);
  }
}

// ---- clients ----------------------------------------------------------------------------------

type Outcome = 'ok' | 'reset (intended)' | 'closed during backend restart' | 'closed unexpectedly' | 'upload hash differs' | 'download hash differs' | 'wrong client address';

interface ITally {
  outcomes: Map<Outcome, number>;
  bytesUp: number;
  bytesDown: number;
}

let restartWindow: { from: number; to: number } | null = null;

function overlapsRestart(start: number, end: number): boolean {
  if (restartWindow === null) return false;
  return start <= restartWindow.to + 200 && end >= restartWindow.from - 200;
}

function oneConnection(port: number, index: number, tally: ITally): Promise<void> {
  const up = randomSize();
  const down = randomSize();
  const upOffset = Math.floor(Math.random() * (POOL.length - up));
  const downOffset = Math.floor(Math.random() * (POOL.length - down));
  const willReset = Math.random() < RESET_SHARE;
  const localAddress = `127.0.${1 + (index % 3)}.${10 + (index % 200)}`;
  const started = Date.now();
  const count = (o: Outcome) => tally.outcomes.set(o, (tally.outcomes.get(o) ?? 0) + 1);
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const received: Buffer[] = [];
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      socket.write(`${up} ${down} ${downOffset} ${localAddress}:${socket.localPort}\n`);
      const body = POOL.subarray(upOffset, upOffset + up);
      if (willReset) {
        socket.write(body.subarray(0, Math.floor(up / 2)));
        setTimeout(() => socket.resetAndDestroy(), 5);
      } else socket.write(body);
    });
    // Bounded: a connection that has not finished in 30 s is a failure, not a hang.
    const watchdog = setTimeout(() => socket.destroy(), 30_000);
    socket.on('data', (d: Buffer) => received.push(d));
    socket.once('close', () => {
      clearTimeout(watchdog);
      if (willReset) {
        count('reset (intended)');
        return resolve();
      }
      const all = Buffer.concat(received);
      const nl = all.indexOf(0x0a);
      const line = nl >= 0 ? all.subarray(0, nl).toString('latin1') : '';
      const body = nl >= 0 ? all.subarray(nl + 1) : Buffer.alloc(0);
      const [digest, ...verdict] = line.split(' ');
      if (nl < 0 || body.length !== down) count(overlapsRestart(started, Date.now()) ? 'closed during backend restart' : 'closed unexpectedly');
      else if (verdict.join(' ') !== 'ok') count('wrong client address');
      else if (digest !== sha1(POOL.subarray(upOffset, upOffset + up))) count('upload hash differs');
      else if (sha1(body) !== sha1(POOL.subarray(downOffset, downOffset + down))) count('download hash differs');
      else {
        count('ok');
        tally.bytesUp += up;
        tally.bytesDown += down;
      }
      resolve();
    });
  });
}

/** Drips a request one byte every 200 ms through the chain, then gives up. */
async function slowloris(port: number): Promise<void> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.9.1' });
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  for (let i = 0; i < 10 && !socket.destroyed; i++) {
    socket.write('9');
    await new Promise((r) => setTimeout(r, 200));
  }
  socket.destroy();
}

/** Drips a PROXY header into the inner hop from its trusted address: the header deadline ends it. */
async function slowHeader(port: number): Promise<void> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  const header = 'PROXY TCP4 10.9.9.9 10.0.0.1 1111 443\r\n';
  for (let i = 0; i < header.length && !socket.destroyed; i++) {
    socket.write(header[i]);
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!socket.destroyed) await new Promise((r) => socket.once('close', r));
}

/** An untrusted address sends a PROXY header straight to the inner hop: refused as spoofing. */
async function spoof(port: number): Promise<void> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.66.6' });
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  socket.write('PROXY TCP4 8.8.8.8 10.0.0.1 53 443\r\nGET / HTTP/1.0\r\n\r\n');
  await new Promise((r) => socket.once('close', r));
}

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

async function main(): Promise<number> {
  const started = Date.now();
  const [backendPort, innerPort, outerPort] = [await freePort(), await freePort(), await freePort()];
  const backend = new Backend(backendPort);
  await backend.start();
  const route = (port: number, target: number) => [{ name: 'r', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target } } }];
  const inner = await startHop({ listenAddress: '127.0.0.1', proxyIPs: ['127.0.0.1'], acceptProxyProtocol: true, proxyProtocolTimeout: PROXY_HEADER_TIMEOUT, sendProxyProtocol: true, proxyProtocolVersion: 2, proxyProtocolTlvs: { uniqueId: true, crc32c: true }, routes: route(innerPort, backendPort) });
  const outer = await startHop({ listenAddress: '127.0.0.1', sendProxyProtocol: true, proxyProtocolVersion: 2, proxyProtocolTlvs: { uniqueId: true }, routes: route(outerPort, innerPort) });
  const baseline = { self: openFds(), inner: await inner.ask(), outer: await outer.ask() };

  const tally: ITally = { outcomes: new Map(), bytesUp: 0, bytesDown: 0 };
  let next = 0;
  let restarted = false;
  const adversaries: Promise<void>[] = [];
  const worker = async (): Promise<void> => {
    while (next < CONNECTIONS) {
      const index = next++;
      if (!restarted && index >= CONNECTIONS / 2) {
        restarted = true;
        restartWindow = { from: Date.now(), to: Infinity };
        await backend.crash();
        setTimeout(() => {
          void backend.start().then(() => {
            if (restartWindow) restartWindow.to = Date.now();
          });
        }, 300);
      }
      if (index % Math.max(1, Math.floor(CONNECTIONS / SLOWLORIS)) === 7) adversaries.push(slowloris(outerPort), slowHeader(innerPort));
      if (index % Math.max(1, Math.floor(CONNECTIONS / SPOOFS)) === 3) adversaries.push(spoof(innerPort));
      const lost = tally.outcomes.get('closed during backend restart') ?? 0;
      await oneConnection(outerPort, index, tally);
      // While the backend is down, back off instead of spinning through refused connections.
      if ((tally.outcomes.get('closed during backend restart') ?? 0) > lost) await new Promise((r) => setTimeout(r, 50));
      if (!args.quiet && index > 0 && index % 2000 === 0) log(`  ${index} connections, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
  };
  log(`soak: ${CONNECTIONS} connections at concurrency ${CONCURRENCY}, payloads up to ${MAX_SIZE} bytes each way`);
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await Promise.all(adversaries);

  // Let closes settle, then compare with the baseline.
  let after = { inner: await inner.ask(), outer: await outer.ask() };
  for (let i = 0; i < 50 && (after.inner.stats.activeConnections > 0 || after.outer.stats.activeConnections > 0); i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = { inner: await inner.ask(), outer: await outer.ask() };
  }
  await backend.crash();
  await new Promise((r) => setTimeout(r, 200));
  const selfFds = openFds();

  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const rows: Array<[string, string]> = [];
  for (const [outcome, n] of [...tally.outcomes].sort((a, b) => b[1] - a[1])) rows.push([`connections: ${outcome}`, String(n)]);
  rows.push(['bytes verified (up / down)', `${mib(tally.bytesUp)} / ${mib(tally.bytesDown)}`]);
  rows.push(['active connections (outer / inner)', `${after.outer.stats.activeConnections} / ${after.inner.stats.activeConnections}`]);
  rows.push(['open fds outer (baseline → after)', `${baseline.outer.fds} → ${after.outer.fds}`]);
  rows.push(['open fds inner (baseline → after)', `${baseline.inner.fds} → ${after.inner.fds}`]);
  rows.push(['open fds load generator (baseline → after)', `${baseline.self} → ${selfFds}`]);
  rows.push(['heap used outer / inner (before → after)', `${mib(baseline.outer.memory.heapUsed)} → ${mib(after.outer.memory.heapUsed)} / ${mib(baseline.inner.memory.heapUsed)} → ${mib(after.inner.memory.heapUsed)}`]);
  rows.push(['RSS outer / inner (before → after)', `${mib(baseline.outer.memory.rss)} → ${mib(after.outer.memory.rss)} / ${mib(baseline.inner.memory.rss)} → ${mib(after.inner.memory.rss)}`]);
  const pp = after.inner.stats.proxyProtocol;
  rows.push(['inner PROXY: accepted v1 / v2 / local / unknown', `${pp.acceptedV1} / ${pp.acceptedV2} / ${pp.local} / ${pp.unknown}`]);
  rows.push(['inner PROXY: spoofing / timeouts / rejected', `${pp.spoofing} / ${pp.timeouts} / ${JSON.stringify(pp.rejected)}`]);
  rows.push(['PROXY headers sent (outer / inner)', `${after.outer.stats.proxyProtocol.sent} / ${pp.sent}`]);
  rows.push(['total connections (outer / inner)', `${after.outer.stats.totalConnections} / ${after.inner.stats.totalConnections}`]);
  rows.push(['reset before accept (outer / inner)', `${after.outer.stats.goneBeforeAccept} / ${after.inner.stats.goneBeforeAccept}`]);
  rows.push(['duration', `${((Date.now() - started) / 1000).toFixed(1)} s`]);

  const problems: string[] = [];
  if (after.outer.stats.activeConnections !== 0 || after.inner.stats.activeConnections !== 0) problems.push('connections left active');
  if (Math.abs(after.outer.fds - baseline.outer.fds) > FD_TOLERANCE || Math.abs(after.inner.fds - baseline.inner.fds) > FD_TOLERANCE) problems.push('file descriptors leaked in a proxy');
  if (Math.abs(selfFds - baseline.self) > FD_TOLERANCE) problems.push('file descriptors leaked in the load generator');
  for (const bad of ['upload hash differs', 'download hash differs', 'wrong client address', 'closed unexpectedly'] as const) {
    if ((tally.outcomes.get(bad) ?? 0) > 0) problems.push(bad);
  }
  if (pp.spoofing < 1 || pp.timeouts < 1) problems.push('adversaries were not refused as expected');
  if ((tally.outcomes.get('ok') ?? 0) < CONNECTIONS * 0.5) problems.push('fewer than half of the connections succeeded');

  const width = Math.max(...rows.map((r) => r[0].length));
  console.log(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n'));
  console.log(problems.length === 0 ? 'soak: PASS' : `soak: FAIL — ${problems.join('; ')}`);
  await outer.stop();
  await inner.stop();
  return problems.length === 0 ? 0 : 1;
}

process.exitCode = await main();
