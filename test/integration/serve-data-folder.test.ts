// `stockline serve` on a data folder it cannot use, or with a setting that would do nothing or harm: one line
// naming the folder, file or key and the cause, and exit status 2; never a stack trace.

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { serveCommand } from '../../src/cli/serve.js';

const root = mkdtempSync(join(tmpdir(), 'stockline-serve-data-'));
const cleanups: Array<() => void> = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function serve(args: string[]): Promise<{ status: number; stderr: string }> {
  let stderr = '';
  const io = { stdout: (): void => undefined, stderr: (text: string): void => { stderr += text; }, stdin: new PassThrough() };
  const status = await serveCommand(['--host', '127.0.0.1', '--port', '0', '--log-level', 'silent', ...args], io);
  return { status, stderr };
}

function setEnv(name: string, value: string): void {
  const before = process.env[name];
  process.env[name] = value;
  cleanups.push(() => {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  });
}

function folder(): string {
  return mkdtempSync(join(root, 'case-'));
}

describe('stockline serve on a data folder it cannot use', () => {
  it('names a path through a file (ENOTDIR) and a file in the folder\'s place (EEXIST)', async () => {
    const file = join(folder(), 'afile');
    writeFileSync(file, '');
    const through = await serve(['--data-dir', join(file, 'sub')]);
    expect(through.stderr).toBe(`stockline serve: the data folder ${join(file, 'sub')} cannot be used: a part of its path is a file, not a folder (ENOTDIR)\n`);
    expect(through.status).toBe(2);
    const itself = await serve(['--data-dir', file]);
    expect(itself.stderr).toBe(`stockline serve: the data folder ${file} cannot be used: it is a file, not a folder (EEXIST)\n`);
    expect(itself.status).toBe(2);
  });

  it('refuses an empty STOCKLINE_DATA_DIR rather than serving ./data', async () => {
    setEnv('STOCKLINE_DATA_DIR', '');
    const { status, stderr } = await serve([]);
    expect(stderr).toBe('stockline serve: the data folder is empty (--data-dir or STOCKLINE_DATA_DIR given as ""): name a folder, or unset STOCKLINE_DATA_DIR to use the configuration\'s dataDir (./data by default)\n');
    expect(status).toBe(2);
  });

  it('names a folder where the database should be', async () => {
    const dir = folder();
    mkdirSync(join(dir, 'stockline.db'));
    const { status, stderr } = await serve(['--data-dir', dir]);
    expect(stderr).toBe(`stockline serve: the database ${join(dir, 'stockline.db')} cannot be used: it is a folder; move it away\n`);
    expect(status).toBe(2);
  });

  it('names a database file that is not SQLite, and leaves the folder unlocked', async () => {
    const dir = folder();
    const path = join(dir, 'stockline.db');
    writeFileSync(path, randomBytes(8192));
    const { status, stderr } = await serve(['--data-dir', dir]);
    expect(stderr).toBe(`stockline serve: the database ${path} cannot be used: it is not a SQLite database (SQLITE_NOTADB); move it away, or restore it from a backup\n`);
    expect(status).toBe(2);
    expect(existsSync(`${path}.lock`)).toBe(false);
  });
});

describe('stockline serve with settings that would do nothing or harm', () => {
  function configFile(text: string): string {
    const file = join(folder(), 'stockline.yaml');
    writeFileSync(file, text);
    return file;
  }

  it('refuses ledger.expiryIntervalMs: 0, before the data folder is touched', async () => {
    const dir = join(root, 'never-made');
    const file = configFile('ledger: { expiryIntervalMs: 0 }\n');
    const { status, stderr } = await serve(['--data-dir', dir, '--config', file]);
    expect(stderr).toBe(`stockline serve: ${file}: ledger.expiryIntervalMs: must be at least 100 (ms), got 0; the expiry ticks release expired holds and forget old idempotency records, so they cannot be turned off\n`);
    expect(status).toBe(2);
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses alerts.reconciliationLagSeconds, which never changed anything', async () => {
    const file = configFile('alerts: { reconciliationLagSeconds: 5 }\n');
    const { status, stderr } = await serve(['--data-dir', folder(), '--config', file]);
    expect(stderr).toBe(`stockline serve: ${file}: alerts.reconciliationLagSeconds: is not a setting (it never changed anything): the reconciliation lag alert's threshold is in deploy/prometheus/alerts.yaml (StocklineReconciliationLagHigh); remove it from this file\n`);
    expect(status).toBe(2);
  });
});
