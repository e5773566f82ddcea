/**
 * npm run bench — SmartProxy beside a minimal Node proxy, HAProxy and nginx, on loopback.
 * Contenders run interleaved (A B C A B C ...), each hop in its own process; this process is the
 * load generator. Reports medians, min–max and ratios. Bounded: about 5 minutes on 2 cores.
 * Flags: `npm run bench -- --help` (HELP below).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { ProxyProtocolParser } from '../ts/index.js';
import { freePort } from '../test/helpers/net.js';
import { type IPeer, findBinary, startHaproxy, startNginx } from '../test/helpers/peers.js';
import { median } from './micro.js';
import { printParserTable, runParserBench } from './parser.js';
import { runHttpBench } from './http.js';
import { runWorkersBench } from './workers.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '2' },
    'skip-memory': { type: 'boolean', default: false },
    'skip-parser': { type: 'boolean', default: false },
    'skip-http': { type: 'boolean', default: false },
    'skip-workers': { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const HELP = `usage: npm run bench -- [flags]

SmartProxy beside a minimal Node proxy, HAProxy and nginx on loopback: throughput, connection
rate, workers, HTTP, memory per idle connection, parser. The report (markdown) goes to stdout,
progress lines to stderr. About 5 minutes with the defaults (3.5 with --skip-workers).

  --rounds N        interleaved rounds per measurement (default 5)
  --seconds S       seconds per measurement (default 2)
  --only a,b        only contenders whose name contains a or b
  --skip-http       leave out the HTTP section
  --skip-memory     leave out the idle-connection memory section
  --skip-parser     leave out the PROXY parser section
  --skip-workers    leave out the workers section (smartproxy --workers 1|2 beside HAProxy
                    nbthread 1|2; at most 3 rounds, about 1.5 minutes)
  --profile DIR     SmartProxy hops write --cpu-prof profiles to DIR
  -h, --help        print this help and exit

Environment: SMARTPROXY_BENCH_FDS (default 20000) caps the idle connections of the memory section.
`;

/** One line on stderr, so the report on stdout stays clean: where the run is and how long it took so far. */
const benchStart = Date.now();
function progress(message: string): void {
  process.stderr.write(`[bench ${((Date.now() - benchStart) / 1000).toFixed(0)} s] ${message}\n`);
}
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const CONCURRENCY = 50;
const PAYLOAD = Buffer.alloc(100, 0x62);
const CHUNK = Buffer.alloc(256 * 1024, 0x63);
const CLK_TCK = 100;
// The hard fd limit here is 20000 and a proxy holds two sockets per connection.
const IDLE_CONNECTIONS = Math.min(10_000, Math.floor((Number(process.env.SMARTPROXY_BENCH_FDS) || 20_000) / 2) - 100);

interface IProc {
  pid: number;
  stop(): Promise<void>;
  child?: ChildProcess;
  firstLine: string;
}

const procs: IProc[] = [];

