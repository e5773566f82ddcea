/**
 * The Workers section of npm run bench (issue #17): the smartproxy CLI with `--workers 1`, with
 * `--workers 2` under node:cluster's round-robin scheduling (the primary accepts and hands each
 * socket to a worker over IPC) and under shared sockets (NODE_CLUSTER_SCHED_POLICY=none: every
 * worker accepts on the one listening socket), beside HAProxy with nbthread 1 and 2; all one hop,
 * PROXY v2 in and out, interleaved rounds. CPU is the whole contender: supervisor and workers.
 * The load generators and the sink are bench/run.ts's, handed in.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../test/helpers/net.js';
import { findBinary } from '../test/helpers/peers.js';
import { median } from './micro.js';

/** What the load generators need of a contender (bench/run.ts's IContender has these fields). */
export interface IBenchTarget {
  name: string;
  bulkPort: number;
  ratePort: number;
  clientSendsHeader: boolean;
  pids: number[];
}

/** What bench/run.ts's rate() reports. */
export interface IRateFigures {
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
  cpuMicrosPerConn: number;
}

interface IStoppable {
  pid: number;
  stop(): Promise<void>;
}

/** What bench/run.ts hands the section. */
export interface IWorkersBench {
  sink: { bulkHeader: number; rateHeader: number };
  rounds: number;
  seconds: number;
  want: (name: string) => boolean;
  progress: (message: string) => void;
  /** Registers a process with the runner, which stops it even when the run fails. */
  track: (proc: IStoppable) => void;
  rate: (c: IBenchTarget, seconds: number, concurrency?: number) => Promise<IRateFigures>;
  bulk: (c: IBenchTarget, seconds: number) => Promise<number>;
  cpuSeconds: (pid: number) => number;
  haproxyHop: (bulk: [number, number], rate: [number, number], accept: boolean, send: boolean, threads: number) => Promise<IStoppable>;
}

/** Concurrent connections of the bulk row that can spread over workers (one connection lives in one). */
const BULK_CONNECTIONS = 4;
/** Seconds of the one-at-a-time run that shows how workers share light load. */
const LIGHT_SECONDS = 1;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

interface IWorkersContender extends IBenchTarget {
  proc: IStoppable;
  /** The CLI's /stats port; undefined for HAProxy. */
  statsPort?: number;
  /** The supervisor, whose CPU is also shown apart (it accepts under round-robin). */
  supervisorPid?: number;
}

interface IRoundFigures {
  rate: IRateFigures;
  supervisorMicrosPerConn: number;
  /** Connections each worker accepted during the rate measurement, by slot. */
  split: number[];
  /** The same with one connection at a time (light load), where shared sockets tend to favour one worker. */
  lightSplit: number[];
  bulk1: number;
  bulkN: number;
}

/** The pids of `root` and every process below it, read from /proc. */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []));
  return tree;
}

function getJson(port: number, urlPath: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`${urlPath}: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${urlPath}: timeout`)));
    req.on('error', reject);
  });
}

