// Prometheus metrics: what the on-call engineer pages on. Labels are bounded: never a SKU or a reservation id.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { expiryLagMs } from '../core/index.js';
import type { Command, InventoryEvent, Outcome, TenantState } from '../core/index.js';
import type { CommittedBatch } from './engine.js';
import { oldGenerationLimitBytes, oldGenerationUsedBytes } from './heap.js';
import type { HeapWatch } from './heap.js';

export interface LagSource {
  /** Per tenant and channel, the time of the oldest change not yet acknowledged by the channel. */
  oldestUnsynced(): Array<{ tenant: string; channel: string; changedAtMs: number }>;
  depth(): Array<{ tenant: string; channel: string; count: number }>;
}

/** The oversell label of a recount below what is sold (no channel sold it). */
const recountChannel = 'external';
/** The oversell label of channels past `oversellChannelsMax`. */
const otherChannels = 'other';
/** Channel names an oversell label takes beside the configured ones. */
const oversellChannelsMax = 100;

const latencyBucketsSeconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const propagationBucketsSeconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

function cached<T>(children: Map<string, T>, key: string, make: () => T): T {
  let child = children.get(key);
  if (child === undefined) {
    child = make();
    children.set(key, child);
  }
  return child;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly commands: Counter<'type' | 'outcome'>;
  private readonly events: Counter<'type'>;
  private readonly conflicts: Counter<'kind'>;
  private readonly oversells: Counter<'channel'>;
  private readonly oversellChannels = new Set<string>();
  private readonly deadLetters: Counter<'source'>;
  private readonly reservationLatency: Histogram<'outcome'>;
  private readonly propagation: Histogram<'channel'>;
  private readonly pushes: Counter<'channel' | 'outcome'>;
  private readonly cdcLag: Gauge<'source'>;
  private readonly sourcesUp = new Map<string, () => boolean>();
  private readonly kafkaLag: Gauge<'topic'>;
  private readonly kafkaCommandsLostCounter: Counter<'partition'>;
  private readonly snapshotFailures: Counter;
  private readonly unwrittenCommands: Counter<'code'>;
  /** Children per label values, so counting on every command does not hash a labels object. */
  private readonly commandCounters = new Map<string, Counter.Internal>();
  private readonly eventCounters = new Map<string, Counter.Internal>();
  private readonly latencyHistograms = new Map<string, Histogram.Internal<'outcome'>>();
  private lagSource: LagSource | undefined;
  private engineReady: (() => boolean) | undefined;
  private expiryTenants: (() => Iterable<[string, TenantState]>) | undefined;
  private heap: HeapWatch | undefined;
  private stateTenants: (() => Iterable<[string, TenantState]>) | undefined;
  private recordsMax = 0;
  private configuredChannels: Array<{ tenant: string; channel: string }> = [];
  private pushesChannel: (tenant: string, channel: string) => boolean = () => true;

  constructor(private readonly clock: () => number = Date.now, options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'stockline_process_' });
    this.commands = new Counter({ name: 'stockline_commands_total', help: 'Commands decided, by type and outcome (accepted, rejected, duplicate).', labelNames: ['type', 'outcome'], registers });
    this.events = new Counter({ name: 'stockline_events_total', help: 'Events appended to the log, by type.', labelNames: ['type'], registers });
    this.conflicts = new Counter({ name: 'stockline_conflicts_total', help: 'Conflicts detected: stale source sequences and oversells.', labelNames: ['kind'], registers });
    this.oversells = new Counter({ name: 'stockline_oversell_incidents_total', help: 'Units sold beyond stock were recorded (a channel sale or a recount below what is sold).', labelNames: ['channel'], registers });
    this.deadLetters = new Counter({ name: 'stockline_dead_letters_total', help: 'Inputs that could not become commands, kept as dead letters.', labelNames: ['source'], registers });
    this.reservationLatency = new Histogram({ name: 'stockline_reservation_latency_seconds', help: 'From a reservation reaching the engine to its outcome being durable.', labelNames: ['outcome'], buckets: latencyBucketsSeconds, registers });
    this.propagation = new Histogram({ name: 'stockline_propagation_latency_seconds', help: 'From a change to the channel acknowledging the new quantity.', labelNames: ['channel'], buckets: propagationBucketsSeconds, registers });
    this.pushes = new Counter({ name: 'stockline_channel_pushes_total', help: 'Channel pushes by outcome (ok, retry, failed).', labelNames: ['channel', 'outcome'], registers });
    this.cdcLag = new Gauge({ name: 'stockline_cdc_lag_seconds', help: 'From the source commit to the change being applied, newest change per source.', labelNames: ['source'], registers });
    const sourcesUp = this.sourcesUp;
    new Gauge({
      name: 'stockline_cdc_source_up', labelNames: ['source'], registers,
      help: 'Whether a change-data-capture source is streaming (1) or not (0: connecting, reconnecting, failed): its lag is not measured meanwhile.',
      collect() {
        this.reset();
        for (const [source, up] of sourcesUp) this.set({ source }, up() ? 1 : 0);
      },
    });
    this.kafkaLag = new Gauge({ name: 'stockline_kafka_consumer_lag_records', help: 'Records not yet processed, per topic this node reads (the commands topic, the events topic its replica follows).', labelNames: ['topic'], registers });
    this.kafkaCommandsLostCounter = new Counter({
      name: 'stockline_kafka_commands_lost_total', labelNames: ['partition'], registers,
      help: 'Command records deleted from the commands topic (retention, delete-records) before they were decided, per partition: never applied; a sender that waited was answered KAFKA_TIMEOUT.',
    });
    this.snapshotFailures = new Counter({ name: 'stockline_snapshot_failures_total', help: 'Snapshots of the embedded engine that could not be written; until one is, a restart replays more of the log.', registers });
    this.unwrittenCommands = new Counter({
      name: 'stockline_commands_unwritten_total', labelNames: ['code'], registers,
      help: 'Commands the embedded engine refused with 503 because their batch could not be written (STORAGE_FAILED: nothing applied, the engine goes on) or made durable (STORAGE_UNCERTAIN: the engine then stops): a full disk, an I/O error.',
    });
    // Exported at 0 from the start: the first failure is then an increase an alert sees, not a new series.
    for (const code of ['STORAGE_FAILED', 'STORAGE_UNCERTAIN']) this.unwrittenCommands.inc({ code }, 0);
    const collectLag = (gauge: Gauge<'tenant' | 'channel'>): void => this.collectLag(gauge);
    const depthOf = (): Map<string, number> => this.depthPerChannel();
    const readyNow = (): boolean => this.engineReady?.() ?? false;
    new Gauge({
      name: 'stockline_engine_ready',
      help: 'Whether the engine takes commands (1) or not (0): shutting down, or stopped for good after its log could not be made durable.',
      registers,
      collect() { this.set(readyNow() ? 1 : 0); },
    });
    new Gauge({
      name: 'stockline_reconciliation_lag_seconds',
      help: 'Age of the oldest change not yet on every channel (inventory.reconciliation.lag), per tenant and channel.',
      labelNames: ['tenant', 'channel'], registers,
      collect() { collectLag(this); },
    });
    const collectExpiryLag = (gauge: Gauge<'tenant'>): void => this.collectExpiryLag(gauge);
    new Gauge({
      name: 'stockline_expiry_lag_seconds',
      help: 'How long the hold longest past its expiry has waited to be released, per tenant with one (absent when none is due).',
      labelNames: ['tenant'], registers,
      collect() { collectExpiryLag(this); },
    });
    const tenantStates = (): Iterable<[string, TenantState]> => this.stateTenants?.() ?? [];
    new Gauge({
      name: 'stockline_idempotency_records', help: 'Idempotency records kept, per tenant with any: each holds about a kilobyte of heap for a day.',
      labelNames: ['tenant'], registers,
      collect() {
        this.reset();
        for (const [tenant, state] of tenantStates()) if (state.idempotency.size > 0) this.set({ tenant }, state.idempotency.size);
      },
    });
    new Gauge({
      name: 'stockline_reservations',
      help: 'Reservations kept, per tenant with any: held, committed, and finished ones for 25 hours; each holds about 400 bytes of heap.',
      labelNames: ['tenant'], registers,
      collect() {
        this.reset();
        for (const [tenant, state] of tenantStates()) if (state.reservations.size > 0) this.set({ tenant }, state.reservations.size);
      },
    });
    const recordsMaxNow = (): number => this.recordsMax;
    new Gauge({
      name: 'stockline_idempotency_records_max',
      help: "Idempotency records a tenant keeps, at most (a quarter of the heap's old generation); past it the oldest are forgotten before their day is over.",
      registers, collect() { this.set(recordsMaxNow()); },
    });
    if (options.processMetrics !== false) {
      new Gauge({
        name: 'stockline_heap_old_generation_used_bytes', help: "What the heap's old generation holds: long-lived objects, the engine's state among them.",
        registers, collect() { this.set(oldGenerationUsedBytes()); },
      });
      new Gauge({
        name: 'stockline_heap_old_generation_limit_bytes',
        help: "What the heap's old generation may hold: the process stops when it needs more (set with --max-old-space-size).",
        registers, collect() { this.set(oldGenerationLimitBytes()); },
      });
    }
    const heapOf = (): HeapWatch | undefined => this.heap;
    new Gauge({
      name: 'stockline_heap_old_generation_live_bytes',
      help: "What the heap's old generation held after the last full collection (what is live: about what the state needs); before the first, what it holds.",
      registers,
      collect() { this.set(heapOf()?.liveBytes() ?? oldGenerationUsedBytes()); },
    });
    new Gauge({
      name: 'stockline_heap_full',
      help: 'Whether the heap is nearly full (1): the last full collection left the old generation at least 90 % full, and new holds and imports are refused.',
      registers,
      collect() { this.set(heapOf()?.full() === true ? 1 : 0); },
    });
    new Gauge({
      name: 'stockline_outbox_depth', help: 'Channel quantities waiting to be pushed or acknowledged.', labelNames: ['channel'], registers,
      collect() {
        this.reset();
        for (const [channel, count] of depthOf()) this.set({ channel }, count);
      },
    });
  }

  /**
   * The channel outbox to read lag and depth from, and the channels that exist (reported at 0 when in step).
   * Lag and depth are reported only for the channels `pushes` says this node pushes, so a node that does not
   * push a channel never pages for it.
   */
  watchChannels(source: LagSource, channels: Array<{ tenant: string; channel: string }>, pushes: (tenant: string, channel: string) => boolean = () => true): void {
    this.lagSource = source;
    this.configuredChannels = channels;
    this.pushesChannel = pushes;
    // Counters that alerts compare over time exist from the start, at zero, for every known channel.
    for (const { channel } of channels) {
      this.oversells.inc({ channel }, 0);
      this.oversellChannels.add(channel);
      for (const outcome of ['ok', 'retry', 'failed']) this.pushes.inc({ channel, outcome }, 0);
    }
    // Recounts and channels past the bound have their series from the start too: after a restart the first
    // incident is an increase from 0, not a series that comes back at the value it had.
    for (const channel of [recountChannel, otherChannels]) this.oversells.inc({ channel }, 0);
  }

  /**
   * The label of an oversell's channel: a channel an order names is the caller's choice, so past
   * `oversellChannelsMax` names (configured channels count apart) the rest share one label and the
   * series stay bounded; the events name each.
   */
  private oversellLabel(channel: string | undefined): string {
    if (channel === undefined) return recountChannel;
    if (this.oversellChannels.has(channel)) return channel;
    if (this.oversellChannels.size >= this.configuredChannels.length + oversellChannelsMax) return otherChannels;
    this.oversellChannels.add(channel);
    return channel;
  }

  /** The engine whose readiness `stockline_engine_ready` reports at each scrape. */
  watchEngine(ready: () => boolean): void {
    this.engineReady = ready;
  }

  /** The tenants whose expiry lag `stockline_expiry_lag_seconds` reports at each scrape. */
  watchExpiry(tenants: () => Iterable<[string, TenantState]>): void {
    this.expiryTenants = tenants;
  }

  private collectExpiryLag(gauge: Gauge<'tenant'>): void {
    gauge.reset();
    const nowMs = this.clock();
    for (const [tenant, state] of this.expiryTenants?.() ?? []) {
      const lagMs = expiryLagMs(state, nowMs);
      if (lagMs > 0) gauge.set({ tenant }, lagMs / 1000);
    }
  }

  /**
   * The tenants whose reservations and idempotency records `stockline_reservations` and
   * `stockline_idempotency_records` count at each scrape, and the records' bound.
   */
  watchState(tenants: () => Iterable<[string, TenantState]>, recordsMax: number): void {
    this.stateTenants = tenants;
    this.recordsMax = recordsMax;
  }

  /** The watch whose last full collection `stockline_heap_old_generation_live_bytes` and `stockline_heap_full` report. */
  watchHeap(heap: HeapWatch): void {
    this.heap = heap;
  }

  /** Whether a source streams, read at each scrape: the lag of a source that never connects is never set. */
  watchSourceUp(source: string, up: () => boolean): void {
    this.sourcesUp.set(source, up);
  }

  /** Dead-letter counters start at zero for every configured source. */
  watchSources(sources: string[]): void {
    for (const source of sources) this.deadLetters.inc({ source }, 0);
  }

  /** Only configured pairs count: rows a removed channel left behind are never pushed, and would page for ever. */
  private isConfigured(tenant: string, channel: string): boolean {
    return this.configuredChannels.some((configured) => configured.tenant === tenant && configured.channel === channel);
  }

  private collectLag(gauge: Gauge<'tenant' | 'channel'>): void {
    gauge.reset();
    const pushed = new Set<string>();
    for (const { tenant, channel } of this.configuredChannels) {
      if (!this.pushesChannel(tenant, channel)) continue;
      pushed.add(`${tenant}\u0000${channel}`);
      gauge.set({ tenant, channel }, 0);
    }
    const nowMs = this.clock();
    for (const { tenant, channel, changedAtMs } of this.lagSource?.oldestUnsynced() ?? []) {
      if (pushed.has(`${tenant}\u0000${channel}`)) gauge.set({ tenant, channel }, Math.max(0, nowMs - changedAtMs) / 1000);
    }
  }

  private depthPerChannel(): Map<string, number> {
    const perChannel = new Map<string, number>();
    for (const { tenant, channel, count } of this.lagSource?.depth() ?? []) {
      if (this.isConfigured(tenant, channel) && this.pushesChannel(tenant, channel)) perChannel.set(channel, (perChannel.get(channel) ?? 0) + count);
    }
    return perChannel;
  }

  commandDecided(command: Pick<Command, 'type'>, outcome: Outcome, latencyMs: number): void {
    const result = outcome.rejection === undefined ? 'accepted' : outcome.rejection.code === 'DUPLICATE' ? 'duplicate' : 'rejected';
    cached(this.commandCounters, `${command.type} ${result}`, () => this.commands.labels(command.type, result)).inc();
    if (command.type === 'reserve') cached(this.latencyHistograms, result, () => this.reservationLatency.labels(result)).observe(latencyMs / 1000);
  }

  batchCommitted(batch: CommittedBatch): void {
    for (const { event } of batch.events) this.eventAppended(event);
  }

  private eventAppended(event: InventoryEvent): void {
    cached(this.eventCounters, event.type, () => this.events.labels(event.type)).inc();
    if (event.type !== 'conflict_detected') return;
    this.conflicts.inc({ kind: event.data.kind });
    if (event.data.kind === 'oversell') this.oversells.inc({ channel: this.oversellLabel(event.data.channel) });
  }

  deadLettered(source: string): void {
    this.deadLetters.inc({ source });
  }

  pushed(channel: string, outcome: 'ok' | 'retry' | 'failed', latencyMs?: number): void {
    this.pushes.inc({ channel, outcome });
    if (outcome === 'ok' && latencyMs !== undefined) this.propagation.observe({ channel }, latencyMs / 1000);
  }

  cdcLagged(source: string, lagMs: number): void {
    this.cdcLag.set({ source }, lagMs / 1000);
  }

  /**
   * Records not yet processed, per topic this node reads, as one reading: a topic the node no longer reads (its
   * partitions moved to another node) drops out instead of keeping its last value, which could hold an alert.
   */
  kafkaLagged(recordsByTopic: ReadonlyMap<string, number>): void {
    this.kafkaLag.reset();
    for (const [topic, records] of recordsByTopic) this.kafkaLag.set({ topic }, records);
  }

  /** A commands partition moved past `count` command records deleted before they were decided. */
  kafkaCommandsLost(partition: number, count: number): void {
    this.kafkaCommandsLostCounter.inc({ partition: String(partition) }, count);
  }

  snapshotFailed(): void {
    this.snapshotFailures.inc();
  }

  /** `commands` were refused because their batch could not be written or made durable (`code` says which). */
  commandsUnwritten(code: string, commands: number): void {
    this.unwrittenCommands.inc({ code }, commands);
  }
}
