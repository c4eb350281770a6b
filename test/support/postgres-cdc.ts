// A throwaway database for a file of change data capture tests, tables in it, and sources over them that are stopped
// before it is dropped.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import type { CommandBus, DeadLetter } from '../../src/app/ports.js';
import type { ColumnMapping, PostgresSourceConfig } from '../../src/adapters/postgres-cdc/config.js';
import { CdcError } from '../../src/adapters/postgres-cdc/errors.js';
import { PostgresCdcSource } from '../../src/adapters/postgres-cdc/source.js';
import { LedgerBus, MemoryOffsets } from './ledger-bus.js';
import { createThrowawayDatabase, serverSetting } from './pg.js';
import type { ThrowawayDatabase } from './pg.js';

/** Each of tenant, SKU and location from the column of that name, the quantity from `qty`. */
export const stockColumns: ColumnMapping = { tenant: 'tenant', sku: 'sku', location: 'location', onHand: 'qty' };

/** A source's config and what it writes to; restarts of the same source share them. */
export interface CdcSourceHarness {
  config: PostgresSourceConfig;
  bus: LedgerBus;
  offsets: MemoryOffsets;
  letters: DeadLetter[];
  /** A source (not started) with this config and offsets, writing to `bus`; it is stopped when the file ends. */
  newSource(bus?: CommandBus): PostgresCdcSource;
}

export interface CdcDatabase {
  /** The throwaway database, there from the file's first `beforeAll` on. */
  readonly database: ThrowawayDatabase;
  sql(text: string, values?: unknown[]): Promise<Array<Record<string, unknown>>>;
  /** A new table `cdcfix_stock_<n>` with these columns and `rowsSql` (a VALUES list of tenant, sku, location, qty). */
  createTable(columnsSql: string, rowsSql?: string, identityFull?: boolean): Promise<string>;
  /** A keyed table holding acme/A/main = 5, and a source over it. */
  seededSource(): Promise<CdcSourceHarness>;
  /** A source over `table` with a slot and publication of its own. */
  sourceOver(table: string, columns?: ColumnMapping): CdcSourceHarness;
}

/**
 * Registers the file's hooks: the database is made once wal_level=logical is checked, and dropped after every source
 * made through it stopped. Slots and publications are named `<namePrefix>_<run>_<n>`: slots are cluster-wide, and the
 * random run keeps two runs of a file apart.
 */
export function useCdcDatabase(databasePrefix: string, namePrefix: string): CdcDatabase {
  const run = randomBytes(3).toString('hex');
  const sources: PostgresCdcSource[] = [];
  let database: ThrowawayDatabase | undefined;
  let tableCounter = 0;
  let sourceCounter = 0;

  beforeAll(async () => {
    if (await serverSetting('wal_level') !== 'logical') throw new Error('PostgreSQL needs wal_level=logical; run scripts/pg-enable-logical.sh first');
    database = await createThrowawayDatabase(databasePrefix);
  });

  afterAll(async () => {
    await Promise.all(sources.map((source) => source.stop()));
    await database?.drop();
  });

  const opened = (): ThrowawayDatabase => {
    if (database === undefined) throw new Error('the CDC test database is made in beforeAll; use it from a hook or test');
    return database;
  };

  const sql = async (text: string, values: unknown[] = []): Promise<Array<Record<string, unknown>>> =>
    (await opened().client.query(text, values)).rows as Array<Record<string, unknown>>;

  const createTable = async (columnsSql: string, rowsSql = '', identityFull = false): Promise<string> => {
    tableCounter += 1;
    const table = `cdcfix_stock_${tableCounter}`;
    await sql(`CREATE TABLE ${table} (${columnsSql})`);
    if (identityFull) await sql(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    if (rowsSql !== '') await sql(`INSERT INTO ${table} (tenant, sku, location, qty) VALUES ${rowsSql}`);
    return table;
  };

  const sourceOver = (table: string, columns: ColumnMapping = stockColumns): CdcSourceHarness => {
    sourceCounter += 1;
    const name = `${namePrefix}_${run}_${sourceCounter}`;
    const config: PostgresSourceConfig = { type: 'postgres', name, connectionString: opened().connectionString, table: `public.${table}`, columns, slot: name, publication: name };
    const harness: CdcSourceHarness = {
      config, bus: new LedgerBus(), offsets: new MemoryOffsets(), letters: [],
      newSource: (bus = harness.bus) => {
        const source = new PostgresCdcSource({ config, bus, offsets: harness.offsets, deadLetters: { deadLetter: (letter) => harness.letters.push(letter) } });
        sources.push(source);
        return source;
      },
    };
    return harness;
  };

  const seededSource = async (): Promise<CdcSourceHarness> =>
    sourceOver(await createTable('tenant text, sku text, location text, qty integer, PRIMARY KEY (tenant, sku, location)', "('acme', 'A', 'main', 5)"));

  return {
    get database() { return opened(); },
    sql, createTable, seededSource, sourceOver,
  };
}

/** The CdcError that `start()` rejects with; anything else fails the test. */
export async function startError(source: PostgresCdcSource): Promise<CdcError> {
  const error = await source.start().then(() => undefined, (thrown: unknown) => thrown);
  if (!(error instanceof CdcError)) throw new Error(`expected a CdcError, got ${String(error)}`);
  return error;
}
