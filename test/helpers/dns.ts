/**
 * Unbound and dnsdist for the UDP interop tests, and `dig` to ask them: configs in a temp dir,
 * loopback high ports, foreground processes started and stopped by PID, no chroot, no service.
 * A missing binary skips locally and fails under CI=true.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findBinary } from './peers.js';

/** The `skip` option for a test needing `binaries` (unbound, dnsdist, dig). */
export function skipUnlessDns(...binaries: string[]): false | string {
  const missing = binaries.filter((b) => findBinary(b) === null);
  if (missing.length === 0) return false;
  const reason = `needs ${missing.join(', ')} (apt-get install unbound dnsdist bind9-dnsutils)`;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`);
  return reason;
}

export interface IDnsPeer {
  pid: number;
  logs(): string;
  stop(): Promise<void>;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function spawnPeer(binary: string, args: (dir: string) => string[], file: string, config: string, port: number): Promise<IDnsPeer> {
  const exe = findBinary(binary);
  if (exe === null) throw new Error(`${binary} not found`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `smartproxy-${binary}-`));
  fs.writeFileSync(path.join(dir, file), config.replaceAll('$DIR', dir));
  let output = '';
  const child = spawn(exe, args(dir), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const started = Date.now();
  while (!(await tcpOpen(port))) {
    if (child.exitCode !== null || Date.now() - started > 5000) {
      await stop();
      throw new Error(`${binary} did not listen on ${port}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { pid: child.pid as number, logs: () => output, stop };
}

/** The name every Unbound answers locally, and its address. */
export const DNS_NAME = 'echo.smartproxy.test';
export const DNS_ANSWER = '192.0.2.53';

/**
 * Unbound on 127.0.0.1:`port` (UDP and TCP) expecting PROXY v2 on that port, answering
 * DNS_NAME locally, allowing only `allow` (the real client) and refusing the rest of 127/8
 * except 127.0.0.1, where SmartProxy's datagrams come from (Unbound applies access-control to the
 * proxy itself too).
 */
export function startUnbound(port: number, allow: string): Promise<IDnsPeer> {
  const config = `server:
  interface: 127.0.0.1@${port}
  proxy-protocol-port: ${port}
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "$DIR"
  pidfile: "$DIR/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  do-ip6: no
  module-config: "iterator"
  access-control: 0.0.0.0/0 refuse
  access-control: 127.0.0.0/8 refuse
  # Unbound checks the proxy itself first (deny/refuse), then the client its header names.
  access-control: 127.0.0.1 allow
  access-control: ${allow} allow
  local-zone: "smartproxy.test." static
  local-data: "${DNS_NAME}. A ${DNS_ANSWER}"
remote-control:
  control-enable: no
`;
  return spawnPeer('unbound', (dir) => ['-d', '-c', path.join(dir, 'unbound.conf')], 'unbound.conf', config, port);
}

/** dnsdist in the foreground on 127.0.0.1:`port` with `lua` (after setLocal). */
export function startDnsdist(port: number, lua: string): Promise<IDnsPeer> {
  const config = `setLocal("127.0.0.1:${port}")\nsetSecurityPollSuffix("")\n${lua}\n`;
  return spawnPeer('dnsdist', (dir) => ['--supervised', '--disable-syslog', '-C', path.join(dir, 'dnsdist.conf')], 'dnsdist.conf', config, port);
}

export interface IDigResult {
  status: string;
  answer: string;
  output: string;
}

/** `dig` from `source` to 127.0.0.1:`port` for DNS_NAME, over UDP or TCP, one try. */
export function dig(source: string, port: number, transport: 'udp' | 'tcp'): Promise<IDigResult> {
  const args = ['-b', source, '-p', String(port), '@127.0.0.1', DNS_NAME, 'A', '+tries=1', '+time=2', transport === 'tcp' ? '+tcp' : '+notcp'];
  return new Promise((resolve) => {
    execFile(findBinary('dig') ?? 'dig', args, { timeout: 5000 }, (_err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      const status = /status: ([A-Z]+)/.exec(output)?.[1] ?? 'NO ANSWER';
      const answer = new RegExp(`^${DNS_NAME.replaceAll('.', '\\.')}\\.\\s+\\d+\\s+IN\\s+A\\s+(\\S+)`, 'm').exec(output)?.[1] ?? '';
      resolve({ status, answer, output });
    });
  });
}
