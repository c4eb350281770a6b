// The Kafka engine's read replica over a scripted log: what it does when the broker refuses its position in the
// events topic, because the events there were deleted before it read them, or because the position is past the end.

import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { CommittedBatch } from '../../src/app/engine.js';
import { allSkus } from '../../src/app/engine.js';
import type { CommandInput } from '../../src/app/ports.js';
import { changelogRecords, nextOffsetKey, noteChangedEntities } from '../../src/adapters/kafka/changelog.js';
import { partitionOfKey } from '../../src/adapters/kafka/clients.js';
import type { KafkaConfig } from '../../src/adapters/kafka/config.js';
import { OffsetOutOfRangeError } from '../../src/adapters/kafka/log-reader.js';
import type { LogRecord, PartitionRead } from '../../src/adapters/kafka/log-reader.js';
import { Replica } from '../../src/adapters/kafka/replica.js';
import type { ReplicaReader } from '../../src/adapters/kafka/replica.js';
import { execute, initialState, toSnapshot } from '../../src/core/index.js';
import type { Command, LedgerState } from '../../src/core/index.js';

const partitions = 2;
/** A tenant on `partition` of the commands topic, and when `widePartition` is given, on that one of a topic of 3. */
const tenantOn = (partition: number, widePartition?: number): string => {
  for (let index = 0; ; index += 1) {
    const name = `tenant-${index}`;
    if (partitionOfKey(name, partitions) === partition && (widePartition === undefined || partitionOfKey(name, 3) === widePartition)) return name;
  }
};
const [first, second] = [tenantOn(0), tenantOn(1)];

/** One topic partition's records and the earliest offset it still holds. */
interface Log { records: LogRecord[]; earliest: bigint }

/** A log the test writes to, read the way the replica reads Kafka: refusing offsets it does not hold. */
class ScriptedReader implements ReplicaReader {
  readonly events: Log[];
  readonly changelog: Array<Array<{ key: string; value: string | null }>>;
  readonly fetched: number[][] = [];

  /** `eventPartitions`: the events topic may have more partitions than the commands topic; processors use the first ones. */
  constructor(private readonly eventPartitions = partitions) {
    this.events = Array.from({ length: eventPartitions }, () => ({ records: [], earliest: 0n }));
    this.changelog = Array.from({ length: eventPartitions }, () => []);
  }

  async partitionCount(): Promise<number> {
    return this.eventPartitions;
  }

  private end(partition: number): bigint {
    const log = this.events[partition] as Log;
    return log.records.length === 0 ? log.earliest : (log.records.at(-1) as LogRecord).offset + 1n;
  }

  async offsets(_topic: string, asked: number[], which: 'earliest' | 'end'): Promise<Map<number, bigint>> {
    return new Map(asked.map((partition) => [partition, which === 'earliest' ? (this.events[partition] as Log).earliest : this.end(partition)]));
  }

  async read(topic: string, from: ReadonlyMap<number, bigint>): Promise<PartitionRead[]> {
    this.fetched.push([...from.keys()]);
    const refused = [...from].filter(([partition, offset]) => offset < (this.events[partition] as Log).earliest || offset > this.end(partition));
    if (refused.length > 0) throw new OffsetOutOfRangeError(topic, refused.map(([partition]) => partition), { cause: new Error('OFFSET_OUT_OF_RANGE') });
    const reads = [...from].map(([partition, offset]) => {
      const records = (this.events[partition] as Log).records.filter((record) => record.offset >= offset);
      return { partition, records, nextOffset: this.end(partition), lastStableOffset: this.end(partition) };
    });
    // A fetch with nothing new waits, as the broker's does.
    if (reads.every((read) => read.records.length === 0)) await sleep(5);
    return reads;
  }

