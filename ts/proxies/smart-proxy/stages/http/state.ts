/**
 * What the HTTP stage keeps per proxy: backend pools, requests in flight per route, and the
 * counters `getStatistics().http` shows. Owned by the ConnectionManager; imports no stage code,
 * so the manager can hold it without an import cycle.
 */
import type http from 'node:http';
import type { IResolvedRoute } from '../../config.js';
import type { IHttpStatistics } from '../../models/interfaces.js';

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

export class HttpState {
  /** Shared keep-alive pools, one per route that sends no PROXY header. */
  readonly pools = new Map<IResolvedRoute, http.Agent>();
  /** The route table the pools were made for: pools of routes that left it are dropped. */
  poolsFor: unknown = null;
  /** Requests (and upgraded tunnels) in flight per route: what an HTTP route's maxConnections limits. */
  readonly inFlight = new Map<IResolvedRoute, number>();
  private requests = 0;
  private upgrades = 0;
  private h2Sessions = 0;
  /** Per route name: responses by status class 1xx..5xx. */
  private readonly byRoute = new Map<string, number[]>();
  /** Answers of the proxy's own (404, 502, ...) by code. */
  private readonly answered: Record<string, number> = {};

  countRequest(): void {
    this.requests++;
  }

  countUpgrade(): void {
    this.upgrades++;
  }

  countH2Session(): void {
    this.h2Sessions++;
  }

  countAnswer(code: string): void {
    this.answered[code] = (this.answered[code] ?? 0) + 1;
  }

  /** A finished exchange: its route (or "" before one was chosen) and the status sent. */
  countStatus(route: string, status: number): void {
    let classes = this.byRoute.get(route);
    if (classes === undefined) this.byRoute.set(route, (classes = [0, 0, 0, 0, 0]));
    const index = Math.floor(status / 100) - 1;
    if (index >= 0 && index < classes.length) classes[index]++;
  }

  /** Destroys every pooled backend connection (stop()). */
  close(): void {
    for (const agent of this.pools.values()) agent.destroy();
    this.pools.clear();
    this.poolsFor = null;
  }

  snapshot(): IHttpStatistics {
    const byRoute: IHttpStatistics['byRoute'] = {};
    for (const [route, classes] of this.byRoute) {
      byRoute[route] = Object.fromEntries(STATUS_CLASSES.map((name, i) => [name, classes[i]])) as Record<(typeof STATUS_CLASSES)[number], number>;
    }
    return { requests: this.requests, upgrades: this.upgrades, h2Sessions: this.h2Sessions, byRoute, answered: { ...this.answered } };
  }
}
