// The Kafka section of the configuration: defaults, the shipped files, and errors that name the key.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KafkaConfigError, kafkaTopicNames, loadKafkaConfig } from '../../src/adapters/kafka/config.js';
import { compareTopic, planAcls, planTopics } from '../../src/adapters/kafka/scaffold.js';

const repository = resolve(import.meta.dirname, '../..');
const directory = mkdtempSync(join(tmpdir(), 'stockline-kafka-config-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function errorOf(document: Record<string, unknown> | string): KafkaConfigError {
  try {
    loadKafkaConfig(document);
  } catch (error) {
    if (error instanceof KafkaConfigError) return error;
    throw error;
  }
  throw new Error('expected the configuration to be refused');
}

function kafka(section: Record<string, unknown>): Record<string, unknown> {
  return { engine: 'kafka', kafka: { brokers: ['127.0.0.1:19092'], ...section } };
}

describe('loadKafkaConfig', () => {
  it('fills every default from brokers alone, without changing the given document', () => {
    const document = kafka({});
    const config = loadKafkaConfig(document);
    expect(config.topics).toEqual({ prefix: 'stockline', partitions: 12, replicationFactor: 3, retentionMs: 604_800_000, minInsyncReplicas: 2 });
    expect(config.producer).toMatchObject({ acks: 'all', idempotent: true });
    expect(config.consumer.isolationLevel).toBe('read_committed');
    expect(config.timeouts.adminTimeoutMs).toBeGreaterThan(0);
    expect(document).toEqual(kafka({}));
  });

  it('defaults min.insync.replicas to the replication factor when that is 1', () => {
    expect(loadKafkaConfig(kafka({ topics: { replicationFactor: 1 } })).topics.minInsyncReplicas).toBe(1);
  });

  it('reads the shipped production and development files', () => {
    const production = loadKafkaConfig(join(repository, 'config/kafka-production.yaml'));
    expect(production.topics).toMatchObject({ replicationFactor: 3, minInsyncReplicas: 2 });
    expect(production.producer).toMatchObject({ acks: 'all', idempotent: true });
    expect(['zstd', 'lz4']).toContain(production.producer.compression);
    expect(production.consumer.isolationLevel).toBe('read_committed');

    const development = loadKafkaConfig(join(repository, 'config/kafka-dev.yaml'));
    expect(development.brokers).toEqual(['127.0.0.1:19092']);
    expect(development.topics).toMatchObject({ replicationFactor: 1, minInsyncReplicas: 1 });
  });

  it.each([
    [{ topics: { replicationFactor: 0 } }, 'kafka.topics.replicationFactor: must be >= 1'],
    [{ topics: { partitions: 20_000 } }, 'kafka.topics.partitions: must be <= 10000'],
    [{ topics: { partitions: '3' } }, 'kafka.topics.partitions: must be integer'],
    [{ topics: { partitons: 3 } }, 'kafka.topics.partitons: is not a known key'],
    [{ topics: { prefix: 'has space' } }, 'kafka.topics.prefix: must be letters, digits and ._-'],
    [{ brokers: [] }, 'kafka.brokers: must NOT have fewer than 1 items'],
    [{ brokers: ['127.0.0.1:19092', 'kafka:99999'] }, 'kafka.brokers[1]: must be host:port'],
    [{ producer: { acks: 1 } }, 'kafka.producer.acks: must be one of "all"'],
    [{ producer: { idempotent: false } }, 'kafka.producer.idempotent: must be true'],
    [{ producer: { compression: 'brotli' } }, 'kafka.producer.compression: must be one of "none", "gzip", "snappy", "lz4", "zstd"'],
    [{ consumer: { isolationLevel: 'read_uncommitted' } }, 'kafka.consumer.isolationLevel: must be one of "read_committed"'],
    [{ principals: { api: 'stockline-api' } }, 'kafka.principals.api: must be a principal such as User:stockline-api'],
    [{ alerts: { reconciliationLagSeconds: 5 } }, "kafka.alerts: is not a setting (it never changed anything): the reconciliation lag alert's threshold is in deploy/prometheus/alerts.yaml (StocklineReconciliationLagHigh); remove it from this file"],
    [{ timeouts: { adminTimeoutMs: 10 } }, 'kafka.timeouts.adminTimeoutMs: must be >= 1000'],
    [{ stateStore: {} , extra: true }, 'kafka.extra: is not a known key'],
    [{ topics: { replicationFactor: 1, minInsyncReplicas: 2 } }, 'kafka.topics.minInsyncReplicas: must be <= kafka.topics.replicationFactor (1)'],
    [{ producer: { requestTimeoutMs: 60_000, deliveryTimeoutMs: 30_000 } }, 'kafka.producer.deliveryTimeoutMs: must be >= kafka.producer.requestTimeoutMs (60000)'],
  ])('refuses %j naming the key', (section, message) => {
    expect(errorOf(kafka(section)).message).toContain(message);
  });

  it('names a missing brokers list and a missing kafka section', () => {
    expect(errorOf({ engine: 'kafka', kafka: {} }).message).toBe('kafka.brokers: is required');
    expect(errorOf({ engine: 'kafka' }).message).toBe('kafka: is required');
  });

  it('lists every problem at once, one per line', () => {
    const error = errorOf(kafka({ topics: { replicationFactor: 0, partitions: 0 } }));
    expect(error.issues.map((issue) => issue.path).sort()).toEqual(['kafka.topics.partitions', 'kafka.topics.replicationFactor']);
    expect(error.message.split('\n')).toHaveLength(2);
  });

  it('ignores the other top-level keys of the file', () => {
    expect(loadKafkaConfig({ ...kafka({}), http: { port: 8080 }, channels: [] }).brokers).toEqual(['127.0.0.1:19092']);
  });

  it('names the file and the key for a YAML file, and reports bad YAML', () => {
    const file = join(directory, 'bad.yaml');
    writeFileSync(file, 'engine: kafka\nkafka:\n  brokers: [127.0.0.1:19092]\n  producer:\n    compression: brotli\n');
    expect(errorOf(file).message).toBe(`${file}: kafka.producer.compression: must be one of "none", "gzip", "snappy", "lz4", "zstd"`);
    const broken = join(directory, 'broken.yaml');
    writeFileSync(broken, 'kafka:\n  brokers: [\n');
    expect(errorOf(broken).message).toMatch(/is not valid YAML/);
    const duplicated = join(directory, 'duplicated.yaml');
    writeFileSync(duplicated, 'kafka:\n  brokers: [a:1]\n  brokers: [b:2]\n');
    expect(errorOf(duplicated).message).toMatch(/is not valid YAML/);
    expect(errorOf(join(directory, 'missing.yaml')).message).toMatch(/cannot be read/);
  });
});

describe('the scaffolding plan', () => {
  const config = loadKafkaConfig(kafka({ topics: { prefix: 'shop', partitions: 6, replicationFactor: 3, minInsyncReplicas: 2, retentionMs: -1 } }));

  it('has six topics, two of them compacted, all with the configured settings (replies kept an hour at most)', () => {
    const names = kafkaTopicNames(config);
    expect(planTopics(config)).toEqual([
      { name: names.commands, partitions: 6, replicationFactor: 3, configs: { 'cleanup.policy': 'delete', 'retention.ms': '-1', 'min.insync.replicas': '2' } },
      { name: names.events, partitions: 6, replicationFactor: 3, configs: { 'cleanup.policy': 'delete', 'retention.ms': '-1', 'min.insync.replicas': '2' } },
      { name: 'shop.changelog', partitions: 6, replicationFactor: 3, configs: { 'cleanup.policy': 'compact', 'retention.ms': '-1', 'min.insync.replicas': '2' } },
      { name: 'shop.dead-letter', partitions: 6, replicationFactor: 3, configs: { 'cleanup.policy': 'delete', 'retention.ms': '-1', 'min.insync.replicas': '2' } },
      { name: 'shop.channel-state', partitions: 6, replicationFactor: 3, configs: { 'cleanup.policy': 'compact', 'retention.ms': '-1', 'min.insync.replicas': '2' } },
      { name: 'shop.replies', partitions: 6, replicationFactor: 3, configs: { 'cleanup.policy': 'delete', 'retention.ms': '3600000', 'min.insync.replicas': '2' } },
    ]);
  });

  it('grants the api and the connector no read of commands and no write of events', () => {
    const grants = planAcls(config);
    const of = (principal: string): string[] => grants.filter((grant) => grant.principal === principal).map((grant) => `${grant.operation} ${grant.resourceType} ${grant.resourceName}`);
    expect(of(config.principals.api).sort()).toEqual(['describe topic shop.commands', 'describe topic shop.events', 'describe topic shop.replies', 'read topic shop.events', 'read topic shop.replies', 'write topic shop.commands']);
    expect(of(config.principals.connector).sort()).toEqual(['describe topic shop.channel-state', 'describe topic shop.commands', 'read topic shop.channel-state', 'write topic shop.commands']);
    expect(of(config.principals.processor)).toContain('write transactional-id stockline-processor');
    expect(of(config.principals.processor)).not.toContain('write topic shop.commands');
  });

  it('compares an existing topic: drift is a change, fewer partitions are added, the rest is refused', () => {
    const [commands] = planTopics(config);
    if (commands === undefined) throw new Error('no plan');
    const configs = { 'cleanup.policy': 'delete', 'retention.ms': '-1', 'min.insync.replicas': '2' };
    expect(compareTopic(commands, { partitions: 6, replicaCounts: [3, 3, 3, 3, 3, 3], configs })).toEqual({ changes: [] });
    expect(compareTopic(commands, { partitions: 4, replicaCounts: [3, 3, 3, 3], configs: { ...configs, 'retention.ms': '1000', 'min.insync.replicas': null } })).toEqual({
      changes: [
        { name: 'partitions', from: '4', to: '6' },
        { name: 'retention.ms', from: '1000', to: '-1' },
        { name: 'min.insync.replicas', from: null, to: '2' },
      ],
    });
    expect(compareTopic(commands, { partitions: 8, replicaCounts: Array(8).fill(3) as number[], configs }).refusal).toMatch(/has 8 partitions on the broker, 6 configured/);
    expect(compareTopic(commands, { partitions: 6, replicaCounts: [2, 2, 2, 2, 2, 2], configs }).refusal).toMatch(/replication factor is 2 on the broker, 3 configured/);
    expect(compareTopic(commands, { partitions: 2, replicaCounts: [3, 2], configs }).refusal).toMatch(/replication factor is 3\/2 on the broker/);
  });
});
