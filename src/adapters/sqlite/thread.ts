// Starts one of this directory's worker modules on its own thread.

import { Worker } from 'node:worker_threads';

/**
 * Starts `./<module>.js` beside this file on a new thread. Under a TypeScript loader (the test runner runs the
 * sources), the worker registers the same loader before importing the module's `.ts` source.
 */
export function startThread(module: string, workerData: unknown): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL(`./${module}.js`, import.meta.url), { workerData });
  const source = new URL(`./${module}.ts`, import.meta.url).href;
  const bootstrap = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(source)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), { workerData });
}
