// The Debezium Kafka source against a fake consumer: a retryable failure consumes again from the committed offset,
// and the events of one transaction are applied together and committed only then.

import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/app/engine.js';
import type { CommandBus, CommandInput, Submitted } from '../../src/app/ports.js';
import type { Command, LedgerState } from '../../src/core/index.js';
import { execute, initialState } from '../../src/core/index.js';
import { DebeziumKafkaSource } from '../../src/adapters/debezium/kafka-source.js';
import type { DebeziumConsumer } from '../../src/adapters/debezium/kafka-source.js';
import { eventually } from '../support/pg.js';

/** The real ledger in memory; `failures` are thrown, one per call, before anything is applied. */
class LedgerBus implements CommandBus {
  readonly state: LedgerState = initialState();
  failures: Error[] = [];
  private counter = 0;

  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }

  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    return commands.map((input) => {
      this.counter += 1;
      return { outcome: execute(this.state, { ...input, id: `cmd-${this.counter}`, timeMs: 0 } as Command).outcome };
    });
  }

  onHand(sku: string, location = 'main'): number | undefined {
    return this.state.tenants.get('acme')?.skus.get(sku)?.locations.get(location)?.onHand;
  }
}

/**
 * One partition: each consume() starts after the last committed offset, as mode 'committed' does; the
 * topic stays open, and `produce` adds records to it while it is consumed.
 */
class FakeConsumer implements DebeziumConsumer {
  committed = -1;
  consumes = 0;
  closed = false;
  private arrived: () => void = () => undefined;

  constructor(private readonly values: string[]) {}

  produce(...values: string[]): void {
    this.values.push(...values);
    this.arrived();
  }

  async consume(): ReturnType<DebeziumConsumer['consume']> {
    this.consumes += 1;
    const start = this.committed + 1;
    let closeStream: () => void = () => undefined;
    const closedSignal = new Promise<'closed'>((resolve) => { closeStream = () => resolve('closed'); });
    const { values } = this;
    const commit = (offset: number): void => { this.committed = Math.max(this.committed, offset); };
    const waitForMore = (): Promise<'more'> => new Promise((resolve) => { this.arrived = () => resolve('more'); });
    async function* messages(): AsyncGenerator<never> {
      let offset = start;
      for (;;) {
        for (; offset < values.length; offset += 1) {
          const committed = offset;
          const message = {
            topic: 'shop.public.stock', partition: 0, offset: BigInt(offset), key: null, value: values[offset], headers: new Map(), timestamp: 0n,
            commit: async (): Promise<void> => { commit(committed); },
          };
          yield message as never;
        }
        if (await Promise.race([waitForMore(), closedSignal]) === 'closed') return;
      }
    }
    const iterable = messages();
    return Object.assign(iterable, { close: async (): Promise<void> => { closeStream(); } });
  }

  close(_force: boolean, callback: () => void): void {
    this.closed = true;
    callback();
  }
}

function update(lsn: number, qty: number): string {
  return JSON.stringify({ op: 'u', before: null, after: { sku: 'TEE', location: 'main', qty }, source: { lsn, schema: 'public', table: 'stock' } });
}

function sourceOver(bus: LedgerBus, consumer: FakeConsumer, transactionQuietMs?: number): DebeziumKafkaSource {
  return new DebeziumKafkaSource({
    config: { type: 'debezium', name: 'shop', topic: 'shop.public.stock', columns: { tenantConstant: 'acme', sku: 'sku', location: 'location', onHand: 'qty' } },
    brokers: ['127.0.0.1:1'], groupId: 'g', bus, deadLetters: { deadLetter: () => undefined }, consumer, random: () => 0, transactionQuietMs,
  });
}

type RowValues = Record<string, unknown>;

/** Row `id` of SKU `sku` at `location`: rows are told apart by their columns, as with REPLICA IDENTITY FULL. */
function at(id: number, location: string, qty: number, sku = 'X'): RowValues {
  return { id, sku, location, qty };
}

