// The Kafka engine at its edges, against the real development broker: refused all-or-nothing groups,
// command time across a failover, produce requests too large for one send, transactions too large for one batch.

import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { CommandInput, DeadLetter } from '../../../src/app/ports.js';
import { closeQuietly, engineTopicNames, forceClose, openProducer, partitionOfKey, silentLog } from '../../../src/adapters/kafka/clients.js';
import { encodeJson, kafkaRecordLimits } from '../../../src/adapters/kafka/codec.js';
import type { KafkaConfig } from '../../../src/adapters/kafka/config.js';
import { KafkaEngine } from '../../../src/adapters/kafka/engine.js';
import { processorLimits } from '../../../src/adapters/kafka/processor.js';
import { ensureKafkaBroker, kafkaTestLimits, uniqueTopicPrefix, until, within } from '../../support/kafka-broker.js';
import { deleteTestTopics, kafkaTestConfig } from '../../support/kafka-node.js';

const prefixes: string[] = [];
let bootstrap: string | undefined;

type StartOptions = Parameters<typeof KafkaEngine.start>[0];

async function configFor(name: string): Promise<KafkaConfig> {
  ({ bootstrap } = await ensureKafkaBroker());
  const prefix = uniqueTopicPrefix(name);
  prefixes.push(prefix);
  return kafkaTestConfig({ bootstrap, prefix });
}

async function startEngine(name: string, options: Partial<StartOptions> = {}): Promise<KafkaEngine> {
  return KafkaEngine.start({ config: options.config ?? await configFor(name), nodeId: `${name}-node`, startTimeoutMs: 60_000, ...options });
}

afterAll(async () => {
  if (bootstrap !== undefined) await Promise.all(prefixes.map((prefix) => deleteTestTopics(bootstrap as string, prefix)));
});

describe('a refused all-or-nothing group', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('is answered with its outcomes and writes no event, as the embedded engine does', async () => {
    const engine = await startEngine('refused');
    try {
      const tenant = 'refused';
      await engine.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', set: 10, source: 'wms', sourceSeq: '10' });
      for (const sourceSeq of ['5', '6']) {
        const group = await engine.submitAtomic([
          { type: 'adjust_stock', tenant, sku: 'A', location: 'default', set: 5, source: 'wms', sourceSeq },
          { type: 'adjust_stock', tenant, sku: 'B', location: 'default', delta: 1 },
        ]);
        expect(group.applied).toBe(false);
        expect(group.results.map((result) => result.outcome.rejection?.code)).toEqual(['STALE_SEQUENCE', 'NOT_APPLIED']);
        expect(group.results.every((result) => result.position === undefined), 'no position: nothing was logged').toBe(true);
      }
      // Resolves once the replica read this command's event, so it has read anything logged before it on the partition.
      const after = await engine.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: 1 });
      expect(after.position).toBeDefined();
      const { events } = await engine.eventsAfter(tenant, 0, 100);
      expect(events.map(({ event }) => event.type)).toEqual(['stock_adjustment', 'stock_adjustment']);
      expect(events.filter(({ event }) => event.id.startsWith('trial'))).toEqual([]);
      expect(engine.tenant(tenant)?.skus.has('B')).toBe(false);
    } finally {
      await engine.close();
    }
  });
});

describe('command time after a failover', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('never goes back, even when the new owner\'s clock is behind', async () => {
    const config = await configFor('clock');
    const tenant = 'clock';
    const partition = partitionOfKey(tenant, config.topics.partitions);
    const first = await startEngine('clock-first', { config });
    let before: string;
    try {
      before = (await first.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: 5 })).outcome.events[0]?.time as string;
    } catch (error) {
      await first.close();
      throw error;
    }
    // Ten minutes behind: without the time kept in the changelog, its commands would be stamped earlier.
    const second = await startEngine('clock-second', { config, clock: () => Date.now() - 600_000 });
    try {
      await first.close();
      await until(`the second node owns partition ${partition}`, () => second.ownedPartitions().includes(partition));
      const after = await second.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: 1 });
      expect(Date.parse(after.outcome.events[0]?.time as string)).toBeGreaterThanOrEqual(Date.parse(before));
    } finally {
      await second.close();
    }
  });
});

/** A SKU of the longest kind that does not compress: a hash of its name. */
function longSku(name: string): string {
  const hash = (part: number): string => createHash('sha256').update(`${name}/${part}`).digest('hex');
  return `${hash(0)}${hash(1)}`.slice(0, 128);
}

