/**
 * withProxyProtocol with SmartProxy's PROXY policies: `rules` by source and local port, `versions`.
 * Distinct sources are distinct 127.0.0.X addresses on real sockets.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { ConfigError, ProxyProtocolParser, collectConfigErrors, withProxyProtocol } from '../ts/index.js';
import type { IProxyProtocolServerErrorEvent, IWithProxyProtocolOptions } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { connect, freePorts, readAll, readLine, waitFor } from './helpers/net.js';
import { type IPeerReport, type IReply, listen, report } from './helpers/servers.js';

const onCleanup = cleanupAfterAll();

const SOURCES = { require: '127.0.0.2', use: '127.0.0.3', ignore: '127.0.0.4', skip: '127.0.0.5', other: '127.0.0.6' };
const RULES: NonNullable<IWithProxyProtocolOptions['rules']> = [
  { from: [SOURCES.require], policy: 'require' },
  { from: [SOURCES.use], policy: 'use' },
  { from: [SOURCES.ignore], policy: 'ignore' },
  { from: [SOURCES.skip], policy: 'skip' },
];
const CLIENT = '198.51.100.7';
const GET = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');

const header = (version: 1 | 2 = 1) =>
  ProxyProtocolParser.generate({ source: { address: CLIENT, port: 4242 }, destination: { address: '203.0.113.1', port: 80 } }, { version });

interface IServed {
  port: number;
  errors: IProxyProtocolServerErrorEvent[];
}

async function wrapped(server: net.Server, options: IWithProxyProtocolOptions, port?: number): Promise<IServed> {
  const errors: IProxyProtocolServerErrorEvent[] = [];
  withProxyProtocol(server, options).on('proxyProtocolError', (e: IProxyProtocolServerErrorEvent) => errors.push(e));
  const listening = await listen(server, port);
  onCleanup(() => listening.close());
  return { port: listening.port, errors };
}

const httpServer = (options: IWithProxyProtocolOptions, port?: number) =>
  wrapped(http.createServer((req, res) => res.end(JSON.stringify({ socket: report(req.socket) } satisfies IReply))), options, port);

/** What the http.Server answered `from`: its view of the socket, the raw reply, or 'closed'. */
async function ask(port: number, from: string, first: Buffer): Promise<IPeerReport | string> {
  const socket = await connect({ port, localAddress: from });
  socket.write(Buffer.concat([first, GET]));
  const text = (await readAll(socket)).toString();
  if (text === '') return 'closed';
  if (!text.startsWith('HTTP/1.1 200')) return text.slice(0, text.indexOf('\r\n'));
  return (JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as IReply).socket;
}

const direct = (from: string) => ({ address: from, family: 'IPv4', version: null, command: null, authority: null });
const believed = { address: CLIENT, port: 4242, family: 'IPv4', version: 1, command: 'PROXY', authority: null };
const without = (seen: IPeerReport | string) => (typeof seen === 'string' ? seen : { ...seen, port: undefined });
const portless = (r: object) => ({ ...r, port: undefined });

