// The processors: each node is a member of one consumer group on the commands topic and decides the commands of the partitions it owns.
//
// Exactly once, as Kafka Streams does it: the events, the changed state (changelog), the replies,
// the dead letters and the consumed offset of a batch are written in one Kafka transaction. Each
// partition has its own transactional id, `<transactionalIdPrefix>-<partition>`: whoever takes a
// partition opens a producer with that id, which fences the previous owner (its open transaction is
// aborted, its later writes refused) before the new owner reads the changelog. (The per-node id of
// exactly_once_v2 needs offset fetches that wait for pending transactional commits, which the client
// does not ask for; per-partition ids need no such help.) On any failure the partition's transaction
// is dropped and its state rebuilt from the changelog, so nothing is applied twice.

import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, Message, MessageToProduce } from '@platformatic/kafka';
import { Consumer as KafkaConsumer } from '@platformatic/kafka';
import { dueReservations, execute, housekeepingDue, initialState, limits, moreDueAfterTick, trialState } from '../../core/index.js';
import type { Command, Execution, LedgerState, Outcome, Rejection, Reservation, TenantState } from '../../core/index.js';
import type { CommandInput, DeadLetter } from '../../app/ports.js';
import type { KafkaConfig } from './config.js';
import { withDeadline } from './admin.js';
import { entityValue, noteChangedEntities, nextOffsetKey } from './changelog.js';
import { ChangelogRestore } from './changelog.js';
import type { NextRecord } from './changelog.js';
import { closeQuietly, forceClose, kafkaEngineLimits, messageOf, nextDelay, openProducer, partitionOfKey } from './clients.js';
import type { EngineTopicNames, KafkaEngineLog, StringProducer } from './clients.js';
import { deadLetterHeaders, encodeJson, kafkaRecordLimits, parseCommandRecord } from './codec.js';
import type { CommandReply, DeadLetterCode, DecidedCommand, ReplyAddress } from './codec.js';
import { LogReader, OffsetOutOfRangeError } from './log-reader.js';
import type { LogRecord, PartitionRead } from './log-reader.js';

export const processorLimits = {
  /**
   * A transaction is cut once the records for one topic partition pass this many bytes. The client sends a
   * partition's records as one record batch, which the broker refuses above max.message.bytes (1 MiB).
   */
  transactionBytesTarget: 384 * 1024,
  /**
   * What one topic partition of a transaction may hold, well under 1 MiB: a record whose output would take a
   * partition past it is left for the next transaction, or dead-lettered (OUTPUT_TOO_LARGE) when it is alone.
   */
  partitionBytesMax: 896 * 1024,
  /** What a record costs in a record batch besides its key, value and headers, at most. */
  recordOverheadBytes: 64,
  /** The events of one expiry tick, at most: a tick leaves later holds to the next one rather than pass it. */
  expiryTickBytesMax: 256 * 1024,
  /** How often the group membership is checked (and renewed when the client dropped out). */
  membershipCheckMs: 1_000,
  /** How often a partition waiting to be taken looks at the membership again. */
  membershipPollMs: 100,
  /** An expiry asked for a tenant is asked again after this long if no expire_due came through. */
  expiryRetryMs: 10_000,
  /** Heartbeats per session time-out. */
  heartbeatsPerSession: 6,
  joinSlackMs: 5_000,
  /** A partition whose position is past the end of its log decides nothing; it is looked at again (and logged) this often. */
  positionAheadRetryMs: 30_000,
} as const;

const notApplied: Rejection = { code: 'NOT_APPLIED', message: 'not applied: another command of the same all-or-nothing batch was rejected' };

type Outgoing = MessageToProduce<string, string, string, string>;

export interface ProcessorOptions {
  config: KafkaConfig;
  topics: EngineTopicNames;
  nodeId: string;
  clock: () => number;
  log: KafkaEngineLog;
  /** How often owned tenants are checked for holds past their expiry; 0 turns it off. */
  expiryIntervalMs: number;
  /** Sends an expire_due command for a tenant through the commands topic. */
  requestExpiry: (tenant: string, nowMs: number) => void;
  onDecided?: (command: Command, outcome: Outcome, latencyMs: number) => void;
  onDeadLetter?: (letter: DeadLetter) => void;
  /** Told when a partition moved past command records deleted (retention, delete-records) before they were decided, with how many. */
  onCommandsLost?: (partition: number, count: number) => void;
  /** Idempotency records a tenant keeps, at most; past it the oldest are forgotten first. */
  idempotencyRecordsMax: number;
}

interface Owned {
  partition: number;
  /** Bumped on every restart and on revocation: async work started under an older generation stops. */
  generation: number;
  status: 'restoring' | 'active' | 'revoked';
  producer: StringProducer | undefined;
  state: LedgerState;
  nextOffset: bigint;
  lastTimeMs: number;
  /** The transaction in flight, so a revocation can wait for it before closing the producer. */
  inFlight: Promise<void> | undefined;
  /** Tenants whose expire_due was asked for, and when. */
  expiring: Map<string, number>;
  /** Offsets of records whose decision threw: dead-lettered when met again. */
  poison: Set<bigint>;
  /** Offsets of records whose output alone passes partitionBytesMax, and why: dead-lettered when met again. */
  oversized: Map<bigint, string>;
  /** Offsets of records that passed partitionBytesMax behind others: they start a transaction of their own. */
  cuts: Set<bigint>;
  /** Not fetched before this time (Date.now()): its position is past the end of its log. */
  heldUntilMs: number;
}