  async readToEnd(_topic: string, partition: number, apply: (record: LogRecord) => void): Promise<number> {
    const records = this.changelog[partition] as Array<{ key: string; value: string | null }>;
    records.forEach(({ key, value }, index) => apply({ offset: BigInt(index), key, value: value === null ? undefined : Buffer.from(value), headers: new Map(), timestampMs: 0 }));
    return records.length;
  }

  async close(): Promise<void> {}
}

/** Decides commands as a processor does: events to the events partition, changed entities to the changelog. */
class Processor {
  readonly state: LedgerState = initialState();
  private readonly nextOffset = Array.from({ length: partitions }, () => 0);

  constructor(private readonly reader: ScriptedReader) {}

  decide(input: CommandInput): void {
    const partition = partitionOfKey(input.tenant, partitions);
    const offset = this.nextOffset[partition] as number;
    this.nextOffset[partition] = offset + 1;
    const command = { timeMs: 1_700_000_000_000 + offset * 1_000, ...input, id: `k${partition}-${offset}` } as Command;
    const execution = execute(this.state, command);
    expect(execution.outcome.rejection).toBeUndefined();
    const log = this.reader.events[partition] as Log;
    for (const event of execution.outcome.events) {
      const at = log.records.length === 0 ? log.earliest : (log.records.at(-1) as LogRecord).offset + 1n;
      log.records.push({ offset: at, key: input.tenant, value: Buffer.from(JSON.stringify(event)), headers: new Map(), timestampMs: command.timeMs });
    }
    const changed = new Set<string>();
    noteChangedEntities(changed, command.tenant, execution);
    (this.reader.changelog[partition] as Array<{ key: string; value: string | null }>).push(
      ...changelogRecords(this.state, changed), { key: nextOffsetKey, value: JSON.stringify({ nextOffset: String(offset + 1) }) },
    );
  }

  /** What retention does: the partition's events before `offset` are gone. */
  deleteBefore(partition: number, offset: bigint): void {
    const log = this.reader.events[partition] as Log;
    log.records = log.records.filter((record) => record.offset >= offset);
    log.earliest = offset;
  }
}

const snapshotOf = (state: LedgerState, tenant: string): unknown => toSnapshot(state).tenants[tenant];

let replica: Replica | undefined;
afterEach(async () => {
  await replica?.stop(1_000);
  replica = undefined;
});

function started(reader: ScriptedReader): { replica: Replica; errors: string[]; batches: CommittedBatch[] } {
  const errors: string[] = [];
  const log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: (message: string) => errors.push(message) };
  const made = new Replica({} as KafkaConfig, 'events', 'changelog', 'node', log, reader);
  replica = made;
  const batches: CommittedBatch[] = [];
  made.subscribe((batch) => batches.push(batch));
  return { replica: made, errors, batches };
}

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

