import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import {
  ConfigError,
  ProxyProtocolDecoder,
  ProxyProtocolParser,
  getProxyHeader,
  noopTlv,
  withProxyProtocol,
} from '../ts/index.js';
import type { IProxyProtocolServerErrorEvent, IWithProxyProtocolOptions, SmartProxyError } from '../ts/index.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { closed, connect, readAll, readLine, waitFor } from './helpers/net.js';
import { type IReply, listen, report } from './helpers/servers.js';
import { writeSplit } from './helpers/tls.js';

const onCleanup = cleanupAfterAll();

const v1 = (address = '198.51.100.7', port = 40000) =>
  ProxyProtocolParser.generate({ source: { address, port }, destination: { address: '203.0.113.1', port: 80 } }, { version: 1 });
const v2 = (address = '198.51.100.7', port = 40000) =>
  ProxyProtocolParser.generate({ source: { address, port }, destination: { address: '203.0.113.1', port: 80 } }, { version: 2 });
const GET = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');

interface IHarness {
  port: number;
  errors: IProxyProtocolServerErrorEvent[];
  /** Sockets the application was given. */
  served: number;
}

/** Wraps the server `create` makes, counting what it serves and the errors it reports. */
async function harness(options: IWithProxyProtocolOptions, create: (state: IHarness) => net.Server): Promise<IHarness> {
  const state: IHarness = { port: 0, errors: [], served: 0 };
  const server = withProxyProtocol(create(state), options);
  server.on('proxyProtocolError', (e: IProxyProtocolServerErrorEvent) => state.errors.push(e));
  const listening = await listen(server);
  onCleanup(() => listening.close());
  state.port = listening.port;
  return state;
}

/** A wrapped net.Server that greets first (a server-first protocol), then answers one line. */
const lineServer = (options: IWithProxyProtocolOptions) =>
  harness(options, (state) =>
    net.createServer((socket) => {
      state.served++;
      socket.on('error', () => undefined);
      socket.write(`hello ${JSON.stringify(report(socket))}\n`);
      void readLine(socket).then((line) => socket.end(`${line}\n`), () => socket.destroy());
    }),
  );

/** A wrapped http.Server answering with what it saw of the socket. */
const httpServer = (options: IWithProxyProtocolOptions) =>
  harness(options, (state) =>
    http.createServer((req, res) => {
      state.served++;
      res.end(JSON.stringify({ socket: report(req.socket), echo: req.method } satisfies IReply));
    }),
  );

async function exchange(port: number, bytes: Buffer, localAddress?: string, cuts: number[] = []): Promise<{ text: string; localPort: number }> {
  const socket = await connect({ port, localAddress });
  const localPort = socket.localPort as number;
  const all = readAll(socket);
  await writeSplit(socket, bytes, cuts);
  return { text: (await all).toString(), localPort };
}

function body(text: string): IReply {
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as IReply;
}

