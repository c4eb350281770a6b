// Topic scaffolding against a real broker: creation, a no-op re-run, drift repaired, and refusals.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Admin, AclOperations, AclPermissionTypes, ConfigResourceTypes, IncrementalAlterConfigOperationTypes,
  ResourcePatternTypes, ResourceTypes,
} from '@platformatic/kafka';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaConfig } from '../../../src/adapters/kafka/config.js';
import { kafkaTopicNames, loadKafkaConfig } from '../../../src/adapters/kafka/config.js';
import { managedTopicConfigs, scaffoldTopics } from '../../../src/adapters/kafka/scaffold.js';
import type { ScaffoldReport, TopicOutcome } from '../../../src/adapters/kafka/scaffold.js';
import { topicsCommand } from '../../../src/cli/topics.js';
import { ensureKafkaBroker, kafkaTestLimits, kafkaTool, uniqueTopicPrefix, within } from '../../support/kafka-broker.js';

const prefix = uniqueTopicPrefix('scaffold');
const principal = (role: string): string => `User:${prefix}-${role}`;
let bootstrap: string;
let admin: Admin;
let directory: string;

function kafkaSection(overrides: { partitions?: number; replicationFactor?: number } = {}): Record<string, unknown> {
  return {
    brokers: [bootstrap],
    clientId: 'stockline-test',
    topics: { prefix, partitions: overrides.partitions ?? 2, replicationFactor: overrides.replicationFactor ?? 1, minInsyncReplicas: 1, retentionMs: 3_600_000 },
    consumer: { groupId: `${prefix}-group` },
    processing: { transactionalIdPrefix: `${prefix}-tx` },
    principals: { processor: principal('processor'), api: principal('api'), connector: principal('connector') },
    timeouts: { connectTimeoutMs: 5_000, adminTimeoutMs: 15_000, shutdownTimeoutMs: 5_000 },
  };
}

function config(overrides: { partitions?: number; replicationFactor?: number } = {}): KafkaConfig {
  return loadKafkaConfig({ engine: 'kafka', kafka: kafkaSection(overrides) });
}

function statuses(report: ScaffoldReport): Record<string, TopicOutcome['status']> {
  return Object.fromEntries(report.topics.map((outcome) => [outcome.topic, outcome.status]));
}

async function topicConfigs(topic: string): Promise<Record<string, string | null | undefined>> {
  const [described] = await within('describe configs', admin.describeConfigs({
    resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: [...managedTopicConfigs] }],
  }));
  return Object.fromEntries((described?.configs ?? []).map((entry) => [entry.name, entry.value]));
}

async function partitionCount(topic: string): Promise<{ partitions: number; replicas: number[] }> {
  const metadata = await within('metadata', admin.metadata({ topics: [topic], forceUpdate: true }));
  const described = metadata.topics.get(topic);
  if (described === undefined) throw new Error(`no metadata for ${topic}`);
  return { partitions: described.partitionsCount, replicas: described.partitions.map((partition) => partition.replicas.length) };
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await topicsCommand(args, { stdout: (text) => { stdout += text; }, stderr: (text) => { stderr += text; } });
  return { code, stdout, stderr };
}

function writeConfigFile(name: string, overrides: { partitions?: number; replicationFactor?: number } = {}): string {
  const file = join(directory, name);
  writeFileSync(file, stringify({ engine: 'kafka', kafka: kafkaSection(overrides) }));
  return file;
}

beforeAll(async () => {
  ({ bootstrap } = await ensureKafkaBroker());
  admin = new Admin({ clientId: 'stockline-test-admin', bootstrapBrokers: [bootstrap], timeout: 10_000, retries: 2 });
  directory = mkdtempSync(join(tmpdir(), 'stockline-scaffold-'));
}, kafkaTestLimits.upTimeoutMs);

afterAll(async () => {
  rmSync(directory, { recursive: true, force: true });
  if (admin === undefined) return;
  const topics = Object.values(kafkaTopicNames({ topics: { prefix } } as KafkaConfig));
  await within('delete topics', admin.deleteTopics({ topics })).catch(() => undefined);
  await within('delete ACLs', admin.deleteAcls({
    filters: ['processor', 'api', 'connector'].map((role) => ({
      resourceType: ResourceTypes.ANY, resourceName: null, resourcePatternType: ResourcePatternTypes.ANY,
      principal: principal(role), host: null, operation: AclOperations.ANY, permissionType: AclPermissionTypes.ANY,
    })),
  })).catch(() => undefined);
  await within('close admin', admin.close());
});

