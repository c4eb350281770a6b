// Debezium change events on a Kafka topic, written with Kafka's console producer, become stock in the ledger once each,
// and the events of one transaction together.

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

type RowValues = Record<string, unknown>;

const columns = { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty', deletedAt: 'deleted_at' };

/** Row `id` of SKU `sku` at `location`. */
function at(id: number, location: string, qty: number, sku = 'X'): RowValues {
  return { id, tenant: 'acme', sku, location, qty, deleted_at: null };
}

/**
 * A console-producer line as Debezium writes it: keyed by the row's id, the old row in `before`
 * (REPLICA IDENTITY FULL), `txId` the transaction (null: a snapshot read, which has none here).
 */
function keyedChange(txId: number | null, op: string, before: RowValues | null, after: RowValues | null, lsn: number): string {
  const source: RowValues = { connector: 'postgresql', name: 'shop', ts_ms: 1_700_000_000_000, db: 'shop', schema: 'public', table: 'stock', lsn };
  if (txId !== null) source.txId = txId;
  return `${String((after ?? before)?.id)}|${JSON.stringify({ before, after, op, ts_ms: 1_700_000_000_100, source })}`;
}

/** The tombstone Debezium writes after a delete, for log compaction. */
function tombstone(id: number): string {
  return `${id}|NULL`;
}

const keyedLines = ['--reader-property', 'parse.key=true', '--reader-property', 'key.separator=|', '--reader-property', 'null.marker=NULL'];

async function freshTopic(name: string): Promise<string> {
  const created = `${prefix}.${name}.public.stock`;
  await kafkaTool(['topics', '--bootstrap-server', bootstrap, '--create', '--topic', created, '--partitions', '1', '--replication-factor', '1']);
  return created;
}

/** The group's committed offset on partition 0 of `onTopic`, as Kafka's own tool reports it. */
async function committedOffset(groupId: string, onTopic: string): Promise<number | undefined> {
  const { stdout } = await kafkaTool(['consumer-groups', '--bootstrap-server', bootstrap, '--describe', '--group', groupId]);
  const columns = stdout.split('\n').map((line) => line.trim().split(/\s+/)).find((fields) => fields[1] === onTopic && fields[2] === '0');
  const offset = Number(columns?.[3]);
  return Number.isInteger(offset) ? offset : undefined;
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

  it('two rows swapping locations inside one transaction leave both locations their new stock', async () => {
    const swapTopic = await freshTopic('swap');
    const engine = new EmbeddedEngine({ path: ':memory:', expiryIntervalMs: 0 });
    const source = new DebeziumKafkaSource({
      config: { type: 'debezium', name: 'shop', table: 'public.stock', topic: swapTopic, columns },
      brokers: [bootstrap], groupId: `${prefix}-debezium-swap`, bus: engine, deadLetters: engine,
    });
    const onHand = (sku: string, location: string): number | undefined => engine.tenant('acme')?.skus.get(sku)?.locations.get(location)?.onHand;
    try {
      await source.start();
      const lines = [
        keyedChange(null, 'r', null, at(1, 'main', 5), 1000), keyedChange(null, 'r', null, at(2, 'north', 7), 1000),
        keyedChange(900, 'u', at(1, 'main', 5), at(1, 'north', 5), 2000), keyedChange(900, 'u', at(2, 'north', 7), at(2, 'main', 7), 2100),
        keyedChange(901, 'c', null, at(3, 'main', 2, 'CAP'), 3000),
      ];
      await kafkaTool(['console-producer', '--bootstrap-server', bootstrap, '--topic', swapTopic, ...keyedLines], `${lines.join('\n')}\n`);
      expect(await eventually(() => source.status().consumed >= lines.length, 30_000, 50), 'every record consumed').toBe(true);
      expect({ main: onHand('X', 'main'), north: onHand('X', 'north'), cap: onHand('CAP', 'main') }).toEqual({ main: 7, north: 5, cap: 2 });
      expect(source.status()).toMatchObject({ deadLetters: 0, counts: { applied: 5, stale: 0, rejected: 0 } });
    } finally {
      await source.stop();
      await engine.close();
      await kafkaTool(['topics', '--bootstrap-server', bootstrap, '--delete', '--topic', swapTopic]).catch(() => undefined);
    }
  }, 120_000);

  it('applies a transaction followed by nothing, and commits its offsets, without waiting for another event', async () => {
    const quietTopic = await freshTopic('quiet');
    const groupId = `${prefix}-debezium-quiet`;
    const engine = new EmbeddedEngine({ path: ':memory:', expiryIntervalMs: 0 });
    const source = new DebeziumKafkaSource({
      config: { type: 'debezium', name: 'shop', table: 'public.stock', topic: quietTopic, columns },
      brokers: [bootstrap], groupId, bus: engine, deadLetters: engine,
    });
    const onHand = (sku: string): number | undefined => engine.tenant('acme')?.skus.get(sku)?.locations.get('main')?.onHand;
    try {
      await source.start();
      const setup = [keyedChange(null, 'r', null, at(1, 'main', 5, 'A'), 1000), keyedChange(null, 'r', null, at(2, 'main', 3, 'B'), 1000)];
      await kafkaTool(['console-producer', '--bootstrap-server', bootstrap, '--topic', quietTopic, ...keyedLines], `${setup.join('\n')}\n`);
      expect(await eventually(() => onHand('A') === 5 && onHand('B') === 3, 30_000, 50), 'the snapshot applied').toBe(true);
      // New counts inserted before the old rows are deleted; each delete is followed by its tombstone.
      const reload = [
        keyedChange(900, 'c', null, at(3, 'main', 9, 'A'), 2000), keyedChange(900, 'c', null, at(4, 'main', 4, 'B'), 2010),
        keyedChange(900, 'd', at(1, 'main', 5, 'A'), null, 2020), tombstone(1),
        keyedChange(900, 'd', at(2, 'main', 3, 'B'), null, 2030), tombstone(2),
      ];
      await kafkaTool(['console-producer', '--bootstrap-server', bootstrap, '--topic', quietTopic, ...keyedLines], `${reload.join('\n')}\n`);
      const records = setup.length + reload.length;
      expect(await eventually(() => source.status().consumed >= records, 30_000, 50), 'the transaction applied with nothing after it').toBe(true);
      expect({ A: onHand('A'), B: onHand('B') }).toEqual({ A: 9, B: 4 });
      expect(source.status().deadLetters, 'tombstones are skipped').toBe(0);
      expect(await eventually(async () => await committedOffset(groupId, quietTopic) === records, 30_000, 500), 'every offset committed').toBe(true);
    } finally {
      await source.stop();
      await engine.close();
      await kafkaTool(['topics', '--bootstrap-server', bootstrap, '--delete', '--topic', quietTopic]).catch(() => undefined);
    }
  }, 120_000);
});
