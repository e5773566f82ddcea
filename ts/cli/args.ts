/** The command line: every flag once, in one table that both the parser and `--help` read. */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { LOG_LEVELS } from './log.js';

interface IFlag {
  type: 'string' | 'boolean';
  short?: string;
  value?: string;
  help: string;
}

const FLAGS = {
  config: { type: 'string', short: 'c', value: '<file.json>', help: 'the configuration file (ISmartProxyOptions, plus "log" and "metrics")' },
  check: { type: 'boolean', help: 'validate the configuration, print every problem and warning, and exit' },
  workers: { type: 'string', short: 'w', value: '<N|auto>', help: 'worker processes, each a SmartProxy on the same ports (default 1: no supervisor; auto: one per core); overrides "workers"' },
  'log-level': { type: 'string', value: '<level>', help: `log level, overrides "log": { "level" } (${LOG_LEVELS.join(', ')}; default info)` },
  help: { type: 'boolean', short: 'h', help: 'print this help and exit' },
  version: { type: 'boolean', short: 'v', help: 'print the version and exit' },
} satisfies Record<string, IFlag>;

export interface IArgs {
  config?: string;
  check?: boolean;
  workers?: string;
  'log-level'?: string;
  help?: boolean;
  version?: boolean;
}

/** The parsed flags, or a message naming what is wrong with them. */
export function parseFlags(argv: string[]): { args: IArgs } | { error: string } {
  try {
    const { values } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false });
    return { args: values };
  } catch (err) {
    // Node names the flag ("Unknown option '--confg'"); keep its words and add what would work.
    return { error: `${(err as Error).message.replace(/\. To specify a positional.*$/s, '')} (see smartproxy --help)` };
  }
}

export function helpText(): string {
  const rows = Object.entries(FLAGS).map(([name, flag]: [string, IFlag]) => {
    const left = `${flag.short !== undefined ? `-${flag.short}, ` : '    '}--${name}${flag.value !== undefined ? ` ${flag.value}` : ''}`;
    return `  ${left.padEnd(28)} ${flag.help}`;
  });
  return [
    'usage: smartproxy --config <file.json> [--check] [--workers <N|auto>] [--log-level <level>]',
    '',
    'Runs SmartProxy as a service from a JSON configuration file.',
    '',
    ...rows,
    '',
    'Signals: SIGINT/SIGTERM stop gracefully (twice: at once, exit 1); SIGHUP reloads the file.',
    'With workers, signal the supervisor (the first process): it checks the file once and tells every worker.',
    'Exit codes: 0 ok, 1 runtime failure or a stop cut short, 2 invalid configuration or usage.',
    '',
  ].join('\n');
}

/** The package's version, read from the package.json beside `ts/` and `dist_ts/`. */
export function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
