// Checks the merchant's database before streaming: logical WAL, table and columns, publication, slot.

import pg from 'pg';
import type { ColumnMapping, PostgresSourceConfig } from './config.js';
import { CdcError, asCdcError } from './errors.js';

export interface TableName {
  schema: string;
  table: string;
}

export function tableNameOf(config: PostgresSourceConfig): TableName {
  const dot = config.table.indexOf('.');
  return dot < 0 ? { schema: 'public', table: config.table } : { schema: config.table.slice(0, dot), table: config.table.slice(dot + 1) };
}

export function qualifiedName(name: TableName): string {
  return `${pg.escapeIdentifier(name.schema)}.${pg.escapeIdentifier(name.table)}`;
}

/** The mapped columns, each once. */
export function mappedColumns(mapping: ColumnMapping): string[] {
  const columns = [mapping.sku, mapping.location, mapping.onHand, mapping.tenant, mapping.deletedAt];
  return [...new Set(columns.filter((column): column is string => column !== undefined))];
}

async function checkWalLevel(admin: pg.Client): Promise<void> {
  const level = (await admin.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
  if (level !== 'logical') {
    throw new CdcError('PG_NOT_LOGICAL', `wal_level is ${String(level)}; logical replication needs wal_level = logical (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL; scripts/pg-enable-logical.sh does it on a local cluster)`, false);
  }
}

async function checkTable(admin: pg.Client, name: TableName, mapping: ColumnMapping): Promise<void> {
  const table = await admin.query<{ oid: number }>(
    `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, [name.schema, name.table]);
  const oid = table.rows[0]?.oid;
  if (oid === undefined) throw new CdcError('PG_TABLE_MISSING', `table ${name.schema}.${name.table} does not exist`, false);
  const columns = await admin.query<{ attname: string }>('SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped', [oid]);
  const present = new Set(columns.rows.map((row) => row.attname));
  const missing = mappedColumns(mapping).filter((column) => !present.has(column));
  if (missing.length > 0) {
    throw new CdcError('PG_COLUMN_MISSING', `table ${name.schema}.${name.table} has no column ${missing.join(', ')} (names are matched exactly, case included)`, false);
  }
  await checkReplicaIdentity(admin, oid, name);
}

/**
 * A published table without a replica identity makes PostgreSQL refuse its UPDATEs and DELETEs, so
 * publishing it would break the merchant's own writes: refuse, and say what to change.
 */
async function checkReplicaIdentity(admin: pg.Client, oid: number, name: TableName): Promise<void> {
  const result = await admin.query<{ identity: string; has_key: boolean }>(
    `SELECT c.relreplident AS identity,
            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)) AS has_key
       FROM pg_class c WHERE c.oid = $1`, [oid]);
  const row = result.rows[0];
  const usable = row !== undefined && (row.identity === 'f' || ((row.identity === 'd' || row.identity === 'i') && row.has_key));
  if (!usable) {
    throw new CdcError('PG_NO_REPLICA_IDENTITY', `table ${name.schema}.${name.table} has no replica identity; publishing it would make its UPDATE and DELETE statements fail. Add a primary key or run ALTER TABLE ${name.schema}.${name.table} REPLICA IDENTITY FULL`, false);
  }
}

/** Creates the publication FOR TABLE when it is missing; an existing one must include the table. */
async function ensurePublication(admin: pg.Client, publication: string, name: TableName): Promise<void> {
  const existing = await admin.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication]);
  if (existing.rowCount === 0) {
    // TRUNCATE is left out: it carries no rows to map (see docs/change-data-capture.md).
    const sql = `CREATE PUBLICATION ${pg.escapeIdentifier(publication)} FOR TABLE ${qualifiedName(name)} WITH (publish = 'insert, update, delete')`;
    try {
      await admin.query(sql);
    } catch (error) {
      // Another instance created it at the same moment: check it like any existing one.
      if ((error as { code?: string }).code !== '42710') throw asCdcError(error, `creating publication ${publication}`);
    }
  }
  const covers = await admin.query('SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3', [publication, name.schema, name.table]);
  if (covers.rowCount === 0) {
    throw new CdcError('PG_SLOT_MISMATCH', `publication ${publication} does not include table ${name.schema}.${name.table}: ALTER PUBLICATION ${publication} ADD TABLE ${name.schema}.${name.table}`, false);
  }
}

/** Whether the slot exists; one made for another plugin or database is an operator's mistake, not ours to drop. */
async function inspectSlot(admin: pg.Client, slot: string): Promise<boolean> {
  const result = await admin.query<{ plugin: string | null; database: string | null; temporary: boolean; current: string }>(
    'SELECT plugin, database, temporary, current_database() AS current FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  const row = result.rows[0];
  if (row === undefined) return false;
  if (row.plugin !== 'pgoutput' || row.database !== row.current || row.temporary) {
    throw new CdcError('PG_SLOT_MISMATCH', `replication slot ${slot} exists but is not a persistent pgoutput slot of database ${row.current} (plugin ${String(row.plugin)}, database ${String(row.database)}); pick another slot name or drop it`, false);
  }
  return true;
}

/** Everything a source needs before it opens a replication connection; returns whether the slot exists. */
export async function prepareDatabase(admin: pg.Client, config: PostgresSourceConfig): Promise<{ slotExists: boolean }> {
  try {
    const name = tableNameOf(config);
    await checkWalLevel(admin);
    await checkTable(admin, name, config.columns);
    await ensurePublication(admin, config.publication, name);
    return { slotExists: await inspectSlot(admin, config.slot) };
  } catch (error) {
    throw asCdcError(error, `preparing source ${config.name}`);
  }
}
