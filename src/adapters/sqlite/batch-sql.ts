// How a decided batch is written to the embedded engine's file: the events, idempotency records, and the rows
// projections add (the channel outbox), in one transaction. Shared by the writer thread and in-memory engines.

import type { Database, Statement } from 'better-sqlite3';
import type { IdempotencyRecord } from '../../core/index.js';
import type { LoggedEvent } from '../../app/engine.js';

/** An event as its row in the log: its position, tenant, type and JSON text. */
export type EventRow = [position: number, tenant: string, type: string, json: string];

/** An idempotency record as its row: tenant, its place among the tenant's records, key, JSON text and time. */
export type IdempotencyRow = [tenant: string, seq: number, key: string, json: string, timeMs: number];

/** A row a projection adds to a batch's transaction: one statement and its named parameters. */
export interface ProjectedWrite {
  sql: string;
  params: Record<string, string | number | bigint | null>;
}

/**
 * What one decided batch writes. Plain data, copied to the writer thread as it is when decided. Events and
 * records travel as their JSON text: copying a string to another thread costs a fraction of copying the object
 * it was made from, and the text is what the file stores.
 */
export interface BatchRows {
  events: EventRow[];
  remembered: IdempotencyRow[];
  /** A tenant's records forgotten: those up to a place (records are forgotten oldest first). */
  forgotten: Array<[tenant: string, upToSeq: number]>;
  projected: ProjectedWrite[];
}

export function eventRow({ position, event }: LoggedEvent): EventRow {
  return [position, event.tenant, event.type, JSON.stringify(event)];
}

/**
 * `eventsJson` is the JSON text of the record's outcome's events, already made for the log: an accepted
 * outcome's record is put together around it instead of serialising the events again (a refused one has no
 * events). The text is the same as JSON.stringify(record) gives.
 */
export function idempotencyRow(tenant: string, seq: number, key: string, record: IdempotencyRecord, eventsJson: readonly string[]): IdempotencyRow {
  const { fingerprint, outcome, timeMs } = record;
  if (outcome.rejection !== undefined) return [tenant, seq, key, JSON.stringify(record), timeMs];
  return [tenant, seq, key, `{"fingerprint":${JSON.stringify(fingerprint)},"outcome":{"events":[${eventsJson.join(',')}]},"timeMs":${JSON.stringify(timeMs)}}`, timeMs];
}

/** Writes batches in one transaction per call on `db`; statements are prepared once, projected ones on first use. */
export function batchWriter(db: Database): (batches: readonly BatchRows[]) => void {
  const insertEvent = db.prepare('INSERT INTO events (position, tenant, type, json) VALUES (?, ?, ?, ?)');
  const insertRecord = db.prepare('INSERT INTO idempotency (tenant, seq, key, json, time_ms) VALUES (?, ?, ?, ?, ?)');
  const forgetUpTo = db.prepare('DELETE FROM idempotency WHERE tenant = ? AND seq <= ?');
  const projections = new Map<string, Statement>();
  const projection = (sql: string): Statement => {
    let statement = projections.get(sql);
    if (statement === undefined) {
      statement = db.prepare(sql);
      projections.set(sql, statement);
    }
    return statement;
  };
  return db.transaction((batches: readonly BatchRows[]) => {
    for (const { events, remembered, forgotten, projected } of batches) {
      for (const row of events) insertEvent.run(row);
      // A key forgotten by housekeeping may be used again later in the same batch: its new record has a later
      // place, past what is forgotten. (A record is never forgotten in the batch that made it: it is kept at
      // least 24 hours, or until 5,000,000 newer ones, more than a batch holds.)
      for (const [tenant, upToSeq] of forgotten) forgetUpTo.run(tenant, upToSeq);
      for (const row of remembered) insertRecord.run(row);
      for (const { sql, params } of projected) projection(sql).run(params);
    }
  });
}

/** False for a batch of refusals only: it has nothing to write, and is answered once the batches before it are. */
export function writesAnything(rows: BatchRows): boolean {
  return rows.events.length > 0 || rows.remembered.length > 0 || rows.forgotten.length > 0 || rows.projected.length > 0;
}
