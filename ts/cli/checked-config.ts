/**
 * The configuration file as the service and the supervisor take it: read, checked whole (every
 * problem reported), and summed up for the log; the exit codes both use.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import { ConfigError } from '../protocols/errors.js';
import { resolveConfig } from '../proxies/smart-proxy/config.js';
import type { ISmartProxyOptions } from '../proxies/smart-proxy/models/interfaces.js';
import { allProblems, type ICliSettings, type ILoaded, loadConfig, problemLines, type WorkerCount } from './config-file.js';
import { stderr } from './log.js';

/** `"workers"` as a number of processes: `auto` is one per core, absent is 1 (no supervisor). */
export function workerCount(workers: WorkerCount | undefined): number {
  return workers === 'auto' ? os.availableParallelism() : (workers ?? 1);
}

export const EXIT_RUNTIME = 1;
export const EXIT_CONFIG = 2;

export function routeCount(options: ISmartProxyOptions): string {
  const n = Array.isArray(options.routes) ? options.routes.length : 0;
  return `${n} route${n === 1 ? '' : 's'}`;
}

/** Problems go to stderr (one line each), warnings to the log. */
export function report(file: string, loaded: ILoaded, log: Logger): boolean {
  const problems = allProblems(loaded);
  for (const line of problemLines(file, problems)) stderr.write(`${line}\n`);
  for (const warning of loaded.warnings) log.warn({ code: 'CONFIG_WARNING' }, `${file}: ${warning}`);
  return problems.length === 0 && loaded.options !== undefined;
}

/**
 * Reads and checks the file, with the logger `logFor` makes from its settings: the loaded file
 * when it is good, else undefined after every problem went to stderr.
 */
export function loadChecked(file: string, logFor: (loaded: ILoaded) => Logger): ILoaded | undefined {
  const loaded = loadConfig(file);
  try {
    if (report(file, loaded, logFor(loaded))) {
      resolveConfig(loaded.options as ISmartProxyOptions);
      return loaded;
    }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const line of problemLines(file, [err])) stderr.write(`${line}\n`);
  }
  return undefined;
}

/**
 * The CLI's own settings (`log`, `metrics`, `workers`) apply at start only: the ones a reload
 * would change. `workersFlag`: --workers was given, so the file's count does not apply at all.
 */
export function cliChanges(running: ICliSettings, loaded: ICliSettings, workersFlag: boolean): string[] {
  const sections: Array<[string, unknown, unknown]> = [
    ['log', running.log, loaded.log],
    ['metrics', running.metricsListen, loaded.metricsListen],
    ['workers', workersFlag ? 0 : workerCount(running.workers), workersFlag ? 0 : workerCount(loaded.workers)],
  ];
  return sections.filter(([, before, after]) => JSON.stringify(before) !== JSON.stringify(after)).map(([name]) => name);
}
