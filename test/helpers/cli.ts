/** Child processes for CLI tests: a node process with tsx, its output, and config files. */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface IRun {
  child: ChildProcess;
  output: () => string;
  /** The exit code, or the signal that ended the process. */
  exited: Promise<number | NodeJS.Signals | null>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

/** Runs `node --import tsx ...args`; `onCleanup` gets a kill for a process still running at the end. */
export function runNode(args: string[], onCleanup: (fn: () => unknown) => void): IRun {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    output: () => out,
    exited,
    async waitFor(pattern, timeoutMs = 10000) {
      const start = Date.now();
      for (;;) {
        const m = out.match(pattern);
        if (m) return m;
        if (child.exitCode !== null || child.signalCode !== null || Date.now() - start > timeoutMs) throw new Error(`no ${pattern} in output:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** A fresh directory, removed at cleanup. */
export function tempDir(onCleanup: (fn: () => unknown) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smartproxy-cli-'));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `config` as smartproxy.json in a fresh directory; returns its path. */
export function writeConfig(config: unknown, onCleanup: (fn: () => unknown) => void): string {
  const file = path.join(tempDir(onCleanup), 'smartproxy.json');
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}
