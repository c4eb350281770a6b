// Writes the embedded engine's snapshot on a thread of its own, so the engine's event loop never stops for it:
// it rebuilds the state at a durable position from the last snapshot and the log (both on disk), and writes it.

import { readlinkSync } from 'node:fs';
import { constants, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { loadState, writeSnapshot } from './snapshot-file.js';

export interface SnapshotJob {
  databasePath: string;
  /** A position whose events are durable: the snapshot holds the state after it. */
  position: number;
}

/**
 * On Linux a thread has its own nice value: the lowest priority lets requests, and the fsyncs they wait for,
 * go first, so a snapshot takes only the CPU time the traffic leaves over.
 */
function yieldToTraffic(): void {
  try {
    const thread = Number(/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1]);
    if (Number.isSafeInteger(thread)) setPriority(thread, constants.priority.PRIORITY_LOW);
  } catch {
    // Not Linux, or not allowed: the snapshot runs at the process's priority.
  }
}

const job = workerData as SnapshotJob;
yieldToTraffic();
const db = new Database(job.databasePath, { readonly: true, fileMustExist: true });
try {
  const loaded = loadState(db, job.databasePath, job.position);
  if (loaded.position !== job.position) throw new Error(`the log ends at ${loaded.position}, before ${job.position}`);
  if (loaded.snapshotPosition < job.position) writeSnapshot(job.databasePath, loaded.state, job.position, Date.now());
  parentPort?.postMessage(job.position);
} finally {
  db.close();
}
