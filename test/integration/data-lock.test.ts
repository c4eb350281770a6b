// One engine per data folder: the lock is the operating system's, so it holds against processes starting together,
// same-process engines and whatever the owner file says, and goes away with its process, however it ends.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/app/engine.js';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { holder, killHolders, lockedBy } from '../support/data-lock.js';
import type { Holder } from '../support/data-lock.js';

const root = mkdtempSync(join(tmpdir(), 'stockline-data-lock-'));
const children: ChildProcess[] = [];
const engines: EmbeddedEngine[] = [];

afterEach(async () => {
  killHolders();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const engine of engines.splice(0)) await engine.close();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function folder(): { dir: string; path: string } {
  const dir = mkdtempSync(join(root, 'data-'));
  return { dir, path: join(dir, 'stockline.db') };
}

function open(path: string): EmbeddedEngine {
  const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
  engines.push(engine);
  return engine;
}

function refusal(path: string): AppError {
  try {
    open(path);
  } catch (error) {
    return error as AppError;
  }
  throw new Error(`a second engine opened ${path}`);
}

/** The pid of a live process that is not Stockline (what a reused pid looks like). */
function unrelatedProcess(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'process.stdout.write("up\\n"); setInterval(() => undefined, 1000)'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve) => (child.stdout as NodeJS.ReadableStream).once('data', () => resolve(child.pid as number)));
}

describe('the data folder lock', () => {
  it('refuses a second engine in the same process with DATA_LOCKED naming the folder, and frees the folder at close', async () => {
    const { dir, path } = folder();
    const first = open(path);
    const error = refusal(path);
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: 'DATA_LOCKED', retryable: false });
    expect(error.message).toContain(`the data folder ${dir} is in use by process ${process.pid}`);
    // The refused engine took nothing: another process still cannot open the file.
    const other = await holder(path);
    other.send('go');
    expect(await other.line()).toBe('refused DATA_LOCKED');
    engines.splice(engines.indexOf(first), 1);
    await first.close();
    open(path);
  });

  it('refuses an engine while another process holds the folder, whatever stockline.db.lock says', async () => {
    const { path } = folder();
    const held = await lockedBy(path);
    expect(refusal(path)).toMatchObject({ code: 'DATA_LOCKED', message: expect.stringContaining(`process ${held.child.pid}`) });
    // What a process that had just created the owner file, and not yet written it, left behind.
    writeFileSync(`${path}.lock`, '');
    expect(refusal(path)).toMatchObject({ code: 'DATA_LOCKED' });
    rmSync(`${path}.lock`);
    expect(refusal(path)).toMatchObject({ code: 'DATA_LOCKED', message: expect.stringContaining('is in use by another process') });
    held.send('close');
    expect(await held.line()).toBe('closed');
    await held.exited;
    open(path);
  });

  it('lets exactly one of several processes starting together take the folder, fresh or with a lock a crash left', async () => {
    const crashed = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => crashed.once('exit', resolve));
    for (const leftOver of [undefined, String(crashed.pid)]) {
      const { path } = folder();
      if (leftOver !== undefined) writeFileSync(`${path}.lock`, leftOver);
      const racers = await Promise.all(Array.from({ length: 4 }, () => holder(path)));
      const atMs = Date.now() + 100;
      for (const racer of racers) racer.send(`go ${atMs}`);
      const outcomes = await Promise.all(racers.map((racer) => racer.line()));
      expect(outcomes.filter((outcome) => outcome === 'locked'), outcomes.join(', ')).toHaveLength(1);
      expect(outcomes.filter((outcome) => outcome === 'refused DATA_LOCKED')).toHaveLength(3);
      const winner = racers[outcomes.indexOf('locked')] as Holder;
      winner.send('close');
      expect(await winner.line()).toBe('closed');
      await Promise.all(racers.map((racer) => racer.exited));
    }
  });

  it('is not blocked by a lock file a crash left whose pid now belongs to an unrelated process', async () => {
    const { path } = folder();
    writeFileSync(`${path}.lock`, String(await unrelatedProcess()));
    const engine = open(path);
    expect(engine.ready()).toBe(true);
  });

  it('goes away with a process killed by SIGKILL', async () => {
    const { path } = folder();
    const held = await lockedBy(path);
    expect(refusal(path)).toMatchObject({ code: 'DATA_LOCKED' });
    held.child.kill('SIGKILL');
    await held.exited;
    const engine = open(path);
    expect(engine.ready()).toBe(true);
  });
});