function spawnNode(script: string, scriptArgs: string[], profile = false): Promise<IProc> {
  const flags = profile && args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', script, ...scriptArgs], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      child.stdout?.off('data', onData);
      const proc: IProc = {
        pid: child.pid as number,
        child,
        firstLine: out.slice(0, nl),
        stop: async () => {
          if (child.exitCode !== null) return;
          child.kill('SIGTERM');
          await new Promise((r) => child.once('exit', r));
        },
      };
      procs.push(proc);
      resolve(proc);
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before ready`)));
  });
}

function peerProc(peer: IPeer): IProc {
  const proc = { pid: peer.pid, stop: () => peer.stop(), firstLine: '' };
  procs.push(proc);
  return proc;
}

/** CPU seconds (user + system) a process has used. */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function rssBytes(pid: number): number {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:')) as string;
  return Number(line.split(/\s+/)[1]) * 1024;
}

interface IContender {
  name: string;
  /** Port the load generator connects to for bulk and for rate. */
  bulkPort: number;
  ratePort: number;
  /** Whether the first hop expects a PROXY header from the client. */
  clientSendsHeader: boolean;
  /** The proxy processes (for CPU accounting). */
  pids: number[];
}

// ---- load generators -------------------------------------------------------------------------

function clientHeader(socket: net.Socket): Buffer {
  return ProxyProtocolParser.generate(
    { source: { address: socket.localAddress as string, port: socket.localPort as number }, destination: { address: '127.0.0.1', port: socket.remotePort as number } },
    { version: 2 },
  );
}

/** One connection, both directions at once for `seconds`; Gbit/s up + down. */
async function bulk(c: IContender, seconds: number): Promise<number> {
  const socket = net.connect({ port: c.bulkPort, host: '127.0.0.1' });
  await new Promise((r) => socket.once('connect', r));
  let received = 0;
  socket.on('data', (d: Buffer) => (received += d.length));
  socket.on('error', () => undefined);
  if (c.clientSendsHeader) socket.write(clientHeader(socket));
  let running = true;
  const pump = (): void => {
    while (running && socket.write(CHUNK));
  };
  socket.on('drain', pump);
  const start = process.hrtime.bigint();
  pump();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  running = false;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const sent = socket.bytesWritten - socket.writableLength;
  socket.destroy();
  return ((sent + received) * 8) / elapsed / 1e9;
}

interface IRateResult {
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
  cpuMicrosPerConn: number;
}

/** Short connections (connect, 100 bytes each way, close) at concurrency 50 (or `concurrency`) for `seconds`. */
async function rate(c: IContender, seconds: number, concurrency = CONCURRENCY): Promise<IRateResult> {
  const latencies: number[] = [];
  let errors = 0;
  const deadline = Date.now() + seconds * 1000;
  const cpuBefore = c.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const start = process.hrtime.bigint();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      const socket = net.connect({ port: c.ratePort, host: '127.0.0.1', noDelay: true });
      let got = 0;
      socket.once('connect', () => {
        socket.write(c.clientSendsHeader ? Buffer.concat([clientHeader(socket), PAYLOAD]) : PAYLOAD);
      });
      socket.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= PAYLOAD.length) {
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          socket.end();
        }
      });
      socket.on('error', () => undefined);
      socket.once('close', () => {
        if (got < PAYLOAD.length) errors++;
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) await one();
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = c.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - cpuBefore;
  const sorted = latencies.sort((a, b) => a - b);
  return {
    perSecond: latencies.length / elapsed,
    p50: sorted[Math.floor(sorted.length * 0.5)] ?? NaN,
    p99: sorted[Math.floor(sorted.length * 0.99)] ?? NaN,
    errors,
    cpuMicrosPerConn: latencies.length ? (cpu * 1e6) / latencies.length : NaN,
  };
}

// ---- contenders --------------------------------------------------------------------------------

interface ISinkPorts {
  bulkPlain: number;
  bulkHeader: number;
  ratePlain: number;
  rateHeader: number;
  holdHeader: number;
}

async function smartproxyHop(bulk: [number, number], rate: [number, number], accept: boolean, extra: Record<string, unknown> = {}): Promise<IProc> {
  const route = (name: string, [port, target]: [number, number]) => ({ name, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target } } });
  const options = {
    listenAddress: '127.0.0.1',
    sendProxyProtocol: true,
    proxyProtocolVersion: 2,
    ...(accept ? { acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'] } : {}),
    routes: [route('bulk', bulk), route('rate', rate)],
    ...extra,
  };
  return spawnNode('bench/smartproxy-hop.ts', [JSON.stringify(options)], true);
}

async function haproxyHop(bulk: [number, number], rate: [number, number], accept: boolean, send: boolean, threads = 1): Promise<IProc> {
  const fe = (name: string, [port, target]: [number, number]) =>
    `frontend f_${name}\n  mode tcp\n  bind 127.0.0.1:${port}${accept ? ' accept-proxy' : ''}\n  default_backend b_${name}\n` +
    `backend b_${name}\n  mode tcp\n  server s 127.0.0.1:${target}${send ? ' send-proxy-v2' : ''}\n`;
  return peerProc(await startHaproxy(fe('bulk', bulk) + fe('rate', rate), [bulk[0], rate[0]], {}, `  nbthread ${threads}\n  maxconn 9000\n`));
}

async function buildContenders(sink: ISinkPorts): Promise<IContender[]> {
  const list: IContender[] = [];
  const ports = async (): Promise<[number, number]> => [await freePort(), await freePort()];
  const want = (name: string) => args.only === undefined || args.only.split(',').some((o) => name.includes(o));

  if (want('direct')) list.push({ name: 'direct (no proxy)', bulkPort: sink.bulkPlain, ratePort: sink.ratePlain, clientSendsHeader: false, pids: [] });
  if (want('node pipe')) {
    const [b, r] = await ports();
    const p = await spawnNode('bench/minimal-proxy.ts', [`${b}:${sink.bulkPlain}`, `${r}:${sink.ratePlain}`]);
    list.push({ name: 'node pipe 1 hop', bulkPort: b, ratePort: r, clientSendsHeader: false, pids: [p.pid] });
    const [b2, r2] = await ports();
    const p2 = await spawnNode('bench/minimal-proxy.ts', [`${b2}:${b}`, `${r2}:${r}`]);
    list.push({ name: 'node pipe 2 hop', bulkPort: b2, ratePort: r2, clientSendsHeader: false, pids: [p2.pid, p.pid] });
  }
  if (want('smartproxy')) {
    const [b, r] = await ports();
    const p = await smartproxyHop([b, sink.bulkHeader], [r, sink.rateHeader], true);
    list.push({ name: 'smartproxy 1 hop (v2 in+out)', bulkPort: b, ratePort: r, clientSendsHeader: true, pids: [p.pid] });
    const [ib, ir] = await ports();
    const inner = await smartproxyHop([ib, sink.bulkHeader], [ir, sink.rateHeader], true);
    const [ob, or] = await ports();
    const outer = await smartproxyHop([ob, ib], [or, ir], false);
    list.push({ name: 'smartproxy 2 hop (v2 between)', bulkPort: ob, ratePort: or, clientSendsHeader: false, pids: [outer.pid, inner.pid] });
  }
  if (want('haproxy') && findBinary('haproxy')) {
    const [b, r] = await ports();
    const h = await haproxyHop([b, sink.bulkHeader], [r, sink.rateHeader], true, true);
    list.push({ name: 'haproxy 1 hop (v2 in+out)', bulkPort: b, ratePort: r, clientSendsHeader: true, pids: [h.pid] });
    const [ib, ir] = await ports();
    const inner = await haproxyHop([ib, sink.bulkHeader], [ir, sink.rateHeader], true, true);
    const [ob, or] = await ports();
    const outer = await haproxyHop([ob, ib], [or, ir], false, true);
    list.push({ name: 'haproxy 2 hop (v2 between)', bulkPort: ob, ratePort: or, clientSendsHeader: false, pids: [outer.pid, inner.pid] });
  }
  if (want('nginx') && findBinary('nginx')) {
    const [b, r] = await ports();
    const n = peerProc(
      await startNginx(`worker_rlimit_nofile 30000;\nstream {\n  server { listen 127.0.0.1:${b}; proxy_pass 127.0.0.1:${sink.bulkPlain}; }\n  server { listen 127.0.0.1:${r}; proxy_pass 127.0.0.1:${sink.ratePlain}; }\n}\n`, [b, r]),
    );
    list.push({ name: 'nginx stream 1 hop', bulkPort: b, ratePort: r, clientSendsHeader: false, pids: [n.pid] });
  }
  return list;
}

// ---- idle memory -------------------------------------------------------------------------------

async function idleMemory(name: string, proxy: IProc, port: number, sendHeader: boolean): Promise<{ name: string; count: number; perConnection: number }> {
  const before = rssBytes(proxy.pid);
  const sockets: net.Socket[] = [];
  for (let i = 0; i < IDLE_CONNECTIONS; i++) {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.${2 + Math.floor(i / 250)}.${1 + (i % 250)}` });
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    if (sendHeader) socket.write(clientHeader(socket));
    sockets.push(socket);
  }
  await new Promise((r) => setTimeout(r, 1500));
  const after = rssBytes(proxy.pid);
  for (const s of sockets) s.destroy();
  await new Promise((r) => setTimeout(r, 500));
  return { name, count: IDLE_CONNECTIONS, perConnection: (after - before) / IDLE_CONNECTIONS };
}

