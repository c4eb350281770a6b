// Clients and small helpers shared by the Kafka engine's parts: producers with bounded retries, tenant partitions, logging.

import { compatibilityPartitioner, murmur2, ProduceAcks, Producer, stringSerializers } from '@platformatic/kafka';
import type { RetryDelayGetter } from '@platformatic/kafka';
import type { KafkaConfig } from './config.js';
import { kafkaTopicNames } from './config.js';
import type { KafkaTopicNames } from './config.js';
import { withDeadline } from './admin.js';

export const kafkaEngineLimits = {
  /** A producer request the client retries itself; the idempotent producer would retry forever with 0 or 1. */
  producerRetriesMin: 2,
  producerRetryDelayMs: 250,
  /**
   * A transaction begun right after the previous commit meets CONCURRENT_TRANSACTIONS until the
   * coordinator has written the commit markers (a few ms): retried at once and often, as the Java
   * client does, instead of after the general delay (which put 500 ms on every such batch).
   */
  transactionalRetriesMin: 12,
  concurrentTransactionsRetryDelayMs: 5,
  /** Back-off of the engine's own loops after a failure, doubling up to the maximum. */
  retryDelayMs: 250,
  retryDelayMsMax: 5_000,
  /** Retention of the replies topic: an answer is useful for seconds. */
  repliesRetentionMs: 3_600_000,
} as const;

/** What the engine logs through; a pino logger fits. */
export interface KafkaEngineLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const silentLog: KafkaEngineLog = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The engine's topics: the five of the scaffolding and the replies topic of request/reply. */
export interface EngineTopicNames extends KafkaTopicNames {
  replies: string;
}

export function engineTopicNames(config: Pick<KafkaConfig, 'topics'>): EngineTopicNames {
  return { ...kafkaTopicNames(config), replies: `${config.topics.prefix}.replies` };
}

export type StringProducer = Producer<string, string, string, string>;

/**
 * An idempotent producer (acks all) whose requests time out and retry a bounded number of times.
 * A transactional id makes it the only writer of that id: opening it fences the previous holder.
 */
export function openProducer(config: KafkaConfig, name: string, transactionalId?: string): StringProducer {
  const retries = Math.max(transactionalId === undefined ? kafkaEngineLimits.producerRetriesMin : kafkaEngineLimits.transactionalRetriesMin, config.producer.retries);
  return new Producer({
    clientId: `${config.clientId}-${name}`,
    bootstrapBrokers: config.brokers,
    connectTimeout: config.timeouts.connectTimeoutMs,
    // Also the transaction time-out: the coordinator aborts a transaction left open longer than this.
    timeout: config.producer.requestTimeoutMs,
    retries,
    retryDelay,
    idempotent: true,
    acks: ProduceAcks.ALL,
    ...(config.producer.compression === 'none' ? {} : { compression: config.producer.compression }),
    serializers: stringSerializers,
    // The Java client's partitioner (the library's default differs): a tenant lands where Kafka's own tools put it.
    partitioner: compatibilityPartitioner,
    // -1/-1 asks for a fresh producer id (or the next epoch of a transactional id); the client's default 0/0 is refused as fenced.
    producerId: -1n,
    producerEpoch: -1,
    ...(transactionalId === undefined ? {} : { transactionalId }),
  });
}

const retryDelay: RetryDelayGetter = (_client, _operation, attempt, _retries, error) => {
  const concurrent = (error as { findBy?: (property: string, value: unknown) => unknown }).findBy?.('apiId', 'CONCURRENT_TRANSACTIONS');
  return concurrent === undefined || concurrent === null ? kafkaEngineLimits.producerRetryDelayMs : kafkaEngineLimits.concurrentTransactionsRetryDelayMs * attempt;
};

/** Kafka's default partitioner (the Java client's): murmur2 of the key, positive, modulo the partitions. */
export function partitionOfKey(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % partitions;
}

/** Closes a client within the time given, and never throws: used on the way out and after failures. */
export async function closeQuietly(label: string, timeoutMs: number, close: () => Promise<void>, log: KafkaEngineLog): Promise<void> {
  try {
    await withDeadline(label, timeoutMs, close());
  } catch (error) {
    log.debug(`kafka engine: ${label}: ${messageOf(error)}`);
  }
}

/** Closes a client at once (no waiting for its in-flight requests); the promise overload of `close(true)` is not the one TypeScript picks. */
export function forceClose(client: { close(force: boolean, callback: (error?: Error | null) => void): void }): Promise<void> {
  return new Promise((resolve, reject) => client.close(true, (error) => (error ? reject(error) : resolve())));
}

export function messageOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    const inner = [...new Set(error.errors.map((item: unknown) => messageOf(item)))].join('; ');
    return `${error.message} (${inner})`;
  }
  return error instanceof Error ? error.message : String(error);
}

export function nextDelay(delayMs: number): number {
  return Math.min(delayMs * 2, kafkaEngineLimits.retryDelayMsMax);
}
