// A flash sale that does not pause: 128 connections reserving for 20 s (after a 2 s warm-up) against a
// Stockline whose snapshot interval (50,000 events) passes several times meanwhile, every hold still alive. It shows the tail
// latency (p99.9, max) and where the newest snapshot stood: snapshots are written on another thread during the
// sale, so the tail should show no stall for them. With `--ttl 5` the holds expire during the sale instead, and
// the tail shows what the expiry ticks releasing them cost the requests in between. With `--keyed 1` every
// reservation carries an Idempotency-Key of its own, as a careful checkout sends (the load generator then
// spends more per request too, building each one).
// Run: npm run build && npx tsx bench/sustained-sale.ts [--duration 20] [--snapshot-every 50000] [--ttl 900] [--keyed 0]

import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { snapshotPathOf } from '../src/adapters/sqlite/snapshot-file.js';
import { flag } from './flags.js';

const durationSeconds = flag('--duration', 20);
const adminKey = 'bench-admin-key-0123456789abcdef';
const headers = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
const snapshotEveryEvents = flag('--snapshot-every', 50_000);
const ttlSeconds = flag('--ttl', 900);
const keyed = flag('--keyed', 0) === 1;

const dataDir = mkdtempSync(join(tmpdir(), 'stockline-sustained-'));
const config = join(dataDir, 'stockline.yaml');
writeFileSync(config, `ledger: { snapshotEveryEvents: ${snapshotEveryEvents} }\n`);
const child = spawn('bin/stockline.js', ['serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--config', config], {
  env: { ...process.env, STOCKLINE_ADMIN_KEY: adminKey, STOCKLINE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'],
});
const url = await new Promise<string>((resolve, reject) => {
  createInterface({ input: child.stdout }).on('line', (line) => {
    const found = /serving on (http:\/\/\S+)/.exec(line);
    if (found !== null) resolve(found[1] as string);
  });
  child.once('exit', (code) => reject(new Error(`stockline exited with ${code}`)));
});

/** The position of the snapshot beside the database (its opening bytes name it), or null when there is none yet. */
function newestSnapshot(): number | null {
  try {
    const file = openSync(snapshotPathOf(join(dataDir, 'stockline.db')), 'r');
    const opening = Buffer.alloc(100);
    readSync(file, opening, 0, opening.length, 0);
    closeSync(file);
    return Number(/"position":(\d+)/.exec(opening.toString('utf8'))?.[1] ?? Number.NaN);
  } catch {
    return null;
  }
}

try {
  const stocked = await fetch(`${url}/v1/tenants/bench/adjustments`, { method: 'POST', headers, body: JSON.stringify({ sku: 'HOT-1', set: 1_000_000_000 }) });
  if (!stocked.ok) throw new Error(`could not stock HOT-1: ${stocked.status}`);
  const body = JSON.stringify({ channel: 'storefront', lines: [{ sku: 'HOT-1', quantity: 1 }], ttlSeconds });
  // A warm-up, so that the tail measured is the sale's and not the compiler's first minutes.
  await autocannon({ url: `${url}/v1/tenants/bench/reservations`, connections: 32, duration: 2, method: 'POST', headers, body });
  let sent = 0;
  const withKey = { setupRequest: (request: { headers?: Record<string, string> }) => ({ ...request, headers: { ...request.headers, 'idempotency-key': `sale-${sent += 1}` } }) };
  const result = await autocannon({
    url: `${url}/v1/tenants/bench/reservations`, connections: 128, duration: durationSeconds, method: 'POST', headers, body, ...(keyed ? { requests: [withKey] } : {}),
  });
  const duringSale = newestSnapshot();
  // The snapshot due at the sale's end follows within the time it takes to write.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const afterSale = newestSnapshot();
  const hot = await (await fetch(`${url}/v1/tenants/bench/skus/HOT-1`, { headers })).json() as { reserved: number };
  const summary = {
    date: new Date().toISOString(), durationSeconds, snapshotEveryEvents, ttlSeconds, keyed, reservations: result.requests.total,
    heldThreeSecondsAfter: hot.reserved,
    requestsPerSecond: Math.round(result.requests.average),
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, p99_9: result.latency.p99_9, max: result.latency.max },
    newestSnapshotPosition: { whenTheSaleEnded: duringSale, threeSecondsLater: afterSale },
  };
  console.log(JSON.stringify(summary, null, 2));
} finally {
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
}
