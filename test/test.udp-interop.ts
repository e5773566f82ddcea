/**
 * DNS peers that speak PROXY v2 over UDP: Unbound behind SmartProxy (UDP and TCP on one port),
 * dnsdist in front of SmartProxy and behind it. The real client (dig bound to 127.0.0.5 or
 * 127.0.0.6) must survive every hop: the peer's access control answers one and refuses the other.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { SmartProxy } from '../ts/proxies/smart-proxy/smart-proxy.js';
import type { ISmartProxyOptions } from '../ts/proxies/smart-proxy/models/interfaces.js';
import { DNS_ANSWER, dig, type IDnsPeer, skipUnlessDns, startDnsdist, startUnbound } from './helpers/dns.js';
import { freeUdpPort } from './helpers/udp.js';

const ALLOWED = '127.0.0.5';
const OTHER = '127.0.0.6';

/** A UDP route and a TCP route on `port`, both sending v2 to 127.0.0.1:`target`. */
function dnsRoutes(port: number, target: number): ISmartProxyOptions['routes'] {
  const action = { type: 'forward' as const, target: { host: '127.0.0.1', port: target }, sendProxyProtocol: { version: 2 as const } };
  return [
    { name: 'dns-udp', match: { ports: port, transport: 'udp' }, action },
    { name: 'dns-tcp', match: { ports: port }, action },
  ];
}

describe('UDP interop with DNS servers', () => {
  const cleanups: Array<() => Promise<void>> = [];
  const peers: IDnsPeer[] = [];
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  async function peer(started: Promise<IDnsPeer>): Promise<IDnsPeer> {
    const p = await started;
    peers.push(p);
    cleanups.push(() => p.stop());
    return p;
  }

  async function proxy(options: ISmartProxyOptions): Promise<SmartProxy> {
    const p = new SmartProxy(options);
    await p.start();
    cleanups.push(() => p.stop());
    return p;
  }

  async function expectAccess(port: number, transports: Array<'udp' | 'tcp'>): Promise<void> {
    for (const transport of transports) {
      const allowed = await dig(ALLOWED, port, transport);
      const other = await dig(OTHER, port, transport);
      const logs = () => `${allowed.output}\n${other.output}\n${peers.map((p) => p.logs()).join('\n')}`;
      assert.equal(allowed.status, 'NOERROR', `${transport} from ${ALLOWED}: ${logs()}`);
      assert.equal(allowed.answer, DNS_ANSWER, `${transport} answer: ${logs()}`);
      assert.equal(other.status, 'REFUSED', `${transport} from ${OTHER}: ${logs()}`);
    }
  }

  test('Unbound behind SmartProxy (proxy-protocol-port): 127.0.0.5 gets an answer and 127.0.0.6 REFUSED, over UDP and over TCP on the same port', { skip: skipUnlessDns('unbound', 'dig') }, async () => {
    const [unboundPort, port] = [await freeUdpPort(), await freeUdpPort()];
    await peer(startUnbound(unboundPort, ALLOWED));
    const smart = await proxy({ routes: dnsRoutes(port, unboundPort) });
    await expectAccess(port, ['udp', 'tcp']);
    const udp = smart.getStatistics().udp;
    assert.equal(udp.headersSent, 2);
    assert.equal(udp.datagramsToClients, 2);
  });

  test('dnsdist in front of SmartProxy (useProxyProtocol): SmartProxy requires its header and passes the client on to Unbound', { skip: skipUnlessDns('unbound', 'dnsdist', 'dig') }, async () => {
    const [unboundPort, port, dnsdistPort] = [await freeUdpPort(), await freeUdpPort(), await freeUdpPort()];
    await peer(startUnbound(unboundPort, ALLOWED));
    const smart = await proxy({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'], routes: dnsRoutes(port, unboundPort) });
    // Health checks would reach Unbound as dnsdist itself (refused there): the server is set up by hand.
    await peer(startDnsdist(dnsdistPort, `local server = newServer({ address = "127.0.0.1:${port}", useProxyProtocol = true })\nserver:setUp()`));
    await expectAccess(dnsdistPort, ['udp', 'tcp']);
    const udp = smart.getStatistics().udp;
    assert.ok(udp.headersReceived >= 2, `headers received from dnsdist: ${udp.headersReceived}`);
    assert.deepEqual(udp.dropped, {});
  });

  test('dnsdist behind SmartProxy (setProxyProtocolACL): its rules see the real client', { skip: skipUnlessDns('dnsdist', 'dig') }, async () => {
    const [dnsdistPort, port] = [await freeUdpPort(), await freeUdpPort()];
    const rules = [
      'setProxyProtocolACL({ "127.0.0.1/32" })',
      `addAction(makeRule("${ALLOWED}/32"), SpoofAction("${DNS_ANSWER}"))`,
      'addAction(AllRule(), RCodeAction(DNSRCode.REFUSED))',
    ].join('\n');
    await peer(startDnsdist(dnsdistPort, rules));
    await proxy({ routes: dnsRoutes(port, dnsdistPort) });
    await expectAccess(port, ['udp', 'tcp']);
  });
});
