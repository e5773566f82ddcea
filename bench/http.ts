/**
 * HTTP rows of npm run bench: requests/s and p99 at concurrency 50 over keep-alive connections,
 * 1 KiB answers, through SmartProxy's HTTP route, the minimal Node HTTP proxy (the floor), nginx
 * proxy_pass (X-Forwarded-For set, upstream keepalive) and HAProxy mode http (option forwardfor).
 * Load from wrk (Debian package `wrk`); a contender whose binary is absent is skipped, and without
 * wrk the HTTP rows are skipped with a note. Also runs alone: `node --import tsx bench/http.ts`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort } from '../test/helpers/net.js';
import { type IPeer, findBinary, startHaproxy, startNginx } from '../test/helpers/peers.js';
import { median } from './micro.js';

const CONCURRENCY = 50;
const BODY = 'a'.repeat(1024);

export interface IHttpProc {
  pid: number;
  stop(): Promise<void>;
}

/** How the caller starts a Node script in its own process (bench/run.ts's spawnNode). */
export type SpawnNode = (script: string, args: string[], profile?: boolean) => Promise<IHttpProc>;

interface IHttpContender {
  name: string;
  port: number;
}

interface IWrkResult {
  perSecond: number;
  p99: number;
  errors: number;
}

/** wrk's latency figure ("1.23ms", "850.00us", "1.02s") in milliseconds. */
function millis(text: string): number {
  const value = parseFloat(text);
  if (text.endsWith('us')) return value / 1000;
  if (text.endsWith('ms')) return value;
  if (text.endsWith('s')) return value * 1000;
  return NaN;
}

async function wrk(port: number, seconds: number): Promise<IWrkResult> {
  const { stdout } = await promisify(execFile)('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/`], { timeout: (seconds + 30) * 1000 });
  const perSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN);
  const p99 = millis(/\s99%\s+([\d.]+\w+)/.exec(stdout)?.[1] ?? '');
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const failed = Number(errors?.[1] ?? 0) + (socketErrors ? socketErrors.slice(1).reduce((s, n) => s + Number(n), 0) : 0);
  return { perSecond, p99, errors: failed };
}

async function backend(spawnNode: SpawnNode, stops: IHttpProc[]): Promise<number> {
  const port = await freePort();
  if (findBinary('nginx')) {
    const peer = await startNginx(`http {\n  access_log off;\n  keepalive_requests 1000000;\n  server {\n    listen 127.0.0.1:${port};\n    location / { default_type text/plain; return 200 "${BODY}"; }\n  }\n}\n`, [port]);
    stops.push({ pid: peer.pid, stop: () => peer.stop() });
  } else stops.push(await spawnNode('bench/http-backend.ts', [String(port)]));
  return port;
}

function peerProc(peer: IPeer): IHttpProc {
  return { pid: peer.pid, stop: () => peer.stop() };
}

async function contenders(spawnNode: SpawnNode, target: number, stops: IHttpProc[], want: (name: string) => boolean): Promise<IHttpContender[]> {
  const list: IHttpContender[] = [];
  if (want('node http')) {
    const port = await freePort();
    stops.push(await spawnNode('bench/http-minimal-proxy.ts', [String(port), String(target)]));
    list.push({ name: 'node http proxy (floor)', port });
  }
  if (want('smartproxy')) {
    const port = await freePort();
    const options = { listenAddress: '127.0.0.1', routes: [{ name: 'http', match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target }, http: {} } }] };
    stops.push(await spawnNode('bench/smartproxy-hop.ts', [JSON.stringify(options)], true));
    list.push({ name: 'smartproxy http route', port });
  }
  if (want('nginx') && findBinary('nginx')) {
    const port = await freePort();
    const config =
      `http {\n  access_log off;\n  keepalive_requests 1000000;\n  upstream b { server 127.0.0.1:${target}; keepalive 64; }\n` +
      `  server {\n    listen 127.0.0.1:${port};\n    location / {\n      proxy_pass http://b;\n      proxy_http_version 1.1;\n      proxy_set_header Connection "";\n` +
      `      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }\n  }\n}\n`;
    stops.push(peerProc(await startNginx(config, [port])));
    list.push({ name: 'nginx proxy_pass', port });
  }
  if (want('haproxy') && findBinary('haproxy')) {
    const port = await freePort();
    const config = `frontend f\n  mode http\n  option forwardfor\n  bind 127.0.0.1:${port}\n  default_backend b\nbackend b\n  mode http\n  http-reuse always\n  server s 127.0.0.1:${target}\n`;
    stops.push(peerProc(await startHaproxy(config, [port], {}, '  nbthread 1\n  maxconn 9000\n')));
    list.push({ name: 'haproxy mode http', port });
  }
  return list;
}

/** Runs the HTTP rows and prints their table and ratios; resolves when every process it started is stopped. */
export async function runHttpBench(spawnNode: SpawnNode, rounds: number, seconds: number, want: (name: string) => boolean): Promise<void> {
  console.log(`\n## HTTP: keep-alive requests, 1 KiB answers, concurrency ${CONCURRENCY} (wrk -t1), median (min–max) of ${rounds} rounds × ${seconds} s`);
  if (!findBinary('wrk')) {
    console.log('skipped: wrk is not installed (apt-get install wrk)');
    return;
  }
  const stops: IHttpProc[] = [];
  try {
    const target = await backend(spawnNode, stops);
    const list = await contenders(spawnNode, target, stops, want);
    const results = new Map<string, IWrkResult[]>(list.map((c) => [c.name, []]));
    for (const c of list) await wrk(c.port, 1); // warm-up: JIT, pooled connections
    for (let round = 0; round < rounds; round++) for (const c of list) results.get(c.name)?.push(await wrk(c.port, seconds));
    console.log('| contender | requests/s | p99 ms | errors |\n|---|---:|---:|---:|');
    for (const c of list) {
      const r = results.get(c.name) as IWrkResult[];
      const rates = r.map((x) => x.perSecond);
      console.log(`| ${c.name} | ${median(rates).toFixed(0)} (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)}) | ${median(r.map((x) => x.p99)).toFixed(2)} | ${r.reduce((s, x) => s + x.errors, 0)} |`);
    }
    const rate = (name: string) => median((results.get(name) ?? []).map((x) => x.perSecond));
    const ratio = (other: string) => (rate('smartproxy http route') / rate(other)).toFixed(2);
    console.log(`smartproxy http route / node http proxy, requests/s: ${ratio('node http proxy (floor)')} (target ≥ 0.9)`);
    console.log(`smartproxy http route / nginx proxy_pass: ${ratio('nginx proxy_pass')}; / haproxy mode http: ${ratio('haproxy mode http')}`);
  } finally {
    await Promise.all(stops.map((p) => p.stop().catch(() => undefined)));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { spawn } = await import('node:child_process');
  const spawnNode: SpawnNode = (script, args) =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
      child.stdout.once('data', () =>
        resolve({ pid: child.pid as number, stop: async () => void (child.exitCode === null && (child.kill('SIGTERM'), await new Promise((r) => child.once('exit', r)))) }),
      );
      child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before ready`)));
    });
  await runHttpBench(spawnNode, Number(process.env.ROUNDS ?? 3), Number(process.env.SECONDS ?? 3), () => true);
}
