// `stockline keys`: create prints a working key once, list shows keys without secrets, revoke stops a key.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keysCommand } from '../../../src/cli/keys.js';
import { ApiKeyStore } from '../../../src/adapters/sqlite/api-keys.js';

let dir: string;
let opened: string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'stockline-keys-'));
  opened = [];
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const openDb = (dataDir?: string): Database.Database => {
  const path = join(dataDir ?? dir, 'stockline.db');
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