// The cases build on each other, in order, on one set of topics.
describe.sequential('topics scaffold', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  const names = (): ReturnType<typeof kafkaTopicNames> => kafkaTopicNames({ topics: { prefix } } as KafkaConfig);

  it('a dry run on an empty broker plans every topic and changes nothing', async () => {
    const report = await scaffoldTopics(config(), { dryRun: true });
    expect(report.dryRun).toBe(true);
    expect(Object.values(statuses(report))).toEqual(['created', 'created', 'created', 'created', 'created', 'created']);
    const existing = await within('list topics', admin.listTopics());
    expect(existing.filter((topic) => topic.startsWith(prefix))).toEqual([]);
  });

  it('creates the six topics with the configured settings, and the ACLs', async () => {
    const lines: string[] = [];
    const report = await scaffoldTopics(config(), { log: (line) => lines.push(line) });
    expect(report.ok).toBe(true);
    expect(statuses(report)).toEqual({
      [`${prefix}.commands`]: 'created', [`${prefix}.events`]: 'created', [`${prefix}.changelog`]: 'created',
      [`${prefix}.dead-letter`]: 'created', [`${prefix}.channel-state`]: 'created', [`${prefix}.replies`]: 'created',
    });
    expect(lines).toHaveLength(6);

    const topic = names();
    for (const name of Object.values(topic)) {
      expect(await partitionCount(name)).toEqual({ partitions: 2, replicas: [1, 1] });
      const configs = await topicConfigs(name);
      expect(configs['retention.ms']).toBe('3600000');
      expect(configs['min.insync.replicas']).toBe('1');
      const compacted = name === topic.changelog || name === topic.channelState;
      expect(configs['cleanup.policy']).toBe(compacted ? 'compact' : 'delete');
    }

    const acls = await within('describe ACLs', admin.describeAcls({
      filter: {
        resourceType: ResourceTypes.ANY, resourceName: null, resourcePatternType: ResourcePatternTypes.ANY,
        principal: principal('api'), host: null, operation: AclOperations.ANY, permissionType: AclPermissionTypes.ANY,
      },
    }));
    const granted = acls.flatMap((resource) => resource.acls.map((acl) => `${resource.resourceName} ${acl.operation}`)).sort();
    expect(granted).toEqual([
      `${topic.commands} ${AclOperations.WRITE}`, `${topic.commands} ${AclOperations.DESCRIBE}`,
      `${topic.events} ${AclOperations.READ}`, `${topic.events} ${AclOperations.DESCRIBE}`,
      `${prefix}.replies ${AclOperations.READ}`, `${prefix}.replies ${AclOperations.DESCRIBE}`,
    ].sort());
    expect(report.aclsCreated.length).toBeGreaterThan(0);

    // Kafka's own tool sees them too, so the broker's authorizer holds them.
    const listed = await kafkaTool(['acls', '--bootstrap-server', bootstrap, '--list', '--principal', principal('processor')]);
    expect(listed.stdout).toContain(`resourceType=TRANSACTIONAL_ID, name=${prefix}-tx, patternType=PREFIXED`);
    expect(listed.stdout).toContain(`resourceType=GROUP, name=${prefix}-group, patternType=LITERAL`);
  });

  it('changes nothing when run again', async () => {
    const report = await scaffoldTopics(config());
    expect(Object.values(statuses(report))).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged']);
    expect(report.aclsCreated).toEqual([]);
    expect(report.aclsPresent).toBeGreaterThan(0);
    expect(report.ok).toBe(true);
  });

  it('reports drifted settings, changes nothing on a dry run, and sets them back', async () => {
    const topic = names();
    // One drift through Kafka's own tool, one through the admin API.
    await kafkaTool(['configs', '--bootstrap-server', bootstrap, '--alter', '--entity-type', 'topics', '--entity-name', topic.events, '--add-config', 'retention.ms=120000']);
    await within('alter config', admin.incrementalAlterConfigs({
      resources: [{
        resourceType: ConfigResourceTypes.TOPIC, resourceName: topic.changelog,
        configs: [{ name: 'cleanup.policy', configOperation: IncrementalAlterConfigOperationTypes.SET, value: 'delete' }],
      }],
    }));
    await expect.poll(async () => (await topicConfigs(topic.changelog))['cleanup.policy'], { timeout: 10_000 }).toBe('delete');
    await expect.poll(async () => (await topicConfigs(topic.events))['retention.ms'], { timeout: 10_000 }).toBe('120000');

    const planned = await scaffoldTopics(config(), { dryRun: true });
    expect(planned.topics.find((outcome) => outcome.topic === topic.events)).toEqual({
      topic: topic.events, status: 'altered', settings: [{ name: 'retention.ms', from: '120000', to: '3600000' }], warnings: [],
    });
    expect((await topicConfigs(topic.events))['retention.ms']).toBe('120000');

    const { code, stdout } = await cli(['scaffold', '--config', writeConfigFile('drift.yaml')]);
    expect(code).toBe(0);
    expect(stdout).toContain(`${topic.events}: altered retention.ms 120000 -> 3600000`);
    expect(stdout).toContain(`${topic.changelog}: altered cleanup.policy delete -> compact`);
    expect(stdout).toContain(`${topic.commands}: unchanged`);
    expect((await topicConfigs(topic.events))['retention.ms']).toBe('3600000');
    expect((await topicConfigs(topic.changelog))['cleanup.policy']).toBe('compact');

    const again = await scaffoldTopics(config());
    expect(Object.values(statuses(again))).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged']);
  });

  it('adds partitions when more are configured than the broker has, and says so', async () => {
    const report = await scaffoldTopics(config({ partitions: 3 }));
    expect(report.ok).toBe(true);
    for (const outcome of report.topics) {
      expect(outcome).toMatchObject({ status: 'altered', settings: [{ name: 'partitions', from: '2', to: '3' }] });
      expect((outcome as { warnings: string[] }).warnings[0]).toMatch(/partitions move keys/);
      expect((await partitionCount(outcome.topic)).partitions).toBe(3);
    }
  });

  it('refuses when fewer partitions are configured than the broker has, and exits 1', async () => {
    const topic = names();
    const report = await scaffoldTopics(config({ partitions: 2 }));
    expect(report.ok).toBe(false);
    for (const outcome of report.topics) {
      expect(outcome.status).toBe('refused');
      expect((outcome as { reason: string }).reason).toMatch(/has 3 partitions on the broker, 2 configured: partitions cannot be removed/);
    }
    expect((await partitionCount(topic.commands)).partitions).toBe(3);

    const { code, stdout, stderr } = await cli(['scaffold', '--config', writeConfigFile('fewer.yaml', { partitions: 2 })]);
    expect(code).toBe(1);
    expect(stdout).toContain(`${topic.commands}: refused: has 3 partitions on the broker, 2 configured`);
    expect(stderr).toMatch(/refused/);
  });

  it('refuses another replication factor and leaves the topic alone', async () => {
    const topic = names();
    await within('alter config', admin.incrementalAlterConfigs({
      resources: [{
        resourceType: ConfigResourceTypes.TOPIC, resourceName: topic.deadLetter,
        configs: [{ name: 'retention.ms', configOperation: IncrementalAlterConfigOperationTypes.SET, value: '600000' }],
      }],
    }));
    await expect.poll(async () => (await topicConfigs(topic.deadLetter))['retention.ms'], { timeout: 10_000 }).toBe('600000');
    const report = await scaffoldTopics(config({ partitions: 3, replicationFactor: 2 }));
    expect(report.ok).toBe(false);
    expect(report.topics.find((outcome) => outcome.topic === topic.deadLetter)).toEqual({
      topic: topic.deadLetter, status: 'refused',
      reason: expect.stringMatching(/replication factor is 1 on the broker, 2 configured/) as unknown as string,
    });
    expect((await topicConfigs(topic.deadLetter))['retention.ms']).toBe('600000');
  });

  it('refuses to create a topic the cluster cannot hold, with the broker\'s reason', async () => {
    const report = await scaffoldTopics(loadKafkaConfig({ kafka: { ...kafkaSection({ replicationFactor: 3 }), topics: { prefix: `${prefix}-rf3`, partitions: 1, replicationFactor: 3, minInsyncReplicas: 1 } } }));
    expect(report.ok).toBe(false);
    expect(report.topics[0]).toMatchObject({ status: 'refused', reason: expect.stringMatching(/INVALID_REPLICATION_FACTOR/) as unknown as string });
  });
});

describe('stockline topics usage', () => {
  it('exits 2 on bad usage and on an invalid or empty configuration, naming the key', async () => {
    expect((await cli([])).code).toBe(2);
    expect((await cli(['scaffold', '--bogus'])).code).toBe(2);
    const file = join(directory, 'bad.yaml');
    writeFileSync(file, 'engine: kafka\nkafka:\n  brokers: [127.0.0.1:1]\n  topics:\n    replicationFactor: 0\n');
    const result = await cli(['scaffold', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('kafka.topics.replicationFactor: must be >= 1');
    const empty = join(directory, 'empty.yaml');
    writeFileSync(empty, '');
    expect((await cli(['scaffold', '--config', empty])).code).toBe(2);
  });
});
