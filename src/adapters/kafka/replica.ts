// The read replica: every node follows all partitions of the events topic and keeps the ledger state and recent events.
//
// Positions are this node's own: a counter in the order this node read the events, so two nodes may
// number the same event differently. Within a tenant (one partition) the order is the log's order. Each
// start reads the events again and numbers them anew, from above a floor taken from the clock (its
// milliseconds times 1,000), so positions given before a restart are below every one given after it and
// a stream resumed from one is sent the tenant's whole availability instead of a wrong part of it.
//
// When retention has deleted the oldest events of a partition, replaying what is left would give a
// wrong state. The replica then starts from the changelog of that partition instead (the processors'
// state, with the next command offset it reflects), and of the events left it only keeps for
// eventsAfter those of commands the changelog already holds: their ids name their command's offset.
// The same happens while it runs, when events are deleted before it read them (the node was paused for
// longer than the events topic's retention): that partition's tenants are taken again from the changelog.

import { setTimeout as sleep } from 'node:timers/promises';
import { eventTypes, evolve, initialState } from '../../core/index.js';
import type { InventoryEvent, LedgerState, TenantState } from '../../core/index.js';
import { allSkus, noteTouched } from '../../app/engine.js';
import type { CommittedBatch, EventPage, LoggedEvent } from '../../app/engine.js';
import type { KafkaConfig } from './config.js';
import { kafkaEngineLimits, messageOf, nextDelay } from './clients.js';
import type { KafkaEngineLog } from './clients.js';
import { ChangelogRestore } from './changelog.js';
import { LogReader, OffsetOutOfRangeError } from './log-reader.js';
import type { PartitionRead } from './log-reader.js';

export const replicaLimits = {
  /** Events kept per tenant for `eventsAfter`; older ones are dropped (the events topic still has them). */
  eventsPerTenantMax: 100_000,
  /** Event ids remembered with their position, so a reply that arrives after its events finds them. */
  recentEventIdsMax: 200_000,
  /** The fetch waits at most this long for new events before it returns empty. */
  fetchWaitMs: 200,
  /** Reads of the events topic failing this long, with no success between, make the node say it is not ready. */
  unreachableAfterMs: 5_000,
  /** A partition whose position is past the end of its log is left out of the fetch for this long, then tried again. */
  positionAheadRetryMs: 30_000,
  /**
   * Positions per millisecond of the clock in the floor a start numbers from: a later start's floor is above the
   * earlier one's positions unless it read more than this many events a millisecond, on average, since its start.
   */
  positionsPerMs: 1_000,
} as const;

const knownTypes: ReadonlySet<string> = new Set(eventTypes);

/** What the replica reads the events and the changelog with (a LogReader of its own). */
export type ReplicaReader = Pick<LogReader, 'partitionCount' | 'offsets' | 'read' | 'readToEnd' | 'close'>;

export interface ReplicaLag {
  partition: number;
  lag: number;
}

export class Replica {
  private readonly reader: ReplicaReader;
  private readonly memory: LedgerState = initialState();
  private readonly byTenant = new Map<string, LoggedEvent[]>();
  private readonly recent = new Map<string, number>();
  private readonly waiters = new Map<string, Array<(position: number) => void>>();
  private readonly listeners = new Set<(batch: CommittedBatch) => void>();
  private readonly next = new Map<number, bigint>();
  /** The events partition each tenant's state was read from: the events topic may have more partitions than the commands topic. */
  private readonly partitionOfTenant = new Map<string, number>();
  /** Partitions left out of the fetch until then (their position is past the end of their log). */
  private readonly heldUntilMs = new Map<number, number>();
  /** Every position this replica gives is above it (see the top of the file). */
  readonly positionFloor: number;
  private lastPosition: number;
  private stopped = false;
  /** Since when reads of the events topic have failed, with no success between, and the last failure. */
  private failing: { sinceMs: number; reason: string } | undefined;
  private loop: Promise<void> | undefined;
  /** Set while the replica reads up to the end offsets seen at start. */
  private catchingUp: (() => void) | undefined;

  /** Per trimmed partition: events of commands below this offset are in the state from the changelog already. */
  private readonly inChangelog = new Map<number, bigint>();

  constructor(
    config: KafkaConfig, private readonly topic: string, private readonly changelogTopic: string, nodeId: string, private readonly log: KafkaEngineLog,
    reader?: ReplicaReader,
  ) {
    this.reader = reader ?? new LogReader(config, `${nodeId}-replica`, Math.min(config.consumer.maxWaitMs, replicaLimits.fetchWaitMs));
    this.positionFloor = Date.now() * replicaLimits.positionsPerMs;
    this.lastPosition = this.positionFloor;
  }

