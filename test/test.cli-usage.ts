/** The smartproxy CLI as a new user meets it: flags, messages about the config file, and logs. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closed, connect, freePort, readLine, startTaggedEchoServer } from './helpers/net.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import * as cli from './helpers/cli.js';

const onCleanup = cleanupAfterAll();
const runNode = (args: string[]) => cli.runNode(args, onCleanup);
const writeConfig = (config: unknown) => cli.writeConfig(config, onCleanup);
const route = (name: string, port: number, target = 9) => ({ name, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target } } });

/** Runs the CLI to its end; returns exit code and output. */
async function runToEnd(args: string[]): Promise<{ code: unknown; out: string }> {
  const run = runNode(['ts/cli.ts', ...args]);
  const code = await run.exited;
  return { code, out: run.output() };
}

const checkConfig = (config: unknown) => runToEnd(['--check', '--config', writeConfig(config)]);

describe('the smartproxy command line', () => {
  it('prints help listing every flag and exits 0', async () => {
    const { code, out } = await runToEnd(['--help']);
    assert.equal(code, 0);
    for (const flag of ['--config', '--check', '--log-level', '--help', '--version']) assert.ok(out.includes(flag), `${flag} in:\n${out}`);
  });

  it('prints the package version with --version', async () => {
    const { version } = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string };
    assert.deepEqual(await runToEnd(['--version']), { code: 0, out: `${version}\n` });
  });

  it('names an unknown flag and exits 2', async () => {
    const { code, out } = await runToEnd(['--confg', 'x.json']);
    assert.equal(code, 2);
    assert.match(out, /--confg/);
  });

  it('refuses an unknown log level', async () => {
    const { code, out } = await runToEnd(['--log-level', 'loud', '--config', 'x.json']);
    assert.equal(code, 2);
    assert.match(out, /--log-level must be one of .*"loud"/);
  });
});

describe('the smartproxy CLI explaining a config file', () => {
  it('reports invalid JSON by line and column', async () => {
    const file = writeConfig({});
    fs.writeFileSync(file, '{\n  "routes": [],\n  "proxyIPs": tru\n}\n');
    const { code, out } = await runToEnd(['--check', '--config', file]);
    assert.equal(code, 2);
    assert.match(out, /not valid JSON at line 3, column \d+/);
  });

  it('suggests the key that was meant for a misspelt one', async () => {
    const { code, out } = await checkConfig({ routes: [route('r', 1)], acceptProxyprotocol: true });
    assert.equal(code, 2);
    assert.match(out, /acceptProxyprotocol: unknown option \(did you mean "acceptProxyProtocol"\?\)/);
  });

  it('refuses a config without routes, in --check and as a service', async () => {
    assert.equal((await checkConfig({ routes: [] })).code, 2);
    const { code, out } = await runToEnd(['--config', writeConfig({ routes: [] })]);
    assert.equal(code, 2);
    assert.match(out, /routes: no routes/);
  });

  it('reports a missing certificate file once, by its resolved path', async () => {
    const file = writeConfig({ routes: [{ ...route('t', 1), action: { ...route('t', 1).action, tls: { mode: 'terminate', certificate: { keyFile: 'gone.pem', certFile: 'gone.pem' } } } }] });
    const { code, out } = await runToEnd(['--check', '--config', file]);
    assert.equal(code, 2);
    assert.deepEqual(out.trim().split('\n'), [`${file}: routes[0].action.tls.certificate.keyFile: cannot read ${path.join(path.dirname(file), 'gone.pem')}: ENOENT [ERR_CONFIG_FILE]`]);
  });

  it('refuses a config file, or a certificate file it names, over 64 MiB without reading it all: a file replaced by a device that never ends included', { timeout: 20000 }, async () => {
    const dir = cli.tempDir(onCleanup);
    const endless = path.join(dir, 'smartproxy.json');
    fs.symlinkSync('/dev/zero', endless);
    const first = await runToEnd(['--check', '--config', endless]);
    assert.equal(first.code, 2, first.out);
    assert.deepEqual(first.out.trim().split('\n'), [`${endless}: cannot read ${endless}: larger than 64 MiB [ERR_CONFIG_FILE]`]);

    const huge = path.join(dir, 'huge.pem');
    fs.writeFileSync(huge, '');
    fs.truncateSync(huge, 64 * 1024 * 1024 + 1);
    const tls = { mode: 'terminate', certificate: { keyFile: 'huge.pem', certFile: 'huge.pem' } };
    const file = path.join(dir, 'with-cert.json');
    fs.writeFileSync(file, JSON.stringify({ routes: [{ ...route('r', 1), action: { ...route('r', 1).action, tls } }] }));
    const second = await runToEnd(['--check', '--config', file]);
    assert.equal(second.code, 2, second.out);
    assert.deepEqual(second.out.trim().split('\n'), [`${file}: routes[0].action.tls.certificate.keyFile: cannot read ${huge}: larger than 64 MiB [ERR_CONFIG_FILE]`]);
  });

  it('warns about settings that do nothing, and still passes', async () => {
    const { code, out } = await checkConfig({
      proxyIPs: ['10.0.0.1'],
      routes: [
        { ...route('sni', 1), match: { ports: 1, domains: ['a.example'] } },
        { ...route('pass', 2), action: { ...route('pass', 2).action, tls: { mode: 'passthrough', certificate: { key: 'k', cert: 'c' } } } },
      ],
    });
    assert.equal(code, 0, out);
    for (const field of ['proxyIPs: has no effect without "acceptProxyProtocol"', 'routes[0].match.domains', 'routes[1].action.tls.certificate: unused']) assert.ok(out.includes(field), `${field} in:\n${out}`);
    const alone = await checkConfig({ acceptProxyProtocol: true, routes: [route('r', 1)] });
    assert.match(alone.out, /acceptProxyProtocol: no proxyIPs or proxyProtocolRules trust anybody/);
  });
});

