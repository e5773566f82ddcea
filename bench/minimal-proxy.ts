/**
 * The floor of any Node proxy: net + pipe, nothing else. Used by npm run bench as the baseline
 * SmartProxy is measured against. `node minimal-proxy.ts <port>:<targetPort> [...]`
 */
import net from 'node:net';

function forward(listenPort: number, targetPort: number): Promise<void> {
  const server = net.createServer((client) => {
    const backend = net.connect({ port: targetPort, host: '127.0.0.1' });
    client.pipe(backend);
    backend.pipe(client);
    const close = (): void => {
      client.destroy();
      backend.destroy();
    };
    client.on('error', close);
    backend.on('error', close);
    client.on('close', close);
    backend.on('close', close);
  });
  return new Promise((resolve) => server.listen(listenPort, '127.0.0.1', resolve));
}

await Promise.all(process.argv.slice(2).map((pair) => forward(...(pair.split(':').map(Number) as [number, number]))));
console.log('ready');
process.on('SIGTERM', () => process.exit(0));
