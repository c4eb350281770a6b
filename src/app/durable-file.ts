// Files that are written whole or not at all: a crash leaves the old content or the new, never a part.

import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { threadId } from 'node:worker_threads';

/**
 * Writes `text` to a temporary file beside `path` (named `<path>.<pid>-<thread>.tmp`), syncs it, renames it over
 * `path` and syncs the folder, so the rename itself survives a power cut. `mode` sets the file's permissions.
 */
export function writeFileDurably(path: string, text: string, mode?: number): void {
  const temporary = `${path}.${process.pid}-${threadId}.tmp`;
  try {
    const file = openSync(temporary, 'w', mode);
    try {
      if (mode !== undefined) fchmodSync(file, mode);
      writeFileSync(file, text);
      fsyncSync(file);
    } finally {
      closeSync(file);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  syncFolderOf(path);
}

/**
 * Syncs the folder that holds `path`, so that the file's creation, renaming or removal survives a power cut:
 * syncing a file makes its content durable, not its name in the folder.
 */
export function syncFolderOf(path: string): void {
  const folder = openSync(dirname(path), 'r');
  try {
    fsyncSync(folder);
  } finally {
    closeSync(folder);
  }
}
