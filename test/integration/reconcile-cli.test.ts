// `stockline reconcile` opens the outbox where the node keeps it, and refuses a data folder with none.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChannelOutbox } from '../../src/adapters/sqlite/channel-outbox.js';
import { reconcileMain } from '../../src/cli/commands.js';
import type { CliIo } from '../../src/cli/io.js';

let directory: string;

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'stockline-reconcile-cli-'));
});

afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

function io(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { stdin: process.stdin, stdout: (text) => out.push(text), stderr: (text) => err.push(text), out, err };
}

/** A node's file with one quantity desired on a webhook channel, which cannot be read back. */
function desired(file: string): void {
  const db = new Database(join(directory, file));
  const outbox = new ChannelOutbox(db);
  outbox.migrate();
  outbox.upsertDesired([{ tenant: 'acme', channel: 'portal', sku: 'TEE', quantity: 9, changedAtMs: 1, position: 1 }]);
  db.close();
}

function config(engine: 'embedded' | 'kafka'): string {
  const file = join(directory, `${engine}.yaml`);
  const kafka = engine === 'kafka' ? readFileSync('config/kafka-dev.yaml', 'utf8').replace(/^engine: kafka$/m, '') : '';
  writeFileSync(file, `engine: ${engine}\n${kafka}\nchannels:\n  - id: portal\n    tenant: acme\n    type: webhook\n    webhook: { url: 'http://127.0.0.1:9/stock', secretEnv: RECONCILE_CLI_SECRET }\n`);
  return file;
}

describe('stockline reconcile on a data folder', () => {
  it("reads a Kafka node's outbox from the node's own file", async () => {
    process.env.RECONCILE_CLI_SECRET = 'secret-0123456789abcdef';
    desired('stockline-node.db');
    const streams = io();
    expect(await reconcileMain(['--data-dir', directory, '--config', config('kafka')], streams)).toBe(3);
    expect(streams.out.join('')).toContain('unchecked: 1 SKUs of acme on portal: CHANNEL_READ_UNSUPPORTED');
    expect(existsSync(join(directory, 'stockline.db')), 'the embedded file is not made').toBe(false);
  });

  it('refuses a data folder without the file, and makes none', async () => {
    process.env.RECONCILE_CLI_SECRET = 'secret-0123456789abcdef';
    desired('stockline-node.db');
    const streams = io();
    expect(await reconcileMain(['--data-dir', directory, '--config', config('embedded')], streams)).toBe(2);
    expect(streams.err.join('')).toContain(`no stockline.db in ${directory}`);
    expect(existsSync(join(directory, 'stockline.db'))).toBe(false);
    expect(await reconcileMain(['--data-dir', join(directory, 'typo'), '--config', config('embedded')], io())).toBe(2);
    expect(existsSync(join(directory, 'typo'))).toBe(false);
  });

  it('refuses a channel that is not in the configuration, naming those that are', async () => {
    process.env.RECONCILE_CLI_SECRET = 'secret-0123456789abcdef';
    desired('stockline.db');
    const streams = io();
    expect(await reconcileMain(['--data-dir', directory, '--config', config('embedded'), '--channel', 'nope'], streams)).toBe(2);
    expect(streams.err).toEqual(['stockline reconcile: no channel nope in the configuration: the configured channels are portal\n']);
    expect(streams.out).toEqual([]);
  });

  it('says a tenant has no SKUs to check, and exits 2, instead of reporting none drifted', async () => {
    process.env.RECONCILE_CLI_SECRET = 'secret-0123456789abcdef';
    desired('stockline.db');
    for (const args of [['--tenant', 'nope'], ['--tenant', 'nope', '--channel', 'portal']]) {
      const streams = io();
      expect(await reconcileMain(['--data-dir', directory, '--config', config('embedded'), ...args], streams)).toBe(2);
      expect(streams.err.join('')).toMatch(/^stockline reconcile: tenant nope has no SKUs on (any channel|channel portal): nothing to check/);
      expect(streams.out).toEqual([]);
    }
    // The tenant that has some is checked as before (a webhook cannot be read back: exit 3).
    const streams = io();
    expect(await reconcileMain(['--data-dir', directory, '--config', config('embedded'), '--tenant', 'acme'], streams)).toBe(3);
    expect(streams.out.join('')).toContain('checked 0 SKUs, 0 drifted');
  });
});
