// Starts the snapshot worker (snapshot-worker.ts) and reports how it ended.

import type { Worker } from 'node:worker_threads';
import type { SnapshotJob } from './snapshot-worker.js';
import { startThread } from './thread.js';

/** Runs one snapshot job on its own thread; resolves with the position written. */
export function snapshotInWorker(job: SnapshotJob): { done: Promise<number>; worker: Worker } {
  const worker = startThread('snapshot-worker', job);
  const done = new Promise<number>((resolve, reject) => {
    let written: number | undefined;
    worker.once('message', (position: number) => { written = position; });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (written !== undefined) resolve(written);
      else reject(new Error(`the snapshot worker exited with code ${code} before writing`));
    });
  });
  return { done, worker };
}
