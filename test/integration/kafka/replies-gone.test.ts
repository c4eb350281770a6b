// A node whose replies partition no longer holds its reading position (the process was paused past the replies
// topic's retention, here by SIGSTOP and delete-records) reads on from the earliest reply left: failing every fetch
// for ever would leave it answering every submit KAFKA_TIMEOUT while it looked ready.

import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { closeQuietly, engineTopicNames, forceClose, openProducer, partitionOfKey, silentLog } from '../../../src/adapters/kafka/clients.js';
import { LogReader } from '../../../src/adapters/kafka/log-reader.js';
import { deleteRecordsBefore, ensureKafkaBroker, uniqueTopicPrefix, within } from '../../support/kafka-broker.js';
import { deleteTestTopics, kafkaTestConfig, spawnKafkaNode } from '../../support/kafka-node.js';
import type { NodeProcess } from '../../support/kafka-node.js';

const prefix = uniqueTopicPrefix('replies-gone');
const nodeId = 'replies-gone-1';
const tenant = 'paused';
const submitTimeoutMs = 4_000;
const recoverWithinMs = 30_000;
let bootstrap: string | undefined;
let node: NodeProcess | undefined;

afterAll(async () => {
  if (node !== undefined) {
    node.child.kill('SIGCONT');
    await node.stop();
  }
  if (bootstrap !== undefined) await deleteTestTopics(bootstrap, prefix);
});

async function submit(target: NodeProcess, sku: string): Promise<{ status: number; code?: string }> {
  const response = await fetch(`${target.url}/submit`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(submitTimeoutMs * 3),
    body: JSON.stringify({ type: 'adjust_stock', tenant, sku, location: 'default', set: 5 }),
  });
  const body = await response.json() as { error?: { code: string } };
  return { status: response.status, ...(body.error === undefined ? {} : { code: body.error.code }) };
}

describe('a node whose replies were deleted before it read them', () => {
  it('reads on from the earliest reply left, says so, and answers submits again', async () => {
    ({ bootstrap } = await ensureKafkaBroker());
    const config = kafkaTestConfig({ bootstrap, prefix });
    const topic = engineTopicNames(config).replies;
    const running = await spawnKafkaNode({ bootstrap, prefix, nodeId, submitTimeoutMs });
    node = running;
    expect(await submit(running, 'BEFORE')).toEqual({ status: 200 });

    const reader = new LogReader(config, 'replies-gone-offsets', 100);
    let partition: number;
    let end: bigint;
    try {
      partition = partitionOfKey(nodeId, await reader.partitionCount(topic));
      // Paused: its replies reader stays at the end it had read to.
      running.child.kill('SIGSTOP');
      const producer = openProducer(config, 'replies-gone-writer');
      try {
        const stale = JSON.stringify({ correlationId: 'nobody-waits-for-this', outcome: { events: [] } });
        const messages = Array.from({ length: 5 }, () => ({ topic, partition, key: nodeId, value: stale }));
        // The fetch the node had out when it stopped is answered with the first of them (they wait in its socket);
        // the next one it sends asks for offsets past them, which are gone by then.
        await within('write replies', producer.send({ messages }));
        await sleep(1_000);
        await within('write more replies', producer.send({ messages }));
      } finally {
        await closeQuietly('close the writer', 5_000, () => forceClose(producer), silentLog);
      }
      end = (await reader.offsets(topic, [partition], 'end')).get(partition) as bigint;
    } finally {
      await reader.close();
    }
    // What retention does to replies older than an hour: gone before the paused node read them.
    await deleteRecordsBefore(bootstrap, topic, partition, end);
    running.child.kill('SIGCONT');

    // Answers again: a submit may time out while the node rejoins its group, never for good.
    const deadline = Date.now() + recoverWithinMs;
    let answer = await submit(running, 'AFTER');
    while (answer.status !== 200 && Date.now() < deadline) {
      expect(answer.code, 'only a timeout is expected meanwhile').toBe('KAFKA_TIMEOUT');
      await sleep(250);
      answer = await submit(running, 'AFTER');
    }
    expect(answer, running.stderr().slice(-3_000)).toEqual({ status: 200 });
    expect(running.stderr()).toMatch(new RegExp(`replies partition ${partition} no longer holds offset \\d+ .*reading on from offset ${end}`));
  }, 120_000);
});
