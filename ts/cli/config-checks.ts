/** Helpers for the config file's messages: where JSON broke, which key was meant, what does nothing. */

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Levenshtein distance, case-insensitive (a key's case is the commonest typo). */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let row = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const next = [i];
    for (let j = 1; j <= y.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    row = next;
  }
  return row[y.length];
}

/** ` (did you mean "x"?)` for the closest known key within a third of its length, else nothing. */
export function didYouMean(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const d = distance(key, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

/** Whether JSON.parse fails on `text` somewhere before its end (a failure only at the end means "so far so good"). */
function failsInside(text: string): boolean {
  try {
    JSON.parse(text);
    return false;
  } catch (err) {
    const message = (err as Error).message;
    const at = /at position (\d+)/.exec(message);
    return !/Unexpected end of JSON input/.test(message) && (at === null || Number(at[1]) < text.length);
  }
}

/**
 * Line and column (1-based) of a JSON syntax error. V8 gives a position for most errors; for the
 * rest ("Unexpected token ..."), the shortest prefix that already fails inside says where.
 */
export function jsonErrorPlace(text: string, err: SyntaxError): { line: number; column: number } {
  const at = /at position (\d+)/.exec(err.message);
  let offset = text.length;
  if (at !== null) offset = Number(at[1]);
  else if (!/Unexpected end of JSON input/.test(err.message)) {
    let [low, high] = [0, text.length];
    while (low < high) {
      const mid = (low + high) >> 1;
      if (failsInside(text.slice(0, mid + 1))) high = mid;
      else low = mid + 1;
    }
    offset = low;
  }
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: before[before.length - 1].length + 1 };
}

/** Settings that are valid but do nothing, each as one sentence naming its path. */
export function configWarnings(options: Record<string, unknown>): string[] {
  const warnings: string[] = [];
  const proxyIPs = Array.isArray(options.proxyIPs) ? options.proxyIPs : [];
  const rules = Array.isArray(options.proxyProtocolRules) ? options.proxyProtocolRules : [];
  if (proxyIPs.length > 0 && options.acceptProxyProtocol !== true) {
    warnings.push('proxyIPs: has no effect without "acceptProxyProtocol": true (no PROXY header is read)');
  }
  if (options.acceptProxyProtocol === true && proxyIPs.length === 0 && rules.length === 0) {
    warnings.push('acceptProxyProtocol: no proxyIPs or proxyProtocolRules trust anybody, so every PROXY header is refused as spoofing');
  }
  if (!Array.isArray(options.routes)) return warnings;
  options.routes.forEach((route: unknown, i) => {
    const match = isRecord(route) && isRecord(route.match) ? route.match : {};
    const action = isRecord(route) && isRecord(route.action) ? route.action : {};
    const tls = isRecord(action.tls) ? action.tls : undefined;
    if (match.domains !== undefined && tls === undefined) {
      warnings.push(`routes[${i}].match.domains: the route has no action.tls, so domains match only the SNI of TLS clients passed through; plain TCP clients never match it (say "tls": { "mode": "passthrough" } if that is meant)`);
    }
    if (tls !== undefined && tls.mode === 'passthrough' && tls.certificate !== undefined) {
      warnings.push(`routes[${i}].action.tls.certificate: unused, a passthrough route never terminates TLS (use "mode": "terminate" to serve it)`);
    }
  });
  return warnings;
}
