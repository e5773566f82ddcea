import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { connect, freePort, readLine, startTaggedEchoServer } from './helpers/net.js';
import { cleanupAfterAll } from './helpers/cleanup.js';
import * as cli from './helpers/cli.js';

const onCleanup = cleanupAfterAll();
const runNode = (args: string[]) => cli.runNode(args, onCleanup);
const writeConfig = (config: unknown) => cli.writeConfig(config, onCleanup);

describe('the demo', () => {
  it('runs the chain, shows three distinct clients at the inner hop, and exits 0', async () => {
    const run = runNode(['demo/demo.ts']);
    assert.equal(await run.exited, 0, run.output());
    const innerRows = run.output().split('\n').filter((l) => /^\d+\s+inner\s/.test(l));
    const clients = innerRows.map((l) => l.split(/\s{2,}/)[3].split(':')[0]);
    assert.deepEqual(clients, ['127.0.0.11', '127.0.0.12', '127.0.0.13']);
    assert.ok(innerRows.every((l) => /127\.0\.0\.1:\d+/.test(l.split(/\s{2,}/)[2])), 'the inner hop’s TCP peer is the outer proxy');
  });

  it('keeps the chain up with --serve until SIGTERM', async () => {
    const run = runNode(['demo/demo.ts', '--serve']);
    const [, port] = await run.waitFor(/chain is up on 127\.0\.0\.1:(\d+)/);
    const socket = await connect({ port: Number(port), localAddress: '127.0.0.42' });
    socket.write('hi\n');
    assert.equal(await readLine(socket), 'hi');
    await run.waitFor(/backend: connection from .* real client 127\.0\.0\.42:/);
    socket.destroy();
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0);
  });
});

describe('the smartproxy CLI', () => {
  it('validates the shipped examples with --check', async () => {
    for (const file of fs.readdirSync('examples').filter((f) => f.endsWith('.json'))) {
      const run = runNode(['ts/cli.ts', '--check', '--config', path.join('examples', file)]);
      assert.equal(await run.exited, 0, run.output());
      assert.match(run.output(), /: ok \(\d+ routes?\)/);
    }
  });

  it('exits 2 and names the JSON path of every problem in a bad config', async () => {
    const file = writeConfig({
      routes: [
        { name: 'a', match: { ports: 70000 }, action: { type: 'forward', target: { host: 'x', port: 1 } } },
        { name: 'b', match: { ports: 1 }, action: { type: 'forward', target: { host: 'x', port: 1 }, tls: { mode: 'terminate', certificate: { keyFile: 'missing.pem', certFile: 'missing.pem' } } } },
      ],
      proxyIPs: ['0.0.0.0/0'],
    });
    const run = runNode(['ts/cli.ts', '--config', file]);
    assert.equal(await run.exited, 2);
    const out = run.output();
    for (const fragment of ['routes[0].match.ports', 'routes[1].action.tls.certificate.keyFile', 'proxyIPs[0]', 'ERR_CONFIG_TRUST_ALL']) assert.ok(out.includes(fragment), `${fragment} in:\n${out}`);
  });

  it('rejects a file that is not JSON with exit 2', async () => {
    const file = writeConfig({});
    fs.writeFileSync(file, '{ routes: nope');
    const run = runNode(['ts/cli.ts', '--config', file]);
    assert.equal(await run.exited, 2);
    assert.match(run.output(), /not valid JSON/);
  });

  it('serves traffic, applies a new route on SIGHUP without dropping live connections, and stops on SIGTERM', async () => {
    const one = await startTaggedEchoServer('one');
    const two = await startTaggedEchoServer('two');
    onCleanup(() => one.close(), () => two.close());
    const [p1, p2] = [await freePort(), await freePort()];
    const route = (name: string, port: number, target: number) => ({ name, match: { ports: port }, action: { type: 'forward', target: { host: '127.0.0.1', port: target } } });
    const file = writeConfig({ listenAddress: '127.0.0.1', gracefulShutdownTimeout: 2000, routes: [route('one', p1, one.port)] });
    const run = runNode(['ts/cli.ts', '--config', file]);
    await run.waitFor(new RegExp(`listening on 127\\.0\\.0\\.1:${p1}`));
    const live = await connect({ port: p1 });
    assert.equal(await readLine(live), 'one');

    fs.writeFileSync(file, JSON.stringify({ listenAddress: '127.0.0.1', routes: [route('one', p1, one.port), route('two', p2, two.port)] }));
    run.child.kill('SIGHUP');
    await run.waitFor(/configuration reloaded \(2 routes\)/);
    const fresh = await connect({ port: p2 });
    assert.equal(await readLine(fresh), 'two');
    live.write('still here\n');
    assert.equal(await readLine(live), 'still here');

    fresh.destroy();
    live.destroy();
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0, run.output());
    assert.match(run.output(), /SIGTERM: stopping[\s\S]*stopped/);
  });
});
