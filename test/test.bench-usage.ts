/** `npm run bench -- --help` documents every flag and exits 0 without starting anything. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cleanupAfterAll } from './helpers/cleanup.js';
import { runNode } from './helpers/cli.js';

const onCleanup = cleanupAfterAll();

describe('the benchmark runner', () => {
  it('prints every flag with --help and exits 0', async () => {
    const run = runNode(['bench/run.ts', '--help'], onCleanup);
    assert.equal(await run.exited, 0, run.output());
    for (const flag of ['--rounds', '--seconds', '--only', '--skip-http', '--skip-memory', '--skip-parser', '--skip-workers', '--profile', '--help']) assert.ok(run.output().includes(flag), `${flag} in:\n${run.output()}`);
    assert.doesNotMatch(run.output(), /# npm run bench/);
  });
});
