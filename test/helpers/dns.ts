/**
 * Unbound and dnsdist for the UDP interop tests, and `dig` to ask them: configs in a temp dir,
 * loopback high ports, foreground processes started and stopped by PID, no chroot, no service.
 * A missing binary skips locally and fails under CI=true.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { findBinary, type IPeer, startPeer } from './peers.js';

export { skipUnless as skipUnlessDns } from './peers.js';
export type { IPeer as IDnsPeer } from './peers.js';

/** The name every Unbound answers locally, and its address. */
export const DNS_NAME = 'echo.smartproxy.test';
export const DNS_ANSWER = '192.0.2.53';

/**
 * Unbound on 127.0.0.1:`port` (UDP and TCP) expecting PROXY v2 on that port, answering
 * DNS_NAME locally, allowing only `allow` (the real client) and refusing the rest of 127/8
 * except 127.0.0.1, where SmartProxy's datagrams come from (Unbound applies access-control to the
 * proxy itself too).
 */
export function startUnbound(port: number, allow: string): Promise<IPeer> {
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
  return startPeer('unbound', 'unbound', (dir) => ['-d', '-c', path.join(dir, 'unbound.conf')], { 'unbound.conf': config }, [port]);
}

/** dnsdist in the foreground on 127.0.0.1:`port` with `lua` (after setLocal). */
export function startDnsdist(port: number, lua: string): Promise<IPeer> {
  const config = `setLocal("127.0.0.1:${port}")\nsetSecurityPollSuffix("")\n${lua}\n`;
  return startPeer('dnsdist', 'dnsdist', (dir) => ['--supervised', '--disable-syslog', '-C', path.join(dir, 'dnsdist.conf')], { 'dnsdist.conf': config }, [port]);
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
