import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProxyProtocolParser, authorityTlv, withProxyProtocol } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { SERVER_KINDS, type IServerKind, listen, startInjector } from './helpers/servers.js';

const onCleanup = cleanupAfterAll();

const CLIENT_V4 = '198.51.100.7';
const CLIENT_V6 = '2001:db8::7';

const HEADERS = {
  'v1 TCP4': (clientPort: number) =>
    ProxyProtocolParser.generate({ source: { address: CLIENT_V4, port: clientPort }, destination: { address: '203.0.113.1', port: 443 } }, { version: 1 }),
  'v2 INET6 with an AUTHORITY TLV': (clientPort: number) =>
    ProxyProtocolParser.generate(
      { source: { address: CLIENT_V6, port: clientPort }, destination: { address: '2001:db8::1', port: 443 } },
      { version: 2, tlvs: [authorityTlv('app.example.com')] },
    ),
};

async function wrappedServer(kind: IServerKind) {
  const server = withProxyProtocol(kind.create(), { proxyIPs: ['127.0.0.1'] });
  const errors: unknown[] = [];
  server.on('proxyProtocolError', (e) => errors.push(e));
  const listening = await listen(server);
  onCleanup(() => listening.close());
  return { port: listening.port, errors };
}

describe('withProxyProtocol: every server kind reads v1 and v2 headers split at every byte', () => {
  for (const kind of SERVER_KINDS) {
    for (const [name, header] of Object.entries(HEADERS)) {
      it(`${kind.name}, ${name}: each cut (0 = header and data in one write) names the client on every socket the app sees`, { timeout: 20_000 }, async () => {
        const { port, errors } = await wrappedServer(kind);
        const length = header(1).length;
        const cuts = Array.from({ length: length + 1 }, (_, i) => i);
        const injector = await startInjector(port, header, cuts);
        onCleanup(() => injector.close());
        const v6 = name.startsWith('v2');
        const settled = await Promise.allSettled(cuts.map(() => kind.ask(injector.port)));
        const failed = settled.filter((r) => r.status === 'rejected');
        assert.deepEqual(failed, [], `server errors: ${JSON.stringify(errors)}`);
        const answers = settled.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<IServerKind['ask']>>>).value);
        assert.deepEqual([...injector.used].sort((a, b) => a - b), cuts, 'every cut was used once');
        for (const { reply, localPort } of answers) {
          for (const seen of [reply.socket, ...(reply.session ? [reply.session] : [])]) {
            assert.equal(seen.address, v6 ? CLIENT_V6 : CLIENT_V4);
            assert.equal(seen.port, localPort, 'the port from this connection\'s own header');
            assert.equal(seen.family, v6 ? 'IPv6' : 'IPv4');
            assert.equal(seen.version, v6 ? 2 : 1);
            assert.equal(seen.command, 'PROXY');
            assert.equal(seen.authority, v6 ? 'app.example.com' : null);
          }
          if (reply.echo !== undefined) assert.equal(reply.echo, 'ping', 'the bytes after the header arrive untouched');
        }
        assert.deepEqual(errors, []);
      });
    }
  }
});