describe('withProxyProtocol: who is believed', () => {
  for (const [name, header, cuts] of [['v1', v1(), []], ['v2', v2(), []], ['v2 split after 5 bytes', v2(), [5]], ['v1 split after "P"', v1(), [1]]] as const) {
    it(`a ${name} header from an untrusted peer closes the connection, is reported with a hint, and never reaches the app`, async () => {
      const h = await httpServer({ proxyIPs: ['127.0.0.1'] });
      const { text, localPort } = await exchange(h.port, Buffer.concat([header, GET]), '127.0.0.23', [...cuts]);
      assert.equal(text, '', 'closed without an answer');
      await waitFor(() => h.errors.length === 1);
      const [e] = h.errors;
      assert.equal(e.code, 'ERR_PP_UNTRUSTED_PEER');
      assert.equal(e.peerAddress, '127.0.0.23');
      assert.equal(e.peerPort, localPort);
      assert.equal(e.trusted, false);
      assert.match(e.hint ?? '', /proxyIPs/);
      assert.equal(h.served, 0);
    });
  }

  it('an untrusted peer without a header is a direct client: its own address, no header, its bytes untouched', async () => {
    const h = await httpServer({ proxyIPs: ['127.0.0.1'] });
    const post = Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    for (const cuts of [[], [1], [1, 2]]) {
      const { text, localPort } = await exchange(h.port, post, '127.0.0.23', cuts);
      assert.deepEqual(body(text), { socket: { address: '127.0.0.23', port: localPort, family: 'IPv4', version: null, command: null, authority: null }, echo: 'POST' });
    }
    assert.deepEqual(h.errors, []);
  });

  it('a trusted peer without a header is refused with ERR_PP_MISSING by default', async () => {
    const h = await httpServer({ proxyIPs: ['127.0.0.1'] });
    const { text } = await exchange(h.port, GET);
    assert.equal(text, '');
    await waitFor(() => h.errors.length === 1);
    assert.equal(h.errors[0].code, 'ERR_PP_MISSING');
    assert.equal(h.errors[0].trusted, true);
    assert.match(h.errors[0].hint ?? '', /required: false/);
  });

  it('with required: false a trusted peer without a header is a direct client', async () => {
    const h = await httpServer({ proxyIPs: ['127.0.0.1'], required: false });
    const { text, localPort } = await exchange(h.port, GET);
    assert.deepEqual(body(text).socket, { address: '127.0.0.1', port: localPort, family: 'IPv4', version: null, command: null, authority: null });
    const withHeader = await exchange(h.port, Buffer.concat([v1('192.0.2.9', 1234), GET]));
    assert.equal(body(withHeader.text).socket.address, '192.0.2.9', 'a header is still believed');
  });

  it('LOCAL (health checks) and UNKNOWN keep the peer\'s own address; the header is still available', async () => {
    const h = await httpServer({ proxyIPs: ['127.0.0.1'] });
    const local = ProxyProtocolParser.generate({ command: 'LOCAL' }, { version: 2 });
    const unknown = Buffer.from('PROXY UNKNOWN\r\n');
    for (const [header, version, command] of [[local, 2, 'LOCAL'], [unknown, 1, 'PROXY']] as const) {
      const { text, localPort } = await exchange(h.port, Buffer.concat([header, GET]));
      assert.deepEqual(body(text).socket, { address: '127.0.0.1', port: localPort, family: 'IPv4', version, command, authority: null });
    }
  });

  it('IPv4-mapped peers are matched unmapped, and an IPv4-mapped source is reported as IPv4', async () => {
    const server = withProxyProtocol(http.createServer((req, res) => res.end(JSON.stringify(report(req.socket)))), { proxyIPs: ['127.0.0.1'] });
    await new Promise<void>((resolve) => server.listen(0, '::', resolve));
    onCleanup(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
    const port = (server.address() as net.AddressInfo).port;
    const { text } = await exchange(port, Buffer.concat([v2('::ffff:192.0.2.44', 5555), GET]));
    const seen = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
    assert.equal(seen.address, '192.0.2.44');
    assert.equal(seen.family, 'IPv4');
  });

  it("'connection' listeners added after wrapping get the socket after its header, with the real client", async () => {
    const server = withProxyProtocol(http.createServer((_req, res) => res.end('ok')), { proxyIPs: ['127.0.0.1'] });
    const seen: Array<string | undefined> = [];
    server.on('connection', (socket: net.Socket) => seen.push(socket.remoteAddress));
    const listening = await listen(server);
    onCleanup(() => listening.close());
    const { text } = await exchange(listening.port, Buffer.concat([v1('192.0.2.61', 6161), GET]), undefined, [3]);
    assert.match(text, /ok$/);
    assert.deepEqual(seen, ['192.0.2.61']);
  });

  it('getProxyHeader is null on a socket no wrapped server read', async () => {
    const server = http.createServer((req, res) => res.end(String(getProxyHeader(req.socket))));
    const listening = await listen(server);
    onCleanup(() => listening.close());
    const { text } = await exchange(listening.port, GET);
    assert.match(text, /null$/);
  });
});

describe('withProxyProtocol: bad headers use SmartProxy\'s codes', () => {
  function parserCode(bytes: Buffer): string {
    try {
      new ProxyProtocolDecoder({ maxHeaderSize: 64 }).push(bytes);
    } catch (err) {
      return (err as SmartProxyError).code;
    }
    return 'none';
  }

  const bad: Array<[string, Buffer]> = [
    ['a v1 port out of range', Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1 99999\r\n')],
    ['a v1 line with a double space', Buffer.from('PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n')],
    ['a v2 header with a bad command', Buffer.concat([v2().subarray(0, 12), Buffer.from([0x2f]), v2().subarray(13)])],
    ['a v2 header over maxHeaderSize', ProxyProtocolParser.generate({ source: { address: '192.0.2.1', port: 1 }, destination: { address: '192.0.2.2', port: 2 } }, { version: 2, tlvs: [noopTlv(100)] })],
  ];
  for (const [name, bytes] of bad) {
    it(`${name}: closed with the parser's code`, async () => {
      const expected = parserCode(bytes);
      assert.match(expected, /^ERR_PP_/);
      const h = await lineServer({ proxyIPs: ['127.0.0.1'], maxHeaderSize: 64 });
      const { text } = await exchange(h.port, Buffer.concat([bytes, Buffer.from('ping\n')]), undefined, [7]);
      assert.equal(text, '');
      await waitFor(() => h.errors.length === 1);
      assert.equal(h.errors[0].code, expected);
      if (expected === 'ERR_PP_HEADER_TOO_LARGE') assert.match(h.errors[0].hint ?? '', /maxHeaderSize/);
      assert.equal(h.served, 0);
    });
  }

  it('a trusted peer that ends inside the header: ERR_PP_INCOMPLETE at once, not at the deadline', async () => {
    const h = await lineServer({ proxyIPs: ['127.0.0.1'] });
    const socket = await connect({ port: h.port });
    const start = Date.now();
    socket.end(v2().subarray(0, 20));
    assert.ok(await closed(socket, 2000));
    await waitFor(() => h.errors.length === 1);
    assert.equal(h.errors[0].code, 'ERR_PP_INCOMPLETE');
    assert.ok(Date.now() - start < 2000);
  });
});

describe('withProxyProtocol: the header deadline', () => {
  it('a trusted peer that sends part of a header is closed with ERR_PP_TIMEOUT once timeout passes', async () => {
    const h = await lineServer({ proxyIPs: ['127.0.0.1'], timeout: 200 });
    const socket = await connect({ port: h.port });
    const start = Date.now();
    socket.write(v1().subarray(0, 10));
    assert.ok(await closed(socket, 3000), 'closed');
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 190 && elapsed < 1000, `closed after ${elapsed} ms`);
    await waitFor(() => h.errors.length === 1);
    assert.equal(h.errors[0].code, 'ERR_PP_TIMEOUT');
    assert.equal(h.served, 0);
  });

  it('a silent untrusted peer (server-first protocol) is served as a direct client once timeout passes', async () => {
    const h = await lineServer({ proxyIPs: ['127.0.0.1'], timeout: 200 });
    const socket = await connect({ port: h.port, localAddress: '127.0.0.23' });
    const start = Date.now();
    const greeting = await readLine(socket, 3000);
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 190 && elapsed < 1000, `greeted after ${elapsed} ms`);
    assert.deepEqual(JSON.parse(greeting.slice('hello '.length)), { address: '127.0.0.23', port: socket.localPort, family: 'IPv4', version: null, command: null, authority: null });
    socket.write('after\n');
    assert.equal(await readLine(socket), 'after');
    socket.destroy();
  });

  it('a silent trusted peer is served as a direct client after timeout with required: false, refused with ERR_PP_TIMEOUT without', async () => {
    const optional = await lineServer({ proxyIPs: ['127.0.0.1'], timeout: 150, required: false });
    const a = await connect({ port: optional.port });
    assert.match(await readLine(a, 3000), /^hello .*"address":"127\.0\.0\.1"/);
    a.destroy();
    const strict = await lineServer({ proxyIPs: ['127.0.0.1'], timeout: 150 });
    const b = await connect({ port: strict.port });
    assert.ok(await closed(b, 3000));
    await waitFor(() => strict.errors.length === 1);
    assert.equal(strict.errors[0].code, 'ERR_PP_TIMEOUT');
  });

  it('waiting connections share one sweep timer per server, stopped when the server closes', async () => {
    const realSetInterval = globalThis.setInterval;
    const realClearInterval = globalThis.clearInterval;
    const created: NodeJS.Timeout[] = [];
    const cleared: unknown[] = [];
    globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
      const timer = realSetInterval(...args);
      created.push(timer);
      return timer;
    }) as typeof setInterval;
    globalThis.clearInterval = ((timer: NodeJS.Timeout) => {
      cleared.push(timer);
      realClearInterval(timer);
    }) as typeof clearInterval;
    try {
      const server = withProxyProtocol(net.createServer((s) => s.destroy()), { proxyIPs: ['127.0.0.1'], timeout: 5000 });
      const listening = await listen(server);
      const sockets = await Promise.all(Array.from({ length: 40 }, () => connect({ port: listening.port })));
      sockets.forEach((s) => s.write('PROX'));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(created.length, 1, '40 waiting connections, one timer');
      sockets.forEach((s) => s.destroy());
      await listening.close();
      assert.ok(cleared.includes(created[0]), 'the sweep stops with the server');
    } finally {
      globalThis.setInterval = realSetInterval;
      globalThis.clearInterval = realClearInterval;
    }
  });

  it("an http.Server's closeAllConnections also closes connections still waiting for their header, so close() need not wait for the deadline", async () => {
    const server = withProxyProtocol(http.createServer((_req, res) => res.end('x')), { proxyIPs: ['127.0.0.1'], timeout: 5000 });
    const errors: IProxyProtocolServerErrorEvent[] = [];
    server.on('proxyProtocolError', (e: IProxyProtocolServerErrorEvent) => errors.push(e));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const silent = await connect({ port });
    const midHeader = await connect({ port });
    midHeader.write(v2().subarray(0, 20));
    const untrusted = await connect({ port, localAddress: '127.0.0.23' });
    untrusted.write('PRO');
    await new Promise((r) => setTimeout(r, 50));
    const clients = [silent, midHeader, untrusted];
    let serverClosed = false;
    const done = new Promise<void>((resolve) => server.close(() => resolve())).then(() => (serverClosed = true));
    server.closeAllConnections();
    try {
      await Promise.race([done, new Promise((r) => setTimeout(r, 1000))]);
      assert.ok(serverClosed, 'close() still waits 1 s later');
      for (const socket of clients) assert.ok(await closed(socket, 1000), 'the client sees its connection closed');
      assert.deepEqual(errors, [], 'closing is not a PROXY error');
    } finally {
      for (const socket of clients) socket.destroy();
      await done;
    }
  });

  it('TCP peers that reset before their connections are accepted are dropped quietly, not reported as spoofing', async () => {
    const h = await lineServer({ proxyIPs: ['127.0.0.1'] });
    const header = ProxyProtocolParser.generate({ command: 'LOCAL' }, { version: 2 }).toString('hex');
    // spawnSync blocks this event loop: the child connects, sends a header and resets while the
    // kernel holds the connection unaccepted (what HAProxy does when its client drops at once).
    // Five of them: the kernel does not always keep the bytes of a reset, unaccepted connection.
    const script = `let n=5;for(let i=0;i<5;i++){const s=require('net').connect(${h.port},'127.0.0.1',()=>{s.write(Buffer.from('${header}','hex'));setTimeout(()=>s.resetAndDestroy(),50)});s.on('close',()=>{if(--n===0)process.exit(0)})}`;
    assert.equal(spawnSync(process.execPath, ['-e', script], { timeout: 5000 }).status, 0);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(h.errors, []);
    assert.equal(h.served, 0);
    const { text } = await exchange(h.port, Buffer.concat([v1('192.0.2.6', 6), Buffer.from('next\n')]));
    assert.match(text, /"address":"192\.0\.2\.6"[\s\S]*\nnext\n$/);
  });

  it('a peer that resets while waiting leaves the server serving others', async () => {
    const h = await lineServer({ proxyIPs: ['127.0.0.1'] });
    const socket = await connect({ port: h.port });
    socket.write(v1().subarray(0, 8));
    await new Promise((r) => setTimeout(r, 20));
    socket.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 20));
    const { text } = await exchange(h.port, Buffer.concat([v1('192.0.2.5', 5), Buffer.from('again\n')]));
    assert.match(text, /"address":"192\.0\.2\.5"[\s\S]*\nagain\n$/);
    assert.deepEqual(h.errors, []);
  });
});

