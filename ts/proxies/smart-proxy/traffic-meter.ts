/**
 * Throughput from byte counters, without work on the data path: the ConnectionManager's sweep
 * hands a total (bytes each way, overall and per route) to `sample()` about once a second, and
 * rates are differences between samples kept in a ring covering the last minute.
 * Imports nothing, so the ConnectionManager can own one without an import cycle.
 */

/** Bytes each way: `in` from clients, `out` to clients. */
export interface IByteTotals {
  in: number;
  out: number;
}

/** What one sample records: overall totals and per route name. */
export interface ITrafficTotals extends IByteTotals {
  byRoute: Map<string, IByteTotals>;
}

/** Bytes per second each way, over the last sample interval and over the last minute. */
export interface IThroughput {
  instant: IByteTotals;
  lastMinute: IByteTotals;
}

/** Connections and bytes of one route's connections that have ended (live ones are added when read). */
export interface IRouteTotals extends IByteTotals {
  connections: number;
}

/** Samples closer than this are skipped: rates over tiny intervals only add noise. */
const SAMPLE_EVERY_MS = 900;
const WINDOW_MS = 60_000;
/** Enough samples for the window at one per SAMPLE_EVERY_MS, plus the one that starts it. */
const RING_SIZE = Math.ceil(WINDOW_MS / SAMPLE_EVERY_MS) + 2;

interface ISample {
  at: number;
  totals: ITrafficTotals;
}

function rate(newer: IByteTotals | undefined, older: IByteTotals | undefined, seconds: number): IByteTotals {
  if (seconds <= 0 || newer === undefined) return { in: 0, out: 0 };
  return { in: (newer.in - (older?.in ?? 0)) / seconds, out: (newer.out - (older?.out ?? 0)) / seconds };
}

export class TrafficMeter {
  /** Oldest first; at most RING_SIZE (shifting 70 entries once a second costs nothing). */
  private readonly samples: ISample[] = [];

  /** Whether the sweep should take a sample at monotonic time `now`. */
  due(now: number): boolean {
    const last = this.samples.at(-1);
    return last === undefined || now - last.at >= SAMPLE_EVERY_MS;
  }

  sample(now: number, totals: ITrafficTotals): void {
    this.samples.push({ at: now, totals });
    if (this.samples.length > RING_SIZE) this.samples.shift();
  }

  /** Overall throughput, or one route's (`route` by name). Zero until two samples exist. */
  throughput(route?: string): IThroughput {
    const n = this.samples.length;
    if (n < 2) return { instant: { in: 0, out: 0 }, lastMinute: { in: 0, out: 0 } };
    const latest = this.samples[n - 1];
    const previous = this.samples[n - 2];
    // The newest sample at least a minute before the latest one, or the oldest kept.
    let start = this.samples[0];
    for (let i = n - 2; i >= 0; i--) {
      if (latest.at - this.samples[i].at >= WINDOW_MS) {
        start = this.samples[i];
        break;
      }
    }
    const pick = (s: ISample): IByteTotals | undefined => (route === undefined ? s.totals : s.totals.byRoute.get(route));
    return {
      instant: rate(pick(latest), pick(previous), (latest.at - previous.at) / 1000),
      lastMinute: rate(pick(latest), pick(start), (latest.at - start.at) / 1000),
    };
  }
}

/** Adds one ended connection to its route's totals. */
export function addRouteTotals(totals: Map<string, IRouteTotals>, route: string, bytesIn: number, bytesOut: number): void {
  const entry = totals.get(route);
  if (entry === undefined) totals.set(route, { connections: 1, in: bytesIn, out: bytesOut });
  else {
    entry.connections++;
    entry.in += bytesIn;
    entry.out += bytesOut;
  }
}
