// Reads Debezium change events from a Kafka topic and applies them; an offset is committed only once its changes are durable.

import { Consumer, FetchIsolationLevels, stringDeserializers } from '@platformatic/kafka';
import type { Message } from '@platformatic/kafka';
import type { CommandBus, DeadLetterSink } from '../../app/ports.js';
import { addCounts, applyChanges, emptyCounts } from '../postgres-cdc/apply.js';
import type { ApplyCounts } from '../postgres-cdc/apply.js';
import type { DebeziumSourceConfig } from '../postgres-cdc/config.js';
import { cdcLimits } from '../postgres-cdc/limits.js';
import type { CdcLogger } from '../postgres-cdc/source.js';
import { debeziumSourceId, parseDebeziumEvent } from './envelope.js';

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

const silentLog: CdcLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** An operating error that trying again can cure: an AppError marked retryable, or a Kafka client error that says so. */
function isRetryable(error: unknown): boolean {
  const marks = error as { retryable?: unknown; canRetry?: unknown } | null;
  return marks?.retryable === true || marks?.canRetry === true;
}

/**
 * At least once: a crash between applying and committing re-delivers, and the ledger refuses the
 * re-delivered changes as not newer than their LSN, so nothing is applied twice.
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

  constructor(private readonly options: DebeziumKafkaSourceOptions) {
    const timeoutMs = options.timeoutMs ?? 10_000;
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
    for await (const message of messages) {
      await this.apply(message);
      // Counted once handled, so that a caller who sees the count sees its changes in the ledger.
      this.state.consumed += 1;
      await message.commit();
      progressed();
    }
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

  private async apply(message: TextMessage): Promise<void> {
    // A tombstone (null value) follows a delete for log compaction: the delete itself carried the change.
    if (message.value === null || message.value === undefined || message.value === '') return;
    let value: unknown;
    try {
      value = JSON.parse(message.value);
    } catch (error) {
      this.letter(`not JSON: ${(error as Error).message}`, { topic: message.topic, partition: message.partition, offset: String(message.offset) });
      return;
    }
    const result = parseDebeziumEvent(value, this.options.config);
    if (result.kind === 'changes') addCounts(this.state.counts, await applyChanges(this.options.bus, result.changes));
    if (result.kind === 'dead') this.letter(result.reason, result.payload);
    else if (result.kind === 'changes' && result.dead !== undefined) this.letter(result.dead.reason, result.dead.payload);
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
