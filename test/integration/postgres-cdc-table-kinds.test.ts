// PostgreSQL change data capture over tables of particular kinds: UNLOGGED, typed by a domain over character(n),
// partitioned with a key that leaves out the mapped columns. Each is refused with its fix, or streamed like the snapshot.

import { describe, expect, it } from 'vitest';
import type { DeadLetter } from '../../src/app/ports.js';
import { CdcError } from '../../src/adapters/postgres-cdc/errors.js';
import type { PostgresCdcSource } from '../../src/adapters/postgres-cdc/source.js';
import type { LedgerBus } from '../support/ledger-bus.js';
import { eventually } from '../support/pg.js';
import { useCdcDatabase } from '../support/postgres-cdc.js';

const cdc = useCdcDatabase('cdcfix2_kinds', 'cdcfix2');
const { sql } = cdc;

/** A source (not started) over `table`, with its own slot and publication. */
function sourceOver(table: string): { source: PostgresCdcSource; bus: LedgerBus; letters: DeadLetter[] } {
  const { newSource, bus, letters } = cdc.sourceOver(table);
  return { source: newSource(), bus, letters };
}

/** start()'s rejection, or 'pending' when it neither resolves nor rejects within `waitMs` (it is retrying). */
async function startOutcome(source: PostgresCdcSource, waitMs = 5_000): Promise<CdcError | 'resolved' | 'pending'> {
  const outcome = source.start().then(() => 'resolved' as const, (error: unknown) => {
    if (error instanceof CdcError) return error;
    throw error;
  });
  return Promise.race([outcome, new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), waitMs))]);
}

describe('an UNLOGGED table', () => {
  it('is refused at once, without retrying, naming ALTER TABLE ... SET LOGGED; no publication is made', async () => {
    await sql('CREATE UNLOGGED TABLE cdcfix2_unlogged (tenant text, sku text, location text, qty integer, PRIMARY KEY (tenant, sku, location))');
    const { source } = sourceOver('cdcfix2_unlogged');
    const outcome = await startOutcome(source);
    expect(outcome).toBeInstanceOf(CdcError);
    expect(outcome).toMatchObject({ code: 'PG_TABLE_UNLOGGED', retryable: false });
    expect((outcome as CdcError).message).toMatch(/UNLOGGED.*ALTER TABLE public\.cdcfix2_unlogged SET LOGGED/);
    expect(source.status().state).toBe('failed');
    const publications = await cdc.database.client.query("SELECT 1 FROM pg_publication WHERE pubname LIKE 'cdcfix2_%'");
    expect(publications.rowCount).toBe(0);
  });
});

describe('SKU and location columns typed by a domain over character(n)', () => {
  it('stream like the snapshot reads them: without the padding, through domains of domains too', async () => {
    await sql('CREATE DOMAIN cdcfix2_sku_code AS character(8)');
    await sql('CREATE DOMAIN cdcfix2_code AS character(4)');
    await sql('CREATE DOMAIN cdcfix2_warehouse_code AS cdcfix2_code');
    await sql('CREATE TABLE cdcfix2_domain (tenant text, sku cdcfix2_sku_code, location cdcfix2_warehouse_code, qty integer, PRIMARY KEY (tenant, sku, location))');
    await sql("INSERT INTO cdcfix2_domain VALUES ('acme', 'TEE-1', 'WH1', 10), ('acme', 'TEE-9', 'WH1', 2)");
    const { source, bus, letters } = sourceOver('cdcfix2_domain');
    await source.start();
    expect(bus.onHand('TEE-1', 'WH1')).toBe(10);
    await sql("UPDATE cdcfix2_domain SET qty = 3 WHERE sku = 'TEE-1'");
    await sql("UPDATE cdcfix2_domain SET location = 'WH2' WHERE sku = 'TEE-9'");
    expect(await eventually(() => bus.onHand('TEE-9', 'WH2') === 2 || letters.length > 0)).toBe(true);
    expect(letters).toEqual([]);
    expect({ tee1: bus.onHand('TEE-1', 'WH1'), tee9main: bus.onHand('TEE-9', 'WH1'), tee9north: bus.onHand('TEE-9', 'WH2') }).toEqual({ tee1: 3, tee9main: 0, tee9north: 2 });
  });
});

