/**
 * The CLI's configuration file: JSON shaped like ISmartProxyOptions, with certificates as files
 * (relative to the file) and sections of its own: `log`, `metrics` and `workers`. Loading gathers every
 * problem (each once, with its JSON path) and warns about settings that do nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../protocols/errors.js';
import { collectConfigErrors } from '../proxies/smart-proxy/config.js';
import type { ISmartProxyOptions } from '../proxies/smart-proxy/models/interfaces.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat } from './log.js';
import type { LevelWithSilent } from 'pino';
import { configWarnings, didYouMean, isRecord, jsonErrorPlace } from './config-checks.js';

export interface ICliSettings {
  log: { format: LogFormat; level: LevelWithSilent };
  /** `host:port` to serve /metrics and /stats on; none by default. */
  metricsListen?: { host: string; port: number };
  /** Worker processes (`"workers"`): a count, or `auto` for one per core; absent means 1 (no supervisor). */
  workers?: WorkerCount;
}

export type WorkerCount = number | 'auto';

/** More workers than this is a typo, not a machine: each one holds a whole SmartProxy. */
export const MAX_WORKERS = 256;

/** `"workers"` (or --workers, its digits made a number) checked: the count, or what is wrong with it. */
export function parseWorkers(value: unknown): { workers: WorkerCount } | { error: string } {
  if (value === 'auto' || (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_WORKERS)) return { workers: value };
  return { error: `must be a whole number from 1 to ${MAX_WORKERS}, or "auto" (one per core), got ${JSON.stringify(value)}` };
}

/** What loading a config file found. */
export interface ILoaded {
  options?: ISmartProxyOptions;
  cli: ICliSettings;
  fileProblems: ConfigError[];
  /** Fields left empty because their file could not be read: the validator's complaints about them repeat a file problem. */
  unread: string[];
  warnings: string[];
}

/**
 * The most a config file, or a file it names, may hold. Reading is synchronous (a reload blocks
 * the proxy while it reads and parses), and a file replaced by something huge, or by a device or
 * pipe that never ends, must not hold the proxy or fill its memory.
 */
const FILE_LIMIT = 64 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

