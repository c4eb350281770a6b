// `serve --demo` prints a key that opens the demo tenant on every run: the one kept in the data folder while it is
// a key of that folder, a new one when the file is empty (a crash while it was written) or outlived a reset.

import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/app/config.js';
import { start } from '../../src/main.js';

const root = mkdtempSync(join(tmpdir(), 'stockline-demo-key-'));

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** One `serve --demo` run: what it printed, the key it printed, and whether that key reads the demo tenant. */
async function demoRun(dataDir: string, host = '127.0.0.1'): Promise<{ printed: string; key: string; status: number }> {
  const config = { ...resolveConfig({}), dataDir, logLevel: 'silent' as const };
  config.server = { ...config.server, port: 0, host };
  let printed = '';
  const running = await start({ config, demo: true, io: { stdout: (text) => { printed += text; }, stderr: () => undefined } });
  try {
    const key = /Its API key \(kept in .*\):\n {2}(.*)\n/.exec(printed)?.[1] ?? '';
    const response = await fetch(`${running.url}/v1/tenants/demo/skus/TEE-BLK-M`, { headers: { authorization: `Bearer ${key}` } });
    return { printed, key, status: response.status };
  } finally {
    await running.close();
  }
}

describe('the startup line', () => {
  it('says when the server listens on every interface, and gives an address to call', async () => {
    const local = await demoRun(mkdtempSync(join(root, 'data-')));
    expect(local.printed).toMatch(/^stockline: serving on http:\/\/127\.0\.0\.1:\d+ \(engine: embedded,/);
    const everywhere = await demoRun(mkdtempSync(join(root, 'data-')), '0.0.0.0');
    expect(everywhere.printed).toMatch(/^stockline: serving on http:\/\/(localhost|127\.0\.0\.1):\d+ \(every interface\) \(engine: embedded,/);
    expect(everywhere.printed).toMatch(/curl -s -H 'Authorization: Bearer sk_\S+' http:\/\/(localhost|127\.0\.0\.1):\d+\/v1\/tenants\/demo\/skus\/TEE-BLK-M\n/);
    expect(everywhere.status).toBe(200);
  });

  it('names the data folder in full when it is given relative to the current folder', async () => {
    const here = process.cwd();
    const cwd = mkdtempSync(join(root, 'cwd-'));
    process.chdir(cwd);
    try {
      const run = await demoRun('relative-data');
      expect(run.printed.split('\n')[0]).toMatch(/^stockline: serving on /);
      expect(run.printed.split('\n')[0]).toContain(`(engine: embedded, data: ${join(cwd, 'relative-data', 'stockline.db')})`);
    } finally {
      process.chdir(here);
    }
  });
});

describe('the demo key', () => {
  it('is the same on the next run, kept whole and private in the data folder', async () => {
    const dataDir = mkdtempSync(join(root, 'data-'));
    const first = await demoRun(dataDir);
    expect(first.status).toBe(200);
    const second = await demoRun(dataDir);
    expect(second).toMatchObject({ key: first.key, status: 200 });
    expect(second.printed).not.toContain('a new one is made');
    expect(readFileSync(join(dataDir, 'demo-key'), 'utf8')).toBe(`${first.key}\n`);
    expect(statSync(join(dataDir, 'demo-key')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dataDir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('is made anew, and said so, when the key file is empty', async () => {
    const dataDir = mkdtempSync(join(root, 'data-'));
    await demoRun(dataDir);
    // What a kill between truncating the file and writing it left.
    writeFileSync(join(dataDir, 'demo-key'), '');
    const run = await demoRun(dataDir);
    expect(run.key).toMatch(/^sk_/);
    expect(run.status).toBe(200);
    expect(run.printed).toContain(`${join(dataDir, 'demo-key')} holds no key of this data folder`);
    expect(readFileSync(join(dataDir, 'demo-key'), 'utf8')).toBe(`${run.key}\n`);
  });

  it('is made anew when the database was deleted to start over and the key file kept', async () => {
    const dataDir = mkdtempSync(join(root, 'data-'));
    const before = await demoRun(dataDir);
    for (const name of readdirSync(dataDir)) if (name.startsWith('stockline.db')) rmSync(join(dataDir, name));
    const after = await demoRun(dataDir);
    expect(after.key).not.toBe(before.key);
    expect(after.status).toBe(200);
    expect(after.printed).toContain('a new one is made');
  });
});