/** An all-or-nothing group near the largest a record may be, refused for stock (no such SKUs): big in, small out. */
function bigRefusedGroup(tenant: string, name: string): CommandInput[] {
  const group: CommandInput[] = [];
  const reserve = (index: number): CommandInput => ({
    type: 'reserve', tenant, reservationId: `${name}-${index}`, channel: 'web', ttlMs: 60_000,
    lines: Array.from({ length: 100 }, (_, line) => ({ sku: longSku(`${name}-${index}-${line}`), quantity: 1 })),
  });
  const bytesMax = kafkaRecordLimits.commandRecordBytesMax - 1024;
  while (Buffer.byteLength(encodeJson({ atomic: [...group, reserve(group.length)] })) <= bytesMax) group.push(reserve(group.length));
  return group;
}

describe('records sent together that pass what one produce request may carry', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('are sent in several requests, and every one is decided and answered', async () => {
    const engine = await startEngine('sendbytes');
    try {
      const big = 'sendbytes-big';
      const small = ['sendbytes-a', 'sendbytes-b', 'sendbytes-c'].find((tenant) => partitionOfKey(tenant, 3) !== partitionOfKey(big, 3)) as string;
      // Sent in one turn: together far more than the broker's 1 MiB on one partition.
      const groups = Array.from({ length: 8 }, (_, index) => engine.submitAtomic(bigRefusedGroup(big, `g${index}`)));
      const other = engine.submit({ type: 'adjust_stock', tenant: small, sku: 'A', location: 'default', delta: 5 });
      const [answers, adjusted] = await Promise.all([Promise.all(groups), other]);
      expect(answers.map((answer) => answer.applied)).toEqual(Array.from({ length: 8 }, () => false));
      for (const answer of answers) expect(answer.results.every((result) => result.outcome.rejection !== undefined)).toBe(true);
      expect(adjusted.outcome.rejection).toBeUndefined();
      expect(engine.tenant(small)?.skus.get('A')?.locations.get('default')?.onHand).toBe(5);
    } finally {
      await engine.close();
    }
  });
});

describe('commands written to the topic with a time ahead of the processor\'s clock', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('are set aside as dead letters: a tick two days ahead releases no hold and forgets no idempotency record', async () => {
    const config = await configFor('aheadofclock');
    const letters: DeadLetter[] = [];
    const engine = await startEngine('aheadofclock', { config, onDeadLetter: (letter) => letters.push(letter) });
    try {
      const tenant = 'ahead';
      const stock = (): unknown => engine.tenant(tenant)?.skus.get('A')?.locations.get('default');
      await engine.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: 10, idempotencyKey: 'receipt-1' });
      await engine.submit({ type: 'reserve', tenant, reservationId: 'cart-1', channel: 'web', lines: [{ sku: 'A', quantity: 4 }], ttlMs: 600_000 });
      const producer = openProducer(config, 'aheadofclock-writer');
      const twoDaysMs = 2 * 86_400_000;
      try {
        // Another tool writing to the commands topic, as docs/kafka.md shows: a tick, and a hold dated two days ahead.
        await within('write the records', producer.send({ messages: [
          { topic: engineTopicNames(config).commands, key: tenant, value: JSON.stringify({ input: { type: 'expire_due', tenant, nowMs: Date.now() + twoDaysMs } }) },
          { topic: engineTopicNames(config).commands, key: tenant, value: JSON.stringify({ input: { type: 'reserve', tenant, reservationId: 'later', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000, timeMs: Date.now() + twoDaysMs } }) },
        ] }));
      } finally {
        await closeQuietly('close the writer', 5_000, () => forceClose(producer), silentLog);
      }
      await until('both set aside', () => letters.length === 2);
      expect(letters.map((letter) => letter.reason)).toEqual([
        expect.stringMatching(/^INVALID_COMMAND: input\.nowMs: later than the processor's clock \(.*\), allowing 5 minutes for clocks that differ$/),
        expect.stringMatching(/^INVALID_COMMAND: input\.timeMs: later than the processor's clock/),
      ]);
      expect(stock()).toEqual({ onHand: 10, committed: 0, reserved: 4 });
      // The retry of a receipt whose answer was lost is still recognised, and the hold is still there to commit.
      const retry = await engine.submit({ type: 'adjust_stock', tenant, sku: 'A', location: 'default', delta: 10, idempotencyKey: 'receipt-1' });
      expect(retry.outcome.rejection?.code).toBe('DUPLICATE');
      expect((await engine.submit({ type: 'commit', tenant, reservationId: 'cart-1' })).outcome.rejection).toBeUndefined();
      expect(stock()).toEqual({ onHand: 10, committed: 4, reserved: 0 });
    } finally {
      await engine.close();
    }
  });
});

