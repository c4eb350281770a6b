// `stockline keys`: create prints a working key once, list shows keys without secrets, revoke stops a key;
// the keys go to the file the configured server reads them from.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { keysCommand } from '../../../src/cli/keys.js';
import { keysMain } from '../../../src/cli/commands.js';
import { openDatabase } from '../../../src/cli/context.js';
import { ApiKeyStore } from '../../../src/adapters/sqlite/api-keys.js';

let dir: string;
let opened: string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'stockline-keys-'));
  opened = [];
  // The folder of these tests, unless a test gives another; no configuration from the shell.
  vi.stubEnv('STOCKLINE_DATA_DIR', dir);
  vi.stubEnv('STOCKLINE_CONFIG', undefined);
});

afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

const openDb = (dataDir: string = dir, file = 'stockline.db'): Database.Database => {
  const path = join(dataDir, file);
  opened.push(path);
  return new Database(path);
};

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await keysCommand(args, { stdout: (text) => { stdout += text; }, stderr: (text) => { stderr += text; } }, openDb);
  return { code, stdout, stderr };
}

function verify(key: string): ReturnType<ApiKeyStore['verify']> {
  const db = openDb();
  try {
    return new ApiKeyStore(db).verify(key);
  } finally {
    db.close();
  }
}

describe('stockline keys', () => {
  it('create prints the key once, on stdout alone, and it verifies', async () => {
    const created = await run('create', '--tenant', 'acme', '--scopes', 'read,write');
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^sk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/shown this once/);
    expect(verify(key)).toMatchObject({ tenant: 'acme', scopes: ['read', 'write'] });
    const listed = await run('list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(`${key.slice(3, 19)}\tacme\tread,write\t`);
    expect(listed.stdout).not.toContain(key.slice(20));
  });

  it('create --admin makes a key for every tenant; --data-dir picks the database', async () => {
    const other = mkdtempSync(join(tmpdir(), 'stockline-keys-other-'));
    try {
      const created = await run('create', '--admin', '--scopes', 'admin', '--data-dir', other);
      expect(created.code).toBe(0);
      expect(opened).toEqual([join(other, 'stockline.db')]);
      const db = openDb(other);
      try {
        expect(new ApiKeyStore(db).verify(created.stdout.trim())).toMatchObject({ tenant: null, scopes: ['admin'] });
      } finally {
        db.close();
      }
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('revoke stops a key; an unknown id exits 1', async () => {
    const key = (await run('create', '--tenant', 'acme', '--scopes', 'read')).stdout.trim();
    const id = key.slice(3, 19);
    expect((await run('revoke', id)).code).toBe(0);
    expect(verify(key)).toBeUndefined();
    expect((await run('list')).stdout).toMatch(new RegExp(`${id}\\tacme\\tread\\t\\S+\\t\\d{4}-`));
    const unknown = await run('revoke', '0000000000000000');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no key 0000000000000000');
  });

  it.each([
    [['create', '--scopes', 'read'], /exactly one of --tenant T and --admin/],
    [['create', '--tenant', 'acme'], /--scopes is required/],
    [['create', '--tenant', 'acme', '--scopes', 'read,root'], /--scopes must list read, write, admin/],
    [['create', '--tenant', 'Not Valid', '--scopes', 'read'], /invalid tenant id/],
    [['create', '--tenant', 'acme', '--admin', '--scopes', 'read'], /exactly one of/],
    [['rotate'], /unknown action rotate/],
    [['revoke'], /needs the id/],
    [['list', '--verbose'], /unknown option --verbose/],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const result = await run(...args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });
});

describe('stockline keys: the folder and file the server reads', () => {
  beforeEach(() => {
    vi.stubEnv('STOCKLINE_DATA_DIR', undefined);
  });

  async function main(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await keysMain(args, { stdout: (text) => { stdout += text; }, stderr: (text) => { stderr += text; }, stdin: new PassThrough() });
    return { code, stdout, stderr };
  }

  function verifyIn(path: string, key: string): ReturnType<ApiKeyStore['verify']> {
    const db = new Database(path, { readonly: true });
    try {
      return new ApiKeyStore(db).verify(key);
    } finally {
      db.close();
    }
  }

  /** A configuration whose dataDir is a folder a server has already opened. */
  function servedConfig(engine: 'embedded' | 'kafka'): { file: string; dataDir: string } {
    const dataDir = join(dir, 'kc', 'data');
    const kafka = engine === 'kafka' ? 'engine: kafka\nkafka: { brokers: ["127.0.0.1:19092"] }\n' : '';
    const file = join(dir, 'kc.yaml');
    writeFileSync(file, `${kafka}dataDir: ${JSON.stringify(dataDir)}\n`);
    openDatabase(dataDir, engine === 'kafka' ? 'stockline-node.db' : 'stockline.db').close();
    return { file, dataDir };
  }

  it.each([
    ['--config', (file: string) => ['--config', file]],
    ['STOCKLINE_CONFIG', (file: string) => { vi.stubEnv('STOCKLINE_CONFIG', file); return []; }],
  ])('with %s and no data folder given, create writes to the dataDir of the configuration', async (_name, configure) => {
    const config = servedConfig('embedded');
    const created = await main('create', '--tenant', 'acme', '--scopes', 'read', ...configure(config.file));
    expect(created.stderr).toContain(join(config.dataDir, 'stockline.db'));
    expect(created.code).toBe(0);
    expect(verifyIn(join(config.dataDir, 'stockline.db'), created.stdout.trim())).toMatchObject({ tenant: 'acme' });
    expect((await main('list', ...configure(config.file))).stdout).toContain(`${created.stdout.trim().slice(3, 19)}\tacme\t`);
  });

  it('--data-dir wins over the configuration, as for serve', async () => {
    const config = servedConfig('embedded');
    const other = join(dir, 'other');
    const created = await main('create', '--admin', '--scopes', 'admin', '--config', config.file, '--data-dir', other);
    expect(created.code).toBe(0);
    expect(verifyIn(join(other, 'stockline.db'), created.stdout.trim())).toMatchObject({ tenant: null });
  });

  it('on a Kafka node the key goes to stockline-node.db, where its server reads keys', async () => {
    const config = servedConfig('kafka');
    const created = await main('create', '--tenant', 'acme', '--scopes', 'read,write', '--config', config.file);
    expect(created.stderr).toContain(join(config.dataDir, 'stockline-node.db'));
    expect(created.code).toBe(0);
    expect(verifyIn(join(config.dataDir, 'stockline-node.db'), created.stdout.trim())).toMatchObject({ tenant: 'acme', scopes: ['read', 'write'] });
    expect(readdirSync(config.dataDir).filter((name) => name.endsWith('.db'))).toEqual(['stockline-node.db']);
  });

  it('refuses a Kafka node folder whose server has not run, and creates nothing', async () => {
    const file = join(dir, 'kafka.yaml');
    writeFileSync(file, `engine: kafka\nkafka: { brokers: ["127.0.0.1:19092"] }\ndataDir: ${JSON.stringify(join(dir, 'node'))}\n`);
    const created = await main('create', '--tenant', 'acme', '--scopes', 'read', '--config', file);
    expect(created.code).toBe(2);
    expect(created.stdout).toBe('');
    expect(created.stderr).toMatch(/no stockline-node\.db in .*node: .*start stockline serve/);
    expect(existsSync(join(dir, 'node'))).toBe(false);
  });

  it('refuses list and revoke on a folder with no database, and creates nothing', async () => {
    const empty = join(dir, 'empty');
    for (const args of [['list'], ['revoke', '0000000000000000']]) {
      const result = await main(...args, '--data-dir', empty);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/no stockline\.db in .*empty: give the data folder the server uses/);
    }
    expect(existsSync(empty)).toBe(false);
  });

  it('refuses to put a stockline.db beside a Kafka node\'s stockline-node.db when the configuration is missing', async () => {
    mkdirSync(join(dir, 'node'));
    openDatabase(join(dir, 'node'), 'stockline-node.db').close();
    const created = await main('create', '--tenant', 'acme', '--scopes', 'read', '--data-dir', join(dir, 'node'));
    expect(created.code).toBe(2);
    expect(created.stderr).toMatch(/Kafka node's stockline-node\.db .*--config or STOCKLINE_CONFIG/);
    expect(existsSync(join(dir, 'node', 'stockline.db'))).toBe(false);
  });

  it('the first key of a fresh embedded folder creates its database there, for a serve that comes later', async () => {
    const fresh = join(dir, 'fresh');
    const created = await main('create', '--tenant', 'acme', '--scopes', 'read', '--data-dir', fresh);
    expect(created.code).toBe(0);
    expect(verifyIn(join(fresh, 'stockline.db'), created.stdout.trim())).toMatchObject({ tenant: 'acme' });
  });

  it('refuses a bad tenant id before it opens anything, so no database is left behind', async () => {
    const fresh = join(dir, 'kd');
    const created = await main('create', '--tenant', 'Bad', '--scopes', 'read', '--data-dir', fresh);
    expect(created.code).toBe(2);
    expect(created.stderr).toMatch(/^stockline keys: invalid tenant id "Bad"/);
    expect(existsSync(fresh)).toBe(false);
  });

  it('an unreadable configuration is exit 2 with its message', async () => {
    const result = await main('list', '--config', join(dir, 'missing.yaml'));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^stockline keys: cannot read .*missing\.yaml/);
  });
});
