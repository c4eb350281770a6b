// PostgreSQL change data capture: a source counts as streaming only once the server accepted START_REPLICATION.
// A slot the server refuses (here: held by another source; in production also an invalidated slot, which the
// shared test cluster cannot produce without reconfiguring it, see test/unit/postgres-cdc-slot.test.ts) is a failed
// attempt, retried with backoff, not "streaming" followed by a reconnect, forever.

import { describe, expect, it } from 'vitest';
import type { ColumnMapping } from '../../src/adapters/postgres-cdc/config.js';
import type { SourceState } from '../../src/adapters/postgres-cdc/source.js';
import { LedgerBus } from '../support/ledger-bus.js';
import { eventually } from '../support/pg.js';
import { useCdcDatabase } from '../support/postgres-cdc.js';

const mapping: ColumnMapping = { tenantConstant: 'acme', sku: 'sku', locationConstant: 'main', onHand: 'qty' };
const cdc = useCdcDatabase('cdcfix2_slot', 'cdcfix2');

describe('a slot the server will not stream from', () => {
  it('is a failed attempt, retried, and the source never reports streaming until the server accepts', async () => {
    await cdc.sql('CREATE TABLE cdcfix2_slot_stock (sku text PRIMARY KEY, qty integer)');
    await cdc.sql("INSERT INTO cdcfix2_slot_stock VALUES ('A', 5)");
    const { newSource } = cdc.sourceOver('cdcfix2_slot_stock', mapping);
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
    await cdc.sql("UPDATE cdcfix2_slot_stock SET qty = 7 WHERE sku = 'A'");
    expect(await eventually(() => bus.onHand('A') === 7)).toBe(true);
  });
});
