// Reads Debezium change events from a Kafka topic and applies them a transaction at a time; an offset is committed only once its changes are durable.

import { performance } from 'node:perf_hooks';
import { Consumer, FetchIsolationLevels, stringDeserializers } from '@platformatic/kafka';
import type { Message } from '@platformatic/kafka';
import type { CommandBus, DeadLetterSink } from '../../app/ports.js';
import { addCounts, applyChanges, emptyCounts } from '../postgres-cdc/apply.js';
import type { ApplyCounts } from '../postgres-cdc/apply.js';
import type { DebeziumSourceConfig } from '../postgres-cdc/config.js';
import { cdcLimits } from '../postgres-cdc/limits.js';
import type { CdcLogger } from '../postgres-cdc/source.js';
import { continuesTransaction, debeziumSourceId, parseDebeziumEvent, reduceEffects, transactionMayContinue } from './envelope.js';
import type { RowEffect } from './envelope.js';

/** Bounds of `transactionQuietMs` (tests shorten it; the default is cdcLimits.debeziumTransactionQuietMs). */
export const transactionQuietMsMin = 1;
export const transactionQuietMsMax = 60_000;

export interface DebeziumKafkaSourceOptions {
  config: DebeziumSourceConfig & { topic: string };
  brokers: string[];
  /** The consumer group; its committed offsets are where a restart resumes. */
  groupId: string;
  bus: CommandBus;
  deadLetters: DeadLetterSink;
  nowMs?: () => number;
  /** Bound on every broker call. */
  timeoutMs?: number;
  log?: CdcLogger;
  random?: () => number;
  /**
   * How long a transaction whose events so far share a source.txId waits for its next event on the
   * partition before it is applied as complete: default cdcLimits.debeziumTransactionQuietMs.
   */
  transactionQuietMs?: number;
  /** The Kafka consumer; made from brokers and groupId when absent (tests pass a fake). */
  consumer?: DebeziumConsumer;
}

/** The part of @platformatic/kafka's Consumer this source uses. */
export interface DebeziumConsumer {
  consume(options: ConsumeOptions): Promise<AsyncIterable<TextMessage> & { close(): Promise<void> }>;
  close(force: boolean, callback: () => void): void;
}

type ConsumeOptions = Parameters<Consumer<string, string, string, string>['consume']>[0];

export interface DebeziumKafkaStatus {
  source: string;
  /** Records handled: applied to the ledger (durably), refused, or dead-lettered. */
  consumed: number;
  counts: ApplyCounts;
  deadLetters: number;
  /** Times consumption was started again from the committed offsets after a retryable error. */
  restarts: number;
  /** False once consumption has ended: stopped, a permanent error, or too many failed restarts. */
  consuming: boolean;
  lastError: string | null;
}

type TextMessage = Message<string, string, string, string>;

interface Letter {
  reason: string;
  payload: unknown;
}

/**
 * The records one partition has handed over since its last commit: the events of a transaction not
 * yet known to be complete, and the tombstones, skipped records and dead letters among them.
 */
interface PartitionGroup {
  effects: RowEffect[];
  letters: Letter[];
  records: number;
  /** Committing it commits every record of the group. */
  last: TextMessage;
  /** When the partition's latest record was read (monotonic clock), for the quiet bound. */
  readAtMs: number;
}

const silentLog: CdcLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** An operating error that trying again can cure: an AppError marked retryable, or a Kafka client error that says so. */
function isRetryable(error: unknown): boolean {
  const marks = error as { retryable?: unknown; canRetry?: unknown } | null;
  return marks?.retryable === true || marks?.canRetry === true;
}

/**
 * At least once: a crash between applying and committing re-delivers, and the ledger refuses the
 * re-delivered changes as not newer than their LSN, so nothing is applied twice.
 *
 * Consecutive events of a partition with the same source.txId and rising LSNs are one transaction and
 * are reduced together, as `stockline ingest debezium` does, so a place that changed hands inside it
 * keeps the row that is there at commit. A transaction is applied once its last event has been seen:
 * the partition's next event belongs to another, nothing more came for transactionQuietMs, or it
 * reached debeziumTransactionEventsMax events. Its offsets are committed after that, so a crash in
 * between re-delivers the whole transaction.
 */
export class DebeziumKafkaSource {
  private readonly consumer: DebeziumConsumer;
  private readonly log: CdcLogger;
  private readonly random: () => number;
  private stream: { close(): Promise<void> } | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  private wake: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private readonly state: DebeziumKafkaStatus;
  private readonly transactionQuietMs: number;