describe('an expiry tick whose releases pass what one transaction may hold', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  it('releases every due hold over several transactions, and the partition goes on', async () => {
    const config = await configFor('bigexpiry');
    // Uncompressed, so the broker sees the bytes the processor writes.
    config.producer.compression = 'none';
    let nowMs = Date.now();
    const engine = await startEngine('bigexpiry', { config, clock: () => nowMs, expiryIntervalMs: 3_600_000 });
    try {
      const tenant = 'bigexpiry';
      const holds = 100;
      const skus = Array.from({ length: 100 }, (_, index) => longSku(`expiry-${index}`));
      await Promise.all(skus.map((sku) => engine.submit({ type: 'adjust_stock', tenant, sku, location: 'default', set: 1_000 })));
      for (let first = 0; first < holds; first += 10) {
        await Promise.all(Array.from({ length: 10 }, (_, index) => engine.submit({
          type: 'reserve', tenant, reservationId: `r${first + index}`, channel: 'web', ttlMs: 60_000, lines: skus.map((sku) => ({ sku, quantity: 1 })),
        })));
      }
      nowMs += 120_000;
      // Every hold is due at once: released together, their events (each repeating its 100 lines) pass 1 MiB.
      const tick = await engine.submit({ type: 'expire_due', tenant, nowMs });
      expect(tick.outcome.rejection).toBeUndefined();
      const reserved = (): number | undefined => engine.tenant(tenant)?.skus.get(skus[0] as string)?.locations.get('default')?.reserved;
      await until('every due hold released', () => reserved() === 0);
      const after = await engine.submit({ type: 'adjust_stock', tenant, sku: skus[0] as string, location: 'default', delta: 1 });
      expect(after.outcome.rejection).toBeUndefined();
    } finally {
      await engine.close();
    }
  });
});

describe('records whose output passes what one transaction may hold', { timeout: kafkaTestLimits.caseTimeoutMs }, () => {
  const limits = processorLimits as { transactionBytesTarget: number; partitionBytesMax: number };
  const saved = { ...processorLimits };

  it('go in a transaction of their own, or to the dead letters when alone they do not fit', async () => {
    // Small limits, so that ordinary groups reach them (the engine runs in this process).
    limits.transactionBytesTarget = 64 * 1024;
    limits.partitionBytesMax = 128 * 1024;
    const letters: string[] = [];
    const warnings: string[] = [];
    const log = { debug: () => undefined, info: () => undefined, warn: (message: string) => warnings.push(message), error: (message: string) => warnings.push(message) };
    const engine = await startEngine('bigoutput', { onDeadLetter: (letter) => letters.push(letter.reason), log });
    try {
      const tenant = 'bigoutput';
      const group = (name: string, count: number): CommandInput[] => Array.from({ length: count }, (_, index) => ({
        type: 'adjust_stock', tenant, sku: `${name}-${index}`, location: 'default', delta: 1,
      }));
      // Sent in one turn, decided in one fetch: the second passes the limit behind the first, the third alone.
      const [small, large, huge] = await Promise.allSettled([
        engine.submitAtomic(group('small', 150)), engine.submitAtomic(group('large', 400)), engine.submitAtomic(group('huge', 900)),
      ]);
      expect(small.status === 'fulfilled' && small.value.applied).toBe(true);
      expect(large.status === 'fulfilled' && large.value.applied).toBe(true);
      expect(huge.status === 'rejected' && (huge.reason as { code?: string }).code).toBe('OUTPUT_TOO_LARGE');
      expect(warnings.filter((warning) => warning.includes('it will start the next transaction')), 'the second was cut off the first').toHaveLength(1);
      expect(letters).toHaveLength(1);
      expect(letters[0]).toMatch(/^OUTPUT_TOO_LARGE: /u);
      const after = await engine.submit({ type: 'adjust_stock', tenant, sku: 'after', location: 'default', delta: 1 });
      expect(after.outcome.rejection).toBeUndefined();
      const skus = engine.tenant(tenant)?.skus;
      expect([skus?.has('small-149'), skus?.has('large-399'), skus?.has('huge-0')]).toEqual([true, true, false]);
    } finally {
      Object.assign(limits, saved);
      await engine.close();
    }
  });
});
