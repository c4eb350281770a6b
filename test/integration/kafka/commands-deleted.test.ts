// Commands deleted before they were decided (retention, or an operator's delete-records), against the real
// development broker: the partition moves on to the earliest offset left, says so and counts the loss once,
// and the node's other partitions never stop. A position past the end of the partition is never moved. And how
// an out-of-range fetch is told from other failures (no broker needed for that part).

import { MultipleErrors, NetworkError, ResponseError } from '@platformatic/kafka';
import { afterAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/app/metrics.js';
import type { CommandInput } from '../../../src/app/ports.js';
import { nextOffsetKey } from '../../../src/adapters/kafka/changelog.js';
import { closeQuietly, engineTopicNames, forceClose, openProducer, partitionOfKey, silentLog } from '../../../src/adapters/kafka/clients.js';
import { encodeJson } from '../../../src/adapters/kafka/codec.js';
import type { KafkaConfig } from '../../../src/adapters/kafka/config.js';
import { KafkaEngine } from '../../../src/adapters/kafka/engine.js';
import { LogReader, outOfRangePartitions } from '../../../src/adapters/kafka/log-reader.js';
import { deleteRecordsBefore, ensureKafkaBroker, kafkaTestLimits, uniqueTopicPrefix, until, within } from '../../support/kafka-broker.js';
import { deleteTestTopics, kafkaTestConfig } from '../../support/kafka-node.js';

const prefixes: string[] = [];
let bootstrap: string | undefined;

type StartOptions = Parameters<typeof KafkaEngine.start>[0];

/** What a node logged, by level, and what it reported lost. */
interface Watch {
  lines: string[];
  lost: Array<{ partition: number; count: number }>;
  options: Partial<StartOptions>;
}

function watch(metrics?: Metrics): Watch {
  const lines: string[] = [];
  const lost: Array<{ partition: number; count: number }> = [];
  const line = (level: string) => (message: string): void => { lines.push(`${level} ${message}`); };
  return {
    lines, lost,
    options: {
      log: { debug: () => undefined, info: line('info'), warn: line('warn'), error: line('error') },
      onCommandsLost: (partition, count) => {
        lost.push({ partition, count });
        metrics?.kafkaCommandsLost(partition, count);
      },
    },
  };
}

async function configFor(name: string): Promise<KafkaConfig> {
  ({ bootstrap } = await ensureKafkaBroker());
  const prefix = uniqueTopicPrefix(name);
  prefixes.push(prefix);
  return kafkaTestConfig({ bootstrap, prefix });
}

function startEngine(config: KafkaConfig, nodeId: string, options: Partial<StartOptions> = {}): Promise<KafkaEngine> {
  // No expiry ticks: the only records on the commands topic are the ones this test writes.
  return KafkaEngine.start({ config, nodeId, startTimeoutMs: 60_000, submitTimeoutMs: 10_000, expiryIntervalMs: 0, ...options });
}

/** Two tenants on two different commands partitions. */
function twoTenants(config: KafkaConfig, name: string): { gone: string; other: string; partition: number } {
  const partitions = config.topics.partitions;
  const gone = `${name}-gone`;
  const partition = partitionOfKey(gone, partitions);
  const other = Array.from({ length: 20 }, (_, index) => `${name}-other-${index}`).find((tenant) => partitionOfKey(tenant, partitions) !== partition) as string;
  return { gone, other, partition };
}

/** Writes records to a topic partition with a plain producer, as any node or tool may. */
async function write(config: KafkaConfig, messages: Array<{ topic: string; partition: number; key: string; value: string }>): Promise<void> {
  const producer = openProducer(config, 'test-writer');
  try {
    await within('write records', producer.send({ messages }));
  } finally {
    await closeQuietly('close the test writer', 5_000, () => forceClose(producer), silentLog);
  }
}

async function offsetOf(config: KafkaConfig, topic: string, partition: number, which: 'earliest' | 'end'): Promise<bigint> {
  const reader = new LogReader(config, 'test-offsets', 100);
  try {
    return (await within('list offsets', reader.offsets(topic, [partition], which))).get(partition) as bigint;
  } finally {
    await reader.close();
  }
}

const adjust = (tenant: string, delta: number): CommandInput => ({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta });
const onHand = (engine: KafkaEngine, tenant: string): number | undefined => engine.tenant(tenant)?.skus.get('A')?.locations.get('default')?.onHand;

afterAll(async () => {
  if (bootstrap !== undefined) await Promise.all(prefixes.map((prefix) => deleteTestTopics(bootstrap as string, prefix)));
});

describe('a commands partition whose next command was deleted before it was decided', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('moves on to the earliest offset left, logs and counts the loss once, and the other partitions go on', async () => {
    const config = await configFor('cmdgone');
    const topics = engineTopicNames(config);
    const { gone, other, partition } = twoTenants(config, 'cmdgone');

    // A node decides a command of each tenant, so both partitions have a position in the changelog, and stops.
    const first = await startEngine(config, 'cmdgone-first');
    try {
      await first.submit(adjust(gone, 10));
      await first.submit(adjust(other, 10));
    } finally {
      await first.close();
    }

    // While no node runs, five commands for `gone` reach the topic (their senders time out), and the first three are deleted.
    const position = await offsetOf(config, topics.commands, partition, 'end');
    await write(config, Array.from({ length: 5 }, () => ({ topic: topics.commands, partition, key: gone, value: encodeJson({ input: adjust(gone, 1) }) })));
    await deleteRecordsBefore(bootstrap as string, topics.commands, partition, position + 3n);
    expect(await offsetOf(config, topics.commands, partition, 'earliest')).toBe(position + 3n);

    const metrics = new Metrics(Date.now, { processMetrics: false });
    const second = watch(metrics);
    const engine = await startEngine(config, 'cmdgone-second', second.options);
    try {
      const log = (): string => second.lines.join('\n');
      // The other partition is decided as ever.
      const answer = await engine.submit(adjust(other, 1)).catch((error: unknown) => {
        throw new Error(`the other partition was not decided: ${String(error)}\n${log()}`);
      });
      expect(answer.outcome.rejection).toBeUndefined();
      expect(onHand(engine, other)).toBe(11);
      // The partition went on from the earliest offset: the two commands left are decided once, and new ones after them.
      expect((await engine.submit(adjust(gone, 100))).outcome.rejection, log()).toBeUndefined();
      expect(onHand(engine, gone)).toBe(10 + 2 + 100);
      expect(second.lost).toEqual([{ partition, count: 3 }]);
      const loud = second.lines.filter((line) => line.startsWith('error ') && line.includes(`partition ${partition}`));
      expect(loud, log()).toHaveLength(1);
      expect(loud[0]).toContain(`offset ${position}`);
      expect(loud[0]).toContain(`earliest offset ${position + 3n}`);
      expect(loud[0]).toContain('3 command records lost undecided');
      expect(second.lines.filter((line) => line.includes('fetching commands failed')), 'no fetch retried for ever').toEqual([]);
      const metric = await metrics.registry.getSingleMetricAsString('stockline_kafka_commands_lost_total');
      expect(metric).toContain(`stockline_kafka_commands_lost_total{partition="${partition}"} 3`);
      const lags = await engine.consumerLag();
      expect(lags.find((lag) => lag.topic === topics.commands && lag.partition === partition)?.lag, 'the group\'s offset moved too').toBe(0);
    } finally {
      await engine.close();
    }

    // The move was recorded with the partition's position: the next owner neither counts the loss again nor decides anything twice.
    const third = watch();
    const after = await startEngine(config, 'cmdgone-third', third.options);
    try {
      expect((await after.submit(adjust(gone, 1000))).outcome.rejection).toBeUndefined();
      expect(onHand(after, gone)).toBe(10 + 2 + 100 + 1000);
      expect(third.lost).toEqual([]);
      expect(third.lines.filter((line) => line.startsWith('error '))).toEqual([]);
    } finally {
      await after.close();
    }
  });
});

