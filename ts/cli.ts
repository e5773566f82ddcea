#!/usr/bin/env node
/**
 * smartproxy --config smartproxy.json [--check]
 *
 * Runs SmartProxy as a service from a JSON file shaped like ISmartProxyOptions. Certificates
 * may be given as files (`keyFile`, `certFile`, `caFile`, relative to the config file).
 * SIGINT/SIGTERM stop gracefully (gracefulShutdownTimeout); SIGHUP reloads the routes.
 * Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { collectConfigErrors } from './proxies/smart-proxy/config.js';
import type { IProxyProtocolErrorEvent, ISmartProxyOptions } from './proxies/smart-proxy/models/interfaces.js';
import { SmartProxy } from './proxies/smart-proxy/smart-proxy.js';

const EXIT_RUNTIME = 1;
const EXIT_CONFIG = 2;

interface IProblem {
  path: string;
  message: string;
}

function log(message: string): void {
  console.log(`${new Date().toISOString()} smartproxy: ${message}`);
}

/** Reads `file` relative to the config; records a problem at `at` when it cannot. */
function readRelative(base: string, file: unknown, at: string, problems: IProblem[]): string | undefined {
  if (typeof file !== 'string') {
    problems.push({ path: at, message: 'must be a file path' });
    return undefined;
  }
  try {
    return fs.readFileSync(path.resolve(base, file), 'utf8');
  } catch (err) {
    problems.push({ path: at, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return undefined;
  }
}

/** Replaces keyFile/certFile/caFile with the PEM text they name. */
function inlineFiles(options: Record<string, unknown>, base: string, problems: IProblem[]): void {
  const routes = Array.isArray(options.routes) ? options.routes : [];
  routes.forEach((route: Record<string, any>, i: number) => {
    const tlsConfig = route?.action?.tls;
    if (typeof tlsConfig !== 'object' || tlsConfig === null) return;
    const cert = tlsConfig.certificate;
    if (cert && (cert.keyFile !== undefined || cert.certFile !== undefined)) {
      const at = `routes[${i}].action.tls.certificate`;
      tlsConfig.certificate = {
        key: cert.key ?? readRelative(base, cert.keyFile, `${at}.keyFile`, problems),
        cert: cert.cert ?? readRelative(base, cert.certFile, `${at}.certFile`, problems),
      };
    }
    const backend = tlsConfig.backend;
    if (backend && backend.caFile !== undefined) {
      backend.ca = readRelative(base, backend.caFile, `routes[${i}].action.tls.backend.caFile`, problems);
      delete backend.caFile;
    }
  });
}

/** Loads and checks a config file; returns the options or every problem found. */
function loadConfig(file: string): { options?: ISmartProxyOptions; problems: IProblem[] } {
  const problems: IProblem[] = [];
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return { problems: [{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }] };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { problems: [{ path: '', message: `not valid JSON: ${(err as Error).message}` }] };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { problems: [{ path: '', message: 'the config must be a JSON object' }] };
  }
  inlineFiles(parsed as Record<string, unknown>, path.dirname(path.resolve(file)), problems);
  for (const err of collectConfigErrors(parsed)) problems.push({ path: err.field, message: `${err.message} [${err.code}]` });
  return { options: parsed as ISmartProxyOptions, problems };
}

function report(file: string, problems: IProblem[]): void {
  for (const p of problems) console.error(`${file}: ${p.path || '(file)'}: ${p.message}`);
}

function usage(): never {
  console.error('usage: smartproxy --config <file.json> [--check]');
  process.exit(EXIT_CONFIG);
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({ options: { config: { type: 'string', short: 'c' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch {
    usage();
  }
  const file = args.values.config;
  if (args.values.help || file === undefined) usage();

  const { options, problems } = loadConfig(file);
  if (problems.length > 0 || options === undefined) {
    report(file, problems);
    process.exit(EXIT_CONFIG);
  }
  if (args.values.check) {
    console.log(`${file}: ok (${options.routes.length} route${options.routes.length === 1 ? '' : 's'})`);
    return;
  }

  const proxy = new SmartProxy(options);
  proxy.on('listening', (port: number) => log(`listening on ${options.listenAddress ?? '*'}:${port}`));
  proxy.on('warning', (message: string) => log(`warning: ${message}`));
  proxy.on('proxy-protocol-error', (e: IProxyProtocolErrorEvent) => log(`PROXY header refused from ${e.peerAddress}:${e.peerPort} on :${e.localPort}: ${e.code}`));
  try {
    await proxy.start();
  } catch (err) {
    log(`cannot start: ${(err as Error).message}`);
    process.exit(EXIT_RUNTIME);
  }
  log(`started with ${options.routes.length} route(s)`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping (draining up to ${options.gracefulShutdownTimeout ?? 0} ms)`);
    await proxy.stop();
    log('stopped');
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => {
    const next = loadConfig(file);
    if (next.problems.length > 0 || next.options === undefined) {
      report(file, next.problems);
      log('SIGHUP: config has problems; keeping the running routes');
      return;
    }
    proxy.updateRoutes(next.options.routes).then(
      () => log(`SIGHUP: routes reloaded (${next.options?.routes.length} route(s)); other options need a restart`),
      (err: Error) => log(`SIGHUP: reload failed: ${err.message}`),
    );
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(EXIT_RUNTIME);
});
