// A node whose replica's position in the events topic was deleted before it read on (the process was paused for
// longer than the topic's retention, here by SIGSTOP and delete-records) takes that partition's tenants again from
// the changelog and reads on: retrying the fetch for ever would leave it serving the state it had, as if current.

import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { firstOutcome, toSnapshot } from '../../../src/core/index.js';
import type { TenantState } from '../../../src/core/index.js';
import type { CommandInput } from '../../../src/app/ports.js';
import { AppError } from '../../../src/app/engine.js';
import { engineTopicNames, partitionOfKey } from '../../../src/adapters/kafka/clients.js';
import { KafkaEngine } from '../../../src/adapters/kafka/engine.js';
import { LogReader } from '../../../src/adapters/kafka/log-reader.js';
import { deleteRecordsBefore, ensureKafkaBroker, uniqueTopicPrefix } from '../../support/kafka-broker.js';
import { deleteTestTopics, kafkaTestConfig, spawnKafkaNode } from '../../support/kafka-node.js';
import type { NodeProcess } from '../../support/kafka-node.js';

const prefix = uniqueTopicPrefix('events-gone');
const tenant = 'paused-reader';
const partitions = 3;
const recoverWithinMs = 30_000;
let bootstrap: string | undefined;
let paused: NodeProcess | undefined;
let running: KafkaEngine | undefined;

afterAll(async () => {
  if (paused !== undefined) {
    paused.child.kill('SIGCONT');
    await paused.stop();
  }
  await running?.close();
  if (bootstrap !== undefined) await deleteTestTopics(bootstrap, prefix);
});

/** Submits until decided: while the paused node still owns the tenant's partition, submits time out. Each command is idempotent. */
async function submitDecided(engine: KafkaEngine, command: CommandInput): Promise<void> {
  const deadline = Date.now() + recoverWithinMs;
  for (;;) {
    try {
      // A retry of a command decided after its submit timed out is answered with the first outcome.
      const { outcome } = await engine.submit(command);
      expect(firstOutcome(outcome).rejection).toBeUndefined();
      return;
    } catch (error) {
      if (!(error instanceof AppError) || error.code !== 'KAFKA_TIMEOUT' || Date.now() > deadline) throw error;
    }
  }
}

async function stateOn(node: NodeProcess): Promise<unknown> {
  const response = await fetch(`${node.url}/tenant/${tenant}`, { signal: AbortSignal.timeout(5_000) });
  return response.status === 200 ? response.json() : undefined;
}

const snapshotOf = (state: TenantState | undefined): unknown => (state === undefined ? undefined : toSnapshot({ tenants: new Map([[tenant, state]]) }).tenants[tenant]);

describe('a node whose events were deleted before its replica read them', () => {
  it('takes the partition\'s tenants again from the changelog, says so, and reads on', async () => {
    ({ bootstrap } = await ensureKafkaBroker());
    const config = kafkaTestConfig({ bootstrap, prefix, partitions });
    const events = engineTopicNames(config).events;
    const partition = partitionOfKey(tenant, partitions);
    const engine = await KafkaEngine.start({ config, nodeId: 'events-gone-running', startTimeoutMs: 60_000, submitTimeoutMs: 3_000 });
    running = engine;
    await submitDecided(engine, { type: 'adjust_stock', tenant, sku: 'A', location: 'default', set: 10, idempotencyKey: 'first' });
    const node = await spawnKafkaNode({ bootstrap, prefix, nodeId: 'events-gone-paused', partitions });
    paused = node;
    expect(await stateOn(node)).toEqual(snapshotOf(engine.tenant(tenant)));

    // Paused: its replica stays where it had read to, while the running node decides on (alone, once the
    // paused one's session has expired).
    node.child.kill('SIGSTOP');
    await submitDecided(engine, { type: 'reserve', tenant, reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 2 }], ttlMs: 600_000, idempotencyKey: 'hold' });
    await submitDecided(engine, { type: 'adjust_stock', tenant, sku: 'B', location: 'default', set: 7, idempotencyKey: 'second' });
    await submitDecided(engine, { type: 'commit', tenant, reservationId: 'r1', idempotencyKey: 'sale' });
    const expected = snapshotOf(engine.tenant(tenant));

    // What retention does to events older than the topic's retention: gone before the paused node read them.
    const reader = new LogReader(config, 'events-gone-offsets', 100);
    let end: bigint;
    try {
      end = (await reader.offsets(events, [partition], 'end')).get(partition) as bigint;
    } finally {
      await reader.close();
    }
    await deleteRecordsBefore(bootstrap, events, partition, end);
    node.child.kill('SIGCONT');

    const deadline = Date.now() + recoverWithinMs;
    let seen = await stateOn(node);
    while (JSON.stringify(seen) !== JSON.stringify(expected) && Date.now() < deadline) {
      await sleep(250);
      seen = await stateOn(node);
    }
    expect(seen, node.stderr().slice(-3_000)).toEqual(expected);
    expect(node.stderr()).toMatch(new RegExp(`events partition ${partition}: the events from offset \\d+ .* to ${end - 1n} were deleted .* taken again from the changelog .* reading goes on from offset ${end}`));

    // And it follows what is decided after.
    await submitDecided(engine, { type: 'adjust_stock', tenant, sku: 'B', location: 'default', delta: 1, idempotencyKey: 'third' });
    const after = snapshotOf(engine.tenant(tenant));
    const settled = Date.now() + recoverWithinMs;
    while (JSON.stringify(await stateOn(node)) !== JSON.stringify(after) && Date.now() < settled) await sleep(250);
    expect(await stateOn(node)).toEqual(after);
  }, 180_000);
});
