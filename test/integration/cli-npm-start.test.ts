// `npm start` and `stockline serve` stop gracefully on SIGTERM and SIGINT, as a user and a supervisor send them:
// to npm's pid, to the terminal's process group (Ctrl-C), and twice. Runs dist/ (npm run build first).

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'stockline-npm-start-'));
const exitTimeoutMs = 15_000;
/** Every process a test started, ended by pid after it whatever happened. */
const started: number[] = [];

afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Started {
  child: ChildProcess;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `command` in its own process group (as a shell runs a foreground job) until it serves. */
async function startServing(command: string, args: string[], dataDir: string): Promise<Started> {
  const env: NodeJS.ProcessEnv = { ...process.env, STOCKLINE_DATA_DIR: dataDir, STOCKLINE_LOG_LEVEL: 'warn' };
  delete env.STOCKLINE_CONFIG;
  const child = spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
  started.push(child.pid as number);
  const output: string[] = [];
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => output.push(line));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`did not serve:\n${output.join('\n')}`)), 30_000);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      output.push(line);
      if (!/serving on http/.test(line)) return;
      clearTimeout(timer);
      resolve();
    });
    void exited.then(() => reject(new Error(`exited before serving:\n${output.join('\n')}`)));
  });
  return { child, output, exited };
}

/** The pid of the `stockline serve` process under `pid` (npm, then a shell unless the script execs); all are ended after the test. */
function serverUnder(pid: number): number {
  const table = spawnSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' }).stdout.split('\n').map((line) => {
    const [, child, parent, args] = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line) ?? [];
    return { pid: Number(child), ppid: Number(parent), args: args ?? '' };
  });
  const below = new Set([pid]);
  for (let grown = true; grown;) {
    grown = false;
    for (const row of table) {
      if (below.has(row.ppid) && !below.has(row.pid)) {
        below.add(row.pid);
        grown = true;
      }
    }
  }
  const under = table.filter((row) => below.has(row.pid) && row.pid !== pid);
  started.push(...under.map((row) => row.pid));
  // The node process itself, not a shell whose command line names it.
  const server = under.find((row) => /^\S*node\s.*bin\/stockline\.js serve/.test(row.args));
  if (server === undefined) throw new Error(`no stockline serve under ${pid}:\n${under.map((row) => row.args).join('\n')}`);
  return server.pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number): Promise<boolean> {
  for (const deadline = Date.now() + exitTimeoutMs; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 50))) {
    if (!alive(pid)) return true;
  }
  return false;
}

/** Closed, not killed: the log merged back into the database file. */
function closedCleanly(dataDir: string): boolean {
  return existsSync(join(dataDir, 'stockline.db')) && !existsSync(join(dataDir, 'stockline.db-wal'));
}

const npmStart = ['start', '--', '--host', '127.0.0.1', '--port', '0'];

describe('npm start', () => {
  it('stops the server gracefully on SIGTERM to npm, leaving no process behind', async () => {
    const dataDir = mkdtempSync(join(root, 'term-'));
    const npm = await startServing('npm', npmStart, dataDir);
    const server = serverUnder(npm.child.pid as number);
    process.kill(npm.child.pid as number, 'SIGTERM');
    expect(await gone(server), 'the server outlived npm').toBe(true);
    await npm.exited;
    expect(npm.output).toContain('stockline: SIGTERM received, finishing in-flight work');
    expect(closedCleanly(dataDir)).toBe(true);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('stops the server gracefully on %s to its process group (Ctrl-C in a terminal)', async (signal) => {
    const dataDir = mkdtempSync(join(root, 'group-'));
    const npm = await startServing('npm', npmStart, dataDir);
    const server = serverUnder(npm.child.pid as number);
    process.kill(-(npm.child.pid as number), signal);
    expect(await gone(server)).toBe(true);
    await npm.exited;
    expect(npm.output.filter((line) => line.includes(' received'))).toEqual([`stockline: ${signal} received, finishing in-flight work`]);
    expect(closedCleanly(dataDir)).toBe(true);
  });
});

describe('stockline serve', () => {
  it('finishes its shutdown when the signal comes twice at once (the terminal and npm both send Ctrl-C)', async () => {
    const dataDir = mkdtempSync(join(root, 'twice-'));
    const serve = await startServing(process.execPath, ['bin/stockline.js', 'serve', '--host', '127.0.0.1', '--port', '0'], dataDir);
    const pid = serve.child.pid as number;
    process.kill(pid, 'SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 20));
    process.kill(pid, 'SIGINT');
    expect(await serve.exited).toEqual({ code: 0, signal: null });
    expect(serve.output.filter((line) => line.includes(' received'))).toEqual(['stockline: SIGINT received, finishing in-flight work']);
    expect(closedCleanly(dataDir)).toBe(true);
  });
});
