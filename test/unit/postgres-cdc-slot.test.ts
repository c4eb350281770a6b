// The slot check at setup: a slot PostgreSQL invalidated can never stream again, so the source refuses it with the fix.
// (An invalidated slot needs max_slot_wal_keep_size changed on the server, which the shared test cluster must not
// be, so the catalogue's answer is stubbed here; the server's own error at START_REPLICATION is in postgres-cdc-errors.)

import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { CdcError } from '../../src/adapters/postgres-cdc/errors.js';
import { inspectSlot, slotInvalidation } from '../../src/adapters/postgres-cdc/setup.js';
import type { SlotRow } from '../../src/adapters/postgres-cdc/setup.js';

const valid: SlotRow = { plugin: 'pgoutput', database: 'erp', temporary: false, current: 'erp', wal_status: 'reserved' };

/** A client whose one query answers with `slot` as pg_replication_slots' row, or no row. */
function catalogue(slot: SlotRow | undefined): pg.Client {
  return { query: async () => ({ rows: slot === undefined ? [] : [{ slot }] }) } as unknown as pg.Client;
}

describe('slotInvalidation', () => {
  it('says why a slot can no longer stream, on every server version', () => {
    expect(slotInvalidation(valid)).toBeUndefined();
    expect(slotInvalidation({ ...valid, wal_status: 'unreserved' })).toBeUndefined();
    expect(slotInvalidation({ ...valid, wal_status: 'lost' })).toMatch(/lost/);
    expect(slotInvalidation({ ...valid, wal_status: 'lost', invalidation_reason: 'wal_removed' })).toBe('wal_removed');
    expect(slotInvalidation({ ...valid, conflicting: true })).toMatch(/conflicted with recovery/);
    expect(slotInvalidation({ plugin: 'pgoutput', database: 'erp', temporary: false, current: 'erp' })).toBeUndefined();
  });
});

describe('inspectSlot', () => {
  it('reports whether a usable slot exists', async () => {
    expect(await inspectSlot(catalogue(undefined), 'stockline_warehouse')).toBe(false);
    expect(await inspectSlot(catalogue(valid), 'stockline_warehouse')).toBe(true);
  });

  it('refuses an invalidated slot without retrying, and says to drop it', async () => {
    const error = await inspectSlot(catalogue({ ...valid, wal_status: 'lost' }), 'stockline_warehouse').then(() => undefined, (thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(CdcError);
    expect(error).toMatchObject({ code: 'PG_SLOT_INVALIDATED', retryable: false });
    expect((error as CdcError).message).toMatch(/pg_drop_replication_slot\('stockline_warehouse'\).*fresh snapshot/);
  });
});