/** A record's output would take a topic partition of the transaction past partitionBytesMax. */
class TooLargeError extends Error {
  constructor(readonly offset: bigint, readonly alone: boolean, readonly reason: string) {
    super(`the record at offset ${offset} ${reason}`);
    this.name = 'TooLargeError';
  }
}

class DecideError extends Error {
  constructor(readonly offset: bigint, cause: unknown) {
    super(`deciding the record at offset ${offset} failed: ${messageOf(cause)}`, { cause });
    this.name = 'DecideError';
  }
}

interface Chunk {
  count: number;
  lastOffset: bigint;
  messages: Outgoing[];
  /** Bytes per `<topic>/<partition>`, changelog included: each is one record batch. */
  partitionBytes: Map<string, number>;
  /** The changelog records of the entities changed so far, as they are now (null: a tombstone). */
  entities: Map<string, string | null>;
  decided: Array<{ command: Command; outcome: Outcome; latencyMs: number }>;
  letters: DeadLetter[];
  expired: string[];
  /** An expiry tick released as many holds, or forgot as many records, as one may: the rest is asked for at once. */
  moreDue: boolean;
}

export class Processor {
  private readonly group: Consumer;
  private readonly commands: LogReader;
  private readonly restorer: LogReader;
  private readonly owned = new Map<number, Owned>();
  private commandPartitions = 0;
  private stopping = false;
  private assigned = false;
  private loop: Promise<void> | undefined;
  private wakeLoop: (() => void) | undefined;
  private timers: NodeJS.Timeout[] = [];
  private joining = false;
  private readyWaiters: Array<() => void> = [];
  private everReady = false;
  private readonly assignmentListeners = new Set<() => void>();

  constructor(private readonly options: ProcessorOptions) {
    const { config, nodeId } = options;
    const sessionTimeout = config.consumer.sessionTimeoutMs;
    this.group = new KafkaConsumer({
      clientId: `${config.clientId}-${nodeId}-group`,
      groupId: config.consumer.groupId,
      bootstrapBrokers: config.brokers,
      connectTimeout: config.timeouts.connectTimeoutMs,
      // A JoinGroup is held by the coordinator until the rebalance completes (up to the rebalance time-out).
      timeout: Math.max(config.timeouts.adminTimeoutMs, sessionTimeout + processorLimits.joinSlackMs),
      retries: 2,
      retryDelay: kafkaEngineLimits.retryDelayMs,
      sessionTimeout,
      rebalanceTimeout: sessionTimeout,
      heartbeatInterval: Math.max(100, Math.floor(sessionTimeout / processorLimits.heartbeatsPerSession)),
    });
    this.commands = new LogReader(config, `${nodeId}-commands`, config.consumer.maxWaitMs);
    this.restorer = new LogReader(config, `${nodeId}-restore`, config.consumer.maxWaitMs);
  }

  /** Joins the group; resolves once the partitions of the first assignment are restored. */
  async start(): Promise<void> {
    const { topics } = this.options;
    this.commandPartitions = await this.commands.partitionCount(topics.commands);
    this.group.on('consumer:group:join', (payload) => this.assign(payload.assignments ?? []));
    this.group.on('error', (error: unknown) => this.options.log.warn(`kafka engine: group membership: ${messageOf(error)}`));
    this.group.topics.track(topics.commands);
    const ready = new Promise<void>((resolve) => this.readyWaiters.push(resolve));
    await this.join();
    this.loop = this.run();
    this.timers.push(setInterval(() => this.checkMembership(), processorLimits.membershipCheckMs));
    if (this.options.expiryIntervalMs > 0) this.timers.push(setInterval(() => this.requestExpiries(), this.options.expiryIntervalMs));
    for (const timer of this.timers) timer.unref();
    await ready;
  }

  private async join(): Promise<void> {
    this.joining = true;
    try {
      await this.group.joinGroup({});
    } finally {
      this.joining = false;
    }
  }

  /** The client stops heartbeating when a rejoin fails (a broker down for long); this joins again. */
  private checkMembership(): void {
    if (this.stopping || this.joining || this.group.isActive()) return;
    this.join().catch((error: unknown) => this.options.log.warn(`kafka engine: joining the group failed, trying again: ${messageOf(error)}`));
  }

  ready(): boolean {
    return this.everReady;
  }

  /** The commands partitions this node decides now. */
  partitions(): number[] {
    return [...this.owned.values()].filter((owned) => owned.status === 'active').map((owned) => owned.partition).sort((a, b) => a - b);
  }

  /**
   * Whether the group assigns this node the partition a key's commands go to (as submit routes them), now:
   * restoring counts, a member that dropped out of the group does not.
   */
  ownsKey(key: string): boolean {
    if (this.stopping || this.commandPartitions === 0 || !this.group.isActive()) return false;
    return this.owned.has(partitionOfKey(key, this.commandPartitions));
  }

  /** Called after every assignment the group hands this node. Returns an unsubscribe function. */
  onAssignment(listener: () => void): () => void {
    this.assignmentListeners.add(listener);
    return () => { this.assignmentListeners.delete(listener); };
  }

