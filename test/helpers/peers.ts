/**
 * Real HAProxy and nginx for interop tests: config into a temp dir, start on free loopback
 * ports, wait until listening, stop by PID (even when a test fails), logs shown on failure.
 * A missing binary skips with a reason locally and fails under CI=true.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const SEARCH_PATH = ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

export function findBinary(name: string): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...SEARCH_PATH]) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

/**
 * The `skip` option for a test needing `binaries`: false when all are present; a reason string
 * when one is missing locally. Under CI=true a missing binary throws, so CI fails loudly.
 */
export function skipUnless(...binaries: string[]): false | string {
  const missing = binaries.filter((b) => findBinary(b) === null);
  if (missing.length === 0) return false;
  const reason = `needs ${missing.join(', ')} (apt-get install haproxy nginx libnginx-mod-stream curl unbound dnsdist bind9-dnsutils)`;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason}`);
  return reason;
}

export interface IPeer {
  name: string;
  pid: number;
  dir: string;
  logs(): string;
  stop(): Promise<void>;
}

async function waitListening(port: number, child: ChildProcess, logs: () => string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`peer exited with ${child.exitCode} before listening on ${port}:\n${logs()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - start > timeoutMs) throw new Error(`peer not listening on ${port} after ${timeoutMs} ms:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A peer program in the foreground with `files` written to a temp dir ($DIR), ready once it listens on `ports`. */
export async function startPeer(name: string, binary: string, args: (dir: string) => string[], files: Record<string, string>, ports: number[]): Promise<IPeer> {
  const exe = findBinary(binary);
  if (exe === null) throw new Error(`${binary} not found`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `smartproxy-${name}-`));
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), text.replaceAll('$DIR', dir));
  let output = '';
  const child = spawn(exe, args(dir), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const logs = () => {
    let text = output;
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (f.endsWith('.log')) text += `\n--- ${f}\n${fs.readFileSync(path.join(dir, f), 'utf8')}`;
    return text;
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) await waitListening(port, child, logs);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name, pid: child.pid as number, dir, logs, stop };
}

/** HAProxy in the foreground (-db) with `config` (use $DIR for the temp dir; `files` are written there first). */
export function startHaproxy(config: string, ports: number[], files: Record<string, string> = {}, globalLines = ''): Promise<IPeer> {
  const base = `global\n  stats socket $DIR/admin.sock level admin\n${globalLines}defaults\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n`;
  return startPeer('haproxy', 'haproxy', (dir) => ['-db', '-f', path.join(dir, 'haproxy.cfg')], { ...files, 'haproxy.cfg': base + config }, ports);
}

/** nginx in the foreground with the stream module loaded; `config` is the main context body. */
export function startNginx(config: string, ports: number[], files: Record<string, string> = {}): Promise<IPeer> {
  const modules = ['/usr/lib/nginx/modules/ngx_stream_module.so'].filter((m) => fs.existsSync(m)).map((m) => `load_module ${m};`).join('\n');
  const base = `${modules}\ndaemon off;\nmaster_process off;\nworker_processes 1;\npid $DIR/nginx.pid;\nerror_log $DIR/error.log info;\nevents { worker_connections 1024; }\n`;
  return startPeer('nginx', 'nginx', (dir) => ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], { ...files, 'nginx.conf': base + config }, ports);
}

/** Sends one command to HAProxy's admin socket and returns the answer. */
export function haproxyCommand(peer: IPeer, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path.join(peer.dir, 'admin.sock'));
    let out = '';
    socket.on('data', (d) => (out += d));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    socket.end(`${command}\n`);
  });
}

/** Runs `fn`; when it throws, prints the peers' logs first so the failure explains itself. */
export async function withPeerLogs<T>(peers: IPeer[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    for (const p of peers) console.error(`----- ${p.name} (pid ${p.pid}) logs -----\n${p.logs()}`);
    throw err;
  }
}
