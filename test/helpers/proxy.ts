/** A started SmartProxy in front of an echo backend, trusting PROXY headers from 127.0.0.1 unless `extra` says otherwise. */
import { SmartProxy } from '../../ts/index.js';
import type { ISmartProxyOptions } from '../../ts/index.js';
import { freePort, startEchoServer } from './net.js';

export async function startProxyToEcho(onCleanup: (fn: () => unknown) => void, routeName: string, extra: Partial<ISmartProxyOptions> = {}): Promise<{ proxy: SmartProxy; port: number }> {
  const backend = await startEchoServer();
  onCleanup(() => backend.close());
  const port = await freePort();
  const proxy = new SmartProxy({
    listenAddress: '127.0.0.1',
    acceptProxyProtocol: true,
    proxyIPs: ['127.0.0.1'],
    routes: [{ name: routeName, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: backend.port } } }],
    ...extra,
  });
  await proxy.start();
  onCleanup(() => proxy.stop());
  return { proxy, port };
}
