import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closed, connect, freePort, makeCertificate, readLine, startTaggedEchoServer } from './helpers/net.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import * as cli from './helpers/cli.js';

const onCleanup = cleanupAfterAll();
const runNode = (args: string[]) => cli.runNode(args, onCleanup);
const writeConfig = (config: unknown) => cli.writeConfig(config, onCleanup);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const route = (name: string, port: number, target?: number) => ({
  name,
  match: { ports: port },
  action: { type: 'forward', ...(target === undefined ? {} : { target: { host: '127.0.0.1', port: target } }) },
});

async function backend(tag: string): Promise<number> {
  const server = await startTaggedEchoServer(tag);
  onCleanup(() => server.close());
  return server.port;
}

/** Runs the CLI on `config` (written to a file) until it has started. */
async function service(config: unknown): Promise<{ run: cli.IRun; file: string }> {
  const file = writeConfig(config);
  const run = runNode(['ts/cli.ts', '--config', file]);
  await run.waitFor(/started with \d+ routes?/);
  return { run, file };
}

async function stopsCleanly(run: cli.IRun): Promise<void> {
  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.output());
}

/** Whether a connection to `port` is refused (nothing listens). */
async function refused(port: number): Promise<boolean> {
  try {
    (await connect({ port })).destroy();
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

/** The tag of the backend a new connection reaches (the client speaks first: a spoof check waits for its first bytes). */
async function tagAt(port: number): Promise<string> {
  const socket = await connect({ port });
  socket.write('hello\n');
  try {
    return await readLine(socket);
  } finally {
    socket.destroy();
  }
}

/**
 * A FIFO as the config file: the CLI blocks reading it until `serve` writes, so a test can signal
 * the CLI at a known point of its start-up. `opened()` resolves once the CLI opened it for reading.
 */
function configFifo(): { file: string; opened: () => Promise<fs.promises.FileHandle>; serve: (config: unknown) => Promise<void> } {
  const file = path.join(cli.tempDir(onCleanup), 'smartproxy.json');
  execFileSync('mkfifo', [file]);
  // A writer still waiting for a reader would hold a thread-pool thread: a reader that gives up at once releases it.
  onCleanup(() => fs.closeSync(fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)));
  const opened = () => fs.promises.open(file, 'w');
  return {
    file,
    opened,
    async serve(config) {
      const handle = await opened();
      await handle.writeFile(JSON.stringify(config));
      await handle.close();
    },
  };
}

/** Starts the CLI on a FIFO config, sends `signal` while the CLI waits to read it, then gives it `config`. */
async function signalDuringLoad(signal: NodeJS.Signals, config: unknown): Promise<{ run: cli.IRun; fifo: ReturnType<typeof configFifo> }> {
  const fifo = configFifo();
  const run = runNode(['ts/cli.ts', '--config', fifo.file]);
  const reading = await fifo.opened();
  run.child.kill(signal);
  await sleep(100);
  await reading.writeFile(JSON.stringify(config));
  await reading.close();
  return { run, fifo };
}

describe('the smartproxy CLI as a service', () => {
  it('keeps serving after its stdout and stderr are closed, even when a client makes it log', async () => {
    const one = await backend('one');
    const port = await freePort();
    const { run } = await service({ listenAddress: '127.0.0.1', acceptProxyProtocol: true, proxyIPs: ['10.9.9.9'], routes: [route('one', port, one)] });
    run.child.stdout?.destroy();
    run.child.stderr?.destroy();
    for (let i = 0; i < 3; i++) {
      const spoof = await connect({ port });
      spoof.write('PROXY TCP4 203.0.113.7 127.0.0.1 4444 80\r\n');
      assert.ok(await closed(spoof), 'the spoofed header is refused');
    }
    await sleep(200);
    assert.equal(run.child.exitCode, null, 'still running');
    assert.equal(await tagAt(port), 'one');
    await stopsCleanly(run);
  });

  it('ignores SIGHUP while draining on SIGTERM, and exits at once with code 1 on a second SIGTERM', async () => {
    const one = await backend('one');
    const port = await freePort();
    const { run } = await service({ listenAddress: '127.0.0.1', gracefulShutdownTimeout: 20000, routes: [route('one', port, one)] });
    const live = await connect({ port });
    assert.equal(await readLine(live), 'one');
    run.child.kill('SIGTERM');
    await run.waitFor(/SIGTERM: stopping/);
    run.child.kill('SIGHUP');
    await sleep(300);
    assert.ok(await refused(port), 'no listener reopened');
    assert.match(run.output(), /SIGHUP while stopping: ignored/);
    const sent = Date.now();
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 1);
    assert.ok(Date.now() - sent < 3000, 'without waiting for the drain');
    live.destroy();
  });

  // With a timeout: when the queued reload never reads the file, serve() waits for a reader forever.
  it('survives SIGHUP during start-up and applies the file once started', { timeout: 20000 }, async () => {
    const [one, two] = [await backend('one'), await backend('two')];
    const port = await freePort();
    const { run, fifo } = await signalDuringLoad('SIGHUP', { listenAddress: '127.0.0.1', routes: [route('r', port, one)] });
    // Once started, the queued reload reads the file again: it now names the other backend.
    await run.waitFor(/started with 1 route/);
    await fifo.serve({ listenAddress: '127.0.0.1', routes: [route('r', port, two)] });
    await run.waitFor(/SIGHUP during start-up[\s\S]*configuration reloaded \(1 route\)/);
    assert.equal(await tagAt(port), 'two');
    await stopsCleanly(run);
  });

  it('stops cleanly on SIGTERM during start-up, without listening', async () => {
    const port = await freePort();
    const { run } = await signalDuringLoad('SIGTERM', { listenAddress: '127.0.0.1', routes: [route('r', port, 9)] });
    assert.equal(await run.exited, 0, run.output());
    assert.match(run.output(), /SIGTERM: stopping during start-up/);
    assert.doesNotMatch(run.output(), /listening on/);
  });

  it('reloads the whole file on SIGHUP: routes taking their target from defaults follow the new defaults', async () => {
    const [one, two] = [await backend('one'), await backend('two')];
    const port = await freePort();
    const config = (target: number) => ({ listenAddress: '127.0.0.1', defaults: { target: { host: '127.0.0.1', port: target } }, routes: [route('r', port)] });
    const { run, file } = await service(config(one));
    assert.equal(await tagAt(port), 'one');
    fs.writeFileSync(file, JSON.stringify(config(two)));
    run.child.kill('SIGHUP');
    await run.waitFor(/(configuration|routes) reloaded/);
    assert.equal(await tagAt(port), 'two');
    await stopsCleanly(run);
  });

  it('keeps the running configuration when the reloaded file is invalid, and lists its problems', async () => {
    const one = await backend('one');
    const port = await freePort();
    const { run, file } = await service({ listenAddress: '127.0.0.1', routes: [route('r', port, one)] });
    fs.writeFileSync(file, JSON.stringify({ listenAddress: '127.0.0.1', proxyIPs: '10.0.0.1', routes: [route('r', port, one)] }));
    run.child.kill('SIGHUP');
    await run.waitFor(/nothing changed|keeping the running routes/);
    assert.match(run.output(), /proxyIPs: must be an array.*\[ERR_CONFIG_CIDR\]/);
    assert.equal(await tagAt(port), 'one');
    await stopsCleanly(run);
  });
});

