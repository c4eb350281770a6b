// Checks the merchant's database before streaming: logical WAL, table and columns, publication, slot.

import pg from 'pg';
import type { ColumnMapping, PostgresSourceConfig } from './config.js';
import { CdcError, asCdcError, slotInvalidatedError } from './errors.js';

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

/** Checks the table, its columns and replica identity; returns its OID, whether it is partitioned, and its character(n) columns. */
async function checkTable(admin: pg.Client, name: TableName, mapping: ColumnMapping): Promise<{ partitioned: boolean; oid: number; paddedColumns: string[] }> {
  const table = await admin.query<{ oid: number; relkind: string; relpersistence: string }>(
    `SELECT c.oid, c.relkind, c.relpersistence FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, [name.schema, name.table]);
  const oid = table.rows[0]?.oid;
  if (oid === undefined) throw new CdcError('PG_TABLE_MISSING', `table ${name.schema}.${name.table} does not exist`, false);
  checkPersistence(name, table.rows[0]?.relpersistence);
  await checkReadable(admin, name, oid, mapping);
  const columns = await admin.query<{ attname: string }>('SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped', [oid]);
  const present = new Set(columns.rows.map((row) => row.attname));
  const missing = mappedColumns(mapping).filter((column) => !present.has(column));
  if (missing.length > 0) {
    throw new CdcError('PG_COLUMN_MISSING', `table ${name.schema}.${name.table} has no column ${missing.join(', ')} (names are matched exactly, case included)`, false);
  }
  await checkReplicaIdentity(admin, oid, name, mapping, table.rows[0]?.relkind === 'p');
  return { partitioned: table.rows[0]?.relkind === 'p', oid: Number(oid), paddedColumns: await paddedColumns(admin, oid, mapping) };
}

/**
 * The mapped columns whose type is character(n), directly or through domains (of domains). The stream
 * names a column's own type, a domain's OID for a domain, so only the catalogue tells that its text is
 * padded with blanks the snapshot's `::text` drops.
 */
async function paddedColumns(admin: pg.Client, oid: number, mapping: ColumnMapping): Promise<string[]> {
  const result = await admin.query<{ column: string }>(
    `WITH RECURSIVE chain AS (
       SELECT a.attname::text AS column, t.oid AS type, t.typtype, t.typbasetype
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = $1 AND a.attname = ANY ($2::text[]) AND a.attnum > 0 AND NOT a.attisdropped
       UNION ALL
       SELECT chain.column, t.oid, t.typtype, t.typbasetype FROM chain JOIN pg_type t ON t.oid = chain.typbasetype WHERE chain.typtype = 'd'
     )
     SELECT DISTINCT chain.column FROM chain WHERE chain.type = 'pg_catalog.bpchar'::regtype ORDER BY 1`, [oid, mappedColumns(mapping)]);
  return result.rows.map((row) => row.column);
}

/**
 * The snapshot reads the table as the source's role, after the replication slot is made: a role that cannot
 * read it would leave a slot behind, holding WAL, on its first start. Checked before, with the grants to run.
 * The catalogue answers whether the columns exist without any of these privileges.
 */
async function checkReadable(admin: pg.Client, name: TableName, oid: number, mapping: ColumnMapping): Promise<void> {
  const result = await admin.query<{ role: string; usage: boolean; unreadable: string[] }>(
    `SELECT current_user AS role, has_schema_privilege($1::text, 'USAGE') AS usage,
            ARRAY(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = $2::oid AND a.attname = ANY ($3::text[]) AND a.attnum > 0 AND NOT a.attisdropped
                     AND NOT has_column_privilege($2::oid, a.attnum, 'SELECT') ORDER BY 1) AS unreadable`,
    [name.schema, oid, mappedColumns(mapping)]);
  const row = result.rows[0];
  if (row === undefined) return;
  const role = pg.escapeIdentifier(row.role);
  const grants: string[] = [];
  if (!row.usage) grants.push(`GRANT USAGE ON SCHEMA ${pg.escapeIdentifier(name.schema)} TO ${role}`);
  if (row.unreadable.length > 0) grants.push(`GRANT SELECT ON ${qualifiedName(name)} TO ${role}`);
  if (grants.length === 0) return;
  const missing = [...(row.usage ? [] : [`USAGE on schema ${name.schema}`]), ...(row.unreadable.length === 0 ? [] : [`SELECT on column ${row.unreadable.join(', ')}`])];
  throw new CdcError('PG_PRIVILEGE', `role ${row.role} cannot read ${name.schema}.${name.table} (no ${missing.join(', no ')}); run ${grants.join('; ')}; then start the source again`, false);
}

/**
 * Only permanent tables are WAL-logged, so an UNLOGGED (or temporary) table can never be published:
 * PostgreSQL refuses it in a publication, and no retry can change that.
 */
function checkPersistence(name: TableName, persistence: string | undefined): void {
  if (persistence === 'p') return;
  const table = `${name.schema}.${name.table}`;
  const kind = persistence === 'u' ? 'UNLOGGED' : 'temporary';
  const fix = persistence === 'u' ? `ALTER TABLE ${table} SET LOGGED` : 'make it a permanent table';
  throw new CdcError('PG_TABLE_UNLOGGED', `table ${table} is ${kind}: its changes are not written to the WAL, so logical replication cannot publish them. Run ${fix} (it rewrites the table), then start the source again`, false);
}

/** The mapped columns that say where stock is (tenant, SKU, location); constants are not columns. */
export function mappedKeyColumns(mapping: ColumnMapping): string[] {
  const columns = [mapping.tenant, mapping.sku, mapping.location];
  return columns.filter((column): column is string => column !== undefined);
}

interface IdentityRow {
  relation: string;
  identity: string;
  key_columns: string[] | null;
}

/** Each relation's replica identity and, for a key, its columns. */
const identitySql = `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation, c.relreplident AS identity,
         (SELECT array_agg(a.attname::text ORDER BY a.attname)
            FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
           WHERE i.indrelid = c.oid AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END) AS key_columns
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace`;

/** Whether a relation's identity sends the old tenant, SKU and location of every row that moves. */
function identityCovers(row: IdentityRow, mapping: ColumnMapping): boolean {
  if (row.identity === 'f') return true;
  const keyColumns = row.key_columns ?? [];
  return keyColumns.length > 0 && mappedKeyColumns(mapping).every((column) => keyColumns.includes(column));
}

/**
 * A partitioned table is published as itself, but each partition logs its old rows by its own replica
 * identity, and ALTER TABLE ... REPLICA IDENTITY changes only the table it names: the table and every
 * partition must each show a move. The parent's alone would leave the partitions sending no old row,
 * and a move would then add stock at the new place without taking it from the old one.
 */
async function checkPartitionIdentities(admin: pg.Client, oid: number, name: TableName, mapping: ColumnMapping, parent: IdentityRow | undefined): Promise<void> {
  const leaves = await admin.query<IdentityRow>(
    `${identitySql} JOIN pg_partition_tree($1) tree ON tree.relid = c.oid WHERE tree.isleaf ORDER BY 1`, [oid]);
  const uncovered = [parent, ...leaves.rows].filter((row): row is IdentityRow => row !== undefined && !identityCovers(row, mapping));
  if (uncovered.length === 0) return;
  const table = `${name.schema}.${name.table}`;
  const fixes = uncovered.map((row) => `ALTER TABLE ${row.relation} REPLICA IDENTITY FULL;`).join(' ');
  throw new CdcError('PG_NO_REPLICA_IDENTITY', `table ${table} is partitioned, and the replica identity of ${uncovered.map((row) => row.relation).join(', ')} does not include every mapped column (${mappedKeyColumns(mapping).join(', ')}), so a row that moves to another tenant, SKU or location, or is deleted, could not be mapped. PostgreSQL logs old rows by each partition's own identity, and ALTER TABLE changes only the table it names: run ${fixes} (and give partitions attached later the same), or make the primary key cover ${mappedKeyColumns(mapping).join(', ')}`, false);
}

/**
 * A published table without a replica identity makes PostgreSQL refuse its UPDATEs and DELETEs, so
 * publishing it would break the merchant's own writes: refuse, and say what to change. An identity
 * that leaves out a mapped tenant, SKU or location column is refused too: PostgreSQL would then send
 * no old value of that column, so a row that moves (or is deleted) would leave its stock at the old
 * place without anyone noticing.
 */
async function checkReplicaIdentity(admin: pg.Client, oid: number, name: TableName, mapping: ColumnMapping, partitioned: boolean): Promise<void> {
  const result = await admin.query<IdentityRow>(`${identitySql} WHERE c.oid = $1`, [oid]);
  if (partitioned) return checkPartitionIdentities(admin, oid, name, mapping, result.rows[0]);
  const row = result.rows[0];
  const table = `${name.schema}.${name.table}`;
  if (row?.identity === 'f') return;
  const keyColumns = row?.key_columns ?? [];
  if (keyColumns.length === 0) {
    throw new CdcError('PG_NO_REPLICA_IDENTITY', `table ${table} has no replica identity; publishing it would make its UPDATE and DELETE statements fail. Add a primary key or run ALTER TABLE ${table} REPLICA IDENTITY FULL`, false);
  }
  const uncovered = mappedKeyColumns(mapping).filter((column) => !keyColumns.includes(column));
  if (uncovered.length > 0) {
    const identity = row?.identity === 'i' ? 'replica identity index' : 'primary key';
    throw new CdcError('PG_NO_REPLICA_IDENTITY', `table ${table}: its ${identity} (${keyColumns.join(', ')}) does not include the mapped column(s) ${uncovered.join(', ')}, so PostgreSQL would not send their old values and a row that moves to another tenant, SKU or location, or is deleted, could not be mapped. Run ALTER TABLE ${table} REPLICA IDENTITY FULL, or make the primary key cover ${mappedKeyColumns(mapping).join(', ')}`, false);
  }
}

/** Creates the publication FOR TABLE when it is missing; an existing one must include the table. */
async function ensurePublication(admin: pg.Client, publication: string, name: TableName, mapping: ColumnMapping, partitioned: boolean): Promise<void> {
  const existing = await admin.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication]);
  if (existing.rowCount === 0) {
    // TRUNCATE carries no rows to map, and is not applied; it is published so that a dead letter says it happened
    // (see docs/change-data-capture.md). A partitioned table is published as itself, not as its partitions, so its
    // changes carry its name.
    const viaRoot = partitioned ? ', publish_via_partition_root = true' : '';
    const sql = `CREATE PUBLICATION ${pg.escapeIdentifier(publication)} FOR TABLE ${qualifiedName(name)} WITH (publish = 'insert, update, delete, truncate'${viaRoot})`;
    try {
      await admin.query(sql);
    } catch (error) {
      // Another instance created it at the same moment: check it like any existing one.
      if ((error as { code?: string }).code !== '42710') throw asCdcError(error, `creating publication ${publication}`);
    }
  }
  // Partitions published through the root came with PostgreSQL 13, row filters and column lists with 15.
  const version = Number((await admin.query<{ version: string }>("SELECT current_setting('server_version_num') AS version")).rows[0]?.version ?? 0);
  await checkPublishedOperations(admin, publication, name, partitioned, version >= 130000);
  await checkPublishedRows(admin, publication, name, mapping, version >= 150000);
}