/** `file` as UTF-8 text; throws past FILE_LIMIT bytes, before reading when the size is known ahead. */
function readLimited(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const tooLarge = () => new Error(`larger than ${FILE_LIMIT / 1024 / 1024} MiB`);
    if (fs.fstatSync(fd).size > FILE_LIMIT) throw tooLarge();
    // Devices and FIFOs report no size: read in chunks, counting.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(READ_CHUNK);
      const n = fs.readSync(fd, chunk, 0, READ_CHUNK, null);
      if (n === 0) return Buffer.concat(chunks, total).toString('utf8');
      total += n;
      if (total > FILE_LIMIT) throw tooLarge();
      chunks.push(chunk.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

// File fields of a route's `action.tls`: [object holding it, file key, PEM key it fills].
type TFileField = [holder: (tlsConfig: Record<string, unknown>) => unknown, at: string, fileKey: string, pemKey: string];
const FILE_FIELDS: readonly TFileField[] = [
  [(t) => t.certificate, 'certificate', 'keyFile', 'key'],
  [(t) => t.certificate, 'certificate', 'certFile', 'cert'],
  [(t) => t, '', 'clientCaFile', 'clientCa'],
  [(t) => t.backend, 'backend', 'caFile', 'ca'],
];

/** Reads `file` relative to the config into `holder[pemKey]`, in place of `holder[fileKey]`; a file that cannot be read is one problem however often it is named. */
function inlineFile(holder: Record<string, unknown>, fileKey: string, pemKey: string, at: string, base: string, loaded: ILoaded): void {
  const file = holder[fileKey];
  delete holder[fileKey];
  const problem = (message: string): void => {
    loaded.fileProblems.push(new ConfigError('ERR_CONFIG_FILE', `${at}.${fileKey}`, message));
  };
  if (holder[pemKey] !== undefined) return problem(`give ${pemKey} or ${fileKey}, not both`);
  if (typeof file !== 'string' || file.length === 0) return problem('must be a file path');
  const resolved = path.resolve(base, file);
  try {
    holder[pemKey] = readLimited(resolved);
  } catch (err) {
    loaded.unread.push(`${at}.${pemKey}`);
    const message = `cannot read ${resolved}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    if (!loaded.fileProblems.some((p) => p.message.endsWith(message))) problem(message);
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

/** Takes the CLI's own sections (`log`, `metrics`, `workers`) out of the options, checking them. */
function takeCliSections(options: Record<string, unknown>, loaded: ILoaded): void {
  const { log, metrics, workers } = options;
  delete options.log;
  delete options.metrics;
  delete options.workers;
  const problem = (field: string, message: string) => loaded.fileProblems.push(new ConfigError('ERR_CONFIG_OPTION', field, message));
  if (workers !== undefined) {
    const parsed = parseWorkers(workers);
    if ('error' in parsed) problem('workers', parsed.error);
    else loaded.cli.workers = parsed.workers;
  }
  if (log !== undefined) {
    if (!isRecord(log)) problem('log', 'must be an object: { "format": "text" | "json", "level": "info" }');
    else {
      for (const key of Object.keys(log)) if (key !== 'format' && key !== 'level') problem(`log.${key}`, `unknown option${didYouMean(key, ['format', 'level'])} (known here: format, level)`);
      if (log.format !== undefined && !LOG_FORMATS.includes(log.format as LogFormat)) problem('log.format', `must be one of ${LOG_FORMATS.join(', ')}`);
      else if (log.format !== undefined) loaded.cli.log.format = log.format as LogFormat;
      if (log.level !== undefined && !LOG_LEVELS.includes(log.level as LevelWithSilent)) problem('log.level', `must be one of ${LOG_LEVELS.join(', ')}`);
      else if (log.level !== undefined) loaded.cli.log.level = log.level as LevelWithSilent;
    }
  }
  if (metrics !== undefined) {
    const listen = isRecord(metrics) ? metrics.listen : undefined;
    const m = typeof listen === 'string' ? /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(listen) : null;
    if (isRecord(metrics)) for (const key of Object.keys(metrics)) if (key !== 'listen') problem(`metrics.${key}`, `unknown option${didYouMean(key, ['listen'])} (known here: listen)`);
    if (m === null || Number(m[2]) > 65535 || m[1] === '') problem('metrics.listen', 'must be "host:port", e.g. "127.0.0.1:9464"');
    else loaded.cli.metricsListen = { host: m[1], port: Number(m[2]) };
  }
}

/** Reads, parses and inlines a config file (not yet validated). */
export function loadConfig(file: string): ILoaded {
  const loaded: ILoaded = { cli: { log: { format: 'text', level: 'info' } }, fileProblems: [], unread: [], warnings: [] };
  const fail = (message: string): ILoaded => ({ ...loaded, fileProblems: [new ConfigError('ERR_CONFIG_FILE', '', message)] });
  let text: string;
  try {
    text = readLimited(file);
  } catch (err) {
    return fail(`cannot read ${path.resolve(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const { line, column } = jsonErrorPlace(text, err as SyntaxError);
    return fail(`not valid JSON at line ${line}, column ${column}: ${(err as Error).message.replace(/ in JSON at position \d+.*$|, "[\s\S]*" is not valid JSON$/, '')}`);
  }
  if (!isRecord(parsed)) return fail('the config must be a JSON object');
  takeCliSections(parsed, loaded);
  inlineFiles(parsed, path.dirname(path.resolve(file)), loaded);
  loaded.options = parsed as unknown as ISmartProxyOptions;
  loaded.warnings = configWarnings(parsed);
  return loaded;
}

/** Every problem of a loaded file, each once; a config without routes is refused (it would serve nothing). */
export function allProblems(loaded: ILoaded): ConfigError[] {
  if (loaded.options === undefined) return loaded.fileProblems;
  const repeats = (field: string) =>
    loaded.unread.some((pem) => field === pem || field.startsWith(`${pem}.`) || pem.startsWith(`${field}.`));
  const problems = [...loaded.fileProblems, ...collectConfigErrors(loaded.options).filter((e) => !repeats(e.field))];
  const routes = loaded.options.routes;
  if (Array.isArray(routes) && routes.length === 0) problems.push(new ConfigError('ERR_CONFIG_ROUTES', 'routes', 'no routes: the proxy would listen on nothing; add at least one route'));
  return problems;
}

/** One line per problem: file, route, path, message, "did you mean" for a misspelt key, code. */
export function problemLines(file: string, problems: readonly ConfigError[]): string[] {
  return problems.map((p) => {
    let message = p.field === '' ? p.message.replace(/^: /, '') : p.message;
    const known = p.code === 'ERR_CONFIG_UNKNOWN_OPTION' ? /\(known here: ([^)]*)\)$/.exec(message) : null;
    if (known !== null) message = message.replace('unknown option', `unknown option${didYouMean(p.field.replace(/^.*[.\]]/, ''), known[1].split(', '))}`);
    return `${file}: ${message} [${p.code}]`;
  });
}
