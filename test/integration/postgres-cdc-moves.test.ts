// PostgreSQL change data capture: a place (tenant, SKU, location) that changes hands inside one transaction, and a row
// that moves to a place that cannot be mapped. The ledger must end equal to the table.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandBus, CommandInput, DeadLetter, SourceOffsets, Submitted } from '../../src/app/ports.js';
import type { Command, LedgerState } from '../../src/core/index.js';
import { execute, initialState } from '../../src/core/index.js';
import type { ColumnMapping, PostgresSourceConfig } from '../../src/adapters/postgres-cdc/config.js';
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
  onHand(sku: string, location: string, tenant = 'acme'): number | undefined {
    return this.state.tenants.get(tenant)?.skus.get(sku)?.locations.get(location)?.onHand;
  }
}

class MemoryOffsets implements SourceOffsets {
  readonly values = new Map<string, string>();
  get(source: string): string | undefined { return this.values.get(source); }
  set(source: string, value: string): void { this.values.set(source, value); }
}

const mapping: ColumnMapping = { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' };
/** Slots are cluster-wide: a random part keeps two runs of this file apart. */
const run = randomBytes(3).toString('hex');
let database: ThrowawayDatabase;
let counter = 0;
const sources: PostgresCdcSource[] = [];

async function sql(text: string, values: unknown[] = []): Promise<Array<Record<string, unknown>>> {
  return (await database.client.query(text, values)).rows as Array<Record<string, unknown>>;
}

/** A table (REPLICA IDENTITY FULL unless `keyed`) and a started source over it. */
async function streaming(columnsSql: string, rowsSql: string, identityFull = true): Promise<{ table: string; bus: LedgerBus; letters: DeadLetter[] }> {
  counter += 1;
  const table = `cdcfix_stock_${counter}`;
  await sql(`CREATE TABLE ${table} (${columnsSql})`);
  if (identityFull) await sql(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
  if (rowsSql !== '') await sql(`INSERT INTO ${table} (tenant, sku, location, qty) VALUES ${rowsSql}`);
  const name = `cdcfix_${run}_${counter}`;
  const config: PostgresSourceConfig = { type: 'postgres', name, connectionString: database.connectionString, table: `public.${table}`, columns: mapping, slot: name, publication: name };
  const bus = new LedgerBus();
  const letters: DeadLetter[] = [];
  const source = new PostgresCdcSource({ config, bus, offsets: new MemoryOffsets(), deadLetters: { deadLetter: (letter) => letters.push(letter) } });
  sources.push(source);
  await source.start();
  return { table, bus, letters };
}

beforeAll(async () => {
  if (await serverSetting('wal_level') !== 'logical') throw new Error('PostgreSQL needs wal_level=logical; run scripts/pg-enable-logical.sh first');
  database = await createThrowawayDatabase('cdcfix_moves');
});

afterAll(async () => {
  await Promise.all(sources.map((source) => source.stop()));
  await database?.drop();
});

/** One row per (tenant, sku, location) at every commit, checked by PostgreSQL itself. */
const deferredUnique = 'id serial PRIMARY KEY, tenant text NOT NULL, sku text NOT NULL, location text NOT NULL, qty integer, UNIQUE (tenant, sku, location) DEFERRABLE INITIALLY DEFERRED';

describe('a place that changes hands inside one transaction', () => {
  it('two rows swapping locations in one UPDATE leave both locations their new stock', async () => {
    const { table, bus, letters } = await streaming(deferredUnique, "('acme', 'X', 'main', 5), ('acme', 'X', 'north', 7)");
    expect([bus.onHand('X', 'main'), bus.onHand('X', 'north')]).toEqual([5, 7]);
    await sql(`UPDATE ${table} SET location = CASE location WHEN 'main' THEN 'north' ELSE 'main' END WHERE sku = 'X'`);
    await sql(`INSERT INTO ${table} (tenant, sku, location, qty) VALUES ('acme', 'DONE', 'main', 1)`);
    expect(await eventually(() => bus.onHand('DONE', 'main') === 1)).toBe(true);
    expect({ main: bus.onHand('X', 'main'), north: bus.onHand('X', 'north') }).toEqual({ main: 7, north: 5 });
    expect(letters).toEqual([]);
  });

  it('new counts inserted before the old rows are deleted, in one transaction, stay', async () => {
    const { table, bus, letters } = await streaming(deferredUnique, "('acme', 'A', 'main', 5), ('acme', 'B', 'main', 3)");
    await sql('BEGIN');
    await sql(`INSERT INTO ${table} (tenant, sku, location, qty) VALUES ('acme', 'A', 'main', 9), ('acme', 'B', 'main', 4)`);
    await sql(`DELETE FROM ${table} WHERE id <= 2`);
    await sql('COMMIT');
    await sql(`INSERT INTO ${table} (tenant, sku, location, qty) VALUES ('acme', 'DONE', 'main', 1)`);
    expect(await eventually(() => bus.onHand('DONE', 'main') === 1)).toBe(true);
    expect({ A: bus.onHand('A', 'main'), B: bus.onHand('B', 'main') }).toEqual({ A: 9, B: 4 });
    expect(letters).toEqual([]);
  });

  it('a row that arrives, is changed and leaves again in one transaction empties the place; one that stays holds it', async () => {
    const { table, bus } = await streaming(deferredUnique, "('acme', 'Y', 'main', 2)");
    await sql('BEGIN');
    await sql(`UPDATE ${table} SET location = 'north' WHERE sku = 'Y'`);
    await sql(`UPDATE ${table} SET qty = 3 WHERE sku = 'Y'`);
    await sql(`UPDATE ${table} SET location = 'south' WHERE sku = 'Y'`);
    await sql(`INSERT INTO ${table} (tenant, sku, location, qty) VALUES ('acme', 'Y', 'main', 8)`);
    await sql('COMMIT');
    expect(await eventually(() => bus.onHand('Y', 'south') === 3)).toBe(true);
    expect({ main: bus.onHand('Y', 'main'), north: bus.onHand('Y', 'north') }).toEqual({ main: 8, north: 0 });
  });
});

describe('a row moved to a place that cannot be mapped', () => {
  it('empties its old place and goes to dead letters (primary key identity)', async () => {
    const { table, bus, letters } = await streaming('tenant text, sku text, location text, qty integer, PRIMARY KEY (tenant, sku, location)', "('acme', 'TEE-1', 'main', 5)", false);
    expect(bus.onHand('TEE-1', 'main')).toBe(5);
    await sql(`UPDATE ${table} SET sku = 'TEE 1' WHERE sku = 'TEE-1'`);
    expect(await eventually(() => letters.length === 1)).toBe(true);
    expect(letters[0]?.reason).toMatch(/does not match/);
    expect(await eventually(() => bus.onHand('TEE-1', 'main') === 0, 3_000)).toBe(true);
  });

  it('empties its old place and goes to dead letters (REPLICA IDENTITY FULL)', async () => {
    const { table, bus, letters } = await streaming('id serial PRIMARY KEY, tenant text, sku text, location text, qty integer', "('acme', 'TEE-2', 'main', 5)");
    await sql(`UPDATE ${table} SET location = NULL WHERE sku = 'TEE-2'`);
    expect(await eventually(() => letters.length === 1)).toBe(true);
    expect(letters[0]?.reason).toMatch(/location \(column location\) is NULL/);
    expect(await eventually(() => bus.onHand('TEE-2', 'main') === 0, 3_000)).toBe(true);
  });
});
