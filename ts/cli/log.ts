/**
 * The CLI's logs: pino for levels and structure, written through an output of our own that never
 * throws, never crashes the process and never blocks or grows without bound (pino's own
 * destinations either write synchronously, which blocks on a full pipe, or throw on EPIPE).
 * Text (default): `time LEVEL message key=value ...`, one line per record; JSON: pino's lines.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

/** Bytes a log stream may hold unwritten before lines are dropped: a reader that stopped reading must not grow the heap. */
const LOG_BACKLOG_LIMIT = 1 << 20;

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** One output that never throws, never crashes the process and never grows without bound. */
export class LogStream {
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
    const text = this.dropped > 0 ? `${new Date().toISOString()} WARN ${this.dropped} log lines dropped: output not read\n${line}` : line;
    this.dropped = 0;
    try {
      this.stream.write(text);
    } catch {
      this.broken = true;
    }
  }
}

export const stdout = new LogStream(process.stdout);
export const stderr = new LogStream(process.stderr);

/** Keys of a pino record that the text line shows in its own places. */
const FIXED_KEYS = new Set(['level', 'time', 'msg']);

/** A value as it appears after `key=`: bare when it has no space or quote, else JSON-quoted. */
function textValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /^[^\s"=]*$/.test(text) && text !== '' ? text : JSON.stringify(text);
}

/** Turns pino's JSON line into the text line; pino still decides levels and fields. */
class TextOutput {
  constructor(private readonly out: LogStream) {}

  write(json: string): void {
    const record = JSON.parse(json) as Record<string, unknown>;
    let line = `${String(record.time)} ${pino.levels.labels[record.level as number]?.toUpperCase() ?? record.level} ${String(record.msg ?? '')}`;
    for (const key of Object.keys(record)) {
      if (!FIXED_KEYS.has(key) && record[key] !== undefined) line += ` ${key}=${textValue(record[key])}`;
    }
    this.out.write(`${line}\n`);
  }
}

export function createLogger(format: LogFormat, level: LevelWithSilent, out: LogStream = stdout): Logger {
  return pino(
    { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label, number) => (format === 'json' ? { level: label } : { level: number }) } },
    format === 'json' ? out : new TextOutput(out),
  );
}