  /** Reads from the earliest events on; resolves once it has read up to the end offsets seen at start. */
  async start(): Promise<void> {
    const count = await this.reader.partitionCount(this.topic);
    const partitions = Array.from({ length: count }, (_, index) => index);
    const earliest = await this.reader.offsets(this.topic, partitions, 'earliest');
    for (const [partition, offset] of earliest) {
      this.next.set(partition, offset);
      if (offset > 0n) await this.startFromChangelog(partition);
    }
    const ends = await this.reader.offsets(this.topic, partitions, 'end');
    const caughtUp = new Promise<void>((resolve) => {
      this.catchingUp = () => {
        if (partitions.some((partition) => (this.next.get(partition) ?? 0n) < (ends.get(partition) ?? 0n))) return;
        this.catchingUp = undefined;
        resolve();
      };
    });
    this.catchingUp?.();
    this.loop = this.follow();
    await caughtUp;
  }

  private async startFromChangelog(partition: number): Promise<void> {
    const restore = await this.changelogOf(partition);
    for (const [name, tenant] of restore.state().tenants) {
      this.memory.tenants.set(name, tenant);
      this.partitionOfTenant.set(name, partition);
    }
    this.inChangelog.set(partition, restore.nextOffset ?? 0n);
    this.log.info(`kafka engine: events of partition ${partition} start at offset ${this.next.get(partition)}: replica state taken from the changelog (up to command offset ${restore.nextOffset ?? 0n})`);
  }

  /** The processors' state of one partition's tenants, read to the end of its changelog. */
  private async changelogOf(partition: number): Promise<ChangelogRestore> {
    const restore = new ChangelogRestore();
    await this.reader.readToEnd(this.changelogTopic, partition, (record) => restore.apply(record.key, record.value), () => this.stopped);
    return restore;
  }

  private async follow(): Promise<void> {
    let delayMs: number = kafkaEngineLimits.retryDelayMs;
    while (!this.stopped) {
      const from = this.fetched();
      if (from.size === 0) {
        // Every partition is held: nothing to fetch until one is looked at again.
        await sleep(replicaLimits.fetchWaitMs);
        continue;
      }
      try {
        this.apply(await this.reader.read(this.topic, from));
        delayMs = kafkaEngineLimits.retryDelayMs;
        this.failing = undefined;
      } catch (error) {
        if (this.stopped) return;
        // One partition's lost position must not stop the others: it is taken again from the changelog, or held.
        if (error instanceof OffsetOutOfRangeError && await this.outOfRange(error.partitions)) continue;
        this.failing = { sinceMs: this.failing?.sinceMs ?? Date.now(), reason: messageOf(error) };
        this.log.warn(`kafka engine: reading ${this.topic} failed, retrying in ${delayMs} ms: ${messageOf(error)}`);
        await sleep(delayMs);
        delayMs = nextDelay(delayMs);
      }
    }
  }

  /** The positions to fetch from: every partition but those held. */
  private fetched(): Map<number, bigint> {
    if (this.heldUntilMs.size === 0) return this.next;
    const nowMs = Date.now();
    for (const [partition, untilMs] of this.heldUntilMs) if (untilMs <= nowMs) this.heldUntilMs.delete(partition);
    return new Map([...this.next].filter(([partition]) => !this.heldUntilMs.has(partition)));
  }

  /**
   * The broker refused to fetch these partitions from this replica's positions. Events deleted before this node
   * read them (it was paused for longer than the events topic's retention) would leave it serving the state it
   * had for ever: the partition's tenants are taken again from the changelog, as at start, and reading goes on
   * from the earliest event left. A position past the end of the log (the topic was made again) is held and
   * looked at again later. False when the offsets could not be read: the fetch is retried as after any failure.
   */
  private async outOfRange(partitions: number[]): Promise<boolean> {
    let earliest: Map<number, bigint>;
    let ends: Map<number, bigint>;
    try {
      [earliest, ends] = await Promise.all([this.reader.offsets(this.topic, partitions, 'earliest'), this.reader.offsets(this.topic, partitions, 'end')]);
    } catch (error) {
      this.log.warn(`kafka engine: reading the offsets of ${this.topic} partitions [${partitions.join(', ')}] failed: ${messageOf(error)}`);
      return false;
    }
    for (const partition of partitions) {
      const from = this.next.get(partition) ?? 0n;
      const first = earliest.get(partition) ?? 0n;
      if (first > from) {
        await this.restoreFromChangelog(partition, from, first);
        continue;
      }
      this.heldUntilMs.set(partition, Date.now() + replicaLimits.positionAheadRetryMs);
      this.log.error(`kafka engine: events partition ${partition}: this node's next offset ${from} is past the end of the partition `
        + `(${ends.get(partition) ?? 'unknown'}); its tenants are not read further until it is there (was the events topic deleted and made again?). `
        + `Looked at again in ${replicaLimits.positionAheadRetryMs} ms`);
    }
    return true;
  }

