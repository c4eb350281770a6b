// The embedded engine's snapshot file, which is stored packed, read and written as plain data, so tests can
// compare it with a replay of the log and change it.

import { readSnapshotFile, stateOf, writeSnapshot } from '../../src/adapters/sqlite/snapshot-file.js';
import { fromSnapshot, toSnapshot } from '../../src/core/index.js';
import type { StateSnapshot } from '../../src/core/index.js';

export type PlainStoredSnapshot = StateSnapshot & { position: number; format: number | undefined };

/** The snapshot beside the database at `databasePath` as plain data; undefined when there is none (or none whole). */
export function readPlainSnapshot(databasePath: string): PlainStoredSnapshot | undefined {
  const stored = readSnapshotFile(databasePath);
  if (stored === undefined) return undefined;
  return { ...toSnapshot(stateOf(stored)), position: stored.position, format: stored.format };
}

/** Writes plain data as the snapshot beside the database, as this version writes it. */
export function writePackedSnapshot(databasePath: string, snapshot: StateSnapshot & { position: number }): void {
  writeSnapshot(databasePath, fromSnapshot(snapshot), snapshot.position, 0);
}