describe('withProxyProtocol rules: each policy on one http.Server, from distinct sources', () => {
  it('require: a header is believed; without one the connection is refused with ERR_PP_MISSING and a hint', async () => {
    const h = await httpServer({ rules: RULES });
    assert.deepEqual(await ask(h.port, SOURCES.require, header()), believed);
    assert.equal(await ask(h.port, SOURCES.require, Buffer.alloc(0)), 'closed');
    await waitFor(() => h.errors.length === 1);
    assert.equal(h.errors[0].code, 'ERR_PP_MISSING');
    assert.equal(h.errors[0].policy, 'require');
    assert.equal(h.errors[0].trusted, true);
    assert.match(h.errors[0].hint ?? '', /an HTTP\/1 request line where policy "require"/);
  });

  it('use: a header is believed; without one the peer is a direct client', async () => {
    const h = await httpServer({ rules: RULES });
    assert.deepEqual(await ask(h.port, SOURCES.use, header(2)), { ...believed, version: 2 });
    assert.deepEqual(without(await ask(h.port, SOURCES.use, Buffer.alloc(0))), portless(direct(SOURCES.use)));
    assert.deepEqual(h.errors, []);
  });

  it('ignore: a header is removed and never believed (the peer stays the client, getProxyHeader is null); none is fine too', async () => {
    const h = await httpServer({ rules: RULES });
    for (const first of [header(1), header(2), Buffer.alloc(0)]) {
      assert.deepEqual(without(await ask(h.port, SOURCES.ignore, first)), portless(direct(SOURCES.ignore)));
    }
    assert.deepEqual(h.errors, []);
  });

  it('reject (a source no rule names): a header is spoofing, ERR_PP_UNTRUSTED_PEER with a hint; without one a direct client', async () => {
    const h = await httpServer({ rules: RULES });
    assert.equal(await ask(h.port, SOURCES.other, header()), 'closed');
    await waitFor(() => h.errors.length === 1);
    assert.equal(h.errors[0].code, 'ERR_PP_UNTRUSTED_PEER');
    assert.equal(h.errors[0].policy, 'reject');
    assert.equal(h.errors[0].trusted, false);
    assert.match(h.errors[0].hint ?? '', /policy "reject" applies to it[\s\S]*a rules entry with policy "require"/);
    assert.deepEqual(without(await ask(h.port, SOURCES.other, Buffer.alloc(0))), portless(direct(SOURCES.other)));
  });

  it('skip: nothing is read, so a header reaches the application as data (here: a bad HTTP request)', async () => {
    const h = await httpServer({ rules: RULES });
    assert.equal(await ask(h.port, SOURCES.skip, header()), 'HTTP/1.1 400 Bad Request');
    assert.deepEqual(without(await ask(h.port, SOURCES.skip, Buffer.alloc(0))), portless(direct(SOURCES.skip)));
    assert.deepEqual(h.errors, []);
  });

  it('proxyIPs becomes a rule after the explicit ones: require, or use with required: false', async () => {
    const rules = [{ from: ['127.0.0.0/24'], policy: 'ignore' as const }];
    const strict = await httpServer({ rules, proxyIPs: ['127.0.0.1', '127.0.1.9'] });
    assert.deepEqual(without(await ask(strict.port, '127.0.0.1', header())), portless(direct('127.0.0.1')), 'the explicit rule wins');
    assert.deepEqual(await ask(strict.port, '127.0.1.9', header()), believed);
    assert.equal(await ask(strict.port, '127.0.1.9', Buffer.alloc(0)), 'closed');
    const optional = await httpServer({ rules, proxyIPs: ['127.0.1.9'], required: false });
    assert.deepEqual(without(await ask(optional.port, '127.0.1.9', Buffer.alloc(0))), portless(direct('127.0.1.9')));
  });

  it('ports match the server\'s local port: the same source is believed on one server and refused on another', async () => {
    const [ruled, other] = await freePorts(2);
    const options = { rules: [{ from: [SOURCES.require], ports: [ruled], policy: 'require' as const }] };
    const a = await httpServer(options, ruled);
    const b = await httpServer(options, other);
    assert.deepEqual(await ask(a.port, SOURCES.require, header()), believed);
    assert.equal(await ask(b.port, SOURCES.require, header()), 'closed');
    await waitFor(() => b.errors.length === 1);
    assert.equal(b.errors[0].code, 'ERR_PP_UNTRUSTED_PEER');
  });
});

describe('withProxyProtocol rules: skip serves server-first protocols at once', () => {
  it('a skip source is greeted by a net.Server at once, while a reject source waits for the timeout', async () => {
    const greeter = () => net.createServer((socket) => socket.end(`hello ${socket.remoteAddress}\n`));
    const h = await wrapped(greeter(), { rules: [{ from: [SOURCES.skip], policy: 'skip' }], timeout: 400 });
    const greet = async (from: string) => {
      const start = Date.now();
      const line = await readLine(await connect({ port: h.port, localAddress: from }), 3000);
      return { line, ms: Date.now() - start };
    };
    const skipped = await greet(SOURCES.skip);
    assert.equal(skipped.line, `hello ${SOURCES.skip}`);
    assert.ok(skipped.ms < 200, `greeted after ${skipped.ms} ms`);
    const rejected = await greet(SOURCES.other);
    assert.ok(rejected.ms >= 390, `a reject source greeted after ${rejected.ms} ms`);
  });
});