  /**
   * Takes the tenants of `partition` again from its changelog, the processors' own state, and reads its events on
   * from `earliest`. Subscribers are told that every SKU of those tenants may have changed, at a position of its
   * own, so channels and streams get the quantities the deleted events had changed.
   */
  private async restoreFromChangelog(partition: number, from: bigint, earliest: bigint): Promise<void> {
    const restore = await this.changelogOf(partition);
    if (this.stopped) return;
    const restored = restore.state().tenants;
    const touched = new Map<string, Set<string>>();
    for (const [name, from] of this.partitionOfTenant) {
      // A tenant of this partition the changelog does not hold has no state at its owner either.
      if (from === partition && !restored.has(name)) touched.set(name, new Set([allSkus]));
    }
    for (const name of touched.keys()) {
      this.memory.tenants.delete(name);
      this.partitionOfTenant.delete(name);
    }
    for (const [name, tenant] of restored) {
      this.memory.tenants.set(name, tenant);
      this.partitionOfTenant.set(name, partition);
      touched.set(name, new Set([allSkus]));
    }
    this.inChangelog.set(partition, restore.nextOffset ?? 0n);
    this.next.set(partition, earliest);
    this.log.error(`kafka engine: events partition ${partition}: the events from offset ${from} (the next this node had to read) to ${earliest - 1n} `
      + `were deleted (retention or delete-records) before this node read them; its ${restored.size} tenants were taken again from the changelog `
      + `(up to command offset ${restore.nextOffset ?? 0n}) and reading goes on from offset ${earliest}. This node's event pages and streams of `
      + 'those tenants skip the deleted events');
    if (touched.size === 0) return;
    this.lastPosition += 1;
    this.tell({ events: [], touched, position: this.lastPosition });
  }

  private apply(reads: PartitionRead[]): void {
    const logged: LoggedEvent[] = [];
    const touched = new Map<string, Set<string>>();
    for (const read of reads) {
      for (const record of read.records) {
        const event = eventOf(record.value);
        if (event === undefined) {
          this.log.warn(`kafka engine: skipped a record of ${this.topic} partition ${read.partition} offset ${record.offset}: not an event`);
          continue;
        }
        this.partitionOfTenant.set(event.tenant, read.partition);
        if (!this.isInChangelog(read.partition, event.id) && !this.evolveSafely(event)) {
          this.log.error(`kafka engine: skipped event ${event.id} of ${this.topic} partition ${read.partition} offset ${record.offset}: it does not apply`);
          continue;
        }
        this.lastPosition += 1;
        const entry: LoggedEvent = { position: this.lastPosition, event };
        logged.push(entry);
        this.remember(entry);
        noteTouched(touched, event);
      }
      const current = this.next.get(read.partition) ?? 0n;
      if (read.nextOffset > current) this.next.set(read.partition, read.nextOffset);
    }
    this.catchingUp?.();
    if (logged.length === 0) return;
    for (const { position, event } of logged) this.wake(event.id, position);
    this.tell({ events: logged, touched });
  }

  private tell(batch: CommittedBatch): void {
    for (const listener of this.listeners) {
      try {
        listener(batch);
      } catch (error) {
        this.log.error(`kafka engine: a subscriber failed: ${messageOf(error)}`);
      }
    }
  }

  /** Events come from processors, so this holds; a record that breaks it must not stop the replica (or be applied twice on a re-read). */
  private evolveSafely(event: InventoryEvent): boolean {
    try {
      evolve(this.memory, event);
      return true;
    } catch {
      return false;
    }
  }

  private isInChangelog(partition: number, eventId: string): boolean {
    const below = this.inChangelog.get(partition);
    if (below === undefined) return false;
    const offset = commandOffsetOf(eventId, partition);
    if (offset !== undefined && offset < below) return true;
    // The first event past the changelog's cut: every later one is applied.
    this.inChangelog.delete(partition);
    return false;
  }

