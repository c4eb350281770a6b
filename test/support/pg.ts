// A throwaway PostgreSQL database per test run, and clean removal of it with its replication slots.

import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The local server the tests use; STOCKLINE_TEST_PG overrides it (a URL without the database). */
const serverUrl = process.env.STOCKLINE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432';
const dropDeadlineMs = 15_000;
const pollMs = 50;

export interface ThrowawayDatabase {
  name: string;
  connectionString: string;
  /** A connection to the throwaway database for the test's own SQL. */
  client: pg.Client;
  drop(): Promise<void>;
}

async function withServer<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: `${serverUrl}/postgres` });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function serverSetting(name: string): Promise<string | undefined> {
  return withServer(async (client) => (await client.query<{ setting: string }>('SELECT setting FROM pg_settings WHERE name = $1', [name])).rows[0]?.setting);
}

/** Creates `<prefix>_<random>`; the caller must `drop()` it, which removes its slots first. */
export async function createThrowawayDatabase(prefix: string): Promise<ThrowawayDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await withServer((server) => server.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
  const connectionString = `${serverUrl}/${name}`;
  const client = new pg.Client({ connectionString });
  await client.connect();
  return {
    name,
    connectionString,
    client,
    drop: async () => {
      await client.end().catch(() => undefined);
      await withServer(async (server) => {
        await dropSlots(server, name);
        await server.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      });
    },
  };
}

/** A slot still held by a walsender that is shutting down cannot be dropped yet: wait, within a deadline. */
async function dropSlots(server: pg.Client, database: string): Promise<void> {
  const deadline = Date.now() + dropDeadlineMs;
  for (;;) {
    await server.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active', [database]);
    await server.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active', [database]);
    const left = await server.query('SELECT slot_name FROM pg_replication_slots WHERE database = $1', [database]);
    if (left.rowCount === 0) return;
    if (Date.now() > deadline) throw new Error(`replication slots of ${database} still in use: ${left.rows.map((row) => row.slot_name as string).join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** Polls `check` until it returns true or the deadline passes; returns the last answer. */
export async function eventually(check: () => Promise<boolean> | boolean, deadlineMs = 15_000, intervalMs = 25): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface ThrowawayRole {
  name: string;
  /** The same server and database as `connectionString`, as this role (the test server trusts loopback). */
  connectionStringFor(connectionString: string): string;
  drop(): Promise<void>;
}

/** A login role with the given attributes (e.g. `REPLICATION`); drop it after the databases it was granted on. */
export async function createThrowawayRole(prefix: string, attributes: string): Promise<ThrowawayRole> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await withServer((server) => server.query(`CREATE ROLE ${pg.escapeIdentifier(name)} LOGIN ${attributes}`));
  return {
    name,
    connectionStringFor: (connectionString) => {
      const url = new URL(connectionString);
      url.username = name;
      url.password = '';
      return url.toString();
    },
    drop: () => withServer(async (server) => { await server.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(name)}`); }),
  };
}