// ---- report ------------------------------------------------------------------------------------

function stats(values: number[]): string {
  return `${median(values).toFixed(2)} (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)})`;
}

async function main(): Promise<void> {
  const started = Date.now();
  console.log(`# npm run bench — ${new Date().toISOString()}`);
  console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0]?.model}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, node ${process.version}`);
  console.log(`method: ${ROUNDS} interleaved rounds × ${SECONDS} s per measurement; load generator = this process; each hop its own process; HAProxy nbthread 1, nginx 1 worker\n`);

  const sink = JSON.parse((await spawnNode('bench/sink.ts', [])).firstLine) as ISinkPorts;
  const contenders = await buildContenders(sink);
  const bulkResults = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const rateResults = new Map<string, IRateResult[]>(contenders.map((c) => [c.name, []]));
  progress(`${contenders.length} contenders up; warming up`);
  for (const c of contenders) await rate(c, 0.3); // warm-up: JIT, connection paths
  for (let round = 0; round < ROUNDS; round++) {
    progress(`round ${round + 1}/${ROUNDS}: bulk throughput`);
    for (const c of contenders) bulkResults.get(c.name)?.push(await bulk(c, SECONDS));
    progress(`round ${round + 1}/${ROUNDS}: connection rate`);
    for (const c of contenders) rateResults.get(c.name)?.push(await rate(c, SECONDS));
  }

  console.log('## Bulk throughput, one connection, both directions at once (Gbit/s up+down, median (min–max))');
  console.log('| contender | Gbit/s |\n|---|---:|');
  for (const c of contenders) console.log(`| ${c.name} | ${stats(bulkResults.get(c.name) as number[])} |`);
  console.log('\n## Connection rate: connect, 100 B each way, close; concurrency 50');
  console.log('| contender | conn/s | p50 ms | p99 ms | proxy CPU µs/conn | errors |\n|---|---:|---:|---:|---:|---:|');
  for (const c of contenders) {
    const r = rateResults.get(c.name) as IRateResult[];
    const pick = (f: (x: IRateResult) => number) => r.map(f);
    console.log(`| ${c.name} | ${stats(pick((x) => x.perSecond)).replace(/\.\d\d/g, '')} | ${median(pick((x) => x.p50)).toFixed(2)} | ${median(pick((x) => x.p99)).toFixed(2)} | ${c.pids.length ? median(pick((x) => x.cpuMicrosPerConn)).toFixed(0) : '-'} | ${r.reduce((s, x) => s + x.errors, 0)} |`);
  }

  const med = (name: string, f: (x: IRateResult) => number) => median((rateResults.get(name) ?? []).map(f));
  const bulkMed = (name: string) => median(bulkResults.get(name) ?? []);
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  console.log('\n## Targets (ratios within this run)');
  console.log(`smartproxy 1 hop / node pipe 1 hop, throughput: ${ratio(bulkMed('smartproxy 1 hop (v2 in+out)'), bulkMed('node pipe 1 hop'))} (target ≥ 0.95)`);
  console.log(`smartproxy 1 hop / node pipe 1 hop, conn/s: ${ratio(med('smartproxy 1 hop (v2 in+out)', (x) => x.perSecond), med('node pipe 1 hop', (x) => x.perSecond))} (target ≥ 0.85)`);
  console.log(`smartproxy 2 hop / node pipe 2 hop, throughput: ${ratio(bulkMed('smartproxy 2 hop (v2 between)'), bulkMed('node pipe 2 hop'))} (target ≥ 0.95)`);
  console.log(`smartproxy 1 hop CPU/conn ÷ haproxy 1 hop: ${ratio(med('smartproxy 1 hop (v2 in+out)', (x) => x.cpuMicrosPerConn), med('haproxy 1 hop (v2 in+out)', (x) => x.cpuMicrosPerConn))} (far goal ≤ 1.5)`);
  console.log(`smartproxy 1 hop CPU/conn ÷ node pipe 1 hop: ${ratio(med('smartproxy 1 hop (v2 in+out)', (x) => x.cpuMicrosPerConn), med('node pipe 1 hop', (x) => x.cpuMicrosPerConn))}`);

  if (!args['skip-workers']) {
    progress('workers');
    const want = (name: string) => args.only === undefined || args.only.split(',').some((o) => name.includes(o));
    const track = (proc: { pid: number; stop(): Promise<void> }) => void procs.push({ ...proc, firstLine: '' });
    await runWorkersBench({ sink, rounds: Math.min(ROUNDS, 3), seconds: SECONDS, want, progress, track, rate, bulk, cpuSeconds, haproxyHop });
  }

  if (!args['skip-http']) {
    progress('HTTP');
    await runHttpBench(spawnNode, ROUNDS, SECONDS, (name) => args.only === undefined || args.only.split(',').some((o) => name.includes(o)));
  }

  if (!args['skip-memory']) {
    progress(`memory: ${IDLE_CONNECTIONS} idle connections per contender`);
    console.log(`\n## Memory: RSS per idle connection, ${IDLE_CONNECTIONS} idle connections through 1 hop (fd limit ${20_000})`);
    const [b, r] = [await freePort(), await freePort()];
    const sp = await smartproxyHop([b, sink.holdHeader], [r, sink.holdHeader], true);
    const results = [await idleMemory('smartproxy 1 hop (v2 in+out)', sp, b, true)];
    await sp.stop();
    const [mb] = [await freePort()];
    const mp = await spawnNode('bench/minimal-proxy.ts', [`${mb}:${sink.holdHeader}`]);
    results.push(await idleMemory('node pipe 1 hop', mp, mb, true));
    await mp.stop();
    console.log('| contender | connections | RSS per connection (KiB) |\n|---|---:|---:|');
    for (const m of results) console.log(`| ${m.name} | ${m.count} | ${(m.perConnection / 1024).toFixed(1)} |`);
  }

  if (!args['skip-parser']) {
    progress('parser');
    console.log('\n## PROXY header parser (ns/op)');
    printParserTable(runParserBench(3));
  }
  console.log(`\ntotal time ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

if (args.help) process.stdout.write(HELP);
else {
  try {
    await main();
  } finally {
    await Promise.all(procs.map((p) => p.stop().catch(() => undefined)));
  }
}
