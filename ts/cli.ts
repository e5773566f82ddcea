#!/usr/bin/env node
/**
 * smartproxy --config smartproxy.json [--check]
 *
 * Runs SmartProxy as a service from a JSON file shaped like ISmartProxyOptions. Certificates
 * may be given as files (`keyFile`, `certFile`, `clientCaFile`, `caFile`, relative to the config
 * file). Signals: SIGINT/SIGTERM stop gracefully (gracefulShutdownTimeout), a second one while
 * draining exits at once with code 1; SIGHUP re-reads the whole file and applies it (ignored while
 * stopping, queued during start-up). Exit codes: 0 ok, 1 runtime failure or a stop cut short,
 * 2 invalid configuration or usage.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from './protocols/errors.js';
import { collectConfigErrors } from './proxies/smart-proxy/config.js';
import type { IProxyProtocolErrorEvent, ISmartProxyOptions } from './proxies/smart-proxy/models/interfaces.js';
import { SmartProxy } from './proxies/smart-proxy/smart-proxy.js';

const EXIT_RUNTIME = 1;
const EXIT_CONFIG = 2;
/** Bytes a log stream may hold unwritten before lines are dropped: a reader that stopped reading must not grow the heap. */
const LOG_BACKLOG_LIMIT = 1 << 20;

/** One output that never throws, never crashes the process and never grows without bound. */
class LogStream {
  private broken = false;
  private dropped = 0;

  constructor(private readonly stream: NodeJS.WriteStream) {
    // A closed pipe reports EPIPE as an 'error' event; unhandled, it would end the proxy, and any
    // client can cause the next log line.
    stream.on('error', () => {
      this.broken = true;
    });
  }

  write(line: string): void {
    if (this.broken) return;
    if (this.stream.writableLength > LOG_BACKLOG_LIMIT) {
      this.dropped++;
      return;
    }
    const text = this.dropped > 0 ? `${stamp()}(${this.dropped} lines dropped: output not read)\n${line}` : line;
    this.dropped = 0;
    try {
      this.stream.write(text);
    } catch {
      this.broken = true;
    }
  }
}

const stdout = new LogStream(process.stdout);
const stderr = new LogStream(process.stderr);

function stamp(): string {
  return `${new Date().toISOString()} smartproxy: `;
}

function log(message: string): void {
  stdout.write(`${stamp()}${message}\n`);
}

/** Each problem on one line: file, route, path (once), message, code. */
function report(file: string, problems: readonly ConfigError[]): void {
  for (const p of problems) stderr.write(`${file}: ${p.field === '' ? p.message.replace(/^: /, '') : p.message} [${p.code}]\n`);
}

// File fields of a route's `action.tls`: [object holding it, file key, PEM key it fills].
type TFileField = [holder: (tlsConfig: Record<string, unknown>) => unknown, at: string, fileKey: string, pemKey: string];
const FILE_FIELDS: readonly TFileField[] = [
  [(t) => t.certificate, 'certificate', 'keyFile', 'key'],
  [(t) => t.certificate, 'certificate', 'certFile', 'cert'],
  [(t) => t, '', 'clientCaFile', 'clientCa'],
  [(t) => t.backend, 'backend', 'caFile', 'ca'],
];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What loading a config file found: the options, and problems of the file and the files it names. */
interface ILoaded {
  options?: ISmartProxyOptions;
  fileProblems: ConfigError[];
  /** Fields left empty because their file could not be read: the validator's complaints about them repeat a file problem. */
  unread: string[];
}

