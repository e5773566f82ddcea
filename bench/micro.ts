/** Micro-benchmark harness: interleaved rounds, median ns/op, with a sink against dead-code elimination. */
export let sink: unknown;

export function keep(value: unknown): void {
  sink = value;
}

/** ns per call of `fn`, timing batches for about `ms` milliseconds. */
export function timeOnce(fn: () => unknown, ms: number): number {
  let iterations = 0;
  let batch = 1000;
  const start = process.hrtime.bigint();
  const budget = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < batch; i++) sink = fn();
    iterations += batch;
    elapsed = process.hrtime.bigint() - start;
    batch = Math.min(batch * 2, 100_000);
  }
  return Number(elapsed) / iterations;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export interface ICase {
  name: string;
  fn: () => unknown;
}

/** Runs cases A B C A B C ... for `rounds` rounds; returns median ns/op per case name. */
export function runInterleaved(cases: ICase[], rounds = 5, ms = 200): Map<string, number[]> {
  const results = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (const c of cases) timeOnce(c.fn, 50);
  for (let r = 0; r < rounds; r++) for (const c of cases) results.get(c.name)?.push(timeOnce(c.fn, ms));
  return results;
}
