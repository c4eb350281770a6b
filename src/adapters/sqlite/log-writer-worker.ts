// The embedded engine's writer thread: commits decided batches to the file and fdatasyncs the WAL, so the engine's
// event loop spends its time on requests. Batches that arrive while a commit runs are committed together.

import { closeSync, fdatasyncSync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { syncFolderOf } from '../../app/durable-file.js';
import { batchWriter } from './batch-sql.js';
import type { WriterJob, WriterMessage, WriterReport } from './log-writer.js';

const job = workerData as WriterJob;
const db = new Database(job.path, { fileMustExist: true });
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
const write = batchWriter(db);
let walFd: number | undefined;
let queued: Array<Extract<WriterMessage, { rows: unknown }>> = [];
let committing = false;
let closed = false;
/** After a failed write, batches of its epoch are dropped: they were decided on a state the engine rebuilds. */
let droppedEpoch = -1;
/** After a failed fdatasync nothing written since is trustworthy: the thread writes no more. */
let broken = false;

const report = (message: WriterReport): void => parentPort?.postMessage(message);

/**
 * The engine's own connection leaves checkpoints to this thread, which makes them as it commits. When no batch
 * comes for a while, what that connection wrote meanwhile (the channel outbox's marks) is checkpointed here.
 */
const idleCheckpoints = setInterval(() => {
  if (committing || closed || broken) return;
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // The next commit checkpoints.
  }
}, 1_000);

parentPort?.on('message', (message: WriterMessage) => {
  if (message.kind === 'close') {
    closed = true;
    clearInterval(idleCheckpoints);
    if (walFd !== undefined) closeSync(walFd);
    db.close();
    parentPort?.close();
    return;
  }
  queued.push(message);
  if (!committing) {
    committing = true;
    // Every message already received is delivered before this runs: they share one transaction and one fdatasync.
    setImmediate(commit);
  }
});

function commit(): void {
  committing = false;
  if (closed) return;
  const group = queued.filter((message) => message.epoch > droppedEpoch);
  queued = [];
  const last = group.at(-1);
  if (broken || last === undefined) return;
  const { epoch } = last;
  const from = (group[0] ?? last).seq;
  try {
    write(group.map((message) => message.rows));
  } catch (error) {
    droppedEpoch = epoch;
    report({ epoch, failedFrom: from, stage: 'write', message: (error as Error).message });
    return;
  }
  if (job.sync) {
    try {
      const opening = walFd === undefined;
      walFd ??= openSync(`${job.path}-wal`, 'r');
      fdatasyncSync(walFd);
      // SQLite makes the WAL file when the database opens (and removes it at the last close): its name in the
      // folder is made durable once, with the first commit, or a power cut could take the whole WAL with it.
      if (opening) syncFolderOf(job.path);
    } catch (error) {
      broken = true;
      report({ epoch, failedFrom: from, stage: 'sync', message: (error as Error).message });
      return;
    }
  }
  report({ epoch, upTo: last.seq });
}