describe('withProxyProtocol: options are checked like SmartProxy\'s', () => {
  const cases: Array<[string, unknown, string, string]> = [
    ['proxyIPs missing', {}, 'ERR_CONFIG_OPTION', 'proxyIPs'],
    ['proxyIPs not an array', { proxyIPs: '10.0.0.0/8' }, 'ERR_CONFIG_CIDR', 'proxyIPs'],
    ['a bad entry', { proxyIPs: ['10.0.0.0/8', 'proxy.example.com'] }, 'ERR_CONFIG_CIDR', 'proxyIPs[1]'],
    ['a catch-all entry', { proxyIPs: ['0.0.0.0/0'] }, 'ERR_CONFIG_TRUST_ALL', 'proxyIPs[0]'],
    ['an IPv6 catch-all entry', { proxyIPs: ['10.0.0.1', '::/0'] }, 'ERR_CONFIG_TRUST_ALL', 'proxyIPs[1]'],
    ['a misspelt key', { proxyIPs: ['10.0.0.1'], timout: 5 }, 'ERR_CONFIG_UNKNOWN_OPTION', 'timout'],
    ['a negative timeout', { proxyIPs: ['10.0.0.1'], timeout: -1 }, 'ERR_CONFIG_OPTION', 'timeout'],
    ['maxHeaderSize too small', { proxyIPs: ['10.0.0.1'], maxHeaderSize: 15 }, 'ERR_CONFIG_OPTION', 'maxHeaderSize'],
    ['required not a boolean', { proxyIPs: ['10.0.0.1'], required: 'yes' }, 'ERR_CONFIG_OPTION', 'required'],
  ];
  for (const [name, options, code, field] of cases) {
    it(`${name}: ConfigError ${code} naming ${field}`, () => {
      assert.throws(
        () => withProxyProtocol(http.createServer(), options as IWithProxyProtocolOptions),
        (err: unknown) => err instanceof ConfigError && err.code === code && err.field === field,
      );
    });
  }

  it('a catch-all entry is accepted with trustAllProxyIPs: true', () => {
    assert.doesNotThrow(() => withProxyProtocol(http.createServer(), { proxyIPs: ['0.0.0.0/0', '::/0'], trustAllProxyIPs: true }));
  });

  it('refuses what is not a server, a server wrapped twice, and a pauseOnConnect server', () => {
    const isServerError = (err: unknown) => err instanceof ConfigError && err.field === 'server';
    assert.throws(() => withProxyProtocol({} as net.Server, { proxyIPs: [] }), isServerError);
    const once = withProxyProtocol(net.createServer(), { proxyIPs: [] });
    assert.throws(() => withProxyProtocol(once, { proxyIPs: [] }), isServerError);
    assert.throws(() => withProxyProtocol(net.createServer({ pauseOnConnect: true }), { proxyIPs: [] }), isServerError);
  });

  it('returns the same server object', () => {
    const server = http.createServer();
    assert.equal(withProxyProtocol(server, { proxyIPs: ['10.0.0.1'] }), server);
  });
});