/** A publication that leaves out UPDATE or DELETE, or a partitioned table not published as itself, loses changes without a trace. */
async function checkPublishedOperations(admin: pg.Client, publication: string, name: TableName, partitioned: boolean, hasViaRoot: boolean): Promise<void> {
  const result = await admin.query<{ pubinsert: boolean; pubupdate: boolean; pubdelete: boolean; pubviaroot: boolean }>(
    `SELECT pubinsert, pubupdate, pubdelete, ${hasViaRoot ? 'pubviaroot' : 'false AS pubviaroot'} FROM pg_publication WHERE pubname = $1`, [publication]);
  const row = result.rows[0];
  const missing = row === undefined ? ['insert', 'update', 'delete'] : (['insert', 'update', 'delete'] as const).filter((op) => !row[`pub${op}`]);
  if (missing.length > 0) {
    throw new CdcError('PG_SLOT_MISMATCH', `publication ${publication} does not publish ${missing.join(', ')}, so those changes would be missed: ALTER PUBLICATION ${publication} SET (publish = 'insert, update, delete')`, false);
  }
  // Without it PostgreSQL publishes the partitions' changes under the partitions' names, not the table's.
  if (partitioned && row?.pubviaroot !== true) {
    throw new CdcError('PG_SLOT_MISMATCH', `table ${name.schema}.${name.table} is partitioned and publication ${publication} publishes its partitions under their own names: ALTER PUBLICATION ${publication} SET (publish_via_partition_root = true)`, false);
  }
}

