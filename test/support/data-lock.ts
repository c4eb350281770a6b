// Processes that open an embedded engine on a file when told to (test/support/data-lock-holder.ts), for tests of
// the data folder lock.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Holder {
  child: ChildProcess;
  /** The next line the holder prints: `ready`, `locked`, `refused <code>`, `closed`. */
  line(): Promise<string>;
  /** `go`, `go <epoch ms>` (try then), or `close`. */
  send(line: string): void;
  exited: Promise<void>;
}

const started = new Set<ChildProcess>();

/** A holder process on `path`, ready to be told `go`. */
export async function holder(path: string): Promise<Holder> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/data-lock-holder.ts', path], { stdio: ['pipe', 'pipe', 'inherit'] });
  started.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    started.delete(child);
    resolve();
  }));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  const line = async (): Promise<string> => {
    const next = await lines.next();
    if (next.done === true) throw new Error('the holder exited');
    return next.value;
  };
  const first = await line();
  if (first !== 'ready') throw new Error(`the holder said ${first}`);
  return { child, line, send: (text) => (child.stdin as NodeJS.WritableStream).write(`${text}\n`), exited };
}

/** A holder process that holds `path`. */
export async function lockedBy(path: string): Promise<Holder> {
  const held = await holder(path);
  held.send('go');
  const said = await held.line();
  if (said !== 'locked') throw new Error(`the holder could not lock ${path}: ${said}`);
  return held;
}

/** Kills every holder still running. */
export function killHolders(): void {
  for (const child of started) child.kill('SIGKILL');
}
