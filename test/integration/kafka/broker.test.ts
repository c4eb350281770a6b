// The development broker speaks with both Kafka's own tools and @platformatic/kafka, in both
// directions, including transactions read with read_committed, while ACLs are enforced around the
// super user the unauthenticated listener runs as.

import {
  AclOperations, AclPermissionTypes, Admin, Consumer, FetchIsolationLevels, ProduceAcks, Producer, ResourcePatternTypes,
  ResourceTypes, stringDeserializers, stringSerializers,
} from '@platformatic/kafka';
import type { Message } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureKafkaBroker, kafkaTestLimits, kafkaTool, uniqueTopicPrefix, within } from '../../support/kafka-broker.js';

const prefix = uniqueTopicPrefix('broker');
let bootstrap: string;
let admin: Admin;
const created: string[] = [];

async function createTopic(suffix: string): Promise<string> {
  const topic = `${prefix}.${suffix}`;
  await within('create topic', admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 }));
  created.push(topic);
  return topic;
}

function producer(options: { transactionalId?: string } = {}): Producer<string, string, string, string> {
  return new Producer({
    clientId: `${prefix}-producer`,
    bootstrapBrokers: [bootstrap],
    serializers: stringSerializers,
    idempotent: true,
    acks: ProduceAcks.ALL,
    retries: 3,
    timeout: 10_000,
    connectTimeout: 5_000,
    ...options,
  });
}

/** Reads `count` records from the start of `topic` with a consumer group of its own. */
async function consumeFromStart(topic: string, count: number): Promise<Array<{ key: string; value: string }>> {
  const consumer = new Consumer({
    groupId: `${topic}-reader`,
    clientId: `${prefix}-consumer`,
    bootstrapBrokers: [bootstrap],
    deserializers: stringDeserializers,
    isolationLevel: FetchIsolationLevels.READ_COMMITTED,
    maxWaitTime: 200,
    timeout: 10_000,
    connectTimeout: 5_000,
  });
  try {
    const stream = await within('consume', consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false, sessionTimeout: 10_000, heartbeatInterval: 500 }));
    const records: Array<{ key: string; value: string }> = [];
    await within('read records', (async () => {
      for await (const message of stream as AsyncIterable<Message<string, string, string, string>>) {
        records.push({ key: message.key, value: message.value });
        if (records.length >= count) break;
      }
    })());
    await within('close stream', stream.close());
    return records;
  } finally {
    // Forced: leave the group at once rather than wait for in-flight fetches.
    await within('close consumer', new Promise<void>((done, fail) => consumer.close(true, (error) => (error ? fail(error) : done()))));
  }
}

beforeAll(async () => {
  ({ bootstrap } = await ensureKafkaBroker());
  admin = new Admin({ clientId: `${prefix}-admin`, bootstrapBrokers: [bootstrap], timeout: 10_000, retries: 2 });
}, kafkaTestLimits.upTimeoutMs);

afterAll(async () => {
  if (admin === undefined) return;
  if (created.length > 0) await within('delete topics', admin.deleteTopics({ topics: created })).catch(() => undefined);
  // Kafka keeps ACLs when their topic is deleted.
  await within('delete ACLs', admin.deleteAcls({
    filters: [{
      resourceType: ResourceTypes.ANY, resourceName: null, resourcePatternType: ResourcePatternTypes.ANY,
      principal: `User:${prefix}-other`, host: null, operation: AclOperations.ANY, permissionType: AclPermissionTypes.ANY,
    }],
  })).catch(() => undefined);
  await within('close admin', admin.close());
});

// Each case starts several JVM tools (2-3 s each on two idle cores, far more on a busy machine).
describe('the development Kafka broker', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('answers status and an idempotent up', async () => {
    const again = await ensureKafkaBroker();
    expect(again.bootstrap).toBe(bootstrap);
    const { stdout } = await kafkaTool(['topics', '--bootstrap-server', bootstrap, '--list']);
    expect(typeof stdout).toBe('string');
  });

  it('console producer -> @platformatic/kafka consumer, on a topic with ACLs for someone else', async () => {
    const topic = await createTopic('from-console');
    // With an ACL on the topic, only its principal and super users may use it: the anonymous
    // listener still works because it is a super user.
    await kafkaTool(['acls', '--bootstrap-server', bootstrap, '--add', '--allow-principal', `User:${prefix}-other`, '--operation', 'Read', '--topic', topic]);
    const listed = await kafkaTool(['acls', '--bootstrap-server', bootstrap, '--list', '--topic', topic]);
    expect(listed.stdout).toContain(`principal=User:${prefix}-other`);

    await kafkaTool(['console-producer', '--bootstrap-server', bootstrap, '--topic', topic, '--reader-property', 'parse.key=true', '--reader-property', 'key.separator=|'],
      'tenant-a|{"sku":"A-1","onHand":5}\ntenant-b|{"sku":"B-2","onHand":7}\n');
    expect(await consumeFromStart(topic, 2)).toEqual([
      { key: 'tenant-a', value: '{"sku":"A-1","onHand":5}' },
      { key: 'tenant-b', value: '{"sku":"B-2","onHand":7}' },
    ]);
  });

  it('@platformatic/kafka idempotent producer -> console consumer', async () => {
    const topic = await createTopic('to-console');
    const client = producer();
    try {
      await within('send', client.send({ messages: [{ topic, key: 'tenant-a', value: 'first' }, { topic, key: 'tenant-a', value: 'second' }] }));
    } finally {
      await within('close producer', client.close());
    }
    const { stdout } = await kafkaTool(['console-consumer', '--bootstrap-server', bootstrap, '--topic', topic, '--from-beginning',
      '--max-messages', '2', '--timeout-ms', '20000', '--formatter-property', 'print.key=true', '--formatter-property', 'key.separator=|']);
    expect(stdout.trim().split('\n')).toEqual(['tenant-a|first', 'tenant-a|second']);
  });

  it('transactions: a read_committed console consumer sees committed records only', async () => {
    const topic = await createTopic('transactions');
    const client = producer({ transactionalId: `${prefix}-tx` });
    try {
      for (const [value, outcome] of [['kept-1', 'commit'], ['dropped', 'abort'], ['kept-2', 'commit']] as const) {
        const transaction = await within('begin transaction', client.beginTransaction());
        await within('send in transaction', transaction.send({ messages: [{ topic, key: 'tenant-a', value }] }));
        await within(`${outcome} transaction`, outcome === 'commit' ? transaction.commit() : transaction.abort());
      }
    } finally {
      await within('close producer', client.close());
    }
    const { stdout } = await kafkaTool(['console-consumer', '--bootstrap-server', bootstrap, '--topic', topic, '--from-beginning',
      '--isolation-level', 'read_committed', '--max-messages', '2', '--timeout-ms', '20000']);
    expect(stdout.trim().split('\n')).toEqual(['kept-1', 'kept-2']);
    expect(await consumeFromStart(topic, 2)).toEqual([{ key: 'tenant-a', value: 'kept-1' }, { key: 'tenant-a', value: 'kept-2' }]);
  });
});
