// The embedded engine's snapshot: the state as of a log position, in a file beside the database. It is a
// cache of the log, never the only copy of anything: without it a restart replays the whole log.

import { hash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Database } from 'better-sqlite3';
import { evolve, initialState, packState, snapshotFormat, unpackState } from '../../core/index.js';
import type { InventoryEvent, LedgerState, PackedState } from '../../core/index.js';
import { writeFileDurably } from '../../app/durable-file.js';

/** What a snapshot file holds: `tenants` is the packed state in this version's format, what another wrote in its own. */
export interface StoredSnapshot {
  format?: number;
  position: number;
  createdMs?: number;
  /**
   * The SHA-256 (base64url) of the JSON text of `tenants` as it stands in the file. Files written before it
   * have none, and are used as they always were.
   */
  sha256?: string;
  tenants: unknown;
}

export interface LoadedState {
  state: LedgerState;
  /** The last event applied. */
  position: number;
  /** Where the snapshot it started from stood; 0 when it replayed the whole log. */
  snapshotPosition: number;
  /**
   * Whether the database still holds snapshots in its table, as versions before the snapshot file wrote them.
   * They are of format 2, never started from; they are dropped once the file has a snapshot.
   */
  tableSnapshots: boolean;
  /**
   * Whether the snapshot file is ahead of the log: its last events were lost (`durability: none` and a power
   * cut). It was passed over, and must be deleted before new events take its positions.
   */
  snapshotAheadOfLog: boolean;
  /** Why a snapshot file that is there was not started from, when it was not (the log was replayed instead). */
  passedOver?: string;
}

export function snapshotPathOf(databasePath: string): string {
  return `${databasePath}.snapshot`;
}

/**
 * Writes the state as the snapshot at `position`: to a temporary file, synced, then renamed over the old one,
 * so a crash leaves either the old snapshot or the new one, whole.
 */
export function writeSnapshot(databasePath: string, state: LedgerState, position: number, createdMs: number): void {
  const tenants = JSON.stringify(packState(state));
  const head = JSON.stringify({ format: snapshotFormat, position, createdMs, sha256: digestOf(tenants) });
  // `tenants` last, so that a reader finds its text between the key and the closing brace (see tenantsText).
  writeFileDurably(snapshotPathOf(databasePath), `${head.slice(0, -1)},${tenantsKey}${tenants}}`);
}

const tenantsKey = '"tenants":';

const digestOf = (text: string): string => hash('sha256', text, 'base64url');

/**
 * The JSON text of `tenants` in a snapshot file as writeSnapshot lays it out: after the first `"tenants":` (the
 * fields before it are numbers and a digest, which cannot hold it) and up to the closing brace.
 */
function tenantsText(text: string): string {
  const start = text.indexOf(tenantsKey);
  return start < 0 ? '' : text.slice(start + tenantsKey.length, text.trimEnd().length - 1);
}

/** Removes temporary files of snapshot writes that a crash interrupted; only the engine that holds the file may. */
export function removeInterruptedWrites(databasePath: string): void {
  const prefix = `${basename(snapshotPathOf(databasePath))}.`;
  for (const name of readdirSync(dirname(databasePath))) {
    if (name.startsWith(prefix) && name.endsWith('.tmp')) rmSync(join(dirname(databasePath), name), { force: true });
  }
}

/**
 * The state after the log's event at `upTo` (default: the last): the snapshot file's state, then the events
 * after it. The snapshot is used when it is of this version's format, not ahead of the log, and its content
 * fits its format; otherwise the whole log is replayed. Reads only.
 * An in-memory database (`:memory:`) has no snapshot file beside it: its whole log is replayed.
 */
export function loadState(db: Database, databasePath: string, upTo = Number.MAX_SAFE_INTEGER): LoadedState {
  const last = (db.prepare('SELECT MAX(position) AS position FROM events').get() as { position: number | null }).position ?? 0;
  const tableSnapshots = db.prepare('SELECT 1 FROM snapshots LIMIT 1').get() !== undefined;
  const read = databasePath === ':memory:' ? undefined : readSnapshot(databasePath);
  const fromFile = read?.snapshot;
  let passedOver = read?.damaged;
  let best: StoredSnapshot | undefined;
  let state = initialState();
  if (fromFile !== undefined && fromFile.format !== snapshotFormat) {
    passedOver = `it is of format ${fromFile.format ?? 1}, which this version does not start from (${snapshotFormat})`;
  } else if (fromFile !== undefined && fromFile.position > last) {
    passedOver = `it stands at position ${fromFile.position}, past the log's end at ${last}`;
  } else if (fromFile !== undefined && fromFile.position <= upTo) {
    try {
      state = stateOf(fromFile);
      best = fromFile;
    } catch (error) {
      // Damaged in a way JSON still parses: the log holds everything a snapshot does.
      passedOver = `its content does not fit its format: ${(error as Error).message}`;
    }
  }
  let position = best?.position ?? 0;
  const tail = db.prepare('SELECT position, json FROM events WHERE position > ? AND position <= ? ORDER BY position').raw(true);
  for (const [at, json] of tail.iterate(position, upTo) as Iterable<[number, string]>) {
    evolve(state, JSON.parse(json) as InventoryEvent);
    position = at;
  }
  return {
    state, position, snapshotPosition: best?.position ?? 0, tableSnapshots,
    snapshotAheadOfLog: fromFile !== undefined && fromFile.position > last,
    ...(passedOver === undefined ? {} : { passedOver }),
  };
}

/** The state a snapshot of this version's format describes; throws when its content does not fit the format. */
export function stateOf(snapshot: StoredSnapshot): LedgerState {
  if (snapshot.format !== snapshotFormat) throw new Error(`a snapshot of format ${snapshot.format ?? 1} is not this version's (${snapshotFormat})`);
  return unpackState(snapshot.tenants as PackedState);
}

/** The snapshot file, or undefined when there is none or it cannot be used whole (then the log is replayed). */
export function readSnapshotFile(databasePath: string): StoredSnapshot | undefined {
  return readSnapshot(databasePath)?.snapshot;
}

/**
 * The snapshot file and, when it is there but cannot be used, why: its text is not JSON, it has no position, or
 * its state is not the text its digest was made of (a bit changed on the disk, say). Undefined when there is none.
 */
function readSnapshot(databasePath: string): { snapshot?: StoredSnapshot; damaged?: string } | undefined {
  let text: string;
  try {
    text = readFileSync(snapshotPathOf(databasePath), 'utf8');
  } catch {
    return undefined;
  }
  let snapshot: StoredSnapshot;
  try {
    snapshot = JSON.parse(text) as StoredSnapshot;
  } catch (error) {
    return { damaged: `it is not JSON: ${(error as Error).message}` };
  }
  if (snapshot === null || typeof snapshot !== 'object' || !Number.isSafeInteger(snapshot.position)) return { damaged: 'it has no position' };
  if (snapshot.sha256 !== undefined && snapshot.sha256 !== digestOf(tenantsText(text))) {
    return { damaged: 'its state does not match its SHA-256 digest' };
  }
  return { snapshot };
}
