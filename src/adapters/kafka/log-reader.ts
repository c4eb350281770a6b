// Reads partitions from explicit offsets with read_committed semantics that hold, on a client of its own.
//
// The engine keeps its own positions (a processor restarts from its changelog, the replica from the
// start of the events), so it fetches with the client's low-level `fetch` instead of a consumer
// stream. It also filters aborted transactions itself: @platformatic/kafka 1.35 keeps one aborted
// range per producer per fetch response, so when one producer aborted twice in the fetched range
// (a processor that failed and retried), the records of the first aborted transaction come through.

import {
  Consumer, FetchIsolationLevels, IS_CONTROL, IS_TRANSACTIONAL, ListOffsetTimestamps, MultipleErrors, ResponseError,
} from '@platformatic/kafka';
import type { RecordsBatch } from '@platformatic/kafka';
import { forceClose, messageOf } from './clients.js';
import type { KafkaConfig } from './config.js';

export const logReaderLimits = {
  /** Bytes one fetch may return in all, and per partition; a record batch larger than this still comes whole. */
  fetchBytesMax: 16 * 1024 * 1024,
  partitionFetchBytesMax: 2 * 1024 * 1024,
  /** The client's own retries of a failed request; the engine's loops retry beyond that. */
  clientRetries: 1,
  clientRetryDelayMs: 200,
  /** Slack above the fetch wait for the request time-out. */
  requestTimeoutSlackMs: 10_000,
  /** Reading a partition to its end gives up after this many fetches in a row that brought it no further. */
  stalledReadsMax: 50,
} as const;

type FetchResponse = Awaited<ReturnType<Consumer['fetch']>>;
type FetchResponsePartition = FetchResponse['responses'][number]['partitions'][number];

export interface LogRecord {
  offset: bigint;
  key: string | undefined;
  value: Buffer | undefined;
  headers: Map<string, string>;
  timestampMs: number;
}

export interface PartitionRead {
  partition: number;
  /** Committed records from the requested offset on, in offset order. */
  records: LogRecord[];
  /** Where to read on: after the last batch returned, transaction markers included. */
  nextOffset: bigint;
  /** Offset up to which a read_committed reader can read now. */
  lastStableOffset: bigint;
}

/**
 * The broker refused to fetch some partitions from the offsets asked (OFFSET_OUT_OF_RANGE): the offset is
 * no longer in the log (retention or delete-records took it) or not yet (past the log's end).
 */
export class OffsetOutOfRangeError extends Error {
  constructor(readonly topic: string, readonly partitions: number[], options: { cause: unknown }) {
    super(`fetching ${topic} partitions [${partitions.join(', ')}]: the offsets asked are out of range: ${messageOf(options.cause)}`, options);
    this.name = 'OffsetOutOfRangeError';
  }
}

export class LogReader {
  readonly client: Consumer;

  constructor(config: Pick<KafkaConfig, 'brokers' | 'clientId' | 'timeouts'>, clientId: string, private readonly maxWaitMs: number) {
    // A client never joins the group named here: it only fetches and lists offsets.
    this.client = new Consumer({
      clientId: `${config.clientId}-${clientId}`,
      groupId: `${config.clientId}-${clientId}-reader`,
      bootstrapBrokers: config.brokers,
      connectTimeout: config.timeouts.connectTimeoutMs,
      timeout: maxWaitMs + logReaderLimits.requestTimeoutSlackMs,
      retries: logReaderLimits.clientRetries,
      retryDelay: logReaderLimits.clientRetryDelayMs,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      maxWaitTime: maxWaitMs,
    });
  }

  /** One fetch of the given partitions of `topic` from the given offsets; a partition with nothing new is returned empty. */
  async read(topic: string, from: ReadonlyMap<number, bigint>): Promise<PartitionRead[]> {
    if (from.size === 0) return [];
    const metadata = await this.client.metadata({ topics: [topic] });
    const topicMetadata = metadata.topics.get(topic);
    if (topicMetadata === undefined) throw new Error(`no metadata for topic ${topic}`);
    const byLeader = new Map<number, number[]>();
    for (const partition of from.keys()) {
      const leader = topicMetadata.partitions[partition]?.leader;
      if (leader === undefined || leader < 0) throw new Error(`partition ${partition} of ${topic} has no leader`);
      byLeader.set(leader, [...(byLeader.get(leader) ?? []), partition]);
    }
    try {
      const responses = await Promise.all([...byLeader].map(([node, partitions]) => this.client.fetch({
        node,
        topics: [{
          topicId: topicMetadata.id,
          partitions: partitions.map((partition) => ({
            partition, fetchOffset: from.get(partition) as bigint, partitionMaxBytes: logReaderLimits.partitionFetchBytesMax,
            currentLeaderEpoch: -1, lastFetchedEpoch: -1,
          })),
        }],
        isolationLevel: FetchIsolationLevels.READ_COMMITTED,
        maxWaitTime: this.maxWaitMs,
        minBytes: 1,
        maxBytes: logReaderLimits.fetchBytesMax,
      })));
      const reads: PartitionRead[] = [];
      for (const response of responses) {
        for (const topicResponse of response.responses) {
          for (const partition of topicResponse.partitions) reads.push(committedRecords(partition, from.get(partition.partitionIndex) ?? 0n));
        }
      }
      return reads;
    } catch (error) {
      // A moved leader or a restarted broker: read the metadata again next time.
      this.client.clearMetadata();
      const refused = outOfRangePartitions(error);
      if (refused.length > 0) throw new OffsetOutOfRangeError(topic, refused, { cause: error });
      throw error;
    }
  }

