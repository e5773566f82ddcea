/** Live counts per key (per IP, per route, per port): the table holds only keys whose count is above zero. */

/** Adds one to a counter. */
export function retain<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Takes one off a counter, dropping the key at zero. */
export function release<K>(counts: Map<K, number>, key: K): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}