  constructor(private readonly options: DebeziumKafkaSourceOptions) {
    const timeoutMs = options.timeoutMs ?? 10_000;
    this.transactionQuietMs = options.transactionQuietMs ?? cdcLimits.debeziumTransactionQuietMs;
    if (!Number.isFinite(this.transactionQuietMs) || this.transactionQuietMs < transactionQuietMsMin || this.transactionQuietMs > transactionQuietMsMax) {
      throw new RangeError(`transactionQuietMs must be between ${transactionQuietMsMin} and ${transactionQuietMsMax}, got ${this.transactionQuietMs}`);
    }
    this.consumer = options.consumer ?? new Consumer({
      groupId: options.groupId, clientId: `stockline-${options.groupId}`, bootstrapBrokers: options.brokers,
      deserializers: stringDeserializers, isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      maxWaitTime: 200, timeout: timeoutMs, connectTimeout: timeoutMs,
    }) as unknown as DebeziumConsumer;
    this.log = options.log ?? silentLog;
    this.random = options.random ?? Math.random;
    this.state = { source: debeziumSourceId(options.config), consumed: 0, counts: emptyCounts(), deadLetters: 0, restarts: 0, consuming: false, lastError: null };
  }

  status(): DebeziumKafkaStatus {
    return { ...this.state, counts: { ...this.state.counts } };
  }

  /** Resolves once consuming has begun; the first subscription's failure rejects it. */
  async start(): Promise<void> {
    this.stopping = false;
    const stream = await this.subscribe();
    this.state.consuming = true;
    this.running = this.consumeWithRestarts(stream);
  }

