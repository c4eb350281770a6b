// PostgreSQL change data capture of a soft-delete column whose value is TOASTed: pgoutput does not send an unchanged
// TOASTed value in an UPDATE (default replica identity), and the row must still reach the ledger, with the right flag.

import { beforeAll, describe, expect, it } from 'vitest';
import type { DeadLetter } from '../../src/app/ports.js';
import type { ColumnMapping } from '../../src/adapters/postgres-cdc/config.js';
import type { LedgerBus } from '../support/ledger-bus.js';
import { eventually } from '../support/pg.js';
import { useCdcDatabase } from '../support/postgres-cdc.js';

/** The soft-delete column holds why a SKU was discontinued: any value marks it deleted. */
const mapping: ColumnMapping = { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty', deletedAt: 'discontinued' };
/** About 6.6 kB, stored out of line (STORAGE EXTERNAL: no compression), so an UPDATE that leaves it alone sends it as unchanged. */
const longReason = "(SELECT string_agg(md5(g::text), ' ') FROM generate_series(1, 200) g)";
const cdc = useCdcDatabase('cdcfix2_toast', 'cdcfix2');
const { sql } = cdc;
let bus: LedgerBus;
let letters: DeadLetter[];

/** Commits a marker row and waits for it: every change committed before it has then been handled. */
async function settled(marker: string): Promise<void> {
  await sql(`INSERT INTO cdcfix2_toast VALUES ('acme', '${marker}', 'main', 1, NULL)`);
  expect(await eventually(() => bus.onHand(marker, 'main') === 1)).toBe(true);
}

beforeAll(async () => {
  await sql('CREATE TABLE cdcfix2_toast (tenant text, sku text, location text, qty integer, discontinued text, PRIMARY KEY (tenant, sku, location))');
  await sql('ALTER TABLE cdcfix2_toast ALTER COLUMN discontinued SET STORAGE EXTERNAL');
  await sql(`INSERT INTO cdcfix2_toast VALUES ('acme', 'OLD-1', 'main', 5, ${longReason}), ('acme', 'OLD-2', 'main', 3, ${longReason}), ('acme', 'LIVE-1', 'main', 4, NULL)`);
  const stream = cdc.sourceOver('cdcfix2_toast', mapping);
  ({ bus, letters } = stream);
  await stream.newSource().start();
});

describe('an UPDATE that leaves a TOASTed soft-delete value unchanged', () => {
  it('applies the stock and leaves the SKU deleted', async () => {
    expect([bus.onHand('OLD-1', 'main'), bus.deleted('OLD-1')]).toEqual([5, true]);
    await sql("UPDATE cdcfix2_toast SET qty = 2 WHERE sku = 'OLD-1'");
    expect(await eventually(() => bus.onHand('OLD-1', 'main') === 2 || letters.length > 0)).toBe(true);
    expect(letters).toEqual([]);
    expect(bus.onHand('OLD-1', 'main')).toBe(2);
    expect(bus.deleted('OLD-1')).toBe(true);
  });

  it('keeps a soft delete made earlier in the same transaction', async () => {
    await sql('BEGIN');
    await sql(`UPDATE cdcfix2_toast SET discontinued = ${longReason} WHERE sku = 'LIVE-1'`);
    await sql("UPDATE cdcfix2_toast SET qty = 1 WHERE sku = 'LIVE-1'");
    await sql('COMMIT');
    await settled('MARK-1');
    expect(letters).toEqual([]);
    expect([bus.onHand('LIVE-1', 'main'), bus.deleted('LIVE-1')]).toEqual([1, true]);
  });

  it('marks the SKU a deleted row moves to as deleted, and empties the old place', async () => {
    await sql("UPDATE cdcfix2_toast SET sku = 'NEW-2' WHERE sku = 'OLD-2'");
    await settled('MARK-2');
    expect(letters).toEqual([]);
    expect([bus.onHand('OLD-2', 'main'), bus.onHand('NEW-2', 'main'), bus.deleted('NEW-2')]).toEqual([0, 3, true]);
  });
});