/** The publication must send every row of the table (no row filter) with every mapped column. */
async function checkPublishedRows(admin: pg.Client, publication: string, name: TableName, mapping: ColumnMapping, hasFilters: boolean): Promise<void> {
  const table = `${name.schema}.${name.table}`;
  const columns = hasFilters ? 'attnames::text[] AS attnames, rowfilter' : 'NULL::text[] AS attnames, NULL::text AS rowfilter';
  const covers = await admin.query<{ attnames: string[] | null; rowfilter: string | null }>(
    `SELECT ${columns} FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3`,
    [publication, name.schema, name.table]);
  const row = covers.rows[0];
  if (row === undefined) {
    throw new CdcError('PG_SLOT_MISMATCH', `publication ${publication} does not include table ${table}: ALTER PUBLICATION ${publication} ADD TABLE ${table}`, false);
  }
  const republish = `ALTER PUBLICATION ${publication} DROP TABLE ${table}, then ALTER PUBLICATION ${publication} ADD TABLE ${table}`;
  if (row.rowfilter !== null) {
    throw new CdcError('PG_SLOT_MISMATCH', `publication ${publication} publishes only the rows of ${table} WHERE ${row.rowfilter}, so changes of the other rows (and rows leaving the filter) would be missed: ${republish}`, false);
  }
  const published = row.attnames;
  const missing = published === null ? [] : mappedColumns(mapping).filter((column) => !published.includes(column));
  if (missing.length > 0) {
    throw new CdcError('PG_SLOT_MISMATCH', `publication ${publication} does not publish column(s) ${missing.join(', ')} of ${table}: ${republish} (without a column list)`, false);
  }
}

