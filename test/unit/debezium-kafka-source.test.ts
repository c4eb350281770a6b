// The Debezium Kafka source against a fake consumer: a retryable failure consumes again from the committed offset.

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

  onHand(sku: string): number | undefined {
    return this.state.tenants.get('acme')?.skus.get(sku)?.locations.get('main')?.onHand;
  }
}

/** One partition: each consume() starts after the last committed offset, as mode 'committed' does; the topic stays open. */
class FakeConsumer implements DebeziumConsumer {
  committed = -1;
  consumes = 0;
  closed = false;

  constructor(private readonly values: string[]) {}

  async consume(): ReturnType<DebeziumConsumer['consume']> {
    this.consumes += 1;
    const start = this.committed + 1;
    let closeStream: () => void = () => undefined;
    const closedSignal = new Promise<void>((resolve) => { closeStream = resolve; });
    const { values } = this;
    const commit = (offset: number): void => { this.committed = Math.max(this.committed, offset); };
    async function* messages(): AsyncGenerator<never> {
      for (let offset = start; offset < values.length; offset += 1) {
        const message = {
          topic: 'shop.public.stock', partition: 0, offset: BigInt(offset), key: null, value: values[offset], headers: new Map(), timestamp: 0n,
          commit: async (): Promise<void> => { commit(offset); },
        };
        yield message as never;
      }
      await closedSignal;
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
  return JSON.stringify({ op: 'u', before: null, after: { sku: 'TEE', qty }, source: { lsn, schema: 'public', table: 'stock' } });
}

function sourceOver(bus: LedgerBus, consumer: FakeConsumer): DebeziumKafkaSource {
  return new DebeziumKafkaSource({
    config: { type: 'debezium', name: 'shop', topic: 'shop.public.stock', columns: { tenantConstant: 'acme', sku: 'sku', locationConstant: 'main', onHand: 'qty' } },
    brokers: ['127.0.0.1:1'], groupId: 'g', bus, deadLetters: { deadLetter: () => undefined }, consumer, random: () => 0,
  });
}

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
