// PostgreSQL change data capture when the stock table is swapped for a rebuilt copy (create, copy, rename, as online
// schema migrations do): the copy is not in the publication, so the source must say so, and take a new snapshot once it is.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandBus, CommandInput, DeadLetter, SourceOffsets, Submitted } from '../../src/app/ports.js';
import type { Command, LedgerState } from '../../src/core/index.js';
import { execute, initialState } from '../../src/core/index.js';
import type { PostgresSourceConfig } from '../../src/adapters/postgres-cdc/config.js';
import { PostgresCdcSource } from '../../src/adapters/postgres-cdc/source.js';
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

const run = randomBytes(3).toString('hex');
let database: ThrowawayDatabase;
let counter = 0;
const sources: PostgresCdcSource[] = [];

async function sql(text: string): Promise<Array<Record<string, unknown>>> {
  return (await database.client.query(text)).rows as Array<Record<string, unknown>>;
}

async function harness(): Promise<{ bus: LedgerBus; offsets: MemoryOffsets; config: PostgresSourceConfig; newSource(): PostgresCdcSource }> {
  counter += 1;
  const table = `cdcfix_stock_${counter}`;
  await sql(`CREATE TABLE ${table} (tenant text, sku text, location text, qty integer, PRIMARY KEY (tenant, sku, location))`);
  await sql(`INSERT INTO ${table} VALUES ('acme', 'A', 'main', 5)`);
  const name = `cdcfix_${run}_${counter}`;
  const config: PostgresSourceConfig = {
    type: 'postgres', name, connectionString: database.connectionString, table: `public.${table}`,
    columns: { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' }, slot: name, publication: name,
  };
  const bus = new LedgerBus();
  const offsets = new MemoryOffsets();
  const letters: DeadLetter[] = [];
  const newSource = (): PostgresCdcSource => {
    const source = new PostgresCdcSource({ config, bus, offsets, deadLetters: { deadLetter: (letter) => letters.push(letter) } });
    sources.push(source);
    return source;
  };
  return { bus, offsets, config, newSource };
}

beforeAll(async () => {
  if (await serverSetting('wal_level') !== 'logical') throw new Error('PostgreSQL needs wal_level=logical; run scripts/pg-enable-logical.sh first');
  database = await createThrowawayDatabase('cdcfix_swap');
});

afterAll(async () => {
  await Promise.all(sources.map((source) => source.stop()));
  await database?.drop();
});

/** The migration: a rebuilt copy takes the table's name, in one transaction. */
async function swapTable(table: string): Promise<void> {
  await sql(`BEGIN;
    CREATE TABLE ${table}_new (LIKE ${table} INCLUDING ALL, note text);
    INSERT INTO ${table}_new SELECT *, NULL FROM ${table};
    ALTER TABLE ${table} RENAME TO ${table}_old;
    ALTER TABLE ${table}_new RENAME TO ${table};
    DROP TABLE ${table}_old;
    COMMIT`);
}

describe('a table swapped for a rebuilt copy', () => {
  it('stops the stream with a clear error, is refused until published again, then is read again from a new snapshot', async () => {
    const h = await harness();
    const table = h.config.table.replace('public.', '');
    const source = h.newSource();
    await source.start();
    expect(h.bus.onHand('A')).toBe(5);
    await swapTable(table);
    await sql(`UPDATE ${table} SET qty = 2 WHERE sku = 'A'`);
    await sql(`INSERT INTO ${table} VALUES ('acme', 'B', 'main', 8, NULL)`);
    expect(await eventually(() => source.status().lastError?.code === 'PG_TABLE_CHANGED', 10_000)).toBe(true);
    expect(source.status().lastError?.message).toMatch(/replaced by another table.*ALTER PUBLICATION .* ADD TABLE/);
    // The restart it attempts on its own is refused: the copy is not published.
    expect(await eventually(() => source.status().state === 'failed', 10_000)).toBe(true);
    expect(source.status().lastError).toMatchObject({ code: 'PG_SLOT_MISMATCH', message: expect.stringMatching(/does not include table/) as unknown });
    await source.stop();

    await sql(`ALTER PUBLICATION ${h.config.publication} ADD TABLE ${table}`);
    const again = h.newSource();
    await again.start();
    expect({ A: h.bus.onHand('A'), B: h.bus.onHand('B') }).toEqual({ A: 2, B: 8 });
    await sql(`UPDATE ${table} SET qty = 1 WHERE sku = 'B'`);
    expect(await eventually(() => h.bus.onHand('B') === 1)).toBe(true);
    await again.stop();
  });

  it('stops the stream, without acknowledging, when the table is renamed and changed under its new name', async () => {
    const h = await harness();
    const table = h.config.table.replace('public.', '');
    const source = h.newSource();
    await source.start();
    await sql(`ALTER TABLE ${table} RENAME TO ${table}_old`);
    await sql(`UPDATE ${table}_old SET qty = 4`);
    expect(await eventually(() => source.status().lastError?.code === 'PG_TABLE_CHANGED', 10_000)).toBe(true);
    expect(h.bus.onHand('A')).toBe(5);
    const pending = await database.client.query<{ behind: boolean }>('SELECT confirmed_flush_lsn < pg_current_wal_lsn() AS behind FROM pg_replication_slots WHERE slot_name = $1', [h.config.slot]);
    expect(pending.rows[0]?.behind).toBe(true);
    await source.stop();
  });

  it('is read again from a new snapshot at start when the copy was published before the source noticed', async () => {
    const h = await harness();
    const table = h.config.table.replace('public.', '');
    const first = h.newSource();
    await first.start();
    await first.stop();
    await swapTable(table);
    await sql(`UPDATE ${table} SET qty = 3 WHERE sku = 'A'`);
    await sql(`ALTER PUBLICATION ${h.config.publication} ADD TABLE ${table}`);
    const again = h.newSource();
    await again.start();
    expect(h.bus.onHand('A')).toBe(3);
    await again.stop();
  });
});
