/** Pure route matching: port, SNI (exact, wildcard, *), and the real client IP. */
import type { IDomainMatcher, IResolvedRoute } from './config.js';

export function domainMatches(matcher: IDomainMatcher | null, serverName: string | undefined): boolean {
  if (matcher === null || matcher.any) return true;
  if (serverName === undefined) return false;
  if (matcher.exact.has(serverName)) return true;
  for (const suffix of matcher.suffixes) {
    if (serverName.length > suffix.length && serverName.endsWith(suffix)) return true;
  }
  return false;
}

export class RouteManager {
  private readonly byPort = new Map<number, IResolvedRoute[]>();
  private readonly sniPorts = new Set<number>();

  constructor(public readonly routes: readonly IResolvedRoute[]) {
    for (const route of routes) {
      for (const port of route.ports) {
        let list = this.byPort.get(port);
        if (list === undefined) this.byPort.set(port, (list = []));
        list.push(route);
        if (route.domains !== null && !route.domains.any) this.sniPorts.add(port);
      }
    }
    for (const list of this.byPort.values()) list.sort((a, b) => b.priority - a.priority || a.index - b.index);
  }

  /** Every port some route listens on. */
  ports(): number[] {
    return [...this.byPort.keys()].sort((a, b) => a - b);
  }

  /** Whether routing on this port depends on the TLS ClientHello. */
  needsServerName(port: number): boolean {
    return this.sniPorts.has(port);
  }

  /** The best route for a connection, or undefined. */
  match(port: number, serverName: string | undefined, clientIP: string): IResolvedRoute | undefined {
    const list = this.byPort.get(port);
    if (list === undefined) return undefined;
    for (const route of list) {
      if (!domainMatches(route.domains, serverName)) continue;
      if (route.clientIp !== null && !route.clientIp.has(clientIP)) continue;
      return route;
    }
    return undefined;
  }
}