  /** From the group's committed offsets: after a restart, whatever was not committed comes again. */
  private async subscribe(): Promise<AsyncIterable<TextMessage> & { close(): Promise<void> }> {
    const stream = await this.consumer.consume({
      topics: [this.options.config.topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false,
      sessionTimeout: 10_000, heartbeatInterval: 1_000,
    });
    this.stream = stream;
    return stream;
  }

  /**
   * A retryable failure (the bus is overloaded, the broker went away) closes the stream and consumes
   * again from the committed offsets after a backoff; the ledger absorbs what comes twice. A permanent
   * one, or too many failures without progress, ends consumption and stays in `lastError`.
   */
  private async consumeWithRestarts(first: AsyncIterable<TextMessage> & { close(): Promise<void> }): Promise<void> {
    let stream: (AsyncIterable<TextMessage> & { close(): Promise<void> }) | undefined = first;
    let attempts = 0;
    while (!this.stopping) {
      try {
        stream ??= await this.subscribe();
        // stop() may have come while subscribing, after it closed the stream it knew of.
        if (this.stopping) {
          await stream.close().catch(() => undefined);
          break;
        }
        await this.consumeAll(stream, () => { attempts = 0; });
        if (this.stopping) break;
        // Not an answer to anyone: marked retryable, so that consuming starts again.
        throw Object.assign(new Error(`the stream of topic ${this.options.config.topic} ended`), { retryable: true });
      } catch (error) {
        if (this.stopping) break;
        this.state.lastError = (error as Error).message;
        attempts += 1;
        await stream?.close().catch(() => undefined);
        stream = undefined;
        if (!isRetryable(error) || attempts >= cdcLimits.reconnectAttemptsMax) {
          this.log.error({ source: this.state.source, attempts, err: error }, `${this.state.lastError}; consumption stopped`);
          break;
        }
        const delayMs = this.backoffMs(attempts);
        this.log.warn({ source: this.state.source, attempt: attempts, delayMs }, `${this.state.lastError}; consuming again from the committed offsets`);
        await this.sleep(delayMs);
        this.state.restarts += 1;
      }
    }
    this.state.consuming = false;
  }

  private async consumeAll(messages: AsyncIterable<TextMessage>, progressed: () => void): Promise<void> {
    const iterator = messages[Symbol.asyncIterator]();
    // Only partitions whose transaction may go on are here; any other group is applied at once.
    const open = new Map<string, PartitionGroup>();
    let next = iterator.next();
    try {
      for (;;) {
        const step = await this.nextOrQuiet(next, open);
        if (step === 'quiet') {
          await this.applyQuiet(open, progressed);
          continue;
        }
        if (step.done === true) return;
        await this.take(step.value, open, progressed);
        next = iterator.next();
      }
    } finally {
      // Left pending when applying failed while waiting; the stream is closed by the caller.
      next.catch(() => undefined);
    }
  }

  /** The next record, or 'quiet' once a partition with an open transaction has had nothing for transactionQuietMs. */
  private async nextOrQuiet(next: Promise<IteratorResult<TextMessage>>, open: Map<string, PartitionGroup>): Promise<IteratorResult<TextMessage> | 'quiet'> {
    if (open.size === 0) return next;
    const readAtMs = Math.min(...[...open.values()].map((group) => group.readAtMs));
    // Already past (a busy consumer) it is 0: a record already read from the broker still comes first.
    const delayMs = Math.max(0, readAtMs + this.transactionQuietMs - performance.now());
    let timer: NodeJS.Timeout | undefined;
    const quiet = new Promise<'quiet'>((resolve) => { timer = setTimeout(() => resolve('quiet'), delayMs); });
    try {
      return await Promise.race([next, quiet]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async applyQuiet(open: Map<string, PartitionGroup>, progressed: () => void): Promise<void> {
    const nowMs = performance.now();
    for (const [partition, group] of open) {
      if (nowMs - group.readAtMs < this.transactionQuietMs) continue;
      open.delete(partition);
      await this.applyGroup(group);
      progressed();
    }
  }

  /** Adds a record to its partition's group; applies the group before it when the record starts another transaction. */
  private async take(message: TextMessage, open: Map<string, PartitionGroup>, progressed: () => void): Promise<void> {
    const partition = `${message.topic}:${message.partition}`;
    const read = this.read(message);
    let group = open.get(partition);
    if (group !== undefined && read.effect !== undefined && !continuesTransaction(group.effects, read.effect)) {
      open.delete(partition);
      await this.applyGroup(group);
      progressed();
      group = undefined;
    }
    group ??= { effects: [], letters: [], records: 0, last: message, readAtMs: 0 };
    if (read.effect !== undefined) group.effects.push(read.effect);
    group.letters.push(...read.letters);
    group.records += 1;
    group.last = message;
    group.readAtMs = performance.now();
    // Dead letters are held until their group is applied: as many as its change events, at most.
    if (transactionMayContinue(group.effects) && group.letters.length < cdcLimits.debeziumTransactionEventsMax) {
      open.set(partition, group);
      return;
    }
    open.delete(partition);
    await this.applyGroup(group);
    progressed();
  }

  /** Applies a group's changes durably, then writes its dead letters and commits its last record. */
  private async applyGroup(group: PartitionGroup): Promise<void> {
    if (group.effects.length > 0) addCounts(this.state.counts, await applyChanges(this.options.bus, reduceEffects(group.effects, this.state.source)));
    for (const letter of group.letters) this.letter(letter.reason, letter.payload);
    // Counted once handled, so that a caller who sees the count sees its changes in the ledger.
    this.state.consumed += group.records;
    await group.last.commit();
  }

  /** As the PostgreSQL source: exponential, capped, jittered over the upper half. */
  private backoffMs(attempts: number): number {
    const ceiling = Math.min(cdcLimits.reconnectDelayMsMax, cdcLimits.reconnectDelayMsBase * 2 ** Math.min(attempts - 1, 20));
    return Math.round(ceiling / 2 + (ceiling / 2) * this.random());
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.wake = undefined; resolve(); }, delayMs);
      this.wake = { timer, resolve };
    });
  }

  /** What a record brings: the effect of a change event, and dead letters. */
  private read(message: TextMessage): { effect?: RowEffect; letters: Letter[] } {
    // A tombstone (null value) follows a delete for log compaction: the delete itself carried the change.
    if (message.value === null || message.value === undefined || message.value === '') return { letters: [] };
    let value: unknown;
    try {
      value = JSON.parse(message.value);
    } catch (error) {
      return { letters: [{ reason: `not JSON: ${(error as Error).message}`, payload: { topic: message.topic, partition: message.partition, offset: String(message.offset) } }] };
    }
    const result = parseDebeziumEvent(value, this.options.config);
    if (result.kind === 'skip') return { letters: [] };
    if (result.kind === 'dead') return { letters: [{ reason: result.reason, payload: result.payload }] };
    return { effect: result.effect, letters: result.dead === undefined ? [] : [result.dead] };
  }

  private letter(reason: string, payload: unknown): void {
    this.state.deadLetters += 1;
    this.options.deadLetters.deadLetter({ source: this.state.source, reason, payload, timeMs: (this.options.nowMs ?? Date.now)() });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.wake !== undefined) {
      clearTimeout(this.wake.timer);
      this.wake.resolve();
    }
    await this.stream?.close().catch(() => undefined);
    await this.running;
    await new Promise<void>((resolve) => { this.consumer.close(true, () => resolve()); });
  }
}
