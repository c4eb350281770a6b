// Reads Debezium change events from a Kafka topic and applies them; an offset is committed only once its changes are durable.

import { Consumer, FetchIsolationLevels, stringDeserializers } from '@platformatic/kafka';
import type { Message } from '@platformatic/kafka';
import type { CommandBus, DeadLetterSink } from '../../app/ports.js';
import { addCounts, applyChanges, emptyCounts } from '../postgres-cdc/apply.js';
import type { ApplyCounts } from '../postgres-cdc/apply.js';
import type { DebeziumSourceConfig } from '../postgres-cdc/config.js';
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
}

export interface DebeziumKafkaStatus {
  source: string;
  /** Records handled: applied to the ledger (durably), refused, or dead-lettered. */
  consumed: number;
  counts: ApplyCounts;
  deadLetters: number;
  lastError: string | null;
}

type TextMessage = Message<string, string, string, string>;

/**
 * At least once: a crash between applying and committing re-delivers, and the ledger refuses the
 * re-delivered changes as not newer than their LSN, so nothing is applied twice.
 */
export class DebeziumKafkaSource {
  private readonly consumer: Consumer<string, string, string, string>;
  private stream: { close(): Promise<void> } | undefined;
  private running: Promise<void> | undefined;
  private readonly state: DebeziumKafkaStatus;

  constructor(private readonly options: DebeziumKafkaSourceOptions) {
    const timeoutMs = options.timeoutMs ?? 10_000;
    this.consumer = new Consumer({
      groupId: options.groupId, clientId: `stockline-${options.groupId}`, bootstrapBrokers: options.brokers,
      deserializers: stringDeserializers, isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      maxWaitTime: 200, timeout: timeoutMs, connectTimeout: timeoutMs,
    });
    this.state = { source: debeziumSourceId(options.config), consumed: 0, counts: emptyCounts(), deadLetters: 0, lastError: null };
  }

  status(): DebeziumKafkaStatus {
    return { ...this.state, counts: { ...this.state.counts } };
  }

  async start(): Promise<void> {
    const stream = await this.consumer.consume({
      topics: [this.options.config.topic], mode: 'committed', fallbackMode: 'earliest', autocommit: false,
      sessionTimeout: 10_000, heartbeatInterval: 1_000,
    });
    this.stream = stream;
    this.running = this.consumeAll(stream as AsyncIterable<TextMessage>);
  }

  private async consumeAll(messages: AsyncIterable<TextMessage>): Promise<void> {
    try {
      for await (const message of messages) {
        await this.apply(message);
        // Counted once handled, so that a caller who sees the count sees its changes in the ledger.
        this.state.consumed += 1;
        await message.commit();
      }
    } catch (error) {
      this.state.lastError = (error as Error).message;
    }
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
    else if (result.kind === 'dead') this.letter(result.reason, result.payload);
  }

  private letter(reason: string, payload: unknown): void {
    this.state.deadLetters += 1;
    this.options.deadLetters.deadLetter({ source: this.state.source, reason, payload, timeMs: (this.options.nowMs ?? Date.now)() });
  }

  async stop(): Promise<void> {
    await this.stream?.close().catch(() => undefined);
    await this.running;
    await new Promise<void>((resolve) => { this.consumer.close(true, () => resolve()); });
  }
}