describe('the Kafka read replica', () => {
  it('takes a partition\'s tenants again from the changelog when its next events were deleted before it read them', async () => {
    const reader = new ScriptedReader();
    const processor = new Processor(reader);
    processor.decide({ type: 'adjust_stock', tenant: first, sku: 'A', location: 'default', set: 10 });
    processor.decide({ type: 'adjust_stock', tenant: second, sku: 'Z', location: 'default', set: 3 });
    const { replica: following, errors, batches } = started(reader);
    await following.start();
    expect(snapshotOf(following.state(), first)).toEqual(snapshotOf(processor.state, first));

    // The node is paused; meanwhile the first tenant's partition moves on and its older events are deleted.
    processor.decide({ type: 'reserve', tenant: first, reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 2 }], ttlMs: 600_000 });
    processor.decide({ type: 'adjust_stock', tenant: first, sku: 'B', location: 'default', set: 7 });
    processor.deleteBefore(0, (reader.events[0] as Log).records.at(-1)?.offset as bigint);
    processor.decide({ type: 'adjust_stock', tenant: second, sku: 'Z', location: 'default', delta: 1 });

    await until(() => errors.length > 0 && snapshotOf(following.state(), second) !== undefined
      && JSON.stringify(snapshotOf(following.state(), second)) === JSON.stringify(snapshotOf(processor.state, second)));
    expect(snapshotOf(following.state(), first)).toEqual(snapshotOf(processor.state, first));
    expect(errors).toEqual([expect.stringMatching(/^kafka engine: events partition 0: the events from offset 1 \(the next this node had to read\) to 1 were deleted .* its 1 tenants were taken again from the changelog .* reading goes on from offset 2/)]);
    // Subscribers hear that every SKU of the tenant changed, at a position of the replica's own.
    const told = batches.find((batch) => batch.events.length === 0);
    expect(told).toEqual({ events: [], touched: new Map([[first, new Set([allSkus])]]), position: expect.any(Number) });

    // And it follows what comes after, without applying again what the changelog held.
    processor.decide({ type: 'adjust_stock', tenant: first, sku: 'B', location: 'default', delta: 2 });
    await until(() => JSON.stringify(snapshotOf(following.state(), first)) === JSON.stringify(snapshotOf(processor.state, first)));
  });

  it('takes again only the tenants it read from that partition, when the events topic has more partitions than the commands topic', async () => {
    // On a topic of 3, this tenant would be on partition 0; its commands, and so its events, are on partition 1.
    const elsewhere = tenantOn(1, 0);
    const reader = new ScriptedReader(3);
    const processor = new Processor(reader);
    processor.decide({ type: 'adjust_stock', tenant: first, sku: 'A', location: 'default', set: 10 });
    processor.decide({ type: 'adjust_stock', tenant: elsewhere, sku: 'B', location: 'default', set: 7 });
    const { replica: following, errors } = started(reader);
    await following.start();
    processor.decide({ type: 'adjust_stock', tenant: first, sku: 'A', location: 'default', delta: 1 });
    processor.decide({ type: 'adjust_stock', tenant: first, sku: 'A', location: 'default', delta: 1 });
    processor.deleteBefore(0, (reader.events[0] as Log).records.at(-1)?.offset as bigint);
    await until(() => errors.length > 0);
    await until(() => JSON.stringify(snapshotOf(following.state(), first)) === JSON.stringify(snapshotOf(processor.state, first)));
    expect(snapshotOf(following.state(), elsewhere)).toEqual(snapshotOf(processor.state, elsewhere));
  });

  it('holds a partition whose position is past the end of its log, says so, and reads the others on', async () => {
    const reader = new ScriptedReader();
    const processor = new Processor(reader);
    processor.decide({ type: 'adjust_stock', tenant: first, sku: 'A', location: 'default', set: 10 });
    processor.decide({ type: 'adjust_stock', tenant: second, sku: 'Z', location: 'default', set: 3 });
    const { replica: following, errors } = started(reader);
    await following.start();

    // The second partition's topic was made again: empty, its end behind the replica's position.
    reader.events[1] = { records: [], earliest: 0n };
    await until(() => errors.length > 0);
    expect(errors).toEqual([expect.stringMatching(/^kafka engine: events partition 1: this node's next offset 1 is past the end of the partition \(0\)/)]);
    const heldFrom = reader.fetched.length;
    processor.decide({ type: 'adjust_stock', tenant: first, sku: 'A', location: 'default', delta: 5 });
    await until(() => following.tenant(first)?.skus.get('A')?.locations.get('default')?.onHand === 15);
    expect(reader.fetched.slice(heldFrom).every((asked) => asked.length === 1 && asked[0] === 0)).toBe(true);
    // Its state is left as it was, not taken from an empty log.
    expect(following.tenant(second)?.skus.get('Z')?.locations.get('default')?.onHand).toBe(3);

    // With every partition held there is nothing to fetch: the replica waits instead of asking for nothing in a loop.
    reader.events[0] = { records: [], earliest: 0n };
    await until(() => errors.length === 2);
    await sleep(100);
    expect(reader.fetched.filter((asked) => asked.length === 0)).toEqual([]);
  });
});
