/**
 * `smartproxy --workers 2`: a supervisor and two workers, as operators run it. HAProxy in front
 * plays the L4 balancer that sends PROXY v2; a PROXY-aware backend reports who the proxy said the
 * client was. Every test drives the CLI from outside: connections, signals, kill -9, /stats.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { cleanupAfterAll } from './helpers/cleanup.js';
import * as cli from './helpers/cli.js';
import { connect, freePorts, readLine, startEchoServer, startHeaderReportingServer, startServer, waitFor } from './helpers/net.js';
import { skipUnless, startHaproxy, type IPeer } from './helpers/peers.js';
import { startUdpEcho, udpClient } from './helpers/udp.js';

const onCleanup = cleanupAfterAll();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface IWorkerRow {
  worker: number;
  pid: number | null;
  up: boolean;
  restarts: number;
  connections: { active: number; total: number } | null;
}

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

async function stats(metricsPort: number): Promise<{ connections: { total: number }; workers: IWorkerRow[] }> {
  return JSON.parse(await get(metricsPort, '/stats'));
}

/** One connection: writes `line`, reads the reply line; resolves with it, or with `Error: ...` on any failure. */
async function exchange(port: number, line: string, localAddress?: string): Promise<string> {
  try {
    const socket = await connect({ port, localAddress });
    try {
      socket.write(`${line}\n`);
      return await readLine(socket, 5000);
    } finally {
      socket.destroy();
    }
  } catch (err) {
    return `Error: ${(err as Error).message}`;
  }
}

/** Runs `count` jobs, `concurrency` at a time; the results in order. */
async function pool<T>(count: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await job(i);
      }
    }),
  );
  return results;
}

/** Polls an async condition every 50 ms for up to 3 s. */
async function eventually(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let start = Date.now(); !(await cond()); await sleep(50)) if (Date.now() - start > 3000) throw new Error(`timed out waiting for ${what}`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** PIDs of processes whose command line names `text` (the config file: the CLI and its workers). */
function processesWith(text: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

const route = (name: string, port: number, target: number) => ({ name, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target } } });

function startCli(config: unknown, workers = '2'): { run: cli.IRun; file: string } {
  const file = cli.writeConfig(config, onCleanup);
  const run = cli.runNode(['ts/cli.ts', '--config', file, '--workers', workers], onCleanup);
  // Workers outlive a supervisor killed by the cleanup only for a moment (they leave when its channel closes).
  return { run, file };
}

