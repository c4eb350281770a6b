// Request/reply over Kafka: a node sends command records to the commands topic and reads the answers on its partition of the replies topic.

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MessageToProduce } from '@platformatic/kafka';
import { AppError } from '../../app/engine.js';
import type { KafkaConfig } from './config.js';
import { withDeadline } from './admin.js';
import { closeQuietly, forceClose, kafkaEngineLimits, messageOf, nextDelay, openProducer, partitionOfKey } from './clients.js';
import type { EngineTopicNames, KafkaEngineLog, StringProducer } from './clients.js';
import { encodeJson, parseReply } from './codec.js';
import type { CommandRecord, CommandReply } from './codec.js';
import { LogReader, OffsetOutOfRangeError } from './log-reader.js';

export const rpcLimits = {
  /** Records sent in one produce request; records queued while one is in flight go in the next. */
  sendBatchRecordsMax: 1_000,
  /**
   * Bytes of records (keys, values, headers and an allowance per record) in one produce request, well
   * under the broker's 1 MiB per record batch: one partition's batch over it fails the whole request,
   * records of other partitions that were written included. A record over it goes alone.
   */
  sendBatchBytesMax: 512 * 1024,
  /** What a record costs in a record batch besides its key, value and headers, at most. */
  recordOverheadBytes: 64,
  /** Records waiting to be sent; beyond this, submits are refused (OVERLOADED) rather than queued without bound. */
  queueRecordsMax: 100_000,
  replyFetchWaitMs: 200,
  drainPollMs: 20,
} as const;

type Message = MessageToProduce<string, string, string, string>;

interface Queued {
  message: Message;
  resolve: () => void;
  reject: (error: Error) => void;
}

