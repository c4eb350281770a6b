// The embedded engine's tables: the event log, idempotency records, source offsets, dead letters, keys; and snapshots,
// which only databases of earlier versions hold rows in (a snapshot is now a file beside the database: snapshot-file.ts).

import type { Database } from 'better-sqlite3';

const migrations: string[] = [
  `CREATE TABLE IF NOT EXISTS events (
     position INTEGER PRIMARY KEY,
     tenant TEXT NOT NULL,
     type TEXT NOT NULL,
     json TEXT NOT NULL
   );
   CREATE INDEX IF NOT EXISTS events_by_tenant ON events (tenant, position);
   CREATE TABLE IF NOT EXISTS idempotency (
     tenant TEXT NOT NULL,
     key TEXT NOT NULL,
     json TEXT NOT NULL,
     time_ms INTEGER NOT NULL,
     PRIMARY KEY (tenant, key)
   ) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS snapshots (
     position INTEGER PRIMARY KEY,
     json TEXT NOT NULL,
     created_ms INTEGER NOT NULL
   );
   CREATE TABLE IF NOT EXISTS source_offsets (
     source TEXT PRIMARY KEY,
     value TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS dead_letters (
     id INTEGER PRIMARY KEY,
     source TEXT NOT NULL,
     reason TEXT NOT NULL,
     payload TEXT NOT NULL,
     time_ms INTEGER NOT NULL
   );
   CREATE TABLE IF NOT EXISTS api_keys (
     id TEXT PRIMARY KEY,
     tenant TEXT,
     scopes TEXT NOT NULL,
     hash TEXT NOT NULL,
     created_ms INTEGER NOT NULL,
     revoked_ms INTEGER
   ) WITHOUT ROWID;`,
  // Idempotency records in the order they were made, per tenant: appended at the end and forgotten from the
  // front, never looked up by key (memory answers that). Ordered by key, every record cost a page write of
  // its own in a table spread over the file.
  `CREATE TABLE idempotency_by_age (
     tenant TEXT NOT NULL,
     seq INTEGER NOT NULL,
     key TEXT NOT NULL,
     json TEXT NOT NULL,
     time_ms INTEGER NOT NULL,
     PRIMARY KEY (tenant, seq)
   ) WITHOUT ROWID;
   INSERT INTO idempotency_by_age (tenant, seq, key, json, time_ms)
     SELECT tenant, ROW_NUMBER() OVER (PARTITION BY tenant ORDER BY time_ms, key), key, json, time_ms FROM idempotency;
   DROP TABLE idempotency;
   ALTER TABLE idempotency_by_age RENAME TO idempotency;`,
];

export function migrate(db: Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
  const current = row?.version ?? 0;
  for (let index = current; index < migrations.length; index += 1) {
    db.transaction(() => {
      db.exec(migrations[index] as string);
      db.prepare('DELETE FROM schema_version').run();
      db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(index + 1);
    })();
  }
}
