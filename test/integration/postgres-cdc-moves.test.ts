// PostgreSQL change data capture: a place (tenant, SKU, location) that changes hands inside one transaction, and a row
// that moves to a place that cannot be mapped. The ledger must end equal to the table.

import { describe, expect, it } from 'vitest';
import type { DeadLetter } from '../../src/app/ports.js';
import type { LedgerBus } from '../support/ledger-bus.js';
import { eventually } from '../support/pg.js';
import { useCdcDatabase } from '../support/postgres-cdc.js';

const cdc = useCdcDatabase('cdcfix_moves', 'cdcfix');
const { sql } = cdc;

/** A table (REPLICA IDENTITY FULL unless `identityFull` is false) and a started source over it. */
async function streaming(columnsSql: string, rowsSql: string, identityFull = true): Promise<{ table: string; bus: LedgerBus; letters: DeadLetter[] }> {
  const table = await cdc.createTable(columnsSql, rowsSql, identityFull);
  const { bus, letters, newSource } = cdc.sourceOver(table);
  await newSource().start();
  return { table, bus, letters };
}

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