interface Waiting {
  resolve: (reply: CommandReply) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class CommandClient {
  private producer: StringProducer | undefined;
  private queue: Queued[] = [];
  private sending = false;
  private flushScheduled = false;
  private readonly waiting = new Map<string, Waiting>();
  private readonly reader: LogReader;
  /** Tells the replies meant for this process from those of an earlier process with the same node id. */
  private readonly bootId = randomBytes(4).toString('hex');
  private sequence = 0;
  private nextReplyOffset = 0n;
  private stopped = false;
  private loop: Promise<void> | undefined;
  replyPartition = 0;

  constructor(private readonly config: KafkaConfig, private readonly topics: EngineTopicNames, private readonly nodeId: string, private readonly log: KafkaEngineLog) {
    this.reader = new LogReader(config, `${nodeId}-replies`, Math.min(config.consumer.maxWaitMs, rpcLimits.replyFetchWaitMs));
  }

  /** Starts reading this node's replies partition from its end: older replies are for earlier processes. */
  async start(): Promise<void> {
    const count = await this.reader.partitionCount(this.topics.replies);
    this.replyPartition = partitionOfKey(this.nodeId, count);
    const end = await this.reader.offsets(this.topics.replies, [this.replyPartition], 'end');
    this.nextReplyOffset = end.get(this.replyPartition) ?? 0n;
    this.loop = this.follow();
  }

  /**
   * Sends a command record (key: the tenant) and resolves with its reply. Rejects with KAFKA_TIMEOUT
   * when no reply came within `timeoutMs`, and with KAFKA_UNAVAILABLE when the record could not be sent.
   */
  request(tenant: string, record: CommandRecord, timeoutMs: number): Promise<CommandReply> {
    this.sequence += 1;
    const correlationId = `${this.nodeId}-${this.bootId}-${this.sequence}`;
    const value = encodeJson({ ...record, replyTo: this.nodeId, replyPartition: this.replyPartition, correlationId });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(correlationId);
        reject(new AppError('KAFKA_TIMEOUT', `no answer from the processors within ${timeoutMs} ms; the command may or may not be applied: `
          + 'send it again with the same idempotency key to learn its outcome', true, 503));
      }, timeoutMs);
      this.waiting.set(correlationId, { resolve, reject, timer });
      this.send({ topic: this.topics.commands, key: tenant, value }).catch((error: unknown) => {
        const waiting = this.waiting.get(correlationId);
        if (waiting === undefined) return;
        clearTimeout(waiting.timer);
        this.waiting.delete(correlationId);
        waiting.reject(error as Error);
      });
    });
  }

  /** Whether `count` more records may be queued now: a batch is admitted whole or not at all. */
  hasRoomFor(count: number): boolean {
    return this.queue.length + count <= rpcLimits.queueRecordsMax;
  }

  /** Produces one record (batched with others sent in the same turn); resolves once the brokers have it. */
  send(message: Message): Promise<void> {
    if (this.stopped) return Promise.reject(new AppError('ENGINE_CLOSED', 'the engine is shutting down', true, 503));
    if (this.queue.length >= rpcLimits.queueRecordsMax) return Promise.reject(new AppError('OVERLOADED', 'too many commands waiting to be sent to Kafka; retry shortly', true, 503));
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.sending) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.sending || this.queue.length === 0) return;
    this.sending = true;
    const batch = this.queue.splice(0, sendBatchLength(this.queue));
    try {
      this.producer ??= openProducer(this.config, `${this.nodeId}-commands`);
      await withDeadline('produce command records', this.config.producer.deliveryTimeoutMs, this.producer.send({ messages: batch.map((item) => item.message) }));
      for (const item of batch) item.resolve();
    } catch (error) {
      const failure = new AppError('KAFKA_UNAVAILABLE', `Kafka did not take the record (it may or may not have been written): ${messageOf(error)}`, true, 503);
      for (const item of batch) item.reject(failure);
      // The next batch starts on a fresh producer: this one may be stuck on a broker that went away.
      const broken = this.producer;
      this.producer = undefined;
      if (broken !== undefined) void closeQuietly('close a failed producer', this.config.timeouts.shutdownTimeoutMs, () => forceClose(broken), this.log);
    } finally {
      this.sending = false;
      if (this.queue.length > 0) this.scheduleFlush();
    }
  }

  private async follow(): Promise<void> {
    let delayMs: number = kafkaEngineLimits.retryDelayMs;
    const partition = this.replyPartition;
    while (!this.stopped) {
      try {
        const reads = await this.reader.read(this.topics.replies, new Map([[partition, this.nextReplyOffset]]));
        for (const read of reads) {
          for (const record of read.records) this.answer(parseReply(record.value));
          if (read.nextOffset > this.nextReplyOffset) this.nextReplyOffset = read.nextOffset;
        }
        delayMs = kafkaEngineLimits.retryDelayMs;
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof OffsetOutOfRangeError && await this.readOnFromEarliest(partition)) continue;
        this.log.warn(`kafka engine: reading replies failed, retrying in ${delayMs} ms: ${messageOf(error)}`);
        await sleep(delayMs);
        delayMs = nextDelay(delayMs);
      }
    }
  }

  /**
   * The replies partition no longer holds the position: its replies were deleted before they were read (this
   * process was paused past the topic's retention, an hour at most) or the topic was made again. Left there,
   * this node would never hear another answer. Replies that old belong to submits that timed out long since,
   * and a reply nobody waits for is passed over, so reading goes on from the earliest the partition holds.
   * False when the offset could not be read: the fetch is retried as after any failure.
   */
  private async readOnFromEarliest(partition: number): Promise<boolean> {
    let earliest: bigint | undefined;
    try {
      earliest = (await this.reader.offsets(this.topics.replies, [partition], 'earliest')).get(partition);
    } catch (error) {
      this.log.warn(`kafka engine: reading the earliest offset of replies partition ${partition} failed: ${messageOf(error)}`);
      return false;
    }
    // Not a move (the broker's answers disagree for a moment): retried after the usual pause, not at once.
    if (earliest === undefined || earliest === this.nextReplyOffset) return false;
    this.log.warn(`kafka engine: replies partition ${partition} no longer holds offset ${this.nextReplyOffset} (deleted before it was read, or the topic `
      + `was made again); reading on from offset ${earliest}. Submits that waited for the replies passed over have timed out (KAFKA_TIMEOUT)`);
    this.nextReplyOffset = earliest;
    return true;
  }

  private answer(reply: CommandReply | undefined): void {
    if (reply === undefined) return;
    const waiting = this.waiting.get(reply.correlationId);
    if (waiting === undefined) return;
    clearTimeout(waiting.timer);
    this.waiting.delete(reply.correlationId);
    waiting.resolve(reply);
  }

  /** Requests still waiting for their answer. */
  pending(): number {
    return this.waiting.size + this.queue.length;
  }

  /** Sends what is queued and waits for the answers already asked for, up to `timeoutMs`; then fails the rest. */
  async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.queue.length > 0 || this.sending || this.waiting.size > 0) && Date.now() < deadline) await sleep(rpcLimits.drainPollMs);
    this.stopped = true;
    const closed = new AppError('ENGINE_CLOSED', 'the engine shut down before the answer came; the command may or may not be applied', true, 503);
    for (const item of this.queue.splice(0)) item.reject(closed);
    for (const [id, waiting] of this.waiting) {
      clearTimeout(waiting.timer);
      this.waiting.delete(id);
      waiting.reject(closed);
    }
    const remainingMs = Math.max(100, deadline - Date.now());
    const producer = this.producer;
    this.producer = undefined;
    if (producer !== undefined) await closeQuietly('close the command producer', remainingMs, () => forceClose(producer), this.log);
    if (this.loop !== undefined) await Promise.race([this.loop, sleep(remainingMs)]);
    await closeQuietly('close the replies reader', remainingMs, () => this.reader.close(), this.log);
  }
}

/** How many of the records queued first go in one produce request: at least one, within the count and byte limits. */
function sendBatchLength(queue: Queued[]): number {
  let bytes = 0;
  let length = 0;
  for (const { message } of queue) {
    bytes += recordBytes(message);
    if (length >= rpcLimits.sendBatchRecordsMax || (length > 0 && bytes > rpcLimits.sendBatchBytesMax)) break;
    length += 1;
  }
  return length;
}

function recordBytes(message: Message): number {
  let bytes = rpcLimits.recordOverheadBytes + Buffer.byteLength(message.key ?? '') + Buffer.byteLength(message.value ?? '');
  const headers = message.headers instanceof Map ? [...message.headers] : Object.entries(message.headers ?? {});
  for (const [name, value] of headers) bytes += Buffer.byteLength(name) + Buffer.byteLength(String(value));
  return bytes;
}