  /** The earliest offsets, or the ends a read_committed reader can reach (the last stable offsets). */
  async offsets(topic: string, partitions: number[], which: 'earliest' | 'end'): Promise<Map<number, bigint>> {
    const result = new Map<number, bigint>();
    if (partitions.length === 0) return result;
    try {
      const offsets = await this.client.listOffsets({
        topics: [topic],
        partitions: { [topic]: partitions },
        timestamp: which === 'earliest' ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST,
        isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      });
      const list = offsets.get(topic) ?? [];
      for (const partition of partitions) {
        const offset = list[partition];
        if (offset === undefined) throw new Error(`no ${which} offset for partition ${partition} of ${topic}`);
        result.set(partition, offset);
      }
      return result;
    } catch (error) {
      this.client.clearMetadata();
      throw error;
    }
  }

  /**
   * Reads one partition from its earliest offset to the end a read_committed reader could reach when
   * this started, handing each record to `apply`; returns the number of records read.
   */
  async readToEnd(topic: string, partition: number, apply: (record: LogRecord) => void, stopped: () => boolean = () => false): Promise<number> {
    let offset = (await this.offsets(topic, [partition], 'earliest')).get(partition) ?? 0n;
    const end = (await this.offsets(topic, [partition], 'end')).get(partition) ?? 0n;
    let count = 0;
    let stalled = 0;
    while (offset < end && !stopped()) {
      const before = offset;
      for (const read of await this.read(topic, new Map([[partition, offset]]))) {
        for (const record of read.records) {
          if (record.offset >= end) continue;
          apply(record);
          count += 1;
        }
        if (read.nextOffset > offset) offset = read.nextOffset;
      }
      stalled = offset > before ? 0 : stalled + 1;
      if (stalled >= logReaderLimits.stalledReadsMax) throw new Error(`reading ${topic} partition ${partition} stopped at offset ${offset}, before its end ${end}`);
    }
    return count;
  }

  async partitionCount(topic: string): Promise<number> {
    const metadata = await this.client.metadata({ topics: [topic], forceUpdate: true });
    const count = metadata.topics.get(topic)?.partitionsCount;
    if (count === undefined) throw new Error(`topic ${topic} does not exist`);
    return count;
  }

  close(): Promise<void> {
    return forceClose(this.client);
  }
}

/**
 * The partitions a fetch was refused with OFFSET_OUT_OF_RANGE. The client throws a ResponseError holding one
 * ProtocolError per failed partition (its `path` points into the parsed response); after retries it wraps
 * every attempt's error in a MultipleErrors, the last one being the fetch's answer.
 */
export function outOfRangePartitions(error: unknown): number[] {
  let last = error;
  while (last instanceof MultipleErrors && !(last instanceof ResponseError)) last = last.errors.at(-1);
  if (!(last instanceof ResponseError)) return [];
  const response = (last as { response?: FetchResponse }).response;
  const partitions: number[] = [];
  for (const inner of last.errors as Array<{ apiId?: unknown; path?: unknown }>) {
    if (inner.apiId !== 'OFFSET_OUT_OF_RANGE' || typeof inner.path !== 'string') continue;
    const match = /^\/responses\/(\d+)\/partitions\/(\d+)$/u.exec(inner.path);
    const partition = match === null ? undefined : response?.responses[Number(match[1])]?.partitions[Number(match[2])]?.partitionIndex;
    if (partition !== undefined) partitions.push(partition);
  }
  return partitions;
}

/**
 * Kafka's read_committed filter: walking the batches in offset order, a producer is inside an aborted
 * transaction from the first offset the broker lists for it until its abort marker.
 */
export function committedRecords(partition: FetchResponsePartition, fetchOffset: bigint): PartitionRead {
  const batches: RecordsBatch[] = partition.records ?? [];
  const aborted = [...partition.abortedTransactions].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  const abortedProducers = new Set<bigint>();
  const records: LogRecord[] = [];
  let nextOffset = fetchOffset;
  for (const batch of batches) {
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    if (lastOffset + 1n > nextOffset) nextOffset = lastOffset + 1n;
    while (aborted.length > 0 && (aborted[0] as { firstOffset: bigint }).firstOffset <= lastOffset) {
      abortedProducers.add((aborted.shift() as { producerId: bigint }).producerId);
    }
    if ((batch.attributes & IS_CONTROL) !== 0) {
      // Control record key: version (int16), then type (int16): 0 abort, 1 commit.
      const key = batch.records[0]?.key;
      if (key !== null && key !== undefined && key.length >= 4 && key.readInt16BE(2) === 0) abortedProducers.delete(batch.producerId);
      continue;
    }
    if ((batch.attributes & IS_TRANSACTIONAL) !== 0 && abortedProducers.has(batch.producerId)) continue;
    for (const record of batch.records) {
      const offset = batch.firstOffset + BigInt(record.offsetDelta);
      if (offset < fetchOffset) continue;
      const headers = new Map<string, string>();
      for (const [name, value] of record.headers) if (name !== null) headers.set(name.toString('utf8'), value?.toString('utf8') ?? '');
      records.push({
        offset,
        key: record.key === null ? undefined : record.key.toString('utf8'),
        value: record.value === null ? undefined : record.value,
        headers,
        timestampMs: Number(batch.firstTimestamp + record.timestampDelta),
      });
    }
  }
  return { partition: partition.partitionIndex, records, nextOffset, lastStableOffset: partition.lastStableOffset };
}