/** Starts the CLI on a config with one route to a tagged echo backend; returns the run and the port. */
async function service(extra: Record<string, unknown>, args: string[] = []): Promise<{ run: cli.IRun; port: number }> {
  const backend = await startTaggedEchoServer('b');
  onCleanup(() => backend.close());
  const port = await freePort();
  const file = writeConfig({ listenAddress: '127.0.0.1', routes: [route('web', port, backend.port)], ...extra });
  const run = runNode(['ts/cli.ts', '--config', file, ...args]);
  await run.waitFor(/started with 1 route/);
  return { run, port };
}

/** Connects as soon as the CLI listens (at --log-level warn it says nothing when it does). */
async function connectOnceListening(port: number): Promise<import('node:net').Socket> {
  for (let tries = 0; ; tries++) {
    try {
      return await connect({ port });
    } catch (err) {
      if (tries > 100) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function oneExchange(port: number, first = 'hello\n'): Promise<void> {
  const socket = await connect({ port });
  socket.write(first);
  await readLine(socket);
  socket.end();
  await closed(socket);
}

describe('the smartproxy CLI logging', () => {
  it('writes one text access line per finished connection: client, peer, port, route, PROXY, close reason, bytes, duration', async () => {
    const { run, port } = await service({ acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'] });
    await oneExchange(port, 'PROXY TCP4 203.0.113.7 127.0.0.1 4444 80\r\nhello\n');
    const [line] = await run.waitFor(/^.* INFO access .*$/m);
    assert.match(line, new RegExp(`client=203\\.0\\.113\\.7:4444 peer=127\\.0\\.0\\.1:\\d+ port=${port} route=web sni=- proxy=v1/PROXY close=client-closed bytesIn=\\d+ bytesOut=\\d+ ms=\\d+`));
    assert.equal(run.output().match(/ access /g)?.length, 1);
  });

  it('writes JSON lines with "log": { "format": "json" }, and refused PROXY headers at warn with code, policy and hint', async () => {
    const { run, port } = await service({ log: { format: 'json' }, acceptProxyProtocol: true, proxyIPs: ['127.0.0.1'] });
    const socket = await connect({ port });
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed(socket);
    await run.waitFor(/"msg":"access"/);
    const records = run.output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const refused = records.find((r) => typeof r.msg === 'string' && r.msg.startsWith('PROXY header refused'));
    assert.ok(refused, run.output());
    assert.equal(refused.level, 'warn');
    assert.equal(refused.policy, 'require');
    assert.match(String(refused.code), /^ERR_PP_/);
    assert.match(String(refused.hint), /HTTP/);
    assert.equal(records.find((r) => r.msg === 'access')?.port, port);
  });

  it('leaves out access lines at --log-level warn, and logs a backend failure at warn with its code', async () => {
    const dead = await freePort();
    const port = await freePort();
    const run = runNode(['ts/cli.ts', '--log-level', 'warn', '--config', writeConfig({ listenAddress: '127.0.0.1', routes: [route('down', port, dead)] })]);
    const socket = await connectOnceListening(port);
    await closed(socket);
    await run.waitFor(/WARN backend failed code=ERR_BACKEND_CONNECT/);
    assert.doesNotMatch(run.output(), / access |started with/);
  });
});