/** What pg_replication_slots says of a slot; the columns past `temporary` depend on the server's version. */
export interface SlotRow {
  plugin: string | null;
  database: string | null;
  temporary: boolean;
  current: string;
  /** PostgreSQL 13+: reserved, extended, unreserved or lost. */
  wal_status?: string | null;
  /** PostgreSQL 17+: why the slot was invalidated (wal_removed, rows_removed, ...), NULL while it is valid. */
  invalidation_reason?: string | null;
  /** PostgreSQL 16+, on a standby: the slot conflicted with recovery and was invalidated. */
  conflicting?: boolean | null;
}

/** Why the server invalidated the slot, or undefined while it can still stream. */
export function slotInvalidation(row: SlotRow): string | undefined {
  if (typeof row.invalidation_reason === 'string') return row.invalidation_reason;
  if (row.wal_status === 'lost') return 'wal_status is lost: the WAL it still needed was removed, past max_slot_wal_keep_size';
  if (row.conflicting === true) return 'it conflicted with recovery on this standby';
  return undefined;
}

/**
 * Whether the slot exists; one made for another plugin or database is an operator's mistake, not ours
 * to drop. An invalidated one can never stream again: START_REPLICATION would fail on every attempt.
 */
export async function inspectSlot(admin: pg.Client, slot: string): Promise<boolean> {
  // to_jsonb takes whichever columns this server's version has.
  const result = await admin.query<{ slot: SlotRow }>(
    "SELECT to_jsonb(s) || jsonb_build_object('current', current_database()) AS slot FROM pg_replication_slots s WHERE slot_name = $1", [slot]);
  const row = result.rows[0]?.slot;
  if (row === undefined) return false;
  if (row.plugin !== 'pgoutput' || row.database !== row.current || row.temporary) {
    throw new CdcError('PG_SLOT_MISMATCH', `replication slot ${slot} exists but is not a persistent pgoutput slot of database ${row.current} (plugin ${String(row.plugin)}, database ${String(row.database)}); pick another slot name or drop it`, false);
  }
  const invalidation = slotInvalidation(row);
  if (invalidation !== undefined) throw slotInvalidatedError(slot, invalidation);
  return true;
}

export interface PreparedDatabase {
  slotExists: boolean;
  tableOid: number;
  /** Mapped columns of type character(n), also through a domain: the stream's text of them keeps the padding. */
  paddedColumns: string[];
}

/** Everything a source needs before it opens a replication connection. */
export async function prepareDatabase(admin: pg.Client, config: PostgresSourceConfig): Promise<PreparedDatabase> {
  try {
    const name = tableNameOf(config);
    await checkWalLevel(admin);
    const { partitioned, oid, paddedColumns: padded } = await checkTable(admin, name, config.columns);
    await ensurePublication(admin, config.publication, name, config.columns, partitioned);
    return { slotExists: await inspectSlot(admin, config.slot), tableOid: oid, paddedColumns: padded };
  } catch (error) {
    throw asCdcError(error, `preparing source ${config.name}`);
  }
}