  private assign(assignments: Array<{ topic: string; partitions: number[] }>): void {
    if (this.stopping) return;
    const mine = new Set(assignments.find((assignment) => assignment.topic === this.options.topics.commands)?.partitions ?? []);
    for (const owned of [...this.owned.values()]) if (!mine.has(owned.partition)) this.revoke(owned);
    for (const partition of mine) {
      if (this.owned.has(partition)) continue;
      const owned: Owned = {
        partition, generation: 0, status: 'restoring', producer: undefined, state: initialState(), nextOffset: 0n,
        lastTimeMs: 0, inFlight: undefined, expiring: new Map(), poison: new Set(), oversized: new Map(), cuts: new Set(), heldUntilMs: 0,
      };
      this.owned.set(partition, owned);
      void this.restart(owned);
    }
    this.options.log.info(`kafka engine: ${this.options.nodeId} owns commands partitions [${[...mine].sort((a, b) => a - b).join(', ')}]`);
    this.assigned = true;
    this.checkReady();
    for (const listener of this.assignmentListeners) {
      try {
        listener();
      } catch (error) {
        this.options.log.error(`kafka engine: an assignment listener failed: ${messageOf(error)}`);
      }
    }
  }

  private checkReady(): void {
    if (!this.assigned || [...this.owned.values()].some((owned) => owned.status !== 'active')) return;
    this.everReady = true;
    for (const resolve of this.readyWaiters.splice(0)) resolve();
  }

  private revoke(owned: Owned): void {
    owned.generation += 1;
    owned.status = 'revoked';
    this.owned.delete(owned.partition);
    const producer = owned.producer;
    owned.producer = undefined;
    // Closing waits for the transaction in flight: the next owner then finds it committed or aborted, not hanging.
    void (owned.inFlight ?? Promise.resolve()).finally(() => {
      if (producer !== undefined) void closeQuietly('close a revoked producer', this.options.config.timeouts.shutdownTimeoutMs, () => forceClose(producer), this.options.log);
    });
  }

  /**
   * (Re)takes a partition: a fresh producer with the partition's transactional id (which fences any
   * other holder and settles its open transaction), then the state from the changelog, then the offset.
   */
  private async restart(owned: Owned): Promise<void> {
    if (owned.status === 'revoked') return;
    owned.generation += 1;
    const generation = owned.generation;
    owned.status = 'restoring';
    let delayMs: number = kafkaEngineLimits.retryDelayMs;
    while (!this.stopping && owned.generation === generation) {
      // While the group rebalances, the partition may be on its way to another node: taking the
      // transactional id now would only fence the new owner.
      if (!this.group.isActive()) {
        await sleep(processorLimits.membershipPollMs);
        continue;
      }
      try {
        await this.replaceProducer(owned);
        const restored = await this.restore(owned.partition);
        if (owned.generation !== generation) return;
        owned.state = restored.state;
        owned.nextOffset = restored.nextOffset ?? await this.startOffset(owned.partition);
        // The time committed with the state: a new owner whose clock is behind never stamps a command earlier.
        if (restored.lastTimeMs > owned.lastTimeMs) owned.lastTimeMs = restored.lastTimeMs;
        owned.status = 'active';
        owned.heldUntilMs = 0;
        owned.expiring.clear();
        this.options.log.info(`kafka engine: partition ${owned.partition} restored (${restored.records} changelog records), next command offset ${owned.nextOffset}`);
        this.checkReady();
        this.wakeLoop?.();
        return;
      } catch (error) {
        if (this.stopping || owned.generation !== generation) return;
        this.options.log.warn(`kafka engine: taking partition ${owned.partition} failed, retrying in ${delayMs} ms: ${messageOf(error)}`);
        await sleep(delayMs);
        delayMs = nextDelay(delayMs);
      }
    }
  }

  private async replaceProducer(owned: Owned): Promise<void> {
    const { config } = this.options;
    const old = owned.producer;
    owned.producer = undefined;
    if (old !== undefined) await closeQuietly('close a failed producer', config.timeouts.shutdownTimeoutMs, () => forceClose(old), this.options.log);
    const producer = openProducer(config, `${this.options.nodeId}-p${owned.partition}`, `${config.processing.transactionalIdPrefix}-${owned.partition}`);
    try {
      // Beginning a transaction runs InitProducerId: the fencing step. Nothing is sent in this one.
      const transaction = await withDeadline('take the transactional id', config.producer.deliveryTimeoutMs, producer.beginTransaction());
      await transaction.cancel();
    } catch (error) {
      await closeQuietly('close a producer that could not start', config.timeouts.shutdownTimeoutMs, () => forceClose(producer), this.options.log);
      throw error;
    }
    owned.producer = producer;
  }

  private async restore(partition: number): Promise<{ state: LedgerState; nextOffset: bigint | undefined; lastTimeMs: number; records: number }> {
    const topic = this.options.topics.changelog;
    const restore = new ChangelogRestore();
    const records = await this.restorer.readToEnd(topic, partition, (record) => restore.apply(record.key, record.value), () => this.stopping);
    if (restore.skipped > 0) this.options.log.warn(`kafka engine: ${restore.skipped} records of ${topic} partition ${partition} were not changelog entities`);
    return { state: restore.state(), nextOffset: restore.nextOffset, lastTimeMs: restore.lastTimeMs, records };
  }

