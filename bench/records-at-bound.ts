// What keeping a keyed command's record costs once its tenant keeps as many as its bound allows: each new
// record then forgets the oldest. `remember` (the ledger's) beside a fresh iterator for each oldest record,
// as versions before 2026-12-07 read it: a Map keeps the place of each deleted entry until it is rehashed,
// and a fresh iterator steps over all of them. Records are made and forgotten in a steady state.
// Run: npx tsx bench/records-at-bound.ts [--operations 200000]

import { mkdirSync, writeFileSync } from 'node:fs';
import { remember } from '../src/core/ledger.js';
import type { IdempotencyRecord } from '../src/core/state.js';
import { flag } from './flags.js';

const operations = flag('--operations', 200_000);
const record: IdempotencyRecord = { fingerprint: '{}', outcome: { events: [] }, timeMs: 0 };

function freshIterator(records: Map<string, IdempotencyRecord>, key: string, kept: IdempotencyRecord, recordsMax: number): void {
  if (records.size >= recordsMax) {
    const oldest = records.keys().next().value;
    if (oldest !== undefined) records.delete(oldest);
  }
  records.set(key, kept);
}

/** µs per record kept at the bound, after a warm-up of as many operations. */
function measure(recordsMax: number, keep: typeof freshIterator): number {
  const records = new Map<string, IdempotencyRecord>();
  let next = 0;
  for (; next < recordsMax; next += 1) records.set(`key-${next}`, record);
  const keys = Array.from({ length: 2 * operations }, (_, index) => `key-${recordsMax + index}`);
  for (let index = 0; index < operations; index += 1) keep(records, keys[index] as string, record, recordsMax);
  const started = process.hrtime.bigint();
  for (let index = operations; index < 2 * operations; index += 1) keep(records, keys[index] as string, record, recordsMax);
  return Math.round(Number(process.hrtime.bigint() - started) / operations / 10) / 100;
}

const results: Record<string, unknown> = { operations, node: process.version, date: new Date().toISOString(), usPerRecord: {} };
for (const recordsMax of [32_768, 1_048_576]) {
  (results.usPerRecord as Record<string, unknown>)[recordsMax] = {
    now: measure(recordsMax, (records, key, kept, max) => { remember(records, key, kept, max); }),
    freshIterator: measure(recordsMax, freshIterator),
  };
}
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/records-at-bound.json', `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, 2));
