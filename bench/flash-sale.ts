// Hot-SKU flash sale over loopback HTTP: Stockline's reservation endpoint against a PostgreSQL SELECT ... FOR UPDATE
// checkout and a bare Fastify counter, at 32 and 128 connections; availability reads; an oversell check.
// Run: npm run build && npx tsx bench/flash-sale.ts [--duration 10]

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

const durationFlag = process.argv.indexOf('--duration');
const durationSeconds = durationFlag > 0 ? Number(process.argv[durationFlag + 1]) : 10;
const adminKey = 'bench-admin-key-0123456789abcdef';
const auth = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };

interface Server { url: string; child: ChildProcess; cleanup?: () => void }

async function startProcess(command: string, args: string[], env: Record<string, string>, match: RegExp): Promise<Server> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} ${args.join(' ')} did not start`)), 60_000);
    lines.on('line', (line) => {
      const found = match.exec(line);
      if (found !== null) { clearTimeout(timer); resolve(found[1] as string); }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
  return { url, child };
}

async function stop(server: Server): Promise<void> {
  if (server.child.exitCode === null) {
    server.child.kill('SIGTERM');
    await new Promise((resolve) => server.child.once('exit', resolve));
  }
  server.cleanup?.();
}

async function startStockline(stock: number): Promise<Server & { reservePath: string; readPath: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'stockline-bench-'));
  const server = await startProcess('node', ['bin/stockline.js', 'serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir],
    { STOCKLINE_ADMIN_KEY: adminKey, STOCKLINE_LOG_LEVEL: 'warn' }, /serving on (http:\/\/\S+)/);
  server.cleanup = () => rmSync(dataDir, { recursive: true, force: true });
  const response = await fetch(`${server.url}/v1/tenants/bench/adjustments`, { method: 'POST', headers: auth, body: JSON.stringify({ sku: 'HOT-1', set: stock }) });
  if (!response.ok) throw new Error(`could not stock HOT-1: ${response.status} ${await response.text()}`);
  return { ...server, reservePath: '/v1/tenants/bench/reservations', readPath: '/v1/tenants/bench/skus/HOT-1' };
}

interface Run { requestsPerSecond: number; p50Ms: number; p99Ms: number; ok: number; refused: number; errors: number }

async function load(url: string, connections: number, method: 'GET' | 'POST', body?: string, seconds = durationSeconds): Promise<Run> {
  const result = await autocannon({ url, connections, duration: seconds, method, headers: auth, ...(body === undefined ? {} : { body }) });
  const codes = result.statusCodeStats as unknown as Record<string, { count: number }>;
  const count = (prefix: string) => Object.entries(codes).filter(([code]) => code.startsWith(prefix)).reduce((sum, [, stat]) => sum + stat.count, 0);
  return { requestsPerSecond: Math.round(result.requests.average), p50Ms: result.latency.p50, p99Ms: result.latency.p99, ok: count('2'), refused: count('409'), errors: result.errors + result.timeouts + count('5') };
}

const reserveBody = JSON.stringify({ channel: 'storefront', lines: [{ sku: 'HOT-1', quantity: 1 }], ttlSeconds: 900 });
const results: Record<string, unknown> = { durationSeconds, node: process.version, date: new Date().toISOString() };

async function main(): Promise<void> {
  const stockline = await startStockline(1_000_000_000);
  for (const connections of [32, 128]) results[`stockline_reserve_${connections}`] = await load(stockline.url + stockline.reservePath, connections, 'POST', reserveBody);
  results.stockline_read_32 = await load(stockline.url + stockline.readPath, 32, 'GET');
  await stop(stockline);

  const bare = await startProcess('npx', ['tsx', 'bench/servers/bare-counter.ts'], {}, /(http:\/\/\S+)/);
  for (const connections of [32, 128]) results[`bare_reserve_${connections}`] = await load(`${bare.url}/reserve`, connections, 'POST', '{}');
  results.bare_read_32 = await load(`${bare.url}/available`, 32, 'GET');
  await stop(bare);

  const postgres = await startProcess('npx', ['tsx', 'bench/servers/pg-for-update.ts'], {}, /(http:\/\/\S+)/);
  for (const connections of [32, 128]) results[`pg_for_update_reserve_${connections}`] = await load(`${postgres.url}/reserve`, connections, 'POST', '{}');
  await stop(postgres);

  // Oversell check: 2,000 units, 128 connections for 5 s, every 201 counted.
  const limited = await startStockline(2000);
  const sale = await load(limited.url + limited.reservePath, 128, 'POST', reserveBody, 5);
  const after = await (await fetch(limited.url + limited.readPath, { headers: auth })).json() as { reserved: number; available: number };
  results.oversell_check = { stock: 2000, accepted: sale.ok, refused: sale.refused, reserved: after.reserved, available: after.available, oversold: Math.max(0, sale.ok - 2000) };
  await stop(limited);

  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/flash-sale.json', `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
}

await main();
