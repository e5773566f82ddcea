/**
 * What the service logs about traffic: one access line per finished connection (info), and the
 * refusals, PROXY errors and backend failures (warn), each with its code.
 */
import type { Logger } from 'pino';
import type { IConnectionRecord, IProxyProtocolErrorEvent } from '../proxies/smart-proxy/models/interfaces.js';
import type { SmartProxy } from '../proxies/smart-proxy/smart-proxy.js';

/** `v2/PROXY`, `v1/LOCAL`..., or `-` without a header: what the connection's PROXY header said. */
function proxyText(record: IConnectionRecord): string {
  const header = record.proxyHeader;
  return header === null ? '-' : `v${header.version}/${header.command}`;
}

function hostPort(ip: string, port: number | undefined): string {
  return `${ip.includes(':') ? `[${ip}]` : ip}:${port ?? '-'}`;
}

/**
 * The access line's fields, in HAProxy `tcplog` order: who (real client, TCP peer), where
 * (listener port, route, SNI), how (PROXY header), how it ended, bytes each way, duration.
 */
export function accessFields(record: IConnectionRecord): Record<string, string | number> {
  return {
    client: hostPort(record.clientIP, record.clientPort),
    peer: hostPort(record.peerIP, record.wrapped.socket.remotePort),
    port: record.localPort,
    route: record.routeName ?? '-',
    sni: record.serverName ?? '-',
    proxy: proxyText(record),
    close: record.closeReason ?? '-',
    bytesIn: record.bytesFromClient,
    bytesOut: record.bytesToClient,
    ms: Date.now() - record.startTime,
  };
}

interface IRejected {
  code: string;
  message: string;
  clientIP: string;
  localPort: number;
}

export function logTraffic(proxy: SmartProxy, log: Logger): void {
  proxy.on('connection-close', (record: IConnectionRecord) => {
    const fields = accessFields(record);
    if (record.closeReason?.startsWith('ERR_BACKEND')) log.warn({ code: record.closeReason, client: fields.client, route: fields.route }, 'backend failed');
    log.info(fields, 'access');
  });
  proxy.on('connection-rejected', (e: IRejected) => log.warn({ code: e.code, client: e.clientIP, port: e.localPort }, `connection refused: ${e.message}`));
  proxy.on('proxy-protocol-error', (e: IProxyProtocolErrorEvent) => {
    log.warn({ code: e.code, peer: hostPort(e.peerAddress, e.peerPort), port: e.localPort, policy: e.policy, hint: e.hint }, `PROXY header refused: ${e.message}`);
  });
}
