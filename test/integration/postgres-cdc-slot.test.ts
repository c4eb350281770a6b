// PostgreSQL change data capture: a source counts as streaming only once the server accepted START_REPLICATION.
// A slot the server refuses (here: held by another source; in production also an invalidated slot, which the
// shared test cluster cannot produce without reconfiguring it, see test/unit/postgres-cdc-slot.test.ts) is a failed
// attempt, retried with backoff, not "streaming" followed by a reconnect, forever.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandBus, CommandInput, SourceOffsets, Submitted } from '../../src/app/ports.js';
import type { Command, LedgerState } from '../../src/core/index.js';
import { execute, initialState } from '../../src/core/index.js';
import type { ColumnMapping, PostgresSourceConfig } from '../../src/adapters/postgres-cdc/config.js';
import { PostgresCdcSource } from '../../src/adapters/postgres-cdc/source.js';
import type { SourceState } from '../../src/adapters/postgres-cdc/source.js';
import { createThrowawayDatabase, eventually, serverSetting } from '../support/pg.js';
import type { ThrowawayDatabase } from '../support/pg.js';

class LedgerBus implements CommandBus {
  readonly state: LedgerState = initialState();
  private counter = 0;
  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }
  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    return commands.map((input) => {
      this.counter += 1;
      return { outcome: execute(this.state, { ...input, id: `cmd-${this.counter}`, timeMs: input.timeMs ?? Date.now() } as Command).outcome };
    });
  }
  onHand(sku: string): number | undefined {
    return this.state.tenants.get('acme')?.skus.get(sku)?.locations.get('main')?.onHand;
  }
}

class MemoryOffsets implements SourceOffsets {
  readonly values = new Map<string, string>();
  get(source: string): string | undefined { return this.values.get(source); }
  set(source: string, value: string): void { this.values.set(source, value); }
}

const mapping: ColumnMapping = { tenantConstant: 'acme', sku: 'sku', locationConstant: 'main', onHand: 'qty' };
const run = randomBytes(3).toString('hex');
let database: ThrowawayDatabase;
const sources: PostgresCdcSource[] = [];

beforeAll(async () => {
  if (await serverSetting('wal_level') !== 'logical') throw new Error('PostgreSQL needs wal_level=logical; run scripts/pg-enable-logical.sh first');
  database = await createThrowawayDatabase('cdcfix2_slot');
});

afterAll(async () => {
  await Promise.all(sources.map((source) => source.stop()));
  await database?.drop();
});

describe('a slot the server will not stream from', () => {
  it('is a failed attempt, retried, and the source never reports streaming until the server accepts', async () => {
    await database.client.query('CREATE TABLE cdcfix2_slot_stock (sku text PRIMARY KEY, qty integer)');
    await database.client.query("INSERT INTO cdcfix2_slot_stock VALUES ('A', 5)");
    const name = `cdcfix2_${run}_slot`;
    const config: PostgresSourceConfig = { type: 'postgres', name, connectionString: database.connectionString, table: 'public.cdcfix2_slot_stock', columns: mapping, slot: name, publication: name };
    const offsets = new MemoryOffsets();
    const newSource = (bus: CommandBus): PostgresCdcSource => {
      const source = new PostgresCdcSource({ config, bus, offsets, deadLetters: { deadLetter: () => undefined } });
      sources.push(source);
      return source;
    };
    const holder = newSource(new LedgerBus());
    await holder.start();

    const bus = new LedgerBus();
    const second = newSource(bus);
    let resolved = false;
    const starting = second.start().then(() => { resolved = true; });
    const seen = new Set<SourceState>();
    const until = Date.now() + 3_000;
    while (Date.now() < until) {
      seen.add(second.status().state);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect([...seen]).toEqual(['starting']);
    expect(resolved).toBe(false);
    expect(second.status().lastError).toMatchObject({ code: 'PG_CONNECTION', message: expect.stringMatching(/is active for PID/) as unknown });

    // Once the slot is free, a retry streams.
    await holder.stop();
    await starting;
    expect(second.status()).toMatchObject({ state: 'streaming', connected: true });
    await database.client.query("UPDATE cdcfix2_slot_stock SET qty = 7 WHERE sku = 'A'");
    expect(await eventually(() => bus.onHand('A') === 7)).toBe(true);
  });
});
