/**
 * `smartproxy --workers N`: the supervisor (node:cluster's primary). It reads and checks the
 * configuration, runs N workers that each run a SmartProxy on the same ports, replaces a worker
 * that dies (with backoff), and turns signals into orders for all: SIGHUP reloads a checked
 * configuration everywhere or nowhere, SIGTERM/SIGINT drain every worker. It serves no proxy
 * traffic itself: workers accept on the shared listening sockets (under round-robin scheduling,
 * chosen with NODE_CLUSTER_SCHED_POLICY=rr, node:cluster accepts here and hands connections on).
 */
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import type { Logger, LevelWithSilent } from 'pino';
import type { ISmartProxyOptions } from '../../proxies/smart-proxy/models/interfaces.js';
import { type ILoaded } from '../config-file.js';
import { openMetricsEndpoint, stopMetricsEndpoint } from '../metrics-endpoint.js';
import type { ISmartProxyMetrics } from '../../proxies/smart-proxy/metrics.js';
import { cliChanges, EXIT_RUNTIME, loadChecked, routeCount } from '../checked-config.js';
import { Reloads, type ServiceState } from '../reloads.js';
import { type FromWorker, type ToWorker, WORKER_SLOT_ENV } from './messages.js';
import { type IWorkerReport, workersMetricsSource } from './worker-metrics.js';

/** Restart backoff: first delay, doubling per quick death, up to the cap. */
const RESTART_FIRST_MS = 100;
const RESTART_MAX_MS = 10_000;
/** A worker that ran this long before dying was healthy: its replacement starts at the first delay. */
const RESTART_STABLE_MS = 30_000;
/** How long a scrape waits for a worker's metrics; a reload, for a worker's answer. */
const METRICS_WAIT_MS = 2000;
const RELOAD_WAIT_MS = 15_000;
/** A worker not listening this long after its fork hangs: it is killed, and counts as a failed start. */
const START_WAIT_MS = 60_000;
/** Failed starts in a row after which a slot's crash loop is logged at `error` (once per loop). */
const CRASH_LOOP_STARTS = 5;
/** Past gracefulShutdownTimeout, how long a stopping worker may take before it is killed. */
const STOP_MARGIN_MS = 5000;

interface ISlot {
  readonly n: number;
  worker?: Worker;
  startedAt: number | null;
  restarts: number;
  /** Workers of this slot that exited unasked (crashes, kills, failed replacement starts). */
  exits: number;
  /** Deaths in a row of workers that did not run RESTART_STABLE_MS. */
  quickDeaths: number;
  timer?: NodeJS.Timeout;
  /** The last metrics its worker reported: a scrape it misses sums these rather than dropping the worker's counts. */
  last?: { worker: Worker; metrics: ISmartProxyMetrics };
}

type Answer = FromWorker | undefined;
interface IReloadAnswer {
  worker: Worker;
  answer: Answer;
}

export class Supervisor {
  private state: ServiceState = 'starting';
  private readonly slots: ISlot[];
  private metrics: Server | undefined;
  /** The round of metrics questions in flight, if any (see collect). */
  private collecting: Promise<IWorkerReport[]> | undefined;
  private readonly waiting = new Map<number, { worker: Worker; resolve: (answer: Answer) => void }>();
  private nextId = 1;
  /** Workers that got their options: a reload goes to these (the others get the new options when ready). */
  private readonly configured = new WeakSet<Worker>();
  private readonly reloads = new Reloads(() => this.state, () => this.log, () => this.reloadOnce());
  private stopDeadline: NodeJS.Timeout | undefined;

  /** `loaded`: the checked configuration; `log` follows its settings. */
  constructor(
    private readonly file: string,
    count: number,
    private readonly levelOverride: LevelWithSilent | undefined,
    private log: Logger,
    private loaded: ILoaded,
    /** Whether --workers set the count (then the file's `"workers"` never applies). */
    private readonly workersFlag: boolean,
  ) {
    this.slots = Array.from({ length: count }, (_, i) => ({ n: i + 1, startedAt: null, restarts: 0, exits: 0, quickDeaths: 0 }));
    // Workers accept on the shared socket unless Node's own variable says otherwise: round-robin
    // makes this process accept and pass on every connection, which cost about 170 µs of CPU per
    // connection here and made two workers slower than one (readme.hints.md, "Workers").
    if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.on('message', (worker, message: FromWorker) => this.onWorkerMessage(worker, message));
    cluster.on('exit', (worker, code, signal) => this.onWorkerExit(worker, code, signal));
  }

  private get options(): ISmartProxyOptions {
    return this.loaded.options as ISmartProxyOptions;
  }