  /** Where a partition without a changelog position starts: the group's committed offset, or the beginning. */
  private async startOffset(partition: number): Promise<bigint> {
    const topic = this.options.topics.commands;
    const committed = await this.group.listCommittedOffsets({ topics: [{ topic, partitions: [partition] }] });
    const offset = committed.get(topic)?.[partition];
    if (offset !== undefined && offset >= 0n) return offset;
    return (await this.commands.offsets(topic, [partition], 'earliest')).get(partition) ?? 0n;
  }

  // --- the processing loop ---------------------------------------------------------------------

  private async run(): Promise<void> {
    let delayMs: number = kafkaEngineLimits.retryDelayMs;
    while (!this.stopping) {
      const nowMs = Date.now();
      const active = [...this.owned.values()].filter((owned) => owned.status === 'active' && owned.heldUntilMs <= nowMs);
      if (active.length === 0 || !this.group.isActive()) {
        await this.idle(this.options.config.consumer.maxWaitMs + 50);
        continue;
      }
      const from = new Map(active.map((owned) => [owned.partition, owned.nextOffset]));
      const generations = new Map(active.map((owned) => [owned.partition, owned.generation]));
      let reads: PartitionRead[];
      try {
        reads = await this.commands.read(this.options.topics.commands, from);
        delayMs = kafkaEngineLimits.retryDelayMs;
      } catch (error) {
        if (this.stopping) return;
        // One partition's lost position must not stop the others: it is moved (or held), and the next fetch goes on.
        if (error instanceof OffsetOutOfRangeError && await this.outOfRange(error.partitions, from, generations)) continue;
        this.options.log.warn(`kafka engine: fetching commands failed, retrying in ${delayMs} ms: ${messageOf(error)}`);
        await this.idle(delayMs);
        delayMs = nextDelay(delayMs);
        continue;
      }
      await Promise.all(reads.map((read) => {
        const owned = this.owned.get(read.partition);
        // Skip what was fetched for a partition that restarted or moved while the fetch was out.
        if (owned === undefined || owned.status !== 'active' || owned.generation !== generations.get(read.partition) || owned.nextOffset !== from.get(read.partition)) return undefined;
        const work = this.process(owned, read).catch((error: unknown) => {
          this.options.log.error(`kafka engine: processing partition ${owned.partition} failed: ${messageOf(error)}`);
          void this.restart(owned);
        });
        owned.inFlight = work;
        return work;
      }));
    }
  }

  /**
   * The broker refused to fetch these partitions from their positions. A position before the earliest offset
   * left (retention or delete-records took commands before they were decided) moves on to it; one past the end
   * of the log is never moved (moving it back would give new commands the ids of decided ones): the partition
   * waits and says so. False when the offsets could not be read: the fetch is retried as after any failure.
   */
  private async outOfRange(partitions: number[], from: ReadonlyMap<number, bigint>, generations: ReadonlyMap<number, number>): Promise<boolean> {
    const topic = this.options.topics.commands;
    let earliest: Map<number, bigint>;
    let ends: Map<number, bigint>;
    try {
      [earliest, ends] = await Promise.all([this.commands.offsets(topic, partitions, 'earliest'), this.commands.offsets(topic, partitions, 'end')]);
    } catch (error) {
      this.options.log.warn(`kafka engine: reading the offsets of ${topic} partitions [${partitions.join(', ')}] failed: ${messageOf(error)}`);
      return false;
    }
    await Promise.all(partitions.map((partition) => {
      const owned = this.owned.get(partition);
      if (owned === undefined || owned.status !== 'active' || owned.generation !== generations.get(partition) || owned.nextOffset !== from.get(partition)) return undefined;
      const first = earliest.get(partition) ?? 0n;
      if (first <= owned.nextOffset) {
        owned.heldUntilMs = Date.now() + processorLimits.positionAheadRetryMs;
        this.options.log.error(`kafka engine: commands partition ${partition}: the next command offset ${owned.nextOffset} is past the end of the partition `
          + `(${ends.get(partition) ?? 'unknown'}); nothing is decided on it until it is there (was the commands topic deleted and made again?). `
          + `Looked at again in ${processorLimits.positionAheadRetryMs} ms`);
        return undefined;
      }
      const work = this.moveToEarliest(owned, first).catch((error: unknown) => {
        this.options.log.error(`kafka engine: telling of commands partition ${partition}'s lost commands failed: ${messageOf(error)}`);
      });
      owned.inFlight = work;
      return work;
    }));
    return true;
  }