describe('the smartproxy CLI checking a config', () => {
  it('reports wrongly typed fields as problems (exit 2), each path once, never a TypeError', async () => {
    const file = writeConfig({ proxyIPs: '10.0.0.1', maxConnectionsPerIP: -1, routes: [{ ...route('r', 1, 2), action: { type: 'forward', target: { host: '[::1]', port: 2 }, security: 'open' } }] });
    const run = runNode(['ts/cli.ts', '--check', '--config', file]);
    assert.equal(await run.exited, 2, run.output());
    const lines = run.output().trim().split('\n');
    const fields = ['maxConnectionsPerIP', 'proxyIPs', 'routes[0].action.target.host', 'routes[0].action.security'];
    assert.equal(lines.length, fields.length, run.output());
    fields.forEach((field, i) => assert.equal(lines[i].split(field).length - 1, 1, `${field} once in: ${lines[i]}`));
    assert.doesNotMatch(run.output(), /TypeError/);
    assert.match(run.output(), /write ::1 without brackets/);
  });

  it('reads clientCaFile like the other certificate files, and reports an unreadable one once, by its resolved path', async () => {
    const cert = makeCertificate(['cli.example']);
    const dir = cli.tempDir(onCleanup);
    for (const [name, text] of [['key.pem', cert.key], ['cert.pem', cert.cert]]) fs.writeFileSync(path.join(dir, name), text);
    const tlsConfig = (clientCaFile: string) => ({ mode: 'terminate', certificate: { keyFile: 'key.pem', certFile: 'cert.pem' }, clientCertificate: 'require', clientCaFile });
    const file = path.join(dir, 'smartproxy.json');
    fs.writeFileSync(file, JSON.stringify({ routes: [{ ...route('r', 1, 2), action: { ...route('r', 1, 2).action, tls: tlsConfig('cert.pem') } }] }));
    const good = runNode(['ts/cli.ts', '--check', '--config', file]);
    assert.equal(await good.exited, 0, good.output());
    fs.writeFileSync(file, JSON.stringify({ routes: [{ ...route('r', 1, 2), action: { ...route('r', 1, 2).action, tls: tlsConfig('missing.pem') } }] }));
    const bad = runNode(['ts/cli.ts', '--check', '--config', file]);
    assert.equal(await bad.exited, 2);
    assert.deepEqual(bad.output().trim().split('\n'), [`${file}: routes[0].action.tls.clientCaFile: cannot read ${path.join(dir, 'missing.pem')}: ENOENT [ERR_CONFIG_FILE]`]);
  });
});