describe('withProxyProtocol versions', () => {
  it('a header of a version not in versions is refused with ERR_PP_VERSION_NOT_ALLOWED; the other is believed', async () => {
    const h = await httpServer({ proxyIPs: ['127.0.0.1'], versions: [2] });
    assert.deepEqual(await ask(h.port, '127.0.0.1', header(2)), { ...believed, version: 2 });
    assert.equal(await ask(h.port, '127.0.0.1', header(1)), 'closed');
    await waitFor(() => h.errors.length === 1);
    assert.equal(h.errors[0].code, 'ERR_PP_VERSION_NOT_ALLOWED');
  });

  it('versions apply to ignored headers as well, as in SmartProxy', async () => {
    const h = await httpServer({ rules: RULES, versions: [1] });
    assert.deepEqual(without(await ask(h.port, SOURCES.ignore, header(1))), portless(direct(SOURCES.ignore)));
    assert.equal(await ask(h.port, SOURCES.ignore, header(2)), 'closed');
    await waitFor(() => h.errors.length === 1);
    assert.equal(h.errors[0].code, 'ERR_PP_VERSION_NOT_ALLOWED');
  });
});

describe('withProxyProtocol rules and versions are checked as SmartProxy checks proxyProtocolRules', () => {
  const bad: Array<[string, unknown]> = [
    ['a rule that is not an object', 'require'],
    ['a rule without a policy', { from: ['10.0.0.1'] }],
    ['an unknown policy', { from: ['10.0.0.1'], policy: 'trust' }],
    ['an unknown key', { from: ['10.0.0.1'], policy: 'use', port: [1] }],
    ['a rule without from', { policy: 'use' }],
    ['an empty from', { from: [], policy: 'use' }],
    ['a bad source', { from: ['10.0.0.1', 'lb.example.com'], policy: 'use' }],
    ['a port out of range', { from: ['10.0.0.1'], ports: [80, 70000], policy: 'use' }],
    ['ports not an array', { from: ['10.0.0.1'], ports: 80, policy: 'use' }],
    ['a catch-all with require', { from: ['0.0.0.0/0'], policy: 'require' }],
    ['a catch-all with use', { from: ['10.0.0.1', '::/0'], policy: 'use' }],
  ];
  for (const [name, rule] of bad) {
    it(`${name}: the same ConfigError code and field as SmartProxy`, () => {
      const expected = collectConfigErrors({ routes: [], acceptProxyProtocol: true, proxyProtocolRules: [rule] }).find((e) => e.field.startsWith('proxyProtocolRules'));
      assert.ok(expected !== undefined, 'SmartProxy refuses it');
      assert.throws(
        () => withProxyProtocol(http.createServer(), { rules: [rule] } as IWithProxyProtocolOptions),
        (err: unknown) => err instanceof ConfigError && err.code === expected.code && err.field === expected.field.replace('proxyProtocolRules', 'rules'),
      );
    });
  }

  for (const versions of [[3], [], '2']) {
    it(`versions ${JSON.stringify(versions)}: the same ConfigError code as SmartProxy's proxyProtocolVersions`, () => {
      const expected = collectConfigErrors({ routes: [], proxyProtocolVersions: versions }).find((e) => e.field.startsWith('proxyProtocolVersions'));
      assert.ok(expected !== undefined, 'SmartProxy refuses it');
      assert.throws(
        () => withProxyProtocol(http.createServer(), { proxyIPs: [], versions } as IWithProxyProtocolOptions),
        (err: unknown) => err instanceof ConfigError && err.code === expected.code && err.field === expected.field.replace('proxyProtocolVersions', 'versions'),
      );
    });
  }

  it('a catch-all source with skip, ignore or reject needs no trustAllProxyIPs; with require it does', () => {
    for (const policy of ['skip', 'ignore', 'reject'] as const) {
      assert.doesNotThrow(() => withProxyProtocol(http.createServer(), { rules: [{ from: ['0.0.0.0/0', '::/0'], policy }] }));
    }
    assert.doesNotThrow(() => withProxyProtocol(http.createServer(), { rules: [{ from: ['0.0.0.0/0'], policy: 'require' }], trustAllProxyIPs: true }));
  });

  it('proxyIPs may be left out when rules are given, and is still required without them', () => {
    assert.doesNotThrow(() => withProxyProtocol(http.createServer(), { rules: [] }));
    assert.throws(() => withProxyProtocol(http.createServer(), {}), (err: unknown) => err instanceof ConfigError && err.field === 'proxyIPs');
  });
});