/** A change event of transaction `txId`; null for an event whose converter dropped it. */
function inTx(txId: number | null, op: string, before: RowValues | null, after: RowValues | null, lsn: number): string {
  const source: RowValues = { lsn, schema: 'public', table: 'stock' };
  if (txId !== null) source.txId = txId;
  return JSON.stringify({ op, before, after, source });
}

/** Row 1 holds 5 at main, row 2 holds 7 at north; then they swap locations in transaction 900. */
const swapSetup = [inTx(null, 'r', null, at(1, 'main', 5), 1000), inTx(null, 'r', null, at(2, 'north', 7), 1000)];
const swap = [inTx(900, 'u', at(1, 'main', 5), at(1, 'north', 5), 2000), inTx(900, 'u', at(2, 'north', 7), at(2, 'main', 7), 2100)];

describe('DebeziumKafkaSource', () => {
  it('consumes again from the committed offset after a retryable error, and applies everything once', async () => {
    const bus = new LedgerBus();
    bus.failures.push(new AppError('OVERLOADED', 'too many commands waiting; retry shortly', true));
    const consumer = new FakeConsumer([update(100, 5), update(200, 6), update(300, 7)]);
    const source = sourceOver(bus, consumer);
    await source.start();
    try {
      expect(await eventually(() => source.status().consumed === 3)).toBe(true);
      expect(bus.onHand('TEE')).toBe(7);
      expect(consumer.committed).toBe(2);
      const status = source.status();
      expect(status).toMatchObject({ restarts: 1, consuming: true, lastError: 'too many commands waiting; retry shortly' });
      expect(status.counts).toMatchObject({ applied: 3, stale: 0 });
      expect(consumer.consumes).toBe(2);
    } finally {
      await source.stop();
    }
    expect(source.status().consuming).toBe(false);
    expect(consumer.closed).toBe(true);
  });

  it('applies a transaction once the partition\'s next event belongs to another, and commits its offsets only then', async () => {
    const bus = new LedgerBus();
    const consumer = new FakeConsumer([...swapSetup, ...swap]);
    const source = sourceOver(bus, consumer, 60_000);
    await source.start();
    try {
      expect(await eventually(() => source.status().consumed === 2)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(source.status().consumed, 'the open transaction waits for its end').toBe(2);
      expect(consumer.committed).toBe(1);
      expect({ main: bus.onHand('X', 'main'), north: bus.onHand('X', 'north') }).toEqual({ main: 5, north: 7 });
      consumer.produce(inTx(901, 'c', null, at(3, 'main', 2, 'Y'), 3000));
      expect(await eventually(() => source.status().consumed === 4)).toBe(true);
      expect({ main: bus.onHand('X', 'main'), north: bus.onHand('X', 'north') }).toEqual({ main: 7, north: 5 });
      expect(consumer.committed, 'transaction 901 may go on: not applied, not committed').toBe(3);
      expect(bus.onHand('Y')).toBeUndefined();
    } finally {
      await source.stop();
    }
  });

  it('applies a transaction followed by nothing once the partition has been quiet for transactionQuietMs', async () => {
    const setup = [inTx(null, 'r', null, at(1, 'main', 5, 'A'), 1000), inTx(null, 'r', null, at(2, 'main', 3, 'B'), 1000)];
    const reload = [
      inTx(900, 'c', null, at(3, 'main', 9, 'A'), 2000), inTx(900, 'c', null, at(4, 'main', 4, 'B'), 2010),
      inTx(900, 'd', at(1, 'main', 5, 'A'), null, 2020), inTx(900, 'd', at(2, 'main', 3, 'B'), null, 2030),
    ];
    const bus = new LedgerBus();
    const consumer = new FakeConsumer([...setup, ...reload]);
    const source = sourceOver(bus, consumer, 50);
    await source.start();
    try {
      expect(await eventually(() => source.status().consumed === 6)).toBe(true);
      expect({ A: bus.onHand('A'), B: bus.onHand('B') }).toEqual({ A: 9, B: 4 });
      expect(consumer.committed).toBe(5);
      expect(source.status().counts).toMatchObject({ applied: 4, stale: 0 });
    } finally {
      await source.stop();
    }
  });

  it('a tombstone, another table\'s event or a dead letter inside a transaction does not end it', async () => {
    const setup = [inTx(null, 'r', null, at(1, 'main', 5, 'A'), 1000), inTx(null, 'r', null, at(2, 'main', 3, 'B'), 1000)];
    const otherTable = JSON.stringify({ op: 'c', before: null, after: at(9, 'main', 1, 'Z'), source: { lsn: 2004, txId: 900, schema: 'public', table: 'orders' } });
    const transaction = [
      inTx(900, 'c', null, at(3, 'main', 9, 'A'), 2000), otherTable, inTx(900, 'd', at(2, 'main', 3, 'B'), null, 2005), '', 'not json',
      inTx(900, 'd', at(1, 'main', 5, 'A'), null, 2010), '',
    ];
    const bus = new LedgerBus();
    const letters: string[] = [];
    const consumer = new FakeConsumer([...setup, ...transaction]);
    const source = new DebeziumKafkaSource({
      config: { type: 'debezium', name: 'shop', table: 'public.stock', topic: 'shop.public.stock', columns: { tenantConstant: 'acme', sku: 'sku', location: 'location', onHand: 'qty' } },
      brokers: ['127.0.0.1:1'], groupId: 'g', bus, deadLetters: { deadLetter: (letter) => letters.push(letter.reason) }, consumer, transactionQuietMs: 50,
    });
    await source.start();
    try {
      expect(await eventually(() => source.status().consumed === 9)).toBe(true);
      expect({ A: bus.onHand('A'), B: bus.onHand('B'), Z: bus.onHand('Z') }).toEqual({ A: 9, B: 0, Z: undefined });
      expect(letters).toEqual([expect.stringContaining('not JSON')]);
      expect(consumer.committed).toBe(8);
    } finally {
      await source.stop();
    }
  });

  it('a transaction whose application failed is delivered and applied again whole', async () => {
    const bus = new LedgerBus();
    bus.failures.push(new AppError('OVERLOADED', 'too many commands waiting; retry shortly', true));
    const consumer = new FakeConsumer([...swap]);
    const source = sourceOver(bus, consumer, 50);
    await source.start();
    try {
      expect(await eventually(() => source.status().consumed === 2)).toBe(true);
      expect({ main: bus.onHand('X', 'main'), north: bus.onHand('X', 'north') }).toEqual({ main: 7, north: 5 });
      expect(source.status()).toMatchObject({ restarts: 1, consuming: true });
      expect(consumer.consumes).toBe(2);
      expect(consumer.committed).toBe(1);
    } finally {
      await source.stop();
    }
  });

  it('applies events without txId one by one, as they come', async () => {
    const bus = new LedgerBus();
    const consumer = new FakeConsumer([inTx(null, 'u', at(1, 'main', 5), at(1, 'north', 5), 2000)]);
    const source = sourceOver(bus, consumer, 60_000);
    await source.start();
    try {
      expect(await eventually(() => source.status().consumed === 1)).toBe(true);
      expect({ main: bus.onHand('X', 'main'), north: bus.onHand('X', 'north') }).toEqual({ main: 0, north: 5 });
      expect(consumer.committed).toBe(0);
    } finally {
      await source.stop();
    }
  });

  it('refuses a quiet bound out of range', () => {
    expect(() => sourceOver(new LedgerBus(), new FakeConsumer([]), 0)).toThrow(RangeError);
  });

  it('stops on an error that retrying cannot cure, and says why', async () => {
    const bus = new LedgerBus();
    bus.failures.push(new AppError('INVALID_COMMAND', 'the ledger refused the batch', false));
    const consumer = new FakeConsumer([update(100, 5), update(200, 6)]);
    const source = sourceOver(bus, consumer);
    await source.start();
    try {
      expect(await eventually(() => !source.status().consuming)).toBe(true);
      expect(source.status()).toMatchObject({ consumed: 0, restarts: 0, lastError: 'the ledger refused the batch' });
      expect(consumer.consumes).toBe(1);
      expect(consumer.committed).toBe(-1);
    } finally {
      await source.stop();
    }
  });
});