describe('smartproxy --workers 2 behind HAProxy (PROXY v2 in, v2 out)', { skip: skipUnless('haproxy') }, () => {
  let run: cli.IRun;
  let file: string;
  let haproxy: IPeer;
  let backend: Awaited<ReturnType<typeof startHeaderReportingServer>>;
  let proxyPort: number, haproxyPort: number, metricsPort: number, newPort: number, busyPort: number;
  let config: { routes: unknown[] } & Record<string, unknown>;

  before(async () => {
    [proxyPort, haproxyPort, metricsPort, newPort, busyPort] = await freePorts(5);
    backend = await startHeaderReportingServer();
    onCleanup(() => backend.close());
    config = {
      acceptProxyProtocol: true,
      proxyIPs: ['127.0.0.1'],
      sendProxyProtocol: true,
      proxyProtocolVersion: 2,
      gracefulShutdownTimeout: 4000,
      metrics: { listen: `127.0.0.1:${metricsPort}` },
      routes: [route('main', proxyPort, backend.port)],
    };
    ({ run, file } = startCli(config));
    await run.waitFor(/started with 1 route in 2 workers/, 20_000);
    haproxy = await startHaproxy(`frontend fe\n  mode tcp\n  bind 127.0.0.1:${haproxyPort}\n  default_backend be\nbackend be\n  mode tcp\n  server s 127.0.0.1:${proxyPort} send-proxy-v2\n`, [haproxyPort]);
    onCleanup(() => haproxy.stop());
  });

  after(async () => {
    if (run.child.exitCode === null) run.child.kill('SIGKILL');
  });

  it('serves 500 connections with every real client preserved, and both workers take traffic', async () => {
    const before = await stats(metricsPort);
    const results = await pool(500, 25, async (i) => {
      const localAddress = `127.0.${10 + Math.floor(i / 200)}.${1 + (i % 200)}`;
      const socket = await connect({ port: haproxyPort, localAddress });
      try {
        socket.write('hi\n');
        const report = JSON.parse(await readLine(socket)) as { header: { source: { address: string; port: number } } | null };
        return { sent: { address: localAddress, port: socket.localPort }, got: report.header?.source };
      } finally {
        socket.destroy();
      }
    });
    for (const { sent, got } of results) assert.deepEqual(got, sent, 'the backend saw the client HAProxy saw');
    assert.match(run.output(), /starting 2 workers \(scheduling: shared sockets\)/, 'workers accept on the shared socket by default');
    const after = await stats(metricsPort);
    const taken = after.workers.map((w, i) => (w.connections?.total ?? 0) - (before.workers[i].connections?.total ?? 0));
    assert.equal(taken.length, 2);
    for (const n of taken) assert.ok(n >= 50, `each worker took a share of the 500: ${taken.join(' / ')}`);
    assert.equal(taken[0] + taken[1], 500);
  });

  it('sums both workers on /metrics and /stats', async () => {
    const s = await stats(metricsPort);
    const perWorker = s.workers.map((w) => w.connections?.total ?? -1);
    assert.ok(perWorker.every((n) => n > 0), `both answered: ${perWorker}`);
    assert.equal(s.connections.total, perWorker[0] + perWorker[1]);
    const text = await get(metricsPort, '/metrics');
    const sample = (line: RegExp) => Number(line.exec(text)?.[1]);
    assert.equal(sample(/^smartproxy_connections_total (\d+)$/m), s.connections.total);
    assert.equal(sample(/^smartproxy_worker_connections_total\{worker="1"\} (\d+)$/m) + sample(/^smartproxy_worker_connections_total\{worker="2"\} (\d+)$/m), s.connections.total);
    assert.equal(sample(/^smartproxy_proxy_protocol_accepted_total\{version="2"\} (\d+)$/m), s.connections.total, 'every connection came with a v2 header');
    assert.equal(sample(/^smartproxy_workers_up (\d+)$/m), 2);
  });

  it('replaces a worker killed with kill -9 mid-run, and every connection after the replacement succeeds', async () => {
    const victim = (await stats(metricsPort)).workers[0];
    const during = pool(300, 10, (i) => exchange(haproxyPort, `during ${i}`));
    await sleep(100);
    process.kill(victim.pid as number, 'SIGKILL');
    await during;
    const [, pid] = await run.waitFor(/worker 1 replaced \(pid (\d+)\)/, 15_000);
    assert.notEqual(Number(pid), victim.pid);
    assert.match(run.output(), new RegExp(`worker 1 \\(pid ${victim.pid}\\) exited \\(signal SIGKILL\\); replacing it in \\d+ ms`));
    const beforeAfter = await stats(metricsPort);
    const results = await pool(200, 10, (i) => exchange(haproxyPort, `after ${i}`));
    assert.deepEqual(results.filter((r) => !r.startsWith('{')), [], 'no connection failed after the replacement');
    const s = await stats(metricsPort);
    assert.equal(s.workers[0].pid, Number(pid));
    assert.equal(s.workers[0].restarts, 1);
    assert.ok((s.workers[0].connections?.total ?? 0) > (beforeAfter.workers[0].connections?.total ?? 0), 'the replacement takes traffic');
  });

  it('applies a new route in both workers on SIGHUP', async () => {
    config.routes.push(route('added', newPort, backend.port));
    fs.writeFileSync(file, JSON.stringify(config));
    run.child.kill('SIGHUP');
    await run.waitFor(/SIGHUP: configuration reloaded in 2 of 2 workers \(2 routes\)/);
    // Straight to the new port from 127.0.0.1, which is trusted, with a header of our own.
    const header = (i: number) => `PROXY TCP4 198.51.100.${i} 203.0.113.1 ${4000 + i} ${newPort}\r\n`;
    const results = await pool(40, 4, async (i) => {
      const socket = await connect({ port: newPort });
      try {
        socket.write(`${header(i + 1)}hi\n`);
        return JSON.parse(await readLine(socket)).header.source.address as string;
      } finally {
        socket.destroy();
      }
    });
    assert.deepEqual(results, Array.from({ length: 40 }, (_, i) => `198.51.100.${i + 1}`));
    await waitFor(() => /access worker=1 .*route=added/.test(run.output()) && /access worker=2 .*route=added/.test(run.output()), 5000, 'access lines of route "added" from both workers');
  });

  it('changes nothing anywhere on SIGHUP with a bad configuration', async () => {
    const pids = (await stats(metricsPort)).workers.map((w) => w.pid);
    fs.writeFileSync(file, JSON.stringify({ ...config, routes: [route('only', newPort + 0, 70000)] }));
    run.child.kill('SIGHUP');
    await run.waitFor(/SIGHUP: the configuration has problems; nothing changed in any worker/);
    assert.match(await exchange(haproxyPort, 'still'), /^\{/, 'route main still serves');
    assert.match(await exchange(newPort, `PROXY TCP4 198.51.100.1 203.0.113.1 1 ${newPort}\r\nstill`), /^\{/, 'route added still serves');
    assert.deepEqual((await stats(metricsPort)).workers.map((w) => w.pid), pids, 'no worker was restarted');
  });

  it('puts the previous configuration back in every worker when one worker cannot apply a new one', async () => {
    // Worker 1 alone serves UDP routes: a UDP port in use fails there, while worker 2 opens the new TCP port.
    const squatter = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => squatter.bind(0, '127.0.0.1', resolve));
    onCleanup(() => squatter.close());
    const udpPort = squatter.address().port;
    const udpRoute = { name: 'udp', match: { ports: udpPort, transport: 'udp' }, action: { type: 'forward', target: { host: '127.0.0.1', port: 9 } } };
    fs.writeFileSync(file, JSON.stringify({ ...config, routes: [...config.routes, route('busy', busyPort, backend.port), udpRoute] }));
    run.child.kill('SIGHUP');
    await run.waitFor(/SIGHUP: 1 of 2 workers could not apply the configuration \(.*EADDRINUSE.*\); every worker keeps the previous one/);
    assert.doesNotMatch(run.output(), /reloaded in \d of 2 workers \(3 routes\)/);
    await eventually(async () => (await exchange(busyPort, 'x')).includes('ECONNREFUSED'), 'the port worker 2 opened to close again');
    assert.match(await exchange(haproxyPort, 'still'), /^\{/);
    assert.match(await exchange(newPort, `PROXY TCP4 198.51.100.1 203.0.113.1 1 ${newPort}\r\nstill`), /^\{/);
    fs.writeFileSync(file, JSON.stringify(config));
  });

  it('drains both workers on SIGTERM: an open connection keeps working, then the supervisor exits 0', async () => {
    const held = await connect({ port: haproxyPort });
    held.write('held\n');
    assert.match(await readLine(held), /^\{/, 'the backend\'s report comes first');
    assert.equal(await readLine(held), 'held');
    const pids = (await stats(metricsPort)).workers.map((w) => w.pid as number);
    run.child.kill('SIGTERM');
    await run.waitFor(/SIGTERM: stopping 2 workers \(draining up to 4000 ms/);
    await sleep(300);
    held.write('still there\n');
    assert.equal(await readLine(held), 'still there', 'the draining worker still relays');
    held.end();
    assert.equal(await run.exited, 0, run.output());
    assert.match(run.output(), /worker 1 stopped \(code 0\)/);
    assert.match(run.output(), /worker 2 stopped \(code 0\)/);
    for (const pid of pids) assert.equal(pidAlive(pid), false, `worker ${pid} is gone`);
  });
});

describe('smartproxy --workers: failures around the supervisor', () => {
  it('drains and stops every worker when the supervisor is killed with kill -9', async () => {
    const echo = await startEchoServer();
    onCleanup(() => echo.close());
    const [port, metricsPort] = await freePorts(2);
    const { run } = startCli({ gracefulShutdownTimeout: 5000, metrics: { listen: `127.0.0.1:${metricsPort}` }, routes: [route('echo', port, echo.port)] });
    await run.waitFor(/started with 1 route in 2 workers/, 20_000);
    const pids = (await stats(metricsPort)).workers.map((w) => w.pid as number);
    const held = await connect({ port });
    held.write('before\n');
    assert.equal(await readLine(held), 'before');
    run.child.kill('SIGKILL');
    await sleep(500);
    held.write('after\n');
    assert.equal(await readLine(held), 'after', 'the orphaned worker drains its connection rather than cutting it');
    held.end();
    await waitFor(() => pids.every((pid) => !pidAlive(pid)), 10_000, 'the orphaned workers to leave');
    await assert.rejects(connect({ port }), /ECONNREFUSED/, 'nothing holds the port');
  });

  it('exits 1 when a worker cannot listen, naming the port, and leaves no worker behind', async () => {
    const squatter = await startServer((socket) => socket.destroy());
    onCleanup(() => squatter.close());
    const { run, file } = startCli({ routes: [route('taken', squatter.port, 9)] });
    assert.equal(await run.exited, 1, run.output());
    assert.match(run.output(), /worker \d \(pid \d+\) exited \(code 1\)|worker \d stopped \(code 1\)/, 'the worker says it failed by its exit code');
    assert.match(run.output(), new RegExp(`worker \\d cannot start: .*${squatter.port}`));
    assert.match(run.output(), /a worker could not start: stopping/);
    assert.deepEqual(processesWith(file), [], 'no worker is left behind');
  });

  it('keeps a UDP flow in one worker: every datagram of a client reaches the backend through one session', async () => {
    const echo = await startUdpEcho();
    onCleanup(() => echo.close());
    const [port, metricsPort] = await freePorts(2);
    const udpRoute = { name: 'dns', match: { ports: port, transport: 'udp' }, action: { type: 'forward', target: { host: '127.0.0.1', port: echo.port } } };
    const { run } = startCli({ metrics: { listen: `127.0.0.1:${metricsPort}` }, routes: [udpRoute] });
    await run.waitFor(/started with 1 route in 2 workers/, 20_000);
    assert.match(run.output(), /UDP routes are served by worker 1 only/);
    const client = await udpClient('127.0.0.1', port);
    onCleanup(() => client.close());
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) seen.add((await client.request(`q${i}`)).toString().split('|')[0]);
    assert.equal(seen.size, 1, `the backend saw the flow from one socket, not ${[...seen].join(', ')}`);
    const s = (await stats(metricsPort)) as unknown as { udp: { totalSessions: number; datagramsToBackends: number } };
    assert.deepEqual([s.udp.totalSessions, s.udp.datagramsToBackends], [1, 40]);
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0, run.output());
  });

  it('refuses a bad worker count on the command line and in the file', async () => {
    const file = cli.writeConfig({ workers: 'many', routes: [route('r', 1, 2)] }, onCleanup);
    const flag = cli.runNode(['ts/cli.ts', '--config', file, '--workers', '0'], onCleanup);
    assert.equal(await flag.exited, 2);
    assert.match(flag.output(), /--workers must be a whole number from 1 to 256, or "auto"/);
    const check = cli.runNode(['ts/cli.ts', '--config', file, '--check'], onCleanup);
    assert.equal(await check.exited, 2);
    assert.match(check.output(), /workers: must be a whole number from 1 to 256, or "auto" \(one per core\), got "many" \[ERR_CONFIG_OPTION\]/);
  });
});
