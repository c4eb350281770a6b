// What the ledger holds in memory for each reservation: a hold, the same released (a finished reservation is
// kept 25 hours) or committed as an order with its reference, a hold made under an Idempotency-Key (its
// record is kept a day, up to limits.idempotencyRecordsMax a tenant), and the same once its record was read
// back from the file after a restart; beside them, a keyed hold whose record keeps its fingerprint as built,
// piece by piece, as versions before 2026-12-07 kept it; and a keyed reservation refused for want of stock
// (a sold-out sale), which leaves only its record. Heap bytes after full collections, divided by holds.
// Run: npx tsx bench/memory.ts [--holds 200000] [--json]

import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { idempotencyRow } from '../src/adapters/sqlite/batch-sql.js';
import { canonicalJson, execute, flattened } from '../src/core/ledger.js';
import { initialState } from '../src/core/state.js';
import type { IdempotencyRecord, LedgerState, TenantState } from '../src/core/state.js';
import { flag } from './flags.js';

const holds = flag('--holds', 200_000);
const jsonOnly = process.argv.includes('--json');
const tenant = 'bench';
const startMs = Date.UTC(2026, 0, 1);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** What happens to each hold after it is made: nothing, released (kept 25 hours), or committed as an order. */
type Then = 'held' | 'released' | 'ordered';

/** One tenant, one SKU with stock for every hold; each hold's events turned into JSON as an engine logs them. */
function sale(keyed: boolean, then: Then = 'held'): LedgerState {
  const state = initialState();
  execute(state, { id: 'stock', type: 'adjust_stock', tenant, sku: 'HOT-1', location: 'default', set: 1_000_000_000, timeMs: startMs });
  for (let index = 0; index < holds; index += 1) {
    // Flat, as the HTTP layer makes a new id and as a header's value arrives.
    const reservationId = flattened(randomUUID());
    const { outcome } = execute(state, {
      id: `c${index}`, type: 'reserve', tenant, reservationId, channel: 'storefront', lines: [{ sku: 'HOT-1', quantity: 1 }],
      ttlMs: 900_000, timeMs: startMs + index, ...(keyed ? { idempotencyKey: flattened(randomUUID()) } : {}),
    });
    if (outcome.rejection !== undefined) throw new Error(`hold ${index} was refused: ${outcome.rejection.code}`);
    JSON.stringify(outcome.events);
    if (then === 'held') continue;
    const next = then === 'released'
      ? execute(state, { id: `r${index}`, type: 'release', tenant, reservationId, reason: 'released', timeMs: startMs + index })
      : execute(state, { id: `r${index}`, type: 'commit', tenant, reservationId, orderRef: flattened(`order-${index}`), timeMs: startMs + index });
    if (next.outcome.rejection !== undefined) throw new Error(`hold ${index} could not be ${then}: ${next.outcome.rejection.code}`);
    JSON.stringify(next.outcome.events);
  }
  return state;
}

/** The same tenant sold out: every keyed reservation is refused, and only its record is kept. */
function soldOut(): LedgerState {
  const state = initialState();
  execute(state, { id: 'stock', type: 'adjust_stock', tenant, sku: 'HOT-1', location: 'default', set: 0, timeMs: startMs });
  for (let index = 0; index < holds; index += 1) {
    const { outcome } = execute(state, {
      id: `c${index}`, type: 'reserve', tenant, reservationId: flattened(randomUUID()), channel: 'storefront', lines: [{ sku: 'HOT-1', quantity: 1 }],
      ttlMs: 900_000, timeMs: startMs + index, idempotencyKey: flattened(randomUUID()),
    });
    if (outcome.rejection?.code !== 'INSUFFICIENT_STOCK') throw new Error(`reservation ${index} was not refused for stock`);
  }
  return state;
}

function records(state: LedgerState): Map<string, IdempotencyRecord> {
  return (state.tenants.get(tenant) as TenantState).idempotency;
}

/** Bytes each hold adds to the heap, for a state built by `build` and then changed by `change`. */
function bytesPerHold(build: () => LedgerState, change: (state: LedgerState) => void = () => {}): number {
  const before = heapUsed();
  const state = build();
  change(state);
  const after = heapUsed();
  if (records(state).size > holds || state.tenants.size !== 1) throw new Error('unexpected state');
  return Math.round((after - before) / holds);
}

const restored = (state: LedgerState): void => {
  const kept = records(state);
  let seq = 0;
  for (const [key, record] of kept) {
    const eventsJson = record.outcome.events.map((event) => JSON.stringify(event));
    kept.set(key, JSON.parse(idempotencyRow(tenant, (seq += 1), key, record, eventsJson)[3]) as IdempotencyRecord);
  }
};
const asBuilt = (state: LedgerState): void => {
  for (const record of records(state).values()) record.fingerprint = canonicalJson(JSON.parse(record.fingerprint));
};

const results = {
  holds, node: process.version, date: new Date().toISOString(),
  bytesPerHold: {
    hold: bytesPerHold(() => sale(false)),
    releasedHold: bytesPerHold(() => sale(false, 'released')),
    order: bytesPerHold(() => sale(false, 'ordered')),
    keyedHold: bytesPerHold(() => sale(true)),
    keyedHoldRestored: bytesPerHold(() => sale(true), restored),
    keyedHoldFingerprintAsBuilt: bytesPerHold(() => sale(true), asBuilt),
    keyedRefusal: bytesPerHold(soldOut),
  },
};
mkdirSync('bench/results', { recursive: true });
if (!jsonOnly) writeFileSync('bench/results/memory.json', `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, jsonOnly ? 0 : 2));
