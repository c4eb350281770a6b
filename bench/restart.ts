// Restart time of the embedded engine with a million events in its log: full replay, and snapshot plus tail.
// Run: npx tsx bench/restart.ts [--events 1000000]

import { hash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedEngine } from '../src/adapters/sqlite/embedded-engine.js';
import { snapshotPathOf } from '../src/adapters/sqlite/snapshot-file.js';
import { toSnapshot } from '../src/core/index.js';
import type { CommandInput } from '../src/app/ports.js';

const eventsFlag = process.argv.indexOf('--events');
const eventsWanted = eventsFlag > 0 ? Number(process.argv[eventsFlag + 1]) : 1_000_000;
const dir = mkdtempSync(join(tmpdir(), 'stockline-restart-'));
const path = join(dir, 'stockline.db');
const skus = 10_000;

function commandFor(index: number): CommandInput {
  const sku = `SKU-${Math.floor(index / 4) % skus}`;
  switch (index % 4) {
    case 0: return { type: 'adjust_stock', tenant: 'bench', sku, location: 'wh-1', delta: 5 };
    case 1: return { type: 'reserve', tenant: 'bench', reservationId: `r-${index}`, channel: 'web', lines: [{ sku, quantity: 1 }], ttlMs: 3_600_000 };
    case 2: return { type: 'commit', tenant: 'bench', reservationId: `r-${index - 1}` };
    default: return { type: 'fulfil', tenant: 'bench', reservationId: `r-${index - 2}` };
  }
}

async function fill(): Promise<number> {
  const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0, durability: 'none', snapshotEveryEvents: Number.MAX_SAFE_INTEGER });
  const started = performance.now();
  for (let index = 0; index < eventsWanted; index += 10_000) {
    await engine.submitMany(Array.from({ length: Math.min(10_000, eventsWanted - index) }, (_, offset) => commandFor(index + offset)));
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`wrote ${engine.position()} events in ${seconds.toFixed(1)} s (${Math.round(engine.position() / seconds)} events/s, no fsync, batches of 10,000)`);
  await engine.close();
  return engine.position();
}

async function timeOpen(label: string): Promise<{ ms: number; state: string }> {
  const started = performance.now();
  const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
  const ms = performance.now() - started;
  const state = JSON.stringify(toSnapshot(engine.state()));
  // Closed before the next open: the data folder has one engine at a time.
  await engine.close();
  console.log(`${label}: ${ms.toFixed(0)} ms`);
  return { ms, state };
}

const events = await fill();
const snapshotText = readFileSync(snapshotPathOf(path), 'utf8');
const hashStarted = performance.now();
hash('sha256', snapshotText, 'base64url');
console.log(`snapshot file: ${(Buffer.byteLength(snapshotText) / 1e6).toFixed(1)} MB, its SHA-256 (checked at start) ${(performance.now() - hashStarted).toFixed(0)} ms`);
const withSnapshot = await timeOpen('restart from snapshot + tail');
rmSync(snapshotPathOf(path));
const fullReplay = await timeOpen(`restart by full replay of ${events} events`);
console.log(JSON.stringify({ events, snapshotRestartMs: Math.round(withSnapshot.ms), fullReplayMs: Math.round(fullReplay.ms), equal: withSnapshot.state === fullReplay.state }));
rmSync(dir, { recursive: true, force: true });