  private remember(entry: LoggedEvent): void {
    const { tenant, id } = entry.event;
    let list = this.byTenant.get(tenant);
    if (list === undefined) {
      list = [];
      this.byTenant.set(tenant, list);
    }
    list.push(entry);
    // Trimmed in steps of a tenth, so the cost of dropping the oldest is spread out.
    if (list.length > replicaLimits.eventsPerTenantMax * 1.1) list.splice(0, list.length - replicaLimits.eventsPerTenantMax);
    this.recent.set(id, entry.position);
    if (this.recent.size > replicaLimits.recentEventIdsMax) {
      const oldest = this.recent.keys().next();
      if (oldest.done !== true) this.recent.delete(oldest.value);
    }
  }

  private wake(id: string, position: number): void {
    const waiting = this.waiters.get(id);
    if (waiting === undefined) return;
    this.waiters.delete(id);
    for (const resolve of waiting) resolve(position);
  }

  /**
   * Why this node cannot follow the events topic, once its reads have failed for `unreachableAfterMs` (the brokers
   * are down, or out of this node's reach): it then answers with state that no longer moves, and takes no commands.
   */
  unreachable(nowMs: number): string | undefined {
    if (this.failing === undefined || nowMs - this.failing.sinceMs < replicaLimits.unreachableAfterMs) return undefined;
    const seconds = Math.round((nowMs - this.failing.sinceMs) / 1_000);
    return `the Kafka brokers have not answered this node's reads of ${this.topic} for ${seconds} s: ${this.failing.reason}`;
  }

  /** The position of an event this replica has read, if it still remembers it. */
  positionOf(id: string): number | undefined {
    return this.recent.get(id);
  }

  /** Resolves with the event's position once this replica has read it, or undefined after `timeoutMs`. */
  waitFor(id: string, timeoutMs: number): Promise<number | undefined> {
    const known = this.recent.get(id);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve) => {
      const done = (position: number | undefined): void => {
        clearTimeout(timer);
        resolve(position);
      };
      const timer = setTimeout(() => {
        const waiting = this.waiters.get(id)?.filter((item) => item !== done) ?? [];
        if (waiting.length === 0) this.waiters.delete(id);
        else this.waiters.set(id, waiting);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.set(id, [...(this.waiters.get(id) ?? []), done]);
    });
  }

  state(): LedgerState {
    return this.memory;
  }

  tenant(tenant: string): TenantState | undefined {
    return this.memory.tenants.get(tenant);
  }

  position(): number {
    return this.lastPosition;
  }

  eventsAfter(tenant: string, after: number, limit: number): EventPage {
    const list = this.byTenant.get(tenant) ?? [];
    let low = 0;
    let high = list.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if ((list[middle] as LoggedEvent).position <= after) low = middle + 1;
      else high = middle;
    }
    const events = list.slice(low, low + Math.max(0, limit));
    return { events, next: events.length > 0 ? (events[events.length - 1] as LoggedEvent).position : after };
  }

  subscribe(listener: (batch: CommittedBatch) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** How far this node's replica is behind the committed end of each events partition. */
  async lag(): Promise<ReplicaLag[]> {
    const partitions = [...this.next.keys()].sort((a, b) => a - b);
    const ends = await this.reader.offsets(this.topic, partitions, 'end');
    return partitions.map((partition) => {
      const lag = (ends.get(partition) ?? 0n) - (this.next.get(partition) ?? 0n);
      return { partition, lag: Number(lag > 0n ? lag : 0n) };
    });
  }

  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    if (this.loop !== undefined) await Promise.race([this.loop, sleep(timeoutMs)]);
    await Promise.race([this.reader.close().catch(() => undefined), sleep(timeoutMs)]);
  }
}

/** Event ids are `k<partition>-<command offset>`, with `.<index>` suffixes when a command has several events. */
function commandOffsetOf(eventId: string, partition: number): bigint | undefined {
  const match = /^k(\d+)-(\d+)(?:\.|$)/.exec(eventId);
  if (match === null || Number(match[1]) !== partition) return undefined;
  return BigInt(match[2] as string);
}

function eventOf(value: Buffer | undefined): InventoryEvent | undefined {
  if (value === undefined) return undefined;
  try {
    const event = JSON.parse(value.toString('utf8')) as Partial<InventoryEvent> | null;
    if (event === null || typeof event !== 'object' || typeof event.id !== 'string' || typeof event.tenant !== 'string') return undefined;
    if (typeof event.type !== 'string' || !knownTypes.has(event.type) || event.data === null || typeof event.data !== 'object') return undefined;
    return event as InventoryEvent;
  } catch {
    return undefined;
  }
}

