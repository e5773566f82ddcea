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

/** A plain-HTTP route matches its domains against each request's Host (HTTP stage), not against SNI. */
function hostRouted(route: IResolvedRoute): boolean {
  return route.http !== null && route.tlsMode === 'none';
}

export class RouteManager {
  private readonly byPort = new Map<number, IResolvedRoute[]>();
  private readonly sniPorts = new Set<number>();
  /** UDP routes by port: a port number may have a TCP and a UDP listener, each with its routes. */
  private readonly udpByPort = new Map<number, IResolvedRoute[]>();

  constructor(public readonly routes: readonly IResolvedRoute[]) {
    for (const route of routes) {
      const table = route.transport === 'udp' ? this.udpByPort : this.byPort;
      for (const port of route.ports) {
        let list = table.get(port);
        if (list === undefined) table.set(port, (list = []));
        list.push(route);
        if (route.domains !== null && !route.domains.any && !hostRouted(route)) this.sniPorts.add(port);
      }
    }
    for (const table of [this.byPort, this.udpByPort]) {
      for (const list of table.values()) list.sort((a, b) => b.priority - a.priority || a.index - b.index);
    }
  }

  /** Every port some UDP route listens on. */
  udpPorts(): number[] {
    return [...this.udpByPort.keys()].sort((a, b) => a - b);
  }

  /** The best UDP route for a datagram's real client on `port`, or undefined. */
  matchUdp(port: number, clientIP: string): IResolvedRoute | undefined {
    const list = this.udpByPort.get(port);
    if (list === undefined) return undefined;
    for (const route of list) if (route.clientIp === null || route.clientIp.has(clientIP)) return route;
    return undefined;
  }

  /** Every port some TCP route listens on. */
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
      if (!hostRouted(route) && !domainMatches(route.domains, serverName)) continue;
      if (route.clientIp !== null && !route.clientIp.has(clientIP)) continue;
      return route;
    }
    return undefined;
  }
}
