/**
 * SIGHUP as the service and the supervisor both take it: reloads run one at a time, SIGHUPs
 * that arrive during one make exactly one more, a SIGHUP during start-up is applied once
 * started, and one while stopping is ignored.
 */
import type { Logger } from 'pino';

export type ServiceState = 'starting' | 'running' | 'stopping';

export class Reloads {
  /** A SIGHUP arrived that no reload has read the file for yet. */
  wanted = false;
  private running = false;

  constructor(
    private readonly state: () => ServiceState,
    private readonly log: () => Logger,
    private readonly reloadOnce: () => Promise<void>,
  ) {}

  signal(): void {
    if (this.state() === 'stopping') return this.log().info('SIGHUP while stopping: ignored');
    this.wanted = true;
    if (this.state() === 'starting') return this.log().info('SIGHUP during start-up: the configuration is read again once started');
    if (!this.running) void this.run();
  }

  /** Called once running: applies a SIGHUP that came during start-up. */
  started(): void {
    if (this.wanted && !this.running) void this.run();
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.wanted && this.state() === 'running') {
      this.wanted = false;
      await this.reloadOnce();
    }
    this.running = false;
  }
}
