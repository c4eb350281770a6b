// `stockline demo` run as a user runs it: a short flash sale, its summary, the polling comparison, and a clean exit.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { planSale } from '../../src/app/demo/plan.js';
import { simulatePolling } from '../../src/app/demo/polling.js';

const runTimeoutMs = 150_000;
const scratchRoot = mkdtempSync(join(tmpdir(), 'stockline-demo-test-'));

afterAll(() => rmSync(scratchRoot, { recursive: true, force: true }));

interface DemoRun {
  status: number | null;
  stdout: string;
  stderr: string;
  pid: number;
  /** The child's temporary folder: the demo's data folder lived in it. */
  tmp: string;
}

function demo(args: string[]): Promise<DemoRun> {
  const tmp = mkdtempSync(join(scratchRoot, 'run-'));
  const child = spawn(process.execPath, ['bin/stockline.js', 'demo', ...args], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stockline demo did not finish within ${runTimeoutMs} ms:\n${stdout}\n${stderr}`));
    }, runTimeoutMs);
    child.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, pid: child.pid as number, tmp });
    });
  });
}

function count(text: string, pattern: RegExp): number {
  const match = pattern.exec(text);
  if (match?.[1] === undefined) throw new Error(`${String(pattern)} not found in:\n${text}`);
  return Number(match[1].replace(/,/g, ''));
}

/** The demo drops its replication slot and table on the way out; a left slot would hold WAL for ever. */
async function leftovers(run: DemoRun): Promise<string[]> {
  if (!run.stdout.includes('PostgreSQL logical replication from')) return [];
  const client = new pg.Client({ connectionString: `${process.env.STOCKLINE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432'}/stockline_demo` });
  await client.connect();
  try {
    const pattern = `%\\_${run.pid}\\_%`;
    const slots = await client.query<{ name: string }>('SELECT slot_name AS name FROM pg_replication_slots WHERE slot_name LIKE $1', [pattern]);
    const tables = await client.query<{ name: string }>('SELECT tablename AS name FROM pg_tables WHERE tablename LIKE $1', [pattern]);
    return [...slots.rows, ...tables.rows].map((row) => row.name);
  } finally {
    await client.end();
  }
}

describe('stockline demo', () => {
  it('runs a flash sale with no oversell on the API channels, prints the summary and cleans up', async () => {
    const run = await demo(['--exit', '--duration', '5', '--shoppers', '50']);
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/sale over: [\d,]+ visits in [\d.]+ s/);
    const accepted = (channel: string): number => count(run.stdout, new RegExp(`^ {2}${channel} +([\\d,]+) +[\\d,]+ +[\\d,]+ +[\\d,]+ +\\d+$`, 'm'));
    // Storefront holds go through the API; Shopify orders arrive as signed webhooks. B2B buys little in 5 s, so it may sell none.
    expect(accepted('storefront')).toBeGreaterThan(0);
    expect(accepted('shopify')).toBeGreaterThan(0);
    expect(accepted('b2b')).toBeGreaterThanOrEqual(0);
    for (const channel of ['storefront', 'b2b', 'shopify']) expect(run.stdout).toMatch(new RegExp(`^ {2}${channel} +p50 +[\\d.,]+ ms +p99 +[\\d.,]+ ms`, 'm'));
    expect(count(run.stdout, /^ {2}storefront +(\d+) units? /m)).toBe(0);
    expect(count(run.stdout, /^ {2}b2b +(\d+) units? /m)).toBe(0);
    expect(count(run.stdout, /API holds beyond stock: (\d+) units?/)).toBe(0);
    expect(run.stdout).toMatch(/reservation latency .*: p50 [\d.,]+ ms, p99 [\d.,]+ ms/);
    expect(run.stdout).not.toContain('Stockline is still running');
    expect(readdirSync(run.tmp)).toEqual([]);
    expect(await leftovers(run)).toEqual([]);
  }, runTimeoutMs + 10_000);

  it('--compare-polling: the same sale oversells under a 30 s polling sync, and not on Stockline\'s API channels', async () => {
    const run = await demo(['--exit', '--duration', '5', '--shoppers', '50', '--compare-polling']);
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain('under a polling sync, simulated');
    expect(run.stdout).toMatch(/time is compressed 30x/);
    expect(count(run.stdout, /polling sync oversold ([\d,]+) units?/)).toBeGreaterThan(0);
    expect(count(run.stdout, /Stockline oversold ([\d,]+) units? on the API channels/)).toBe(0);
    // The simulation is seeded: the printed figure is the one the plan gives, run after run.
    const expected = simulatePolling(planSale({ seed: 42, durationMs: 5_000, shoppers: 50 })).unitsOversold;
    expect(count(run.stdout, /polling sync oversold ([\d,]+) units?/)).toBe(expected);
  }, runTimeoutMs + 10_000);

  it('names a port another process holds, with exit 2 and the option to pick another', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as AddressInfo;
    try {
      const run = await demo(['--exit', '--port', String(port), '--duration', '5', '--shoppers', '50']);
      expect(run.stderr).toContain(`stockline demo: port ${port} on 127.0.0.1 is in use by another process: stop it, or pick another port (--port N)\n`);
      expect(run.status).toBe(2);
    } finally {
      holder.close();
    }
  }, runTimeoutMs + 10_000);

  it('refuses bad options with exit 2 and the usage', async () => {
    const run = await demo(['--shoppers', '0']);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('--shoppers must be a decimal integer');
    expect(run.stderr).toContain('usage: stockline demo');
  });
});
