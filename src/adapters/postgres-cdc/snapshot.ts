// Reads the whole table as of a slot's exported snapshot, in bounded batches of rows (all mapped columns as text).

import pg from 'pg';
import type { PostgresSourceConfig } from './config.js';
import { asCdcError } from './errors.js';
import { cdcLimits } from './limits.js';
import type { Row } from './row-mapping.js';
import { mappedColumns, qualifiedName, tableNameOf } from './setup.js';

const cursorName = 'stockline_snapshot';

function selectSql(config: PostgresSourceConfig): string {
  const columns = mappedColumns(config.columns).map((column) => `${pg.escapeIdentifier(column)}::text AS ${pg.escapeIdentifier(column)}`);
  return `SELECT ${columns.join(', ')} FROM ${qualifiedName(tableNameOf(config))}`;
}

/**
 * Imports the snapshot into a repeatable-read transaction on `admin` and hands over the rows batch by
 * batch; `onRows` may be slow (it submits to the bus). The replication connection that exported the
 * snapshot must run nothing else until this resolves.
 */
export async function readSnapshot(admin: pg.Client, snapshotName: string, config: PostgresSourceConfig, onRows: (rows: Row[]) => Promise<void>): Promise<number> {
  let total = 0;
  try {
    await admin.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await admin.query(`SET TRANSACTION SNAPSHOT ${pg.escapeLiteral(snapshotName)}`);
    await admin.query(`DECLARE ${cursorName} NO SCROLL CURSOR FOR ${selectSql(config)}`);
    for (;;) {
      const batch = await admin.query<Record<string, string | null>>(`FETCH ${cdcLimits.snapshotFetchRows} FROM ${cursorName}`);
      if (batch.rows.length > 0) await onRows(batch.rows);
      total += batch.rows.length;
      if (batch.rows.length < cdcLimits.snapshotFetchRows) break;
    }
    await admin.query('COMMIT');
    return total;
  } catch (error) {
    await admin.query('ROLLBACK').catch(() => undefined);
    throw asCdcError(error, `reading the snapshot of ${config.table}`);
  }
}
