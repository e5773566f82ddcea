import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError, SmartProxy, collectConfigErrors } from '../ts/index.js';
import type { IRouteConfig, ISmartProxyOptions } from '../ts/index.js';
import { resolveConfig } from '../ts/proxies/smart-proxy/config.js';
import { isCatchAll } from '../ts/core/utils/ip-utils.js';
import { type ICertificate, makeCertificate } from './helpers/net.js';
import { cleanupAfterAll } from './helpers/cleanup.js';

const onCleanup = cleanupAfterAll();

const target = { host: '127.0.0.1', port: 9 };
const route = (extra: Record<string, unknown> = {}) => ({ name: 'r', match: { ports: 8443 }, action: { type: 'forward', target, ...extra } });
const tlsRoute = (tlsConfig: Record<string, unknown>, name = 'r') => ({ ...route({ tls: tlsConfig }), name }) as unknown as IRouteConfig;
const errorsOf = (options: unknown) => collectConfigErrors(options).map((e) => ({ code: e.code, field: e.field, message: e.message }));

/** A self-signed certificate valid only between two dates (openssl ca can back-date; req -x509 cannot). */
function makeDatedCertificate(cn: string, notBefore: string, notAfter: string): ICertificate {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smartproxy-dated-'));
  try {
    const at = (f: string) => path.join(dir, f);
    fs.writeFileSync(at('ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n');
    fs.writeFileSync(at('index.txt'), '');
    fs.writeFileSync(at('serial'), '01\n');
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem', '-out', 'csr.pem', '-subj', `/CN=${cn}`]);
    run(['ca', '-batch', '-selfsign', '-config', 'ca.cnf', '-keyfile', 'key.pem', '-in', 'csr.pem', '-startdate', notBefore, '-enddate', notAfter, '-notext', '-out', 'cert.pem']);
    return { key: fs.readFileSync(at('key.pem'), 'utf8'), cert: fs.readFileSync(at('cert.pem'), 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('trusting every address needs trustAllProxyIPs, however the entry is spelt', () => {
  const everyone = ['*', '0.0.0.0/0', '::/0', '10.0.0.0/0', '1.2.3.4/0', '0.0.0.0/00', '0::0/0', '::ffff:0:0/96', '::ffff:0.0.0.0/96', '::/1', '2000::/3'];
  for (const entry of everyone) {
    it(`refuses ${entry} in proxyIPs without trustAllProxyIPs, and accepts it with`, () => {
      assert.ok(isCatchAll(entry));
      assert.deepEqual(errorsOf({ routes: [], proxyIPs: ['10.0.0.1', entry] }).map((e) => [e.code, e.field]), [['ERR_CONFIG_TRUST_ALL', 'proxyIPs[1]']]);
      assert.deepEqual(errorsOf({ routes: [], proxyIPs: [entry], trustAllProxyIPs: true }), []);
    });
  }

  it('accepts ranges that leave most of the internet out', () => {
    for (const entry of ['10.0.0.0/8', '128.0.0.0/1', '::1', '::ffff:0:0/97', '::ffff:10.0.0.0/104', '2001:db8::/32', 'fe80::/10']) {
      assert.equal(isCatchAll(entry), false, entry);
      assert.deepEqual(errorsOf({ routes: [], proxyIPs: [entry] }), [], entry);
    }
  });
});

describe('passing TLVs through', () => {
  it('refuses CRC32C (type 3) globally and per route, pointing to crc32c: true', () => {
    const errors = errorsOf({
      routes: [route({ sendProxyProtocol: { version: 2, tlvs: { passThrough: [5, 3] } } })],
      proxyProtocolTlvs: { passThrough: [3] },
    });
    assert.deepEqual(errors.map((e) => e.field), ['proxyProtocolTlvs.passThrough[0]', 'routes[0].action.sendProxyProtocol.tlvs.passThrough[1]']);
    assert.ok(errors.every((e) => e.code === 'ERR_CONFIG_OPTION' && /crc32c: true/.test(e.message)));
  });

  it('accepts other types and an empty list', () => {
    assert.deepEqual(errorsOf({ routes: [], proxyProtocolTlvs: { passThrough: [1, 2, 5, 0x20, 0xea], crc32c: true } }), []);
    assert.deepEqual(errorsOf({ routes: [], proxyProtocolTlvs: { passThrough: [] } }), []);
  });
});

describe('every field is type-checked before use', () => {
  const cert = makeCertificate(['config.test']);
  const full = () => ({
    routes: [
      {
        name: 'full',
        priority: 1,
        match: { ports: [8443, { from: 9000, to: 9001 }], domains: ['a.example', '*.b.example'], clientIp: ['10.0.0.0/8'] },
        action: {
          type: 'forward',
          target: { host: ['127.0.0.1', 'backend.example'], port: 9443 },
          tls: {
            mode: 'terminate-and-reencrypt',
            certificate: { key: cert.key, cert: cert.cert },
            alpnProtocols: ['h2', 'http/1.1'],
            clientCertificate: 'require',
            clientCa: cert.cert,
            backend: { rejectUnauthorized: true, ca: cert.cert, servername: 'backend.example', alpnProtocols: ['h2'] },
          },
          security: { ipAllowList: ['10.0.0.0/8'], ipBlockList: ['10.0.0.1'], maxConnections: 10 },
          sendProxyProtocol: { version: 2, tlvs: { authority: true, alpn: true, uniqueId: true, ssl: true, crc32c: true, passThrough: [2, 5] } },
        },
      },
      {
        name: 'pass',
        match: { ports: 443, domains: 'p.example' },
        action: { type: 'forward', tls: { mode: 'passthrough', certificate: { key: cert.key, cert: cert.cert } }, sendProxyProtocol: false },
      },
    ],
    listenAddress: '127.0.0.1',
    enableHalfOpen: false,
    initialDataTimeout: 1,
    inactivityTimeout: 1,
    maxConnectionLifetime: 1,
    maxConnectionsPerIP: 1,
    gracefulShutdownTimeout: 1,
    connectTimeout: 1,
    flushTimeout: 1,
    defaults: { target: { host: '127.0.0.1', port: 1 }, security: { ipAllowList: ['10.0.0.0/8'], ipBlockList: ['10.0.0.2'], maxConnections: 5 } },
    proxyIPs: ['10.0.0.1'],
    acceptProxyProtocol: true,
    trustAllProxyIPs: false,
    proxyProtocolTimeout: 1,
    proxyProtocolMaxHeaderSize: 4096,
    proxyProtocolRequired: true,
    proxyProtocolMaxPending: 1,
    proxyProtocolMaxPendingPerIP: 1,
    sendProxyProtocol: true,
    proxyProtocolVersion: 2,
    proxyProtocolTlvs: { authority: true, alpn: true, uniqueId: true, ssl: true, crc32c: true, passThrough: [2] },
  });

  type TKind = 'string' | 'number' | 'boolean' | 'array' | 'object' | 'null';
  const kindOf = (v: unknown): TKind => (v === null ? 'null' : Array.isArray(v) ? 'array' : (typeof v as TKind));
  // Fields whose type is a union: the kinds besides that of the value in full().
  const alsoAccepted: Array<[RegExp, TKind[]]> = [
    [/\.match\.ports$/, ['number']],
    [/\.match\.ports\[\d+\]$/, ['number', 'object']],
    [/\.match\.domains$/, ['string']],
    [/target\.host$/, ['array', 'string']],
    [/\.action\.sendProxyProtocol$/, ['boolean', 'object']],
  ];
  const wrongValues: unknown[] = ['x', 7, [], {}, null, true];

  /** Every path below `value` (objects and arrays), with the value there. */
  function paths(value: unknown, at = ''): Array<[string, unknown]> {
    const children: Array<[string, unknown]> = Array.isArray(value)
      ? value.map((v, i) => [`${at}[${i}]`, v])
      : value !== null && typeof value === 'object'
        ? Object.entries(value).map(([k, v]) => [at ? `${at}.${k}` : k, v])
        : [];
    return children.flatMap(([p, v]) => [[p, v] as [string, unknown], ...paths(v, p)]);
  }

  function setAt(options: unknown, at: string, value: unknown): void {
    const steps = at.match(/[^.[\]]+/g) as string[];
    let node = options as Record<string, unknown>;
    for (const step of steps.slice(0, -1)) node = node[step] as Record<string, unknown>;
    node[steps[steps.length - 1]] = value;
  }

  it('starts from a configuration that uses every field and is valid', () => {
    assert.deepEqual(errorsOf(full()), []);
  });

  it('reports a wrong type in any field at that field, and never throws', () => {
    let checked = 0;
    for (const [at, valid] of paths(full())) {
      const accepted = [kindOf(valid), ...alsoAccepted.filter(([re]) => re.test(at)).flatMap(([, kinds]) => kinds)];
      for (const wrong of wrongValues.filter((v) => !accepted.includes(kindOf(v)))) {
        const options = full();
        setAt(options, at, wrong);
        const fields = collectConfigErrors(options).map((e) => e.field);
        const here = fields.filter((f) => f === at || f.startsWith(`${at}.`) || f.startsWith(`${at}[`));
        assert.ok(here.length > 0, `${at} = ${JSON.stringify(wrong)}: reported only ${JSON.stringify(fields)}`);
        checked++;
      }
    }
    assert.ok(checked > 300, `checked ${checked} cases`);
  });

  it('never throws whatever value any field holds (fuzzed)', () => {
    const all = paths(full()).map(([at]) => at);
    fc.assert(
      fc.property(fc.constantFrom(...all), fc.anything({ withNullPrototype: true, withBigInt: true, withMap: true, withSet: true, withDate: true }), (at, value) => {
        const options = full();
        setAt(options, at, value);
        const problems = collectConfigErrors(options);
        assert.ok(problems.every((p) => p instanceof ConfigError && typeof p.field === 'string'));
      }),
      { numRuns: 400 },
    );
    for (const options of [null, 'x', 7, [], true, { routes: [null, 'x', 7, [], true] }]) assert.doesNotThrow(() => collectConfigErrors(options));
  });

  it('refuses proxyIPs given as a string with one ConfigError, not a TypeError', () => {
    assert.deepEqual(errorsOf({ routes: [], proxyIPs: '10.0.0.1' }).map((e) => [e.code, e.field]), [['ERR_CONFIG_CIDR', 'proxyIPs']]);
    assert.throws(() => new SmartProxy({ routes: [], proxyIPs: '10.0.0.1' } as unknown as ISmartProxyOptions), ConfigError);
  });

  it('refuses an action.security that is not an object instead of dropping it (which would fail open)', () => {
    for (const security of ['10.0.0.0/8', ['10.0.0.0/8'], 7, null]) {
      assert.deepEqual(errorsOf({ routes: [route({ security })] }).map((e) => e.field), ['routes[0].action.security']);
    }
  });

  it('words a bad connection count as connections, not milliseconds, and reports each problem once', () => {
    const errors = errorsOf({ routes: [], maxConnectionsPerIP: -1 });
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /connections/);
    assert.doesNotMatch(errors[0].message, /milliseconds/);
    assert.equal(errors[0].message.split('maxConnectionsPerIP').length - 1, 1);
  });

  it('reports a wrong default once, at defaults, not again in every route that uses it', () => {
    const errors = errorsOf({ routes: [{ name: 'a', match: { ports: 1 }, action: { type: 'forward' } }, { name: 'b', match: { ports: 2 }, action: { type: 'forward' } }], defaults: { target: { host: '[::1]', port: 'x' } } });
    assert.deepEqual(errors.map((e) => e.field), ['defaults.target.host', 'defaults.target.port']);
  });
});

describe('target hosts', () => {
  const hostErrors = (host: unknown) => errorsOf({ routes: [route({ target: { host, port: 9 } })] });

  it('accepts IP literals and DNS host names', () => {
    for (const host of ['127.0.0.1', '::1', '2001:db8::17', 'fe80::1%eth0', 'localhost', 'backend.example.com', 'my_service', 'a-b.example.', ['10.0.0.1', 'b.example']]) {
      assert.deepEqual(hostErrors(host), [], JSON.stringify(host));
    }
  });

  it('refuses a bracketed IPv6 literal with a hint to write it without brackets', () => {
    const [error, ...rest] = hostErrors('[::1]');
    assert.equal(rest.length, 0);
    assert.equal(error.code, 'ERR_CONFIG_TARGET');
    assert.equal(error.field, 'routes[0].action.target.host');
    assert.match(error.message, /write ::1 without brackets/);
  });

  it('refuses what no connection could reach: host:port, bad IPv4, empty labels, spaces', () => {
    for (const host of ['127.0.0.1:8080', '999.1.1.1', 'a..b', 'a b', '-a.example', '', ['ok.example', '[::1]']]) {
      const errors = hostErrors(host);
      assert.equal(errors.length, 1, `${JSON.stringify(host)}: ${JSON.stringify(errors)}`);
      assert.equal(errors[0].code, 'ERR_CONFIG_TARGET');
    }
  });
});

describe('route certificates', () => {
  it('refuses an expired certificate, naming the route and the expiry date', () => {
    const old = makeDatedCertificate('old.example', '20200101000000Z', '20200201000000Z');
    const [error, ...rest] = collectConfigErrors({ routes: [tlsRoute({ mode: 'terminate', certificate: old }, 'shop')] });
    assert.equal(rest.length, 0);
    assert.equal(error.code, 'ERR_CONFIG_TLS');
    assert.equal(error.route, 'shop');
    assert.equal(error.field, 'routes[0].action.tls.certificate');
    assert.match(error.message, /^route "shop": .*CN=old\.example.*expired on 2020-02-01T00:00:00\.000Z/);
  });

  it('refuses a certificate that is not valid yet', () => {
    const future = makeDatedCertificate('future.example', '20990101000000Z', '21000101000000Z');
    const errors = errorsOf({ routes: [tlsRoute({ mode: 'terminate-and-reencrypt', certificate: future })] });
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /not valid before 2099-01-01T00:00:00\.000Z/);
  });

  it('accepts a certificate valid now', () => {
    assert.deepEqual(errorsOf({ routes: [tlsRoute({ mode: 'terminate', certificate: makeCertificate(['now.example']) })] }), []);
  });
});

describe('TLS contexts are built once', () => {
  it('1,000 routes sharing one key and certificate build one server context and one backend context', () => {
    const cert = makeCertificate(['shared.example']);
    const routes = Array.from({ length: 1000 }, (_, i) => ({
      name: `r${i}`,
      match: { ports: 8443, domains: `h${i}.example` },
      action: { type: 'forward' as const, target, tls: { mode: 'terminate' as const, certificate: { key: cert.key, cert: cert.cert } } },
    }));
    const original = tls.createSecureContext;
    let calls = 0;
    tls.createSecureContext = (options) => {
      calls++;
      return original(options);
    };
    const started = performance.now();
    try {
      const config = resolveConfig({ routes });
      assert.equal(new Set(config.routes.map((r) => r.secureContext)).size, 1);
    } finally {
      tls.createSecureContext = original;
    }
    const elapsed = performance.now() - started;
    assert.ok(calls <= 2, `${calls} contexts built`);
    assert.ok(elapsed < 1000, `${elapsed.toFixed(0)} ms`);
  });

  it('shares a backend context between routes with the same CA and builds one per distinct CA', () => {
    const [a, b] = [makeCertificate(['ca-a.example']), makeCertificate(['ca-b.example'])];
    const reencrypt = (name: string, ca?: string) => tlsRoute({ mode: 'terminate-and-reencrypt', certificate: a, backend: ca === undefined ? {} : { ca } }, name);
    const config = resolveConfig({ routes: [reencrypt('1', a.cert), reencrypt('2', a.cert), reencrypt('3', b.cert), reencrypt('4'), reencrypt('5')] });
    const contexts = config.routes.map((r) => r.backendTls.secureContext);
    assert.equal(contexts[0], contexts[1]);
    assert.notEqual(contexts[0], contexts[2]);
    assert.equal(contexts[3], contexts[4]);
    assert.notEqual(contexts[3], contexts[0]);
  });
});

async function tlsServer(options: tls.TlsOptions & { secureContext?: tls.SecureContext }): Promise<{ port: number; secured: Promise<tls.TLSSocket> }> {
  let resolveSecured!: (s: tls.TLSSocket) => void;
  const secured = new Promise<tls.TLSSocket>((r) => (resolveSecured = r));
  const server = net.createServer((raw) => {
    const socket = new tls.TLSSocket(raw, { isServer: true, ...options });
    socket.on('error', () => undefined);
    socket.on('secure', () => resolveSecured(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, secured };
}

function handshake(options: tls.ConnectionOptions): Promise<tls.TLSSocket | Error> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', ...options });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', resolve);
    onCleanup(() => socket.destroy());
  });
}

describe('resolved TLS settings work in real handshakes', () => {
  it('the backend context carries tls.backend.ca: a target signed by it verifies, without it the default roots refuse', async () => {
    const backendCert = makeCertificate(['backend.test']);
    const server = await tlsServer({ key: backendCert.key, cert: backendCert.cert });
    const reencrypt = (backend: Record<string, unknown>) => tlsRoute({ mode: 'terminate-and-reencrypt', certificate: backendCert, backend });
    const [withCa, withoutCa] = resolveConfig({ routes: [reencrypt({ ca: backendCert.cert, alpnProtocols: ['h2', 'http/1.1'] }), { ...reencrypt({}), name: 'plain' }] }).routes;
    assert.deepEqual(withCa.backendTls.alpnProtocols, ['h2', 'http/1.1']);
    assert.equal(withoutCa.backendTls.alpnProtocols, undefined);
    const verified = await handshake({ port: server.port, servername: 'backend.test', secureContext: withCa.backendTls.secureContext });
    assert.ok(verified instanceof tls.TLSSocket && verified.authorized);
    const refused = await handshake({ port: server.port, servername: 'backend.test', secureContext: withoutCa.backendTls.secureContext });
    assert.ok(refused instanceof Error, 'a self-signed target is not in the default roots');
  });

  it('a route asking for client certificates verifies them against clientCa', async () => {
    const serverCert = makeCertificate(['front.test']);
    const clientCert = makeCertificate(['client.test']);
    const stranger = makeCertificate(['stranger.test']);
    const terminate = (extra: Record<string, unknown>, name: string) => tlsRoute({ mode: 'terminate', certificate: serverCert, ...extra }, name);
    const [asking, plain] = resolveConfig({ routes: [terminate({ clientCertificate: 'require', clientCa: clientCert.cert }, 'asking'), terminate({}, 'plain')] }).routes;
    assert.deepEqual([asking.clientCertificate, plain.clientCertificate], ['require', null]);
    // What Node's own tls.Server reads to set `authorized`; a bare server TLSSocket leaves that to its owner.
    const verifyError = async (context: tls.SecureContext | null, client: ICertificate) => {
      const server = await tlsServer({ secureContext: context as tls.SecureContext, requestCert: true, rejectUnauthorized: false });
      await handshake({ port: server.port, rejectUnauthorized: false, key: client.key, cert: client.cert });
      const socket = (await server.secured) as unknown as { _handle: { verifyError(): { code: string } | null } };
      return socket._handle.verifyError()?.code ?? null;
    };
    assert.equal(await verifyError(asking.secureContext, clientCert), null);
    assert.equal(await verifyError(asking.secureContext, stranger), 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.equal(await verifyError(plain.secureContext, clientCert), 'DEPTH_ZERO_SELF_SIGNED_CERT', 'without clientCa the client is not trusted');
  });
});

describe('client certificate and ALPN options', () => {
  const cert = makeCertificate(['opts.example']);

  it('resolves clientCertificate (default: not asked)', () => {
    const routes = resolveConfig({
      routes: [tlsRoute({ mode: 'terminate', certificate: cert }, 'none'), tlsRoute({ mode: 'terminate', certificate: cert, clientCertificate: 'request' }, 'request')],
    }).routes;
    assert.deepEqual(routes.map((r) => r.clientCertificate), [null, 'request']);
  });

  it('refuses require without clientCa, client certificates on passthrough, clientCa alone, and a CA with no certificate', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ mode: 'terminate', certificate: cert, clientCertificate: 'require' }, 'routes[0].action.tls.clientCa'],
      [{ mode: 'passthrough', clientCertificate: 'request' }, 'routes[0].action.tls.clientCertificate'],
      [{ mode: 'terminate', certificate: cert, clientCa: cert.cert }, 'routes[0].action.tls.clientCa'],
      [{ mode: 'terminate', certificate: cert, clientCertificate: 'maybe' }, 'routes[0].action.tls.clientCertificate'],
      [{ mode: 'terminate', certificate: cert, clientCertificate: 'request', clientCa: 'not a PEM' }, 'routes[0].action.tls.clientCa'],
      [{ mode: 'terminate-and-reencrypt', certificate: cert, backend: { ca: 'not a PEM' } }, 'routes[0].action.tls.backend.ca'],
    ];
    for (const [tlsConfig, field] of cases) {
      assert.deepEqual(errorsOf({ routes: [tlsRoute(tlsConfig)] }).map((e) => [e.code, e.field]), [['ERR_CONFIG_TLS', field]], JSON.stringify(tlsConfig));
    }
  });

  it('refuses ALPN lists that are not names of 1..255 bytes', () => {
    for (const alpnProtocols of [[], [''], ['x'.repeat(256)], [2], 'h2']) {
      const errors = errorsOf({ routes: [tlsRoute({ mode: 'terminate-and-reencrypt', certificate: cert, alpnProtocols, backend: { alpnProtocols } })] });
      assert.equal(errors.length, 2, JSON.stringify(errors));
      assert.ok(errors.every((e) => e.code === 'ERR_CONFIG_TLS' && /alpnProtocols/.test(e.field)));
    }
  });
});

describe('module structure', () => {
  it('has no import cycles in ts/, not even type-only', () => {
    const files = fs.readdirSync('ts', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join('ts', f));
    const edges = new Map<string, string[]>();
    for (const file of files) {
      const imports = [...fs.readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^;]*?from '(\.[^']+)'/gms)].map((m) => path.join(path.dirname(file), m[1].replace(/\.js$/, '.ts')));
      edges.set(file, imports);
    }
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      assert.notEqual(state.get(file), 'open', `cycle: ${[...trail, file].join(' -> ')}`);
      state.set(file, 'open');
      for (const next of edges.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
  });
});