  async start(): Promise<void> {
    const scheduling = cluster.schedulingPolicy === cluster.SCHED_RR ? 'round-robin' : 'shared sockets';
    this.log.info(`starting ${this.slots.length} workers (scheduling: ${scheduling})`);
    for (const note of perWorkerLimits(this.options, this.slots.length)) this.log.info(note);
    const started = await Promise.all(this.slots.map((slot) => this.fork(slot)));
    if (this.isStopping()) return;
    if (started.some((ok) => !ok)) return this.fail('a worker could not start');
    if (!(await this.serveMetrics())) return this.fail('cannot serve metrics');
    if (this.isStopping()) return;
    this.state = 'running';
    this.log.info(`started with ${routeCount(this.options)} in ${this.slots.length} workers`);
    this.reloads.started();
  }

  /** A signal may have changed the state during any await. */
  private isStopping(): boolean {
    return this.state === 'stopping';
  }

  private fail(why: string): void {
    this.log.error(`${why}: stopping`);
    process.exitCode = EXIT_RUNTIME;
    this.beginStop();
  }

  /** Starts a worker in `slot`; true once it listens, false when it failed or died first. */
  private fork(slot: ISlot): Promise<boolean> {
    slot.timer = undefined;
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.n) });
    slot.worker = worker;
    slot.startedAt = null;
    const hung = setTimeout(() => {
      this.log.error({ worker: slot.n }, `worker ${slot.n} (pid ${worker.process.pid}) not listening ${START_WAIT_MS / 1000} s after its start: killing it`);
      worker.process.kill('SIGKILL');
    }, START_WAIT_MS);
    return new Promise((resolve) => {
      const onMessage = (message: FromWorker): void => {
        // The options are the ones in force when the worker is ready, a reload's included.
        // A message sent before `ready` is lost, so a stop ordered meanwhile is given now.
        if (message.type === 'ready' && this.isStopping()) return this.tell(worker, { type: 'stop' });
        if (message.type === 'ready') {
          this.configured.add(worker);
          return this.tell(worker, this.startMessage());
        }
        if (message.type !== 'started' && message.type !== 'start-failed') return;
        clearTimeout(hung);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        if (message.type === 'started') slot.startedAt = Date.now();
        else this.log.error({ worker: slot.n, code: message.code }, `worker ${slot.n} cannot start: ${message.message}`);
        resolve(message.type === 'started');
      };
      const onExit = (): void => {
        clearTimeout(hung);
        worker.off('message', onMessage);
        resolve(false);
      };
      worker.on('message', onMessage);
      worker.once('exit', onExit);
    });
  }

  private startMessage(): ToWorker {
    const log = this.loaded.cli.log;
    return { type: 'start', options: this.options, log: { format: log.format, level: this.levelOverride ?? log.level } };
  }

  private tell(worker: Worker, message: ToWorker): void {
    if (worker.isConnected()) worker.send(message, undefined, () => undefined);
  }

  /** Sends a request with a fresh id; the answer, or undefined when the worker died or took longer than `waitMs`. */
  private ask(worker: Worker, message: (id: number) => ToWorker, waitMs: number): Promise<Answer> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), waitMs);
      const done = (answer: Answer): void => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(answer);
      };
      this.waiting.set(id, { worker, resolve: done });
      if (!worker.isConnected()) return done(undefined);
      this.tell(worker, message(id));
    });
  }

  private onWorkerMessage(worker: Worker, message: FromWorker): void {
    if (typeof message !== 'object' || message === null || !('id' in message)) return;
    const waiting = this.waiting.get(message.id);
    if (waiting?.worker === worker) waiting.resolve(message);
  }

  private onWorkerExit(worker: Worker, code: number | null, signal: string | null): void {
    for (const waiting of [...this.waiting.values()]) if (waiting.worker === worker) waiting.resolve(undefined);
    const slot = this.slots.find((s) => s.worker === worker);
    if (slot === undefined) return;
    slot.worker = undefined;
    const how = signal !== null ? `signal ${signal}` : `code ${code}`;
    if (this.state === 'stopping') {
      if (code !== 0) process.exitCode = EXIT_RUNTIME;
      this.log.info({ worker: slot.n }, `worker ${slot.n} stopped (${how})`);
      return this.finishStopIfDone();
    }
    // A death before its start is the start's failure (see fork); after it, the worker is replaced.
    if (slot.startedAt === null && this.state === 'starting') return this.log.info({ worker: slot.n }, `worker ${slot.n} (pid ${worker.process.pid}) exited (${how}) before listening`);
    slot.exits++;
    const delay = this.restartDelay(slot);
    this.log.warn({ worker: slot.n, pid: worker.process.pid, code: 'WORKER_EXIT' }, `worker ${slot.n} (pid ${worker.process.pid}) exited (${how}); replacing it in ${delay} ms`);
    slot.timer = setTimeout(() => void this.replace(slot), delay);
  }

  /** 100 ms after a worker that ran 30 s; else doubling per quick death in a row (200, 400, ...), up to 10 s. */
  private restartDelay(slot: ISlot): number {
    const ranMs = slot.startedAt === null ? 0 : Date.now() - slot.startedAt;
    slot.quickDeaths = ranMs >= RESTART_STABLE_MS ? 0 : slot.quickDeaths + 1;
    if (slot.quickDeaths === CRASH_LOOP_STARTS) {
      this.log.error({ worker: slot.n, code: 'WORKER_CRASH_LOOP' }, `worker ${slot.n} died ${CRASH_LOOP_STARTS} times in a row within ${RESTART_STABLE_MS / 1000} s of its start; still replacing it, at most every ${RESTART_MAX_MS / 1000} s (see the lines above: a port taken while it was down?)`);
    }
    return Math.min(RESTART_MAX_MS, RESTART_FIRST_MS * 2 ** slot.quickDeaths);
  }

  private async replace(slot: ISlot): Promise<void> {
    if (this.state === 'stopping') return;
    const ok = await this.fork(slot);
    if (!ok || slot.worker === undefined) return;
    slot.restarts++;
    this.log.info({ worker: slot.n, pid: slot.worker.process.pid }, `worker ${slot.n} replaced (pid ${slot.worker.process.pid})`);
  }

  private async serveMetrics(): Promise<boolean> {
    const listen = this.loaded.cli.metricsListen;
    if (listen === undefined) return true;
    this.metrics = await openMetricsEndpoint(workersMetricsSource(() => this.collect()), listen, this.log, 'summed over workers');
    return this.metrics !== undefined;
  }

  /**
   * Scrapes that arrive while one is asking the workers share its answers, so a flood of
   * scrapers costs the workers one round of questions at a time, not one per request.
   */
  private collect(): Promise<IWorkerReport[]> {
    this.collecting ??= this.askEveryWorker().finally(() => (this.collecting = undefined));
    return this.collecting;
  }

  /**
   * Every slot, with its worker's metrics: fresh when it answered in time, else the last it gave
   * (so a slow worker does not make the sums drop, which Prometheus would read as a reset).
   */
  private askEveryWorker(): Promise<IWorkerReport[]> {
    return Promise.all(
      this.slots.map(async (slot): Promise<IWorkerReport> => {
        const worker = slot.worker;
        const report = { worker: slot.n, pid: worker?.process.pid ?? null, startedAt: slot.startedAt, restarts: slot.restarts, exits: slot.exits, fresh: false };
        if (worker === undefined || slot.startedAt === null) return report;
        const answer = await this.ask(worker, (id) => ({ type: 'metrics', id }), METRICS_WAIT_MS);
        if (answer?.type === 'metrics') slot.last = { worker, metrics: answer.metrics };
        const metrics = slot.last?.worker === worker ? slot.last.metrics : undefined;
        return { ...report, metrics, fresh: answer?.type === 'metrics' };
      }),
    );
  }

  onReloadSignal(): void {
    this.reloads.signal();
  }

  /**
   * Checks the file once; then every worker applies it. When a worker refuses it (a new port in
   * use), every worker goes back. A worker that does not answer is killed: its replacement starts
   * with the configuration in force, so no worker is left running something unknown.
   */
  private async reloadOnce(): Promise<void> {
    const loaded = loadChecked(this.file, () => this.log);
    if (loaded === undefined) return this.log.warn({ code: 'ERR_CONFIG' }, 'SIGHUP: the configuration has problems; nothing changed in any worker');
    const previous = this.loaded;
    this.loaded = { ...loaded, cli: previous.cli };
    const answers = await this.applyEverywhere(this.options, new Set());
    if (this.isStopping()) return;
    const refused = answers.filter((a) => a.answer?.type === 'reload-failed');
    if (refused.length > 0) return this.rollBack(previous, refused);
    this.killSilent(answers);
    const needsRestart = new Set(answers.flatMap((a) => (a.answer?.type === 'reloaded' ? a.answer.needsRestart : [])));
    for (const name of cliChanges(previous.cli, loaded.cli, this.workersFlag)) needsRestart.add(name);
    const pending = needsRestart.size > 0 ? `; ${[...needsRestart].join(', ')} change only on restart` : '';
    const applied = answers.filter((a) => a.answer?.type === 'reloaded').length;
    const others = applied < this.slots.length ? '; the others start with it' : '';
    this.log.info(`SIGHUP: configuration reloaded in ${applied} of ${this.slots.length} workers (${routeCount(this.options)})${others}${pending}`);
  }

  /** Puts `previous` back in every worker but the ones that refused the new configuration (they kept theirs). */
  private async rollBack(previous: ILoaded, refused: IReloadAnswer[]): Promise<void> {
    this.loaded = previous;
    const back = await this.applyEverywhere(this.options, new Set(refused.map((a) => a.worker)));
    if (this.isStopping()) return;
    this.killSilent(back);
    const reasons = [...new Set(refused.map((a) => (a.answer as { message: string }).message))].join('; ');
    this.log.warn({ code: 'ERR_RELOAD' }, `SIGHUP: ${refused.length} of ${this.slots.length} workers could not apply the configuration (${reasons}); every worker keeps the previous one`);
  }

  /** Sends `options` to every worker that has its options but those in `skip` (one still starting gets them when ready). */
  private applyEverywhere(options: ISmartProxyOptions, skip: ReadonlySet<Worker>): Promise<IReloadAnswer[]> {
    const workers = this.slots.flatMap((slot) => (slot.worker !== undefined && this.configured.has(slot.worker) && !skip.has(slot.worker) ? [slot.worker] : []));
    return Promise.all(workers.map(async (worker) => ({ worker, answer: await this.ask(worker, (id) => ({ type: 'reload', id, options }), RELOAD_WAIT_MS) })));
  }

  /** Kills the workers that did not answer a reload, or could not go back: they are replaced with the configuration in force. */
  private killSilent(answers: IReloadAnswer[]): void {
    for (const { worker, answer } of answers) {
      if (answer?.type === 'reloaded' || worker.isDead()) continue;
      const slot = this.slots.find((s) => s.worker === worker);
      this.log.warn({ worker: slot?.n }, `worker ${slot?.n} (pid ${worker.process.pid}) ${answer === undefined ? `did not answer a reload within ${RELOAD_WAIT_MS / 1000} s` : 'could not go back to the previous configuration'}: killing it, its replacement starts with the configuration in force`);
      worker.process.kill('SIGKILL');
    }
  }

  onStopSignal(signal: string): void {
    if (this.state === 'stopping') {
      this.log.warn(`${signal} again while stopping: exiting now, cutting the connections still draining`);
      for (const slot of this.slots) slot.worker?.process.kill('SIGKILL');
      process.exit(EXIT_RUNTIME);
    }
    const drainMs = this.options.gracefulShutdownTimeout ?? 0;
    this.log.info(`${signal}: stopping ${this.slots.length} workers (draining up to ${drainMs} ms; send it again to exit at once)`);
    this.beginStop();
  }

  /** Orders every worker to drain; past the drain time and a margin, kills what is left. */
  private beginStop(): void {
    this.state = 'stopping';
    for (const slot of this.slots) {
      clearTimeout(slot.timer);
      if (slot.worker !== undefined) this.tell(slot.worker, { type: 'stop' });
    }
    const drainMs = this.options.gracefulShutdownTimeout ?? 0;
    this.stopDeadline = setTimeout(() => {
      this.log.warn('workers still running past the drain time: killing them');
      process.exitCode = EXIT_RUNTIME;
      for (const slot of this.slots) slot.worker?.process.kill('SIGKILL');
    }, drainMs + STOP_MARGIN_MS);
    this.finishStopIfDone();
  }

  private finishStopIfDone(): void {
    if (this.slots.some((slot) => slot.worker !== undefined)) return;
    clearTimeout(this.stopDeadline);
    const metrics = this.metrics;
    this.metrics = undefined;
    void (metrics === undefined ? Promise.resolve() : stopMetricsEndpoint(metrics)).then(() => this.log.info('stopped'));
  }
}

/**
 * Limits a SmartProxy keeps in its own memory hold per worker: said at start, so that nobody
 * reads `maxConnectionsPerIP: 100` as the service's limit when 4 workers let a client hold 400.
 */
function perWorkerLimits(options: ISmartProxyOptions, workers: number): string[] {
  const notes: string[] = [];
  const perIp = options.maxConnectionsPerIP;
  if ((perIp ?? 0) > 0) notes.push(`maxConnectionsPerIP ${perIp} holds per worker: a client may hold up to ${(perIp as number) * workers} connections across ${workers} workers`);
  const limited = (options.routes ?? []).filter((route) => (route.action?.security?.maxConnections ?? 0) > 0);
  if (limited.length > 0) notes.push(`route maxConnections hold per worker (${limited.length} route${limited.length === 1 ? '' : 's'}): the service allows up to ${workers} times as many`);
  if ((options.routes ?? []).some((route) => route.match?.transport === 'udp')) notes.push('UDP routes are served by worker 1 only: a UDP flow must stay in one process');
  return notes;
}
