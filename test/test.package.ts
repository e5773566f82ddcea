/**
 * The published package, as a new user gets it: `npm pack`, then a fresh app that installs the
 * tarball (runtime dependencies come from the npm cache or registry) and loads it both ways.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { tempDir } from './helpers/cli.js';

const onCleanup = cleanupAfterAll();
const root = path.resolve(import.meta.dirname, '..');
const NPM_QUIET = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

let app = '';
let files: string[] = [];

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
}

/** Runs `node` in the app with a snippet; returns stdout. */
function nodeIn(cwd: string, args: string[]): string {
  return execFileSync(process.execPath, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

before(() => {
  const work = tempDir(onCleanup);
  // `npm pack` runs `prepare` (the build), so the tarball holds what the sources build to now.
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', work, '--loglevel=error'], root)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  files = packed.files.map((f) => f.path);
  app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true }));
  npm(['install', path.join(work, packed.filename), ...NPM_QUIET], app);
});

describe('the npm package', () => {
  it('loads with require() from a CommonJS app (Node 20.19 and later)', () => {
    const out = nodeIn(app, ['-e', "const m = require('@push.rocks/smartproxy'); console.log(typeof m.SmartProxy, typeof m.ProxyProtocolParser)"]);
    assert.equal(out.trim(), 'function function');
  });

  it('loads with import from an ES module, the same module as require() gives', () => {
    const script = [
      "import * as m from '@push.rocks/smartproxy';",
      "import { createRequire } from 'node:module';",
      "const required = createRequire(process.cwd() + '/').call(null, '@push.rocks/smartproxy');",
      'console.log(typeof m.SmartProxy, m.SmartProxy === required.SmartProxy);',
    ].join('\n');
    assert.equal(nodeIn(app, ['--input-type=module', '-e', script]).trim(), 'function true');
  });

  it('ships its license, its built code with types, and no maintainer files (tests, benchmarks, CI, lock file)', () => {
    for (const f of ['LICENSE', 'package.json', 'readme.md', 'dist_ts/index.js', 'dist_ts/index.d.ts', 'dist_ts/cli.js']) assert.ok(files.includes(f), `${f} in the tarball`);
    const unwanted = files.filter((f) => /^(test|bench|demo|\.ci|node_modules)\//.test(f) || f === 'package-lock.json' || f.startsWith('tsconfig'));
    assert.deepEqual(unwanted, []);
  });

  it('ships source maps whose sources are in the tarball', () => {
    const maps = files.filter((f) => f.endsWith('.js.map'));
    assert.ok(maps.length > 0);
    const installed = path.join(app, 'node_modules/@push.rocks/smartproxy');
    for (const map of maps) {
      const { sources } = JSON.parse(fs.readFileSync(path.join(installed, map), 'utf8')) as { sources: string[] };
      for (const source of sources) assert.ok(fs.existsSync(path.resolve(installed, path.dirname(map), source)), `${map} → ${source}`);
    }
  });

  it('installs a working smartproxy binary without building anything', () => {
    const out = execFileSync(path.join(app, 'node_modules/.bin/smartproxy'), ['--help'], { encoding: 'utf8' });
    assert.match(out, /--config/);
  });
});
