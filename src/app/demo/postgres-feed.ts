// The demo's optional stock feed from PostgreSQL: a warehouse table in a `stockline_demo` database, read by Stockline's
// logical replication source. Skipped, with the reason, when no PostgreSQL with wal_level=logical answers.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { DemoStock } from './plan.js';

export const demoDatabase = 'stockline_demo';
const connectTimeoutMs = 1_500;
const slotDropDeadlineMs = 10_000;
const slotDropPollMs = 100;

export interface PostgresFeed {
  /** The `sources:` entry for Stockline's configuration. */
  source: Record<string, unknown>;
  /** `stockline_demo.public.<table>`, for the summary. */
  table: string;
  slot: string;
  /** A delivery booked into the warehouse table: Stockline sees it by replication, not by an API call. */
  restock(sku: string, location: string, delta: number): Promise<void>;
  /** Drops the slot (it would hold WAL for ever), the publication and the table. Call after Stockline stopped. */
  drop(): Promise<void>;
}

export type FeedOutcome = { feed: PostgresFeed } | { skipped: string };

function serverUrl(): string {
  return process.env.STOCKLINE_DEMO_PG ?? 'postgres://postgres@127.0.0.1:5432';
}

async function connect(database: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: `${serverUrl()}/${database}`, connectionTimeoutMillis: connectTimeoutMs });
  // A server that goes away mid-demo must not crash the process: the demo's own queries report their errors.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function ensureDatabase(server: pg.Client): Promise<void> {
  const found = await server.query('SELECT 1 FROM pg_database WHERE datname = $1', [demoDatabase]);
  if (found.rowCount !== 0) return;
  try {
    await server.query(`CREATE DATABASE ${pg.escapeIdentifier(demoDatabase)}`);
  } catch (error) {
    // Another demo created it at the same moment.
    if ((error as { code?: string }).code !== '42P04' && (error as { code?: string }).code !== '23505') throw error;
  }
}

/** Creates the table with the opening stock; the source's initial snapshot brings it into the ledger. */
export async function openPostgresFeed(tenant: string, stock: readonly DemoStock[]): Promise<FeedOutcome> {
  let server: pg.Client;
  try {
    server = await connect('postgres');
  } catch (error) {
    return { skipped: `no PostgreSQL answered at ${new URL(serverUrl()).host} (${(error as Error).message})` };
  }
  try {
    const walLevel = (await server.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
    if (walLevel !== 'logical') return { skipped: `PostgreSQL's wal_level is ${walLevel ?? 'unknown'}, not logical (scripts/pg-enable-logical.sh sets it)` };
    await ensureDatabase(server);
  } catch (error) {
    return { skipped: `PostgreSQL refused the demo's setup (${(error as Error).message})` };
  } finally {
    await server.end().catch(() => undefined);
  }
  const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const table = `demo_stock_${suffix}`;
  const slot = `stockline_demo_${suffix}`;
  const client = await connect(demoDatabase);
  try {
    await client.query(`CREATE TABLE ${table} (sku text NOT NULL, location text NOT NULL, quantity integer NOT NULL CHECK (quantity >= 0), PRIMARY KEY (sku, location))`);
    const values = stock.map((_entry, index) => `($${index * 3 + 1}, $${index * 3 + 2}, $${index * 3 + 3})`).join(', ');
    await client.query(`INSERT INTO ${table} (sku, location, quantity) VALUES ${values}`, stock.flatMap((entry) => [entry.sku, entry.location, entry.onHand]));
  } catch (error) {
    await client.end().catch(() => undefined);
    return { skipped: `could not create the demo table (${(error as Error).message})` };
  }
  return {
    feed: {
      source: {
        type: 'postgres', name: 'demo-warehouse', connectionString: `${serverUrl()}/${demoDatabase}`, table: `public.${table}`,
        columns: { tenantConstant: tenant, sku: 'sku', location: 'location', onHand: 'quantity' }, slot, publication: slot,
      },
      table: `${demoDatabase}.public.${table}`,
      slot,
      restock: async (sku, location, delta) => {
        await client.query(`UPDATE ${table} SET quantity = quantity + $3 WHERE sku = $1 AND location = $2`, [sku, location, delta]);
      },
      drop: () => dropFeed(client, table, slot),
    },
  };
}

async function dropFeed(client: pg.Client, table: string, slot: string): Promise<void> {
  try {
    const deadline = Date.now() + slotDropDeadlineMs;
    for (;;) {
      // A walsender that is shutting down still holds the slot for a moment.
      const held = await client.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      const row = held.rows[0] as { active: boolean } | undefined;
      if (row === undefined) break;
      if (!row.active) {
        await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
        break;
      }
      if (Date.now() > deadline) throw new Error(`replication slot ${slot} is still in use; drop it with SELECT pg_drop_replication_slot('${slot}')`);
      await new Promise((resolve) => setTimeout(resolve, slotDropPollMs));
    }
    await client.query(`DROP PUBLICATION IF EXISTS ${slot}`);
    await client.query(`DROP TABLE IF EXISTS ${table}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
