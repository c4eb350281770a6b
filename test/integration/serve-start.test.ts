// `stockline serve` refused at start by something an operator fixes (the folder or the port taken, a bad log
// level): one line and exit status 2, not a stack trace, and nothing it had started is left behind.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { serveCommand } from '../../src/cli/serve.js';
import { killHolders, lockedBy } from '../support/data-lock.js';

const root = mkdtempSync(join(tmpdir(), 'stockline-serve-start-'));
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  killHolders();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function serve(args: string[]): Promise<{ status: number; stderr: string }> {
  let stderr = '';
  const io = { stdout: (): void => undefined, stderr: (text: string): void => { stderr += text; }, stdin: new PassThrough() };
  const status = await serveCommand(['--host', '127.0.0.1', '--log-level', 'silent', ...args], io);
  return { status, stderr };
}

function dataDir(): string {
  return mkdtempSync(join(root, 'data-'));
}

/** A port something else listens on. */
async function takenPort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as { port: number }).port;
}

describe('stockline serve, refused at start', () => {
  it('says the data folder is in use, and exits 2', async () => {
    const dir = dataDir();
    const held = await lockedBy(join(dir, 'stockline.db'));
    const { status, stderr } = await serve(['--data-dir', dir, '--port', '0']);
    expect(stderr).toBe(`stockline serve: the data folder ${dir} is in use by process ${held.child.pid} (it holds ${join(dir, 'stockline.db')}); stop it first, or send changes to its API\n`);
    expect(status).toBe(2);
  });

  it('says the port is in use, exits 2, and closes the engine it had started', async () => {
    const dir = dataDir();
    const port = await takenPort();
    const { status, stderr } = await serve(['--data-dir', dir, '--port', String(port)]);
    expect(stderr).toBe(`stockline serve: port ${port} on 127.0.0.1 is in use by another process: stop it, or pick another port (--port, PORT)\n`);
    expect(status).toBe(2);
    // Closed: the log merged back into the file, and the folder free for the next start.
    const path = join(dir, 'stockline.db');
    expect(existsSync(`${path}-wal`)).toBe(false);
    expect(existsSync(`${path}.lock`)).toBe(false);
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
    await engine.close();
  });

  it('names the log levels when given another, before anything starts', async () => {
    const dir = join(root, 'never-made');
    let stderr = '';
    const status = await serveCommand(['--host', '127.0.0.1', '--data-dir', dir, '--port', '0', '--log-level', 'bogus'], { stdout: () => undefined, stderr: (text) => { stderr += text; }, stdin: new PassThrough() });
    const flag = { status, stderr };
    expect(flag.stderr).toBe('stockline serve: --log-level must be one of trace, debug, info, warn, error, fatal, silent, got "bogus"\n');
    expect(flag.status).toBe(2);
    const before = process.env.STOCKLINE_LOG_LEVEL;
    process.env.STOCKLINE_LOG_LEVEL = 'loud';
    cleanups.push(() => {
      if (before === undefined) delete process.env.STOCKLINE_LOG_LEVEL;
      else process.env.STOCKLINE_LOG_LEVEL = before;
    });
    const fromEnv = await serveCommand(['--host', '127.0.0.1', '--data-dir', dir, '--port', '0'], { stdout: () => undefined, stderr: (text) => expect(text).toBe('stockline serve: STOCKLINE_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "loud"\n'), stdin: new PassThrough() });
    expect(fromEnv).toBe(2);
    expect(existsSync(dir)).toBe(false);
  });

  it.each([['--port', ''], ['--port', '0x4789'], ['--port', '1e4'], ['--port', '65536'], ['--port', ' 80'], ['PORT', ''], ['PORT', '0x4789']])(
    'refuses %s %j as a port: decimal digits only, 0..65535', async (where, value) => {
      const dir = join(root, 'never-made');
      vi.stubEnv('PORT', where === 'PORT' ? value : undefined);
      try {
        const { status, stderr } = await serve(['--data-dir', dir, ...(where === 'PORT' ? [] : [`--port=${value}`])]);
        expect(stderr.split('\n')[0]).toMatch(where === 'PORT' && value === '' ? /^stockline serve: PORT must be a decimal integer 0\.\.65535/ : /must be a decimal integer 0\.\.65535|needs a value/);
        expect(status).toBe(2);
        expect(existsSync(dir)).toBe(false);
      } finally {
        vi.unstubAllEnvs();
      }
    },
  );

  it.each([
    [['-p', '18383']],
    [['extra']],
    [['--bogus']],
    [['--demo=false']],
  ])('refuses the stray argument in %j with one line and the usage, before anything starts', async (stray) => {
    const dir = join(root, 'never-made');
    // Were the argument ignored, the server would start and this would not settle; the test would time out.
    const started = serve(['--data-dir', dir, '--port', '0', ...stray]);
    const { status, stderr } = await Promise.race([started, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('serve started')), 10_000))]);
    expect(stderr).toMatch(/^stockline serve: (unknown option -p|unknown argument extra|unknown option --bogus|--demo takes no value)\nusage: stockline serve /);
    expect(status).toBe(2);
    expect(existsSync(dir)).toBe(false);
  });
});