  /**
   * Moves a partition past command records deleted before they were decided: the new position is written as
   * every batch writes it (`#next` and the group's offset, in one transaction of the partition's producer, so a
   * fenced owner cannot write it), and the loss is told once, by the node whose transaction recorded it.
   */
  private async moveToEarliest(owned: Owned, earliest: bigint): Promise<void> {
    const generation = owned.generation;
    const from = owned.nextOffset;
    const chunk = newChunk();
    chunk.lastOffset = earliest - 1n;
    const next: NextRecord = { nextOffset: String(earliest), lastTimeMs: owned.lastTimeMs };
    chunk.messages.push({ topic: this.options.topics.changelog, partition: owned.partition, key: nextOffsetKey, value: encodeJson(next) });
    try {
      await this.commit(owned, chunk);
    } catch (error) {
      if (owned.generation !== generation) return;
      this.options.log.warn(`kafka engine: moving commands partition ${owned.partition} past deleted commands failed; rebuilding its state from the changelog: ${messageOf(error)}`);
      void this.restart(owned);
      return;
    }
    if (owned.generation === generation) owned.nextOffset = earliest;
    const lost = earliest - from;
    this.options.log.error(`kafka engine: commands partition ${owned.partition}: the command records from offset ${from} (the next to decide) to `
      + `${earliest - 1n} were deleted (retention or delete-records) before they were decided; moved on to the earliest offset ${earliest}: ${lost} `
      + 'command records lost undecided. A sender that waited for one was answered KAFKA_TIMEOUT (outcome unknown) and may send it again with the '
      + 'same idempotency key');
    this.options.onCommandsLost?.(owned.partition, Number(lost));
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeLoop = done;
    });
  }

  private async process(owned: Owned, read: PartitionRead): Promise<void> {
    const generation = owned.generation;
    let records = read.records.filter((record) => record.offset >= owned.nextOffset);
    while (records.length > 0) {
      if (owned.generation !== generation || this.stopping) return;
      let chunk: Chunk;
      try {
        chunk = this.decide(owned, records);
      } catch (error) {
        if (error instanceof TooLargeError) {
          // The state holds the record's changes: rebuild it, then cut before the record, or dead-letter it when alone.
          if (error.alone) owned.oversized.set(error.offset, error.reason);
          else owned.cuts.add(error.offset);
          this.options.log.warn(`kafka engine: partition ${owned.partition}: ${error.message}; ${error.alone ? 'it will be dead-lettered' : 'it will start the next transaction'}`);
          void this.restart(owned);
          return;
        }
        // A bug, not an operating error: the state may be half changed. Rebuild it, and dead-letter the
        // record next time rather than fail on it forever.
        const offset = error instanceof DecideError ? error.offset : records[0]?.offset;
        if (offset !== undefined) owned.poison.add(offset);
        this.options.log.error(`kafka engine: deciding the command at offset ${offset} of partition ${owned.partition} failed; it will be dead-lettered: ${(error as Error).stack ?? messageOf(error)}`);
        void this.restart(owned);
        return;
      }
      try {
        await this.commit(owned, chunk);
      } catch (error) {
        if (owned.generation !== generation) return;
        this.options.log.warn(`kafka engine: the transaction of partition ${owned.partition} failed; rebuilding its state from the changelog: ${messageOf(error)}`);
        void this.restart(owned);
        return;
      }
      owned.nextOffset = chunk.lastOffset + 1n;
      this.afterCommit(owned, chunk);
      records = records.slice(chunk.count);
    }
    // Past transaction markers too, so they are not fetched again.
    if (owned.generation === generation && read.nextOffset > owned.nextOffset) owned.nextOffset = read.nextOffset;
  }

  private afterCommit(owned: Owned, chunk: Chunk): void {
    for (const offset of owned.cuts) if (offset < owned.nextOffset) owned.cuts.delete(offset);
    for (const offset of owned.oversized.keys()) if (offset < owned.nextOffset) owned.oversized.delete(offset);
    for (const tenant of chunk.expired) owned.expiring.delete(tenant);
    if (chunk.moreDue) this.requestExpiries();
    for (const { command, outcome, latencyMs } of chunk.decided) this.options.onDecided?.(command, outcome, latencyMs);
    for (const letter of chunk.letters) this.options.onDeadLetter?.(letter);
  }

  /** Decides records in order against the partition's state, up to a batch's worth, and builds the transaction's records. */
  private decide(owned: Owned, records: LogRecord[]): Chunk {
    const { topics, config } = this.options;
    const chunk = newChunk();
    const changelog = `${topics.changelog}/${owned.partition}`;
    // Room for the #next record, written last.
    chunk.partitionBytes.set(changelog, processorLimits.recordOverheadBytes * 2);
    for (const record of records) {
      if (chunk.count > 0 && owned.cuts.has(record.offset)) break;
      chunk.count += 1;
      chunk.lastOffset = record.offset;
      const changed = new Set<string>();
      try {
        this.decideRecord(owned, record, chunk, changed);
        this.noteChangelog(owned, chunk, changed);
      } catch (error) {
        throw new DecideError(record.offset, error);
      }
      const over = [...chunk.partitionBytes].find(([, bytes]) => bytes > processorLimits.partitionBytesMax);
      if (over !== undefined) {
        throw new TooLargeError(record.offset, chunk.count === 1, `would take ${over[0]} to ${over[1]} bytes in one transaction, more than the ${processorLimits.partitionBytesMax} allowed`);
      }
      if (chunk.count >= config.processing.maxBatch || Math.max(...chunk.partitionBytes.values()) >= processorLimits.transactionBytesTarget) break;
    }
    for (const [key, value] of chunk.entities) {
      // A tombstone (null) deletes the key when the changelog is compacted.
      chunk.messages.push({ topic: topics.changelog, partition: owned.partition, key, value: value as string });
    }
    const next: NextRecord = { nextOffset: String(chunk.lastOffset + 1n), lastTimeMs: owned.lastTimeMs };
    chunk.messages.push({ topic: topics.changelog, partition: owned.partition, key: nextOffsetKey, value: encodeJson(next) });
    return chunk;
  }

  /** Keeps the changelog records of what one record changed, as they are now, and counts their bytes. */
  private noteChangelog(owned: Owned, chunk: Chunk, changed: Set<string>): void {
    const changelog = `${this.options.topics.changelog}/${owned.partition}`;
    let bytes = chunk.partitionBytes.get(changelog) ?? 0;
    for (const key of changed) {
      const before = chunk.entities.get(key);
      const value = entityValue(owned.state, key);
      bytes += (value?.length ?? 0) - (before?.length ?? 0);
      if (!chunk.entities.has(key)) bytes += processorLimits.recordOverheadBytes + key.length;
      chunk.entities.set(key, value);
    }
    chunk.partitionBytes.set(changelog, bytes);
  }

  private decideRecord(owned: Owned, record: LogRecord, chunk: Chunk, changed: Set<string>): void {
    if (owned.poison.has(record.offset)) {
      this.deadLetter(owned, record, chunk, 'DECIDE_FAILED', 'deciding this command failed (a bug: see the processor\'s log); it was not applied');
      return;
    }
    const parsed = parseCommandRecord(record.key, record.value, owned.partition, (tenant) => partitionOfKey(tenant, this.commandPartitions));
    const oversized = owned.oversized.get(record.offset);
    if (oversized !== undefined) {
      const reason = `its output ${oversized}; it was not applied: send it in smaller parts`;
      this.deadLetter(owned, record, chunk, 'OUTPUT_TOO_LARGE', reason);
      if (parsed.reply !== undefined) this.reply(chunk, owned.partition, parsed.reply, record, { error: { code: 'OUTPUT_TOO_LARGE', message: reason } });
      return;
    }
    const refusal = parsed.ok ? aheadOfClock(parsed.inputs, parsed.atomic, this.nowMs(owned)) : { code: parsed.code, reason: parsed.reason };
    if (refusal !== undefined) {
      this.deadLetter(owned, record, chunk, refusal.code, refusal.reason);
      if (parsed.reply !== undefined) this.reply(chunk, owned.partition, parsed.reply, record, { error: { code: refusal.code, message: refusal.reason } });
      return;
    }
    if (!parsed.ok) return;
    const latencyMs = Math.max(0, this.options.clock() - record.timestampMs);
    const { results, applied } = parsed.atomic
      ? this.decideGroup(owned, parsed.inputs, record.offset, changed)
      : { results: this.decideSingle(owned, parsed.inputs[0] as CommandInput, `k${owned.partition}-${record.offset}`, changed, chunk), applied: true };
    for (const result of results) {
      chunk.decided.push({ command: result.command, outcome: result.outcome, latencyMs });
      if (result.command.type === 'expire_due') {
        chunk.expired.push(result.command.tenant);
        if (moreDueAfterTick(owned.state.tenants.get(result.command.tenant), result.command.nowMs, result.outcome.events.length)) chunk.moreDue = true;
      }
      // A refused group's outcomes (trial ids, a conflict_detected among them) are answered, never logged: nothing of it was applied.
      if (!applied) continue;
      for (const event of result.outcome.events) this.push(chunk, { topic: this.options.topics.events, partition: owned.partition, key: event.tenant, value: encodeJson(event) });
    }
    if (parsed.reply !== undefined) {
      this.reply(chunk, owned.partition, parsed.reply, record, { results: results.map(({ command, outcome }): DecidedCommand => ({ id: command.id, timeMs: command.timeMs, outcome })) });
    }
  }

  /**
   * One command; but a tick whose releases would pass expiryTickBytesMax (each event repeats the hold's lines)
   * is decided as the releases of the holds that fit, each a `release` with reason `expired` (the event a tick
   * gives), and another tick follows at once.
   */
  private decideSingle(owned: Owned, input: CommandInput, id: string, changed: Set<string>, chunk: Chunk): Array<{ command: Command; outcome: Outcome }> {
    if (input.type === 'expire_due') {
      const fitting = fittingDueHolds(input, owned.state.tenants.get(input.tenant), Math.min(input.nowMs, this.nowMs(owned)));
      if (fitting !== undefined) {
        chunk.expired.push(input.tenant);
        chunk.moreDue = true;
        const source = input.source === undefined ? {} : { source: input.source };
        return fitting.map((reservationId, index) => this.decideOne(owned, { type: 'release', tenant: input.tenant, reservationId, reason: 'expired', ...source }, `${id}.${index}`, changed));
      }
    }
    return [this.decideOne(owned, input, id, changed)];
  }

  /** `timeRequested`: the command came with its own time (an import), which its idempotency record then compares. */
  private decideOne(owned: Owned, input: CommandInput, id: string, changed: Set<string>, timeRequested = input.timeMs !== undefined): { command: Command; outcome: Outcome } {
    const nowMs = this.nowMs(owned);
    const command = { ...input, id, timeMs: input.timeMs ?? nowMs } as Command;
    // A command that came with its time (an import) is recorded at the processor's: its retention runs from now.
    const execution: Execution = execute(owned.state, command, this.options.idempotencyRecordsMax, nowMs, timeRequested);
    noteChangedEntities(changed, command.tenant, execution);
    return { command, outcome: execution.outcome };
  }

  /** All or nothing, as the embedded engine does: decided on a trial copy of the tenant first, applied only if every command is accepted. */
  private decideGroup(owned: Owned, inputs: CommandInput[], offset: bigint, changed: Set<string>): { results: Array<{ command: Command; outcome: Outcome }>; applied: boolean } {
    // One instant for the group, in the trial and for real: a hold falling due in between would refuse a member
    // the trial accepted, after those before it were applied.
    const nowMs = this.nowMs(owned);
    const timed = inputs.map((input) => (input.timeMs === undefined ? { ...input, timeMs: nowMs } : input));
    const trials = timed.map((input) => ({ ...input, id: 'trial' }) as Command);
    const scratch = trialState(owned.state, trials);
    const outcomes = trials.map((command, index) => execute(scratch, command, this.options.idempotencyRecordsMax, nowMs, inputs[index]?.timeMs !== undefined).outcome);
    if (outcomes.some((outcome) => outcome.rejection !== undefined)) {
      const results = trials.map((command, index) => {
        const outcome = outcomes[index] as Outcome;
        return { command, outcome: outcome.rejection === undefined ? { events: [], rejection: notApplied } : outcome };
      });
      return { results, applied: false };
    }
    return { results: timed.map((input, index) => this.decideOne(owned, input, `k${owned.partition}-${offset}.${index}`, changed, inputs[index]?.timeMs !== undefined)), applied: true };
  }

  private nowMs(owned: Owned): number {
    const now = this.options.clock();
    owned.lastTimeMs = now > owned.lastTimeMs ? now : owned.lastTimeMs;
    return owned.lastTimeMs;
  }

  private push(chunk: Chunk, message: Outgoing): void {
    chunk.messages.push(message);
    const partition = `${message.topic}/${message.partition ?? 0}`;
    let bytes = processorLimits.recordOverheadBytes + (message.key?.length ?? 0) + (message.value?.length ?? 0);
    for (const [name, value] of Object.entries(message.headers ?? {})) bytes += name.length + String(value).length;
    chunk.partitionBytes.set(partition, (chunk.partitionBytes.get(partition) ?? 0) + bytes);
  }

  private reply(chunk: Chunk, partition: number, address: ReplyAddress, record: LogRecord, body: Pick<CommandReply, 'results' | 'error'>): void {
    const base = { correlationId: address.correlationId, partition, offset: String(record.offset) };
    let value = encodeJson({ ...base, ...body });
    if (value.length > kafkaRecordLimits.replyBytesMax) {
      value = encodeJson({ ...base, error: { code: 'REPLY_TOO_LARGE', message: `the commands were decided and are durable, but the answer is larger than ${kafkaRecordLimits.replyBytesMax} bytes: read the events` } });
    }
    this.push(chunk, { topic: this.options.topics.replies, partition: address.replyPartition, key: address.replyTo, value });
  }

  private deadLetter(owned: Owned, record: LogRecord, chunk: Chunk, code: DeadLetterCode, reason: string): void {
    const { topics } = this.options;
    const raw = record.value === undefined ? '' : record.value.subarray(0, kafkaRecordLimits.deadLetterValueBytesMax).toString('utf8');
    const headers: Record<string, string> = {
      [deadLetterHeaders.code]: code,
      [deadLetterHeaders.reason]: reason,
      [deadLetterHeaders.sourceTopic]: topics.commands,
      [deadLetterHeaders.sourcePartition]: String(owned.partition),
      [deadLetterHeaders.sourceOffset]: String(record.offset),
    };
    const message: Outgoing = { topic: topics.deadLetter, partition: owned.partition, value: raw, headers };
    if (record.key !== undefined) message.key = record.key;
    this.push(chunk, message);
    chunk.letters.push({ source: `kafka:${topics.commands}/${owned.partition}@${record.offset}`, reason: `${code}: ${reason}`, payload: raw, timeMs: this.options.clock() });
  }

  /** Events, changelog, replies, dead letters and the consumed offset: one transaction, all or nothing. */
  private async commit(owned: Owned, chunk: Chunk): Promise<void> {
    const { config, topics } = this.options;
    const producer = owned.producer;
    if (producer === undefined) throw new Error(`partition ${owned.partition} has no producer`);
    const stepMs = config.producer.requestTimeoutMs + config.timeouts.connectTimeoutMs;
    const transaction = await withDeadline('begin a transaction', stepMs, producer.beginTransaction());
    // The step given up on last: the client goes on retrying it (while the broker is away, say).
    let running: Promise<unknown> | undefined;
    const step = <T>(label: string, timeoutMs: number, work: Promise<T>): Promise<T> => {
      running = work.catch(() => undefined);
      return withDeadline(label, timeoutMs, work);
    };
    try {
      await step('send the transaction records', config.producer.deliveryTimeoutMs, transaction.send({ messages: chunk.messages }));
      await step('add the group to the transaction', stepMs, transaction.addConsumer(this.group));
      const consumed = {
        topic: topics.commands, partition: owned.partition, offset: chunk.lastOffset,
        metadata: { consumer: { groupId: this.group.groupId, generationId: this.group.generationId, memberId: this.group.memberId, coordinatorId: this.group.coordinatorId } },
      };
      // The client reads only the topic, partition, offset and consumer metadata of the message, and commits offset + 1.
      await step('commit the consumed offset', stepMs, transaction.addOffset(consumed as unknown as Message));
      await step('commit the transaction', stepMs, transaction.commit());
    } catch (error) {
      // Ended under a step the client still retries, the transaction is gone when that retry runs, and
      // @platformatic/kafka 1.35 then throws outside any callback (reading the id of no transaction), which
      // stops the process. The abort waits for the step to settle, for as long as a delivery may take.
      if (running !== undefined) await withDeadline('let the step given up on settle', config.producer.deliveryTimeoutMs, running).catch(() => undefined);
      await withDeadline('abort the transaction', stepMs, transaction.abort()).catch(() => undefined);
      throw error;
    }
  }

  // --- expiry ------------------------------------------------------------------------------------

  private requestExpiries(): void {
    if (this.stopping) return;
    const nowMs = this.options.clock();
    for (const owned of this.owned.values()) {
      if (owned.status !== 'active') continue;
      for (const [name, tenant] of owned.state.tenants) {
        if (!housekeepingDue(tenant, nowMs)) continue;
        const askedAtMs = owned.expiring.get(name);
        if (askedAtMs !== undefined && nowMs - askedAtMs < processorLimits.expiryRetryMs) continue;
        owned.expiring.set(name, nowMs);
        this.options.requestExpiry(name, nowMs);
      }
    }
  }

  // --- lag and shutdown ----------------------------------------------------------------------------

  /** Per partition of the commands topic: records not yet decided (the group's committed offset to the end). */
  async lag(): Promise<Array<{ partition: number; lag: number }>> {
    const topic = this.options.topics.commands;
    const partitions = Array.from({ length: this.commandPartitions }, (_, index) => index);
    const ends = await this.commands.offsets(topic, partitions, 'end');
    const committed = (await this.group.listCommittedOffsets({ topics: [{ topic, partitions }] })).get(topic) ?? [];
    const earliest = await this.commands.offsets(topic, partitions, 'earliest');
    return partitions.map((partition) => {
      const from = committed[partition] !== undefined && (committed[partition] as bigint) >= 0n ? committed[partition] as bigint : earliest.get(partition) ?? 0n;
      const lag = (ends.get(partition) ?? 0n) - from;
      return { partition, lag: Number(lag > 0n ? lag : 0n) };
    });
  }

  /** Finishes the transactions in flight, leaves the group (its partitions move at once) and closes the clients. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    this.wakeLoop?.();
    const deadline = Date.now() + timeoutMs;
    const remaining = (): number => Math.max(100, deadline - Date.now());
    if (this.loop !== undefined) await Promise.race([this.loop, sleep(remaining())]);
    const log = this.options.log;
    await closeQuietly('leave the group', remaining(), () => forceClose(this.group), log);
    await Promise.all([...this.owned.values()].map(async (owned) => {
      owned.generation += 1;
      const producer = owned.producer;
      owned.producer = undefined;
      if (producer !== undefined) await closeQuietly(`close the producer of partition ${owned.partition}`, remaining(), () => forceClose(producer), log);
    }));
    this.owned.clear();
    await closeQuietly('close the commands reader', remaining(), () => this.commands.close(), log);
    await closeQuietly('close the restore reader', remaining(), () => this.restorer.close(), log);
  }
}

function newChunk(): Chunk {
  return { count: 0, lastOffset: 0n, messages: [], partitionBytes: new Map(), entities: new Map(), decided: [], letters: [], expired: [], moreDue: false };
}

/**
 * Undefined when the holds a tick at its `nowMs` releases fit in expiryTickBytesMax of events; otherwise the ids of
 * the holds due at `releaseAtMs`, oldest first, that do (at least one).
 */
