// The data folder and the database files in it: made or opened, or refused in one line that says why and what to
// do, for the server and every command that opens them.

import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { ConfigError } from './config.js';

/** Why the operating system refused a path, in words. */
const pathCauses: Record<string, string> = {
  ENOTDIR: 'a part of its path is a file, not a folder',
  EEXIST: 'it is a file, not a folder',
  EISDIR: 'it is a folder, not a file',
  ENOENT: 'a part of its path does not exist',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is used up',
  EIO: 'an input/output error',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the path is too long',
};

/** Why SQLite refused the database file, and what to do, by primary result code (SQLITE_IOERR_WRITE is SQLITE_IOERR). */
const databaseCauses: Record<string, [cause: string, remedy?: string]> = {
  SQLITE_CANTOPEN: ['it cannot be opened', 'can this user write to its folder?'],
  SQLITE_NOTADB: ['it is not a SQLite database', 'move it away, or restore it from a backup'],
  SQLITE_CORRUPT: ['it is damaged', 'restore it from a backup'],
  SQLITE_READONLY: ['it is read-only'],
  SQLITE_PERM: ['permission denied'],
  SQLITE_FULL: ['the disk is full'],
  SQLITE_IOERR: ['an input/output error'],
};

/** The cause of a refused path or database, with its code, or undefined for any other error (a bug keeps its trace). */
function storageCause(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  const [cause, remedy] = databaseCauses[code.split('_').slice(0, 2).join('_')] ?? [pathCauses[code]];
  if (cause === undefined) return undefined;
  return `${cause} (${code})${remedy === undefined ? '' : `; ${remedy}`}`;
}

/**
 * Makes the data folder, or says in one line why it cannot be used. An empty name is refused rather than read as
 * unset: it comes from a variable left empty (STOCKLINE_DATA_DIR=), and a Stockline started on ./data instead would
 * serve an empty ledger beside the real one.
 */
export function prepareDataFolder(dir: string): void {
  if (dir === '') {
    throw new ConfigError('the data folder is empty (--data-dir or STOCKLINE_DATA_DIR given as ""): name a folder, or unset STOCKLINE_DATA_DIR to use the configuration\'s dataDir (./data by default)');
  }
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (error) {
    const cause = storageCause(error);
    if (cause === undefined) throw error;
    throw new ConfigError(`the data folder ${dir} cannot be used: ${cause}`);
  }
}

/** Opens a database of the data folder, or says in one line why `file` cannot be used (a folder in its place, not a database). */
export function openDataFile<T>(file: string, open: () => T): T {
  let kind: 'file' | 'folder' | 'other' = 'file';
  try {
    const stats = statSync(file);
    kind = stats.isFile() ? 'file' : stats.isDirectory() ? 'folder' : 'other';
  } catch {
    // Missing (it is made) or unreadable (the open says why).
  }
  if (kind !== 'file') throw new ConfigError(`the database ${file} cannot be used: it is ${kind === 'folder' ? 'a folder' : 'not a regular file'}; move it away`);
  try {
    return open();
  } catch (error) {
    const cause = storageCause(error);
    if (cause === undefined) throw error;
    throw new ConfigError(`the database ${file} cannot be used: ${cause}`);
  }
}