/** Reads `file` relative to the config into `holder[pemKey]`, in place of `holder[fileKey]`. */
function inlineFile(holder: Record<string, unknown>, fileKey: string, pemKey: string, at: string, base: string, loaded: ILoaded): void {
  const file = holder[fileKey];
  delete holder[fileKey];
  const problem = (message: string): void => {
    loaded.fileProblems.push(new ConfigError('ERR_CONFIG_FILE', `${at}.${fileKey}`, message));
  };
  if (holder[pemKey] !== undefined) return problem(`give ${pemKey} or ${fileKey}, not both`);
  if (typeof file !== 'string' || file.length === 0) return problem('must be a file path');
  try {
    holder[pemKey] = fs.readFileSync(path.resolve(base, file), 'utf8');
  } catch (err) {
    loaded.unread.push(`${at}.${pemKey}`);
    problem(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Replaces every file field of the routes' TLS settings with the PEM text it names. */
function inlineFiles(options: Record<string, unknown>, base: string, loaded: ILoaded): void {
  if (!Array.isArray(options.routes)) return;
  options.routes.forEach((route: unknown, i) => {
    const action = isRecord(route) ? route.action : undefined;
    const tlsConfig = isRecord(action) ? action.tls : undefined;
    if (!isRecord(tlsConfig)) return;
    for (const [holderOf, at, fileKey, pemKey] of FILE_FIELDS) {
      const holder = holderOf(tlsConfig);
      const where = `routes[${i}].action.tls${at ? `.${at}` : ''}`;
      if (isRecord(holder) && holder[fileKey] !== undefined) inlineFile(holder, fileKey, pemKey, where, base, loaded);
    }
  });
}

/** Reads, parses and inlines a config file (not yet validated). */
function loadConfig(file: string): ILoaded {
  const loaded: ILoaded = { fileProblems: [], unread: [] };
  const fail = (message: string): ILoaded => ({ ...loaded, fileProblems: [new ConfigError('ERR_CONFIG_FILE', '', message)] });
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fail(err instanceof SyntaxError ? `not valid JSON: ${err.message}` : `cannot read ${file}: ${code ?? (err as Error).message}`);
  }
  if (!isRecord(parsed)) return fail('the config must be a JSON object');
  inlineFiles(parsed, path.dirname(path.resolve(file)), loaded);
  loaded.options = parsed as unknown as ISmartProxyOptions;
  return loaded;
}

/** Every problem of a loaded file; a field whose file could not be read is reported once, as a file problem. */
function allProblems(loaded: ILoaded): ConfigError[] {
  if (loaded.options === undefined) return loaded.fileProblems;
  const repeats = (field: string) =>
    loaded.unread.some((pem) => field === pem || field.startsWith(`${pem}.`) || pem.startsWith(`${field}.`));
  return [...loaded.fileProblems, ...collectConfigErrors(loaded.options).filter((e) => !repeats(e.field))];
}

function routeCount(options: ISmartProxyOptions): string {
  const n = Array.isArray(options.routes) ? options.routes.length : 0;
  return `${n} route${n === 1 ? '' : 's'}`;
}

/**
 * Lets signals that arrived during the synchronous loading run their handlers before listening.
 * Two turns of the event loop: in the first one after start-up, a signal already pending is not
 * yet seen by the poll phase (observed on Node 20).
 */
async function yieldToSignals(): Promise<void> {
  for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * The running service: start-up, reloads and the stop, driven by signals. Handlers are installed
 * before anything slow happens (reading certificates, building TLS contexts, listening), so a
 * signal during start-up never meets its default action (which kills the process).
 */
class Service {
  private state: 'starting' | 'running' | 'stopping' = 'starting';
  private proxy: SmartProxy | undefined;
  private reloadWanted = false;
  private reloading = false;

  constructor(private readonly file: string) {}

  /** A signal may have changed the state during any await. */
  private stopping(): boolean {
    return this.state === 'stopping';
  }

  installSignalHandlers(): void {
    process.on('SIGHUP', () => this.onReloadSignal());
    process.on('SIGTERM', () => this.onStopSignal('SIGTERM'));
    process.on('SIGINT', () => this.onStopSignal('SIGINT'));
  }

  private onReloadSignal(): void {
    if (this.state === 'stopping') return log('SIGHUP while stopping: ignored');
    this.reloadWanted = true;
    if (this.state === 'starting') return log('SIGHUP during start-up: the configuration is read again once started');
    if (!this.reloading) void this.reload();
  }

  private onStopSignal(signal: string): void {
    if (this.state === 'stopping') {
      log(`${signal} again while stopping: exiting now, cutting the connections still draining`);
      process.exit(EXIT_RUNTIME);
    }
    const running = this.state === 'running';
    this.state = 'stopping';
    const drainMs = this.proxy?.options.gracefulShutdownTimeout ?? 0;
    log(`${signal}: stopping${running ? ` (draining up to ${drainMs} ms; send it again to exit at once)` : ' during start-up'}`);
    if (running) void this.shutdown();
  }

  private async shutdown(): Promise<void> {
    try {
      await this.proxy?.stop();
      log('stopped');
    } catch (err) {
      log(`stop failed: ${(err as Error).message}`);
      process.exitCode = EXIT_RUNTIME;
    }
  }

  /** Builds the proxy from the file; on a bad configuration reports every problem and exits 2. */
  private create(): SmartProxy | undefined {
    const loaded = loadConfig(this.file);
    try {
      if (loaded.fileProblems.length === 0 && loaded.options !== undefined) return new SmartProxy(loaded.options);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
    }
    report(this.file, allProblems(loaded));
    process.exitCode = EXIT_CONFIG;
    return undefined;
  }

  async start(): Promise<void> {
    const proxy = this.create();
    await yieldToSignals();
    if (proxy === undefined) return;
    if (this.stopping()) return log('stopped before listening');
    this.proxy = proxy;
    proxy.on('listening', (port: number) => log(`listening on ${proxy.options.listenAddress ?? '*'}:${port}`));
    proxy.on('warning', (message: string) => log(`warning: ${message}`));
    proxy.on('proxy-protocol-error', (e: IProxyProtocolErrorEvent) => log(`PROXY header refused from ${e.peerAddress}:${e.peerPort} on :${e.localPort}: ${e.code}`));
    try {
      await proxy.start();
    } catch (err) {
      log(`cannot start: ${(err as Error).message}`);
      process.exitCode = EXIT_RUNTIME;
      this.state = 'stopping';
      return this.shutdown();
    }
    if (this.stopping()) return this.shutdown();
    this.state = 'running';
    log(`started with ${routeCount(proxy.options)}`);
    if (this.reloadWanted) void this.reload();
  }

  /** Applies the file again, as often as SIGHUP asked while a reload ran; never two at once. */
  private async reload(): Promise<void> {
    this.reloading = true;
    while (this.reloadWanted && this.state === 'running') {
      this.reloadWanted = false;
      await this.reloadOnce();
    }
    this.reloading = false;
  }

  private async reloadOnce(): Promise<void> {
    const proxy = this.proxy as SmartProxy;
    const loaded = loadConfig(this.file);
    if (loaded.fileProblems.length > 0 || loaded.options === undefined) {
      report(this.file, allProblems(loaded));
      return log('SIGHUP: the configuration has problems; nothing changed');
    }
    try {
      const { needsRestart } = await proxy.reloadOptions(loaded.options);
      const pending = needsRestart.length > 0 ? `; ${needsRestart.join(', ')} change only on restart` : '';
      log(`SIGHUP: configuration reloaded (${routeCount(loaded.options)})${pending}`);
    } catch (err) {
      if (err instanceof ConfigError) report(this.file, allProblems(loaded));
      log(`SIGHUP: ${err instanceof ConfigError ? 'the configuration has problems' : `reload failed: ${(err as Error).message}`}; nothing changed`);
    }
  }
}

/** --check: every problem with its path, exit 2; or "ok". */
function check(file: string): void {
  const loaded = loadConfig(file);
  const problems = allProblems(loaded);
  if (problems.length > 0 || loaded.options === undefined) {
    report(file, problems);
    process.exitCode = EXIT_CONFIG;
    return;
  }
  stdout.write(`${file}: ok (${routeCount(loaded.options)})\n`);
}

function usage(): void {
  stderr.write('usage: smartproxy --config <file.json> [--check]\n');
  process.exitCode = EXIT_CONFIG;
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({ options: { config: { type: 'string', short: 'c' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch {
    return usage();
  }
  const file = args.values.config;
  if (args.values.help || file === undefined) return usage();
  if (args.values.check) return check(file);
  const service = new Service(file);
  service.installSignalHandlers();
  await service.start();
}

main().catch((err: Error) => {
  stderr.write(`${stamp()}${err.stack ?? err.message}\n`);
  process.exitCode = EXIT_RUNTIME;
});
