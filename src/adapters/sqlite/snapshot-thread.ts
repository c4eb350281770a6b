// Starts the snapshot worker (snapshot-worker.ts) and reports how it ended.

import { Worker } from 'node:worker_threads';
import type { SnapshotJob } from './snapshot-worker.js';

/**
 * Runs one snapshot job on its own thread; resolves with the position written. Under a TypeScript loader (the
 * test runner runs the sources), the worker registers the same loader before importing its module.
 */
export function snapshotInWorker(job: SnapshotJob): { done: Promise<number>; worker: Worker } {
  const worker = import.meta.url.endsWith('.ts')
    ? new Worker(new URL(`data:text/javascript,${encodeURIComponent(
      `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(new URL('./snapshot-worker.ts', import.meta.url).href)});`,
    )}`), { workerData: job })
    : new Worker(new URL('./snapshot-worker.js', import.meta.url), { workerData: job });
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
