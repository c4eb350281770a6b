// PostgreSQL change data capture when the stock table is swapped for a rebuilt copy (create, copy, rename, as online
// schema migrations do): the copy is not in the publication, so the source must say so, and take a new snapshot once it is.

import { describe, expect, it } from 'vitest';
import { eventually } from '../support/pg.js';
import { useCdcDatabase } from '../support/postgres-cdc.js';

const cdc = useCdcDatabase('cdcfix_swap', 'cdcfix');
const { sql } = cdc;

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
    const h = await cdc.seededSource();
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
    const h = await cdc.seededSource();
    const table = h.config.table.replace('public.', '');
    const source = h.newSource();
    await source.start();
    await sql(`ALTER TABLE ${table} RENAME TO ${table}_old`);
    await sql(`UPDATE ${table}_old SET qty = 4`);
    expect(await eventually(() => source.status().lastError?.code === 'PG_TABLE_CHANGED', 10_000)).toBe(true);
    expect(h.bus.onHand('A')).toBe(5);
    const pending = await cdc.database.client.query<{ behind: boolean }>('SELECT confirmed_flush_lsn < pg_current_wal_lsn() AS behind FROM pg_replication_slots WHERE slot_name = $1', [h.config.slot]);
    expect(pending.rows[0]?.behind).toBe(true);
    await source.stop();
  });

  it('stops without acknowledging when a mapped column is renamed, and reads the changes once the mapping names it', async () => {
    const h = await cdc.seededSource();
    const table = h.config.table.replace('public.', '');
    const source = h.newSource();
    await source.start();
    await sql(`ALTER TABLE ${table} RENAME COLUMN qty TO quantity`);
    await sql(`UPDATE ${table} SET quantity = 7 WHERE sku = 'A'`);
    expect(await eventually(() => source.status().state === 'failed', 10_000)).toBe(true);
    expect(source.status().lastError?.code).toBe('PG_COLUMN_MISSING');
    expect(source.status().lastError?.message).toMatch(/has no column qty/);
    // Nothing was taken as a dead letter and acknowledged: the change waits in the slot.
    expect(h.letters).toEqual([]);
    expect(h.bus.onHand('A')).toBe(5);
    await source.stop();
    h.config.columns = { ...h.config.columns, onHand: 'quantity' };
    const renamed = h.newSource();
    await renamed.start();
    expect(await eventually(() => h.bus.onHand('A') === 7)).toBe(true);
    await renamed.stop();
  });

  it('is read again from a new snapshot at start when the copy was published before the source noticed', async () => {
    const h = await cdc.seededSource();
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