describe('a commands partition whose position is past the end of the topic', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('is not moved, says so, and the other partitions go on', async () => {
    const config = await configFor('cmdahead');
    const topics = engineTopicNames(config);
    const { gone, other, partition } = twoTenants(config, 'cmdahead');
    // The changelog says the partition has decided far more than the topic holds (a commands topic deleted and made again).
    const end = await (async () => {
      const first = await startEngine(config, 'cmdahead-first');
      try {
        await first.submit(adjust(gone, 10));
      } finally {
        await first.close();
      }
      return offsetOf(config, topics.commands, partition, 'end');
    })();
    await write(config, [{ topic: topics.changelog, partition, key: nextOffsetKey, value: encodeJson({ nextOffset: String(end + 1_000n) }) }]);

    const second = watch();
    const engine = await startEngine(config, 'cmdahead-second', { ...second.options, submitTimeoutMs: 3_000 });
    try {
      const log = (): string => second.lines.join('\n');
      const answer = await engine.submit(adjust(other, 1)).catch((error: unknown) => {
        throw new Error(`the other partition was not decided: ${String(error)}\n${log()}`);
      });
      expect(answer.outcome.rejection).toBeUndefined();
      await until('the position is reported past the end', () => second.lines.some((line) => line.startsWith('error ') && line.includes(`partition ${partition}`)));
      const loud = second.lines.find((line) => line.startsWith('error ') && line.includes(`partition ${partition}`)) as string;
      expect(loud).toContain(`offset ${end + 1_000n}`);
      expect(loud).toContain('past the end');
      // Nothing is skipped: the partition waits for an operator.
      await expect(engine.submit(adjust(gone, 1))).rejects.toMatchObject({ code: 'KAFKA_TIMEOUT' });
      expect(second.lost).toEqual([]);
      expect(onHand(engine, gone)).toBe(10);
    } finally {
      await engine.close();
    }
  });
});

describe('an out-of-range fetch, as the client reports it', () => {
  // What the client throws: one error per failed partition, its path pointing into the parsed Fetch response.
  const response = { responses: [{ partitions: [{ partitionIndex: 4 }, { partitionIndex: 7 }] }] };
  const fetchApi = 1;

  it('names the partitions refused with OFFSET_OUT_OF_RANGE, and only those', () => {
    const mixed = new ResponseError(fetchApi, 17, { '/responses/0/partitions/0': [6, null], '/responses/0/partitions/1': [1, null] }, response);
    expect(outOfRangePartitions(mixed)).toEqual([7]);
    // After the client's retries, the last attempt's error is the answer.
    expect(outOfRangePartitions(new MultipleErrors('fetch failed 2 times.', [new NetworkError('connection reset'), mixed]))).toEqual([7]);
  });

  it('names none for any other failure, which the processor retries with back-off', () => {
    expect(outOfRangePartitions(new ResponseError(fetchApi, 17, { '/responses/0/partitions/1': [6, null] }, response))).toEqual([]);
    expect(outOfRangePartitions(new ResponseError(fetchApi, 17, { '': [1, null] }, response))).toEqual([]);
    expect(outOfRangePartitions(new MultipleErrors('fetch failed 2 times.', [new ResponseError(fetchApi, 17, { '/responses/0/partitions/1': [1, null] }, response), new NetworkError('connection reset')]))).toEqual([]);
    expect(outOfRangePartitions(new Error('no metadata for topic t'))).toEqual([]);
  });
});
