#!/usr/bin/env node
/**
 * smartproxy --config smartproxy.json [--check] [--workers N|auto] [--log-level <level>] | --help | --version
 *
 * Runs SmartProxy as a service from a JSON file shaped like ISmartProxyOptions (see ts/cli/);
 * with more than one worker, as a node:cluster supervisor of that many (ts/cli/workers/).
 * Exit codes: 0 ok, 1 runtime failure or a stop cut short, 2 invalid configuration or usage.
 */
import cluster from 'node:cluster';
import type { LevelWithSilent } from 'pino';
import { helpText, parseFlags, version } from './cli/args.js';
import { loadConfig, parseWorkers, type WorkerCount } from './cli/config-file.js';
import { createLogger, LOG_LEVELS, stderr, stdout } from './cli/log.js';
import { EXIT_CONFIG, EXIT_RUNTIME, report, routeCount } from './cli/checked-config.js';
import { Service } from './cli/service.js';
import { runWorker } from './cli/workers/worker.js';

function usageError(message: string): void {
  stderr.write(`smartproxy: ${message}\n`);
  process.exitCode = EXIT_CONFIG;
}

/** --check: every problem with its path and every warning; exit 2 on a problem, else "ok". */
function check(file: string, level: LevelWithSilent | undefined): void {
  const loaded = loadConfig(file);
  if (!report(file, loaded, createLogger('text', level ?? 'info', stderr))) {
    process.exitCode = EXIT_CONFIG;
    return;
  }
  stdout.write(`${file}: ok (${routeCount(loaded.options!)})\n`);
}

async function main(): Promise<void> {
  const parsed = parseFlags(process.argv.slice(2));
  if ('error' in parsed) return usageError(parsed.error);
  const { args } = parsed;
  if (args.help) return stdout.write(helpText());
  if (args.version) return stdout.write(`${version()}\n`);
  const level = args['log-level'];
  if (level !== undefined && !LOG_LEVELS.includes(level as LevelWithSilent)) return usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  if (args.config === undefined) return usageError('--config <file.json> is required (see smartproxy --help)');
  let workers: WorkerCount | undefined;
  if (args.workers !== undefined) {
    const parsed = parseWorkers(/^\d+$/.test(args.workers) ? Number(args.workers) : args.workers);
    if ('error' in parsed) return usageError(`--workers ${parsed.error}`);
    workers = parsed.workers;
  }
  if (args.check) return check(args.config, level as LevelWithSilent | undefined);
  const service = new Service(args.config, level as LevelWithSilent | undefined, workers);
  service.installSignalHandlers();
  await service.start();
}

// A worker of a supervisor runs from the same file: node:cluster starts it with the same argv.
(cluster.isWorker ? Promise.resolve(runWorker()) : main()).catch((err: Error) => {
  stderr.write(`${new Date().toISOString()} FATAL ${err.stack ?? err.message}\n`);
  process.exitCode = EXIT_RUNTIME;
});