function fittingDueHolds(tick: { tenant: string; nowMs: number; source?: string }, tenant: TenantState | undefined, releaseAtMs: number): string[] | undefined {
  if (tenant === undefined) return undefined;
  // An event holds the tenant, the source, the hold's id and lines; its id, time and the rest take under 256 bytes.
  const envelopeBytes = 256 + tick.tenant.length + (tick.source?.length ?? 0);
  const eventBytes = (reservation: Reservation): number => envelopeBytes + reservation.id.length + JSON.stringify(reservation.lines).length;
  const due = dueReservations(tenant, tick.nowMs, limits.expirationsPerTickMax);
  if (due.reduce((bytes, reservation) => bytes + eventBytes(reservation), 0) <= processorLimits.expiryTickBytesMax) return undefined;
  const fitting: string[] = [];
  let bytes = 0;
  for (const reservation of dueReservations(tenant, releaseAtMs, limits.expirationsPerTickMax)) {
    bytes += eventBytes(reservation);
    if (bytes > processorLimits.expiryTickBytesMax && fitting.length > 0) break;
    fitting.push(reservation.id);
  }
  // None due yet at the processor's time (the asking node's clock is ahead): the tick as it was asked.
  return fitting.length > 0 ? fitting : undefined;
}

/**
 * A command whose own time (an import's `timeMs`, a tick's `nowMs`) is later than the processor's clock by more
 * than clocks may differ is refused, as an import dated so is at the HTTP edge: a hold would be held until a time
 * the ledger has not reached, and a tick written by another tool would release holds before they are due and
 * forget the idempotency records a retry still needs.
 */
function aheadOfClock(inputs: readonly CommandInput[], atomic: boolean, nowMs: number): { code: 'INVALID_COMMAND'; reason: string } | undefined {
  for (const [index, input] of inputs.entries()) {
    const field = input.type === 'expire_due' && input.nowMs > nowMs + limits.timeAheadMsMax ? 'nowMs'
      : input.timeMs !== undefined && input.timeMs > nowMs + limits.timeAheadMsMax ? 'timeMs' : undefined;
    if (field === undefined) continue;
    return {
      code: 'INVALID_COMMAND',
      reason: `${atomic ? `atomic[${index}]` : 'input'}.${field}: later than the processor's clock (${new Date(nowMs).toISOString()}), `
        + `allowing ${limits.timeAheadMsMax / 60_000} minutes for clocks that differ`,
    };
  }
  return undefined;
}
