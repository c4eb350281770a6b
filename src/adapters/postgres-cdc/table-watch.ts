// Watches, while streaming, that the configured table is still the one set up and still published: a table swapped for a copy is not.

import pg from 'pg';
import { CdcError } from './errors.js';
import { cdcLimits } from './limits.js';
import type { TableName } from './setup.js';

/**
 * Nothing in the stream tells of a table swapped for a rebuilt copy (create, copy, rename): the new
 * table is simply not published, and its changes never come. So the catalogue is read at an interval,
 * on a connection of its own; a failed read is left to the next one (the replication connection
 * reports a lost server).
 */
export class TableWatch {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    private readonly connectionString: string,
    private readonly publication: string,
    private readonly table: TableName,
    private readonly tableOid: number,
    private readonly onChanged: (error: CdcError) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => { void this.check(); }, cdcLimits.tableCheckIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async check(): Promise<void> {
    if (this.checking || this.timer === undefined) return;
    this.checking = true;
    try {
      const problem = await this.problem();
      if (problem !== undefined && this.timer !== undefined) this.onChanged(this.changed(problem));
    } catch {
      await this.client?.end().catch(() => undefined);
      this.client = undefined;
    } finally {
      this.checking = false;
    }
  }

  private async problem(): Promise<string | undefined> {
    if (this.client === undefined) {
      const client = new pg.Client({ connectionString: this.connectionString, connectionTimeoutMillis: cdcLimits.connectTimeoutMs, application_name: 'stockline table watch' });
      client.on('error', () => undefined);
      this.client = client;
      await client.connect();
    }
    const result = await this.client.query<{ oid: number | null; published: boolean }>(
      `SELECT (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2) AS oid,
              EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $3 AND schemaname = $1 AND tablename = $2) AS published`,
      [this.table.schema, this.table.table, this.publication]);
    const row = result.rows[0];
    if (row?.oid === null || row?.oid === undefined) return 'is gone (dropped or renamed)';
    if (Number(row.oid) !== this.tableOid) return 'was replaced by another table of that name (a migration that swapped it for a copy)';
    if (!row.published) return `is no longer in publication ${this.publication}`;
    return undefined;
  }

  private changed(problem: string): CdcError {
    const table = `${this.table.schema}.${this.table.table}`;
    return new CdcError('PG_TABLE_CHANGED', `table ${table} ${problem}, so its changes are no longer streamed; nothing after this point is acknowledged. `
      + `Once the table is back in publication ${this.publication} (ALTER PUBLICATION ${this.publication} ADD TABLE ${table}), a start takes a new snapshot of it`, true);
  }
}