describe('a partitioned table whose primary key leaves out mapped columns', () => {
  it('is refused until the table and every partition have REPLICA IDENTITY FULL, naming those left to alter', async () => {
    await sql(`CREATE TABLE cdcfix2_part (id serial, tenant text NOT NULL, sku text NOT NULL, location text NOT NULL, qty integer,
      PRIMARY KEY (id, tenant)) PARTITION BY LIST (tenant)`);
    await sql("CREATE TABLE cdcfix2_part_acme PARTITION OF cdcfix2_part FOR VALUES IN ('acme')");
    await sql("INSERT INTO cdcfix2_part (tenant, sku, location, qty) VALUES ('acme', 'X', 'main', 5)");
    const refused = await startOutcome(sourceOver('cdcfix2_part').source);
    expect(refused).toMatchObject({ code: 'PG_NO_REPLICA_IDENTITY', retryable: false });
    expect((refused as CdcError).message).toMatch(/ALTER TABLE public\.cdcfix2_part REPLICA IDENTITY FULL; ALTER TABLE public\.cdcfix2_part_acme REPLICA IDENTITY FULL;/);

    // What the message used to suggest, the parent alone, is not enough.
    await sql('ALTER TABLE cdcfix2_part REPLICA IDENTITY FULL');
    const parentOnly = await startOutcome(sourceOver('cdcfix2_part').source);
    expect(parentOnly).toMatchObject({ code: 'PG_NO_REPLICA_IDENTITY', retryable: false });
    expect((parentOnly as CdcError).message).toMatch(/identity of public\.cdcfix2_part_acme does not.*run ALTER TABLE public\.cdcfix2_part_acme REPLICA IDENTITY FULL; \(/);

    await sql('ALTER TABLE cdcfix2_part_acme REPLICA IDENTITY FULL');
    const { source, bus, letters } = sourceOver('cdcfix2_part');
    await source.start();
    expect(bus.onHand('X', 'main')).toBe(5);
    await sql("UPDATE cdcfix2_part SET location = 'north' WHERE sku = 'X'");
    expect(await eventually(() => bus.onHand('X', 'north') === 5)).toBe(true);
    expect(bus.onHand('X', 'main')).toBe(0);
    expect(letters).toEqual([]);
  });

  it('dead-letters a move in a partition attached while streaming (default identity), never counting it twice', async () => {
    await sql(`CREATE TABLE cdcfix2_part2 (id serial, tenant text NOT NULL, sku text NOT NULL, location text NOT NULL, qty integer,
      PRIMARY KEY (id, tenant)) PARTITION BY LIST (tenant)`);
    await sql("CREATE TABLE cdcfix2_part2_acme PARTITION OF cdcfix2_part2 FOR VALUES IN ('acme')");
    await sql('ALTER TABLE cdcfix2_part2 REPLICA IDENTITY FULL');
    await sql('ALTER TABLE cdcfix2_part2_acme REPLICA IDENTITY FULL');
    const { source, bus, letters } = sourceOver('cdcfix2_part2');
    await source.start();
    await sql("CREATE TABLE cdcfix2_part2_globex PARTITION OF cdcfix2_part2 FOR VALUES IN ('globex')");
    await sql("INSERT INTO cdcfix2_part2 (tenant, sku, location, qty) VALUES ('globex', 'Y', 'main', 4)");
    expect(await eventually(() => bus.onHand('Y', 'main', 'globex') === 4)).toBe(true);
    await sql("UPDATE cdcfix2_part2 SET location = 'north' WHERE sku = 'Y'");
    expect(await eventually(() => letters.length > 0 || bus.onHand('Y', 'north', 'globex') !== undefined)).toBe(true);
    expect(letters.map((letter) => letter.reason)).toEqual([expect.stringMatching(/UPDATE whose move .* cannot be checked.*every partition/)]);
    expect({ main: bus.onHand('Y', 'main', 'globex'), north: bus.onHand('Y', 'north', 'globex') }).toEqual({ main: 4, north: undefined });
  });
});
