import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';

describe('soak (short run of npm run soak)', () => {
  it('verifies every byte through outer → inner with resets, a backend restart, slowloris and spoofing, and leaks nothing', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/soak.ts', '--connections', '800', '--concurrency', '40', '--max-size', '131072'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(code, 0, out);
    assert.match(out, /soak: PASS/);
    assert.match(out, /active connections \(outer \/ inner\)\s+0 \/ 0/);
  });
});
