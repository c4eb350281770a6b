// The embedded engine's snapshot: the state as of a log position, in a file beside the database. It is a
// cache of the log, never the only copy of anything: without it a restart replays the whole log.

import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import type { Database } from 'better-sqlite3';
import { evolve, fromSnapshot, initialState, packState, plainSnapshotFormat, snapshotFormat, unpackState } from '../../core/index.js';
import type { InventoryEvent, LedgerState, PackedState, StateSnapshot } from '../../core/index.js';

/** What a snapshot file or table row holds: the packed form (format 3), or the plain-data form of earlier versions. */
export type StoredSnapshot =
  | { format: typeof snapshotFormat; position: number; createdMs?: number; tenants: PackedState }
  | (StateSnapshot & { position: number; createdMs?: number });

export interface LoadedState {
  state: LedgerState;
  /** The last event applied. */
  position: number;
  /** Where the snapshot it started from stood; 0 when it replayed the whole log. */
  snapshotPosition: number;
  /** Whether the database still holds snapshots in its table, as versions before the snapshot file wrote them. */
  tableSnapshots: boolean;
  /**
   * Whether the snapshot file is ahead of the log: its last events were lost (`durability: none` and a power
   * cut). It was passed over, and must be deleted before new events take its positions.
   */
  snapshotAheadOfLog: boolean;
}

export function snapshotPathOf(databasePath: string): string {
  return `${databasePath}.snapshot`;
}

/**
 * Writes the state as the snapshot at `position`: to a temporary file, synced, then renamed over the old one,
 * so a crash leaves either the old snapshot or the new one, whole.
 */
export function writeSnapshot(databasePath: string, state: LedgerState, position: number, createdMs: number): void {
  const path = snapshotPathOf(databasePath);
  const temporary = `${path}.${process.pid}-${threadId}.tmp`;
  const json = JSON.stringify({ format: snapshotFormat, position, createdMs, tenants: packState(state) });
  try {
    const file = openSync(temporary, 'w');
    try {
      writeFileSync(file, json);
      fsyncSync(file);
    } finally {
      closeSync(file);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  const directory = openSync(dirname(path), 'r');
  try {
    fsyncSync(directory);
  } finally {
    closeSync(directory);
  }
}

/** Removes temporary files of snapshot writes that a crash interrupted; only the engine that holds the file may. */
export function removeInterruptedWrites(databasePath: string): void {
  const prefix = `${basename(snapshotPathOf(databasePath))}.`;
  for (const name of readdirSync(dirname(databasePath))) {
    if (name.startsWith(prefix) && name.endsWith('.tmp')) rmSync(join(dirname(databasePath), name), { force: true });
  }
}

/**
 * The state after the log's event at `upTo` (default: the last): the newest usable snapshot, then the events
 * after it. A snapshot is usable when it is of this version's format, or the plain-data form of format 2, not
 * ahead of the log, and its content fits its format. Reads only.
 * An in-memory database (`:memory:`) has no snapshot file beside it: its whole log is replayed.
 */
export function loadState(db: Database, databasePath: string, upTo = Number.MAX_SAFE_INTEGER): LoadedState {
  const last = (db.prepare('SELECT MAX(position) AS position FROM events').get() as { position: number | null }).position ?? 0;
  const row = db.prepare('SELECT position, json FROM snapshots ORDER BY position DESC LIMIT 1').get() as { position: number; json: string } | undefined;
  const fromTable = row === undefined ? undefined : { ...(JSON.parse(row.json) as StateSnapshot), position: row.position };
  const fromFile = databasePath === ':memory:' ? undefined : readSnapshotFile(databasePath);
  let best: StoredSnapshot | undefined;
  let state = initialState();
  // Newest first; one whose content does not fit its format (damaged in a way JSON still parses) is passed over.
  const usable = [fromFile, fromTable].filter((candidate): candidate is StoredSnapshot => (
    candidate !== undefined && readable(candidate) && candidate.position <= Math.min(last, upTo)));
  for (const candidate of usable.sort((a, b) => b.position - a.position)) {
    try {
      state = stateOf(candidate);
      best = candidate;
      break;
    } catch {
      // The log holds everything a snapshot does: start from an older one, or from nothing.
    }
  }
  let position = best?.position ?? 0;
  const tail = db.prepare('SELECT position, json FROM events WHERE position > ? AND position <= ? ORDER BY position').raw(true);
  for (const [at, json] of tail.iterate(position, upTo) as Iterable<[number, string]>) {
    evolve(state, JSON.parse(json) as InventoryEvent);
    position = at;
  }
  return {
    state, position, snapshotPosition: best?.position ?? 0, tableSnapshots: row !== undefined,
    snapshotAheadOfLog: fromFile !== undefined && fromFile.position > last,
  };
}

/** Whether this version can start from a stored snapshot: one of its own format, or of the plain-data format 2. */
function readable(snapshot: StoredSnapshot): boolean {
  return snapshot.format === snapshotFormat || snapshot.format === plainSnapshotFormat;
}

/** The state a readable stored snapshot describes. */
export function stateOf(snapshot: StoredSnapshot): LedgerState {
  return snapshot.format === snapshotFormat ? unpackState(snapshot.tenants as PackedState) : fromSnapshot(snapshot as StateSnapshot);
}

/** The snapshot file, or undefined when there is none or it cannot be read (then the log is replayed). */
export function readSnapshotFile(databasePath: string): StoredSnapshot | undefined {
  let text: string;
  try {
    text = readFileSync(snapshotPathOf(databasePath), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const snapshot = JSON.parse(text) as StoredSnapshot;
    return Number.isSafeInteger(snapshot.position) ? snapshot : undefined;
  } catch {
    return undefined;
  }
}
