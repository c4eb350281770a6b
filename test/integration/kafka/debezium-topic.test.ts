// Debezium change events on a Kafka topic, written with Kafka's console producer, become stock in the ledger once each.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DebeziumKafkaSource } from '../../../src/adapters/debezium/kafka-source.js';
import { AppError } from '../../../src/app/engine.js';
import type { CommandInput, Submitted } from '../../../src/app/ports.js';
import { EmbeddedEngine } from '../../../src/adapters/sqlite/embedded-engine.js';
import { ensureKafkaBroker, kafkaTool, uniqueTopicPrefix } from '../../support/kafka-broker.js';
import { eventually } from '../../support/pg.js';

const prefix = uniqueTopicPrefix('debezium');
const topic = `${prefix}.shop.public.stock`;
let bootstrap: string;

beforeAll(async () => {
  ({ bootstrap } = await ensureKafkaBroker());
  await kafkaTool(['topics', '--bootstrap-server', bootstrap, '--create', '--topic', topic, '--partitions', '1', '--replication-factor', '1']);
}, 180_000);

afterAll(async () => {
  await kafkaTool(['topics', '--bootstrap-server', bootstrap, '--delete', '--topic', topic]).catch(() => undefined);
}, 60_000);

function change(op: string, qty: number | null, lsn: number, sku = 'TEE'): string {
  const row = qty === null ? null : { tenant: 'acme', sku, location: 'main', qty, deleted_at: null };
  return JSON.stringify({
    before: null, after: row, op, ts_ms: 1_700_000_000_100,
    source: { connector: 'postgresql', name: 'shop', ts_ms: 1_700_000_000_000, db: 'shop', schema: 'public', table: 'stock', lsn },
  });
}

describe('a Debezium source on a Kafka topic', () => {
  it('applies creates and updates in LSN order, absorbs redelivery, and dead-letters what it cannot read', async () => {
    const engine = new EmbeddedEngine({ path: ':memory:', expiryIntervalMs: 0 });
    const source = new DebeziumKafkaSource({
      config: { type: 'debezium', name: 'shop', table: 'public.stock', topic, columns: { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty', deletedAt: 'deleted_at' } },
      brokers: [bootstrap], groupId: `${prefix}-debezium`, bus: engine, deadLetters: engine,
    });
    try {
      await source.start();
      const lines = [change('r', 40, 100), change('u', 33, 200), change('u', 40, 100), 'not json', change('u', 31, 300), change('c', 5, 300, 'CAP')];
      await kafkaTool(['console-producer', '--bootstrap-server', bootstrap, '--topic', topic], `${lines.join('\n')}\n`);
      const onHand = (sku: string): number | undefined => engine.tenant('acme')?.skus.get(sku)?.locations.get('main')?.onHand;
      expect(await eventually(() => source.status().consumed >= lines.length, 30_000, 50), 'every record consumed').toBe(true);
      expect(onHand('TEE')).toBe(31);
      expect(onHand('CAP')).toBe(5);
      const status = source.status();
      expect(status.counts.stale, 'the redelivered LSN 100 is refused as not newer').toBe(1);
      expect(status.deadLetters).toBe(1);
      const letters = engine.db.prepare('SELECT source, reason FROM dead_letters').all() as Array<{ source: string; reason: string }>;
      expect(letters).toEqual([{ source: 'debezium:shop', reason: expect.stringContaining('not JSON') as unknown as string }]);
    } finally {
      await source.stop();
      await engine.close();
    }
  }, 120_000);

  it('consumes again from the committed offset after a retryable bus failure', async () => {
    const retryTopic = `${prefix}.retry.public.stock`;
    await kafkaTool(['topics', '--bootstrap-server', bootstrap, '--create', '--topic', retryTopic, '--partitions', '1', '--replication-factor', '1']);
    const engine = new EmbeddedEngine({ path: ':memory:', expiryIntervalMs: 0 });
    let failures = 1;
    const bus = {
      submit: (command: CommandInput): Promise<Submitted> => engine.submit(command),
      submitMany: (commands: CommandInput[]): Promise<Submitted[]> => {
        if (failures > 0) {
          failures -= 1;
          return Promise.reject(new AppError('OVERLOADED', 'too many commands waiting; retry shortly', true));
        }
        return engine.submitMany(commands);
      },
    };
    const source = new DebeziumKafkaSource({
      config: { type: 'debezium', name: 'shop', table: 'public.stock', topic: retryTopic, columns: { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty', deletedAt: 'deleted_at' } },
      brokers: [bootstrap], groupId: `${prefix}-debezium-retry`, bus, deadLetters: engine, random: () => 0,
    });
    try {
      await source.start();
      const lines = [change('r', 40, 100), change('u', 33, 200), change('u', 31, 300)];
      await kafkaTool(['console-producer', '--bootstrap-server', bootstrap, '--topic', retryTopic], `${lines.join('\n')}\n`);
      expect(await eventually(() => source.status().consumed >= lines.length, 30_000, 50), 'every record consumed').toBe(true);
      expect(engine.tenant('acme')?.skus.get('TEE')?.locations.get('main')?.onHand).toBe(31);
      expect(source.status()).toMatchObject({ restarts: 1, consuming: true, lastError: 'too many commands waiting; retry shortly' });
    } finally {
      await source.stop();
      await engine.close();
      await kafkaTool(['topics', '--bootstrap-server', bootstrap, '--delete', '--topic', retryTopic]).catch(() => undefined);
    }
  }, 120_000);
});