/** Connections accepted so far per worker slot (one entry, the process's, without workers). */
async function acceptedPerWorker(statsPort: number): Promise<number[]> {
  const stats = (await getJson(statsPort, '/stats')) as { connections: { total: number }; workers?: Array<{ worker: number; connections: { total: number } | null }> };
  if (stats.workers === undefined) return [stats.connections.total];
  return [...stats.workers].sort((a, b) => a.worker - b.worker).map((w) => w.connections?.total ?? NaN);
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Stops the CLI by SIGTERM (it drains its workers); past the timeout, kills what is left of its tree by PID. */
async function stopCli(child: ChildProcess, dir: string): Promise<void> {
  const tree = child.exitCode === null ? processTree(child.pid as number) : [];
  child.kill('SIGTERM');
  if (!(await waitExit(child, STOP_TIMEOUT_MS))) child.kill('SIGKILL');
  await waitExit(child, STOP_TIMEOUT_MS);
  for (const pid of tree.slice(1)) {
    try {
      process.kill(pid, 'SIGKILL'); // a worker the supervisor did not take down
    } catch {
      // already gone, as it should be
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** `smartproxy --config F --workers N` with the 1-hop PROXY v2 in+out routes; ready once /stats answers. */
async function startCli(workers: number, policy: 'rr' | 'none' | undefined, bulk: [number, number], rate: [number, number]): Promise<{ proc: IStoppable; statsPort: number }> {
  const statsPort = await freePort();
  const route = (name: string, [port, target]: [number, number]) => ({ name, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target } } });
  const config = {
    listenAddress: '127.0.0.1',
    acceptProxyProtocol: true,
    proxyIPs: ['127.0.0.1'],
    sendProxyProtocol: true,
    proxyProtocolVersion: 2,
    gracefulShutdownTimeout: 1000,
    // HAProxy here logs nothing: the CLI's access line per connection stays off too.
    log: { level: 'warn' },
    metrics: { listen: `127.0.0.1:${statsPort}` },
    routes: [route('bulk', bulk), route('rate', rate)],
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smartproxy-bench-workers-'));
  const file = path.join(dir, 'smartproxy.json');
  fs.writeFileSync(file, JSON.stringify(config));
  const env = { ...process.env };
  delete env.NODE_CLUSTER_SCHED_POLICY;
  if (policy !== undefined) env.NODE_CLUSTER_SCHED_POLICY = policy;
  const child = spawn(process.execPath, ['--import', 'tsx', 'ts/cli.ts', '--config', file, '--workers', String(workers)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const proc = { pid: child.pid as number, stop: () => stopCli(child, dir) };
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`smartproxy --workers ${workers} exited with ${child.exitCode} before ready:\n${output}`);
    const ready = await getJson(statsPort, '/stats').then(
      () => true,
      () => false,
    );
    if (ready) return { proc, statsPort };
    if (Date.now() - start > START_TIMEOUT_MS) {
      await proc.stop();
      throw new Error(`smartproxy --workers ${workers} not ready after ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const CLI_CONTENDERS: Array<{ name: string; workers: number; policy?: 'rr' | 'none' }> = [
  { name: 'smartproxy --workers 1', workers: 1 },
  { name: 'smartproxy --workers 2 rr', workers: 2, policy: 'rr' },
  { name: 'smartproxy --workers 2 none', workers: 2, policy: 'none' },
];

async function buildContenders(b: IWorkersBench): Promise<IWorkersContender[]> {
  const list: IWorkersContender[] = [];
  const ports = async (): Promise<[number, number]> => [await freePort(), await freePort()];
  for (const spec of CLI_CONTENDERS.filter((s) => b.want(s.name))) {
    const [bp, rp] = await ports();
    const { proc, statsPort } = await startCli(spec.workers, spec.policy, [bp, b.sink.bulkHeader], [rp, b.sink.rateHeader]);
    b.track(proc);
    list.push({ name: spec.name, bulkPort: bp, ratePort: rp, clientSendsHeader: true, pids: processTree(proc.pid), proc, statsPort, supervisorPid: spec.workers > 1 ? proc.pid : undefined });
  }
  for (const threads of [1, 2]) {
    const name = `haproxy nbthread ${threads}`;
    if (!b.want(name) || !findBinary('haproxy')) continue;
    const [bp, rp] = await ports();
    const proc = await b.haproxyHop([bp, b.sink.bulkHeader], [rp, b.sink.rateHeader], true, true, threads);
    list.push({ name, bulkPort: bp, ratePort: rp, clientSendsHeader: true, pids: [proc.pid], proc });
  }
  return list;
}

/** `count` bulk connections at once; the sum of their Gbit/s. */
async function bulkMany(b: IWorkersBench, c: IWorkersContender, count: number): Promise<number> {
  const each = await Promise.all(Array.from({ length: count }, () => b.bulk(c, b.seconds)));
  return each.reduce((sum, x) => sum + x, 0);
}

async function measureRound(b: IWorkersBench, c: IWorkersContender): Promise<IRoundFigures> {
  const bulk1 = await b.bulk(c, b.seconds);
  const bulkN = await bulkMany(b, c, BULK_CONNECTIONS);
  if (c.supervisorPid !== undefined) c.pids = processTree(c.supervisorPid); // a replaced worker would have a new pid
  const acceptedBefore = c.statsPort === undefined ? [] : await acceptedPerWorker(c.statsPort);
  const treeCpu = () => c.pids.reduce((sum, pid) => sum + b.cpuSeconds(pid), 0);
  const [treeBefore, supervisorBefore] = [treeCpu(), c.supervisorPid === undefined ? 0 : b.cpuSeconds(c.supervisorPid)];
  const rate = await b.rate(c, b.seconds);
  // The supervisor's part of the tree's CPU over the same window, applied to rate()'s CPU per connection.
  const supervisorPart = c.supervisorPid === undefined ? NaN : (b.cpuSeconds(c.supervisorPid) - supervisorBefore) / (treeCpu() - treeBefore);
  const acceptedAfter = c.statsPort === undefined ? [] : await acceptedPerWorker(c.statsPort);
  const split = acceptedAfter.map((n, i) => n - (acceptedBefore[i] ?? 0));
  return { rate, supervisorMicrosPerConn: rate.cpuMicrosPerConn * supervisorPart, split, lightSplit: await lightSplit(b, c), bulk1, bulkN };
}

/** Connections each worker accepted from one client connecting one at a time for LIGHT_SECONDS (workers only). */
async function lightSplit(b: IWorkersBench, c: IWorkersContender): Promise<number[]> {
  if (c.statsPort === undefined || c.supervisorPid === undefined) return [];
  const before = await acceptedPerWorker(c.statsPort);
  await b.rate(c, LIGHT_SECONDS, 1);
  return (await acceptedPerWorker(c.statsPort)).map((n, i) => n - (before[i] ?? 0));
}

/** "52/48" from counts per worker. */
function shares(counts: number[]): string {
  const total = counts.reduce((s, n) => s + n, 0);
  return counts.map((n) => ((100 * n) / total).toFixed(0)).join('/');
}

/** "49/51 (50/50, 48/52, 48/52)": the shares over all rounds, then per round; "-" for one process. */
function splitText(rounds: number[][]): string {
  if (rounds[0].length < 2) return '-';
  const total = rounds[0].map((_, i) => rounds.reduce((sum, counts) => sum + counts[i], 0));
  return `${shares(total)} (${rounds.map(shares).join(', ')})`;
}

function spread(values: number[], digits: number): string {
  return `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;
}

function printTables(contenders: IWorkersContender[], results: Map<string, IRoundFigures[]>): void {
  console.log('| contender | conn/s | p50 ms | p99 ms | CPU µs/conn (whole tree) | of it supervisor | errors | accepted per worker, % (all rounds; each round) | the same, one connection at a time |\n|---|---:|---:|---:|---:|---:|---:|---|---|');
  for (const c of contenders) {
    const r = results.get(c.name) as IRoundFigures[];
    const pick = (f: (x: IRoundFigures) => number) => r.map(f);
    const supervisor = c.supervisorPid === undefined ? '-' : median(pick((x) => x.supervisorMicrosPerConn)).toFixed(0);
    console.log(`| ${c.name} | ${spread(pick((x) => x.rate.perSecond), 0)} | ${median(pick((x) => x.rate.p50)).toFixed(2)} | ${median(pick((x) => x.rate.p99)).toFixed(2)} | ${median(pick((x) => x.rate.cpuMicrosPerConn)).toFixed(0)} | ${supervisor} | ${r.reduce((s, x) => s + x.rate.errors, 0)} | ${splitText(r.map((x) => x.split))} | ${splitText(r.map((x) => x.lightSplit))} |`);
  }
  console.log(`\n| contender | bulk, 1 connection (Gbit/s) | bulk, ${BULK_CONNECTIONS} connections (Gbit/s, sum) |\n|---|---:|---:|`);
  for (const c of contenders) {
    const r = results.get(c.name) as IRoundFigures[];
    console.log(`| ${c.name} | ${spread(r.map((x) => x.bulk1), 2)} | ${spread(r.map((x) => x.bulkN), 2)} |`);
  }
}

function printRatios(results: Map<string, IRoundFigures[]>): void {
  const med = (name: string, f: (x: IRoundFigures) => number) => median((results.get(name) ?? []).map(f));
  const line = (label: string, a: string, b: string) => {
    if (!results.has(a) || !results.has(b)) return;
    const r = (f: (x: IRoundFigures) => number) => (med(a, f) / med(b, f)).toFixed(2);
    console.log(`| ${label} | ${r((x) => x.rate.perSecond)} | ${r((x) => x.rate.cpuMicrosPerConn)} | ${r((x) => x.bulk1)} | ${r((x) => x.bulkN)} |`);
  };
  console.log(`\n| ratio (medians) | conn/s | CPU/conn | bulk 1 conn | bulk ${BULK_CONNECTIONS} conns |\n|---|---:|---:|---:|---:|`);
  line('smartproxy 2 workers rr ÷ 1 worker', 'smartproxy --workers 2 rr', 'smartproxy --workers 1');
  line('smartproxy 2 workers none ÷ 1 worker', 'smartproxy --workers 2 none', 'smartproxy --workers 1');
  line('haproxy nbthread 2 ÷ nbthread 1', 'haproxy nbthread 2', 'haproxy nbthread 1');
  line('smartproxy 1 worker ÷ haproxy nbthread 1', 'smartproxy --workers 1', 'haproxy nbthread 1');
  line('smartproxy 2 workers rr ÷ haproxy nbthread 2', 'smartproxy --workers 2 rr', 'haproxy nbthread 2');
  line('smartproxy 2 workers none ÷ haproxy nbthread 2', 'smartproxy --workers 2 none', 'haproxy nbthread 2');
  line('rr ÷ none (2 workers)', 'smartproxy --workers 2 rr', 'smartproxy --workers 2 none');
}

/** Runs and prints the section; every process it started is stopped before it returns. */
export async function runWorkersBench(b: IWorkersBench): Promise<void> {
  console.log('\n## Workers: `smartproxy --workers 1|2` beside HAProxy `nbthread 1|2` (1 hop, PROXY v2 in+out)');
  console.log(
    `${os.cpus().length} cores (load average ${os.loadavg()[0].toFixed(2)} at the start of the section), shared by the contender, the sink (one Node process) and the load generator (this process, one core when busy): ` +
      'a second worker or thread competes with them for the same cores instead of taking a free one, so 2 ÷ 1 here is a floor, not what free cores would give. ' +
      `${b.rounds} interleaved rounds × ${b.seconds} s per measurement; CPU sums the contender's whole process tree (supervisor + workers); ` +
      'rr = node:cluster round-robin (the supervisor accepts and passes each socket to a worker), none = NODE_CLUSTER_SCHED_POLICY=none (the workers accept on one shared socket); ' +
      "accepted per worker: each worker's connections.total from /stats over the connection-rate runs, and over a run of one connection at a time (light load). The CLI logs at warn (no access line per connection, as HAProxy here).\n",
  );
  const contenders = await buildContenders(b);
  try {
    const results = new Map<string, IRoundFigures[]>(contenders.map((c) => [c.name, []]));
    b.progress(`workers: ${contenders.length} contenders up; warming up`);
    for (const c of contenders) await b.rate(c, 0.3);
    for (let round = 0; round < b.rounds; round++) {
      b.progress(`workers: round ${round + 1}/${b.rounds}`);
      for (const c of contenders) results.get(c.name)?.push(await measureRound(b, c));
    }
    if (contenders.length > 0) {
      console.log('Connection rate (connect, 100 B each way, close; concurrency 50), median (min–max):\n');
      printTables(contenders, results);
      printRatios(results);
    }
  } finally {
    await Promise.all(contenders.map((c) => c.proc.stop().catch(() => undefined)));
  }
}
