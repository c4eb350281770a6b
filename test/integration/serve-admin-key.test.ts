// STOCKLINE_ADMIN_KEY opens every tenant: a short one is refused before anything starts.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../src/app/config.js';
import { start } from '../../src/main.js';

const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the admin key from the environment', () => {
  it('is refused below 24 characters, before the data folder is touched', async () => {
    const root = mkdtempSync(join(tmpdir(), 'stockline-admin-key-'));
    dirs.push(root);
    const config = { ...resolveConfig({}), dataDir: join(root, 'data') };
    const io = { stdout: (): void => undefined, stderr: (): void => undefined };
    await expect(start({ config, adminKey: 'a'.repeat(23), io })).rejects.toThrow(ConfigError);
    await expect(start({ config, adminKey: 'short', io })).rejects.toThrow('STOCKLINE_ADMIN_KEY: must be at least 24 characters');
    expect(existsSync(config.dataDir)).toBe(false);
  });

  it('starts with one of 24 characters', async () => {
    const root = mkdtempSync(join(tmpdir(), 'stockline-admin-key-'));
    dirs.push(root);
    const config = { ...resolveConfig({}), dataDir: join(root, 'data') };
    config.server = { ...config.server, port: 0, host: '127.0.0.1' };
    const running = await start({ config, adminKey: 'a'.repeat(24), io: { stdout: () => undefined, stderr: () => undefined } });
    try {
      const response = await fetch(`${running.url}/v1/whoami`, { headers: { authorization: `Bearer ${'a'.repeat(24)}` } });
      expect(await response.json()).toMatchObject({ admin: true });
    } finally {
      await running.close();
    }
  });
});
