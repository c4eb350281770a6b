// What trying an all-or-nothing group (an event import) costs the writer as a tenant grows: the trial copy the
// engines decide a group on (trialState: the tenant's maps overlaid, its indexes copied) against the two
// copies engines made before, each map copied (new Map) and a whole copy through a snapshot. The group is one
// stock adjustment, and one expiry tick. Either copy holds up every other command of the tenant meanwhile.
// Run: npx tsx bench/import-trial.ts [--holds 500000] [--repeats 5]

import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Command } from '../src/core/commands.js';
import { execute } from '../src/core/ledger.js';
import { fromSnapshot, toSnapshot } from '../src/core/snapshot.js';
import { initialState } from '../src/core/state.js';
import type { LedgerState, TenantState } from '../src/core/state.js';
import { trialState } from '../src/core/trial.js';
import { flag } from './flags.js';

const holds = flag('--holds', 500_000);
const repeats = flag('--repeats', 5);
const tenant = 'bench';
const startMs = Date.UTC(2026, 0, 1);

/**
 * A tenant with `holds` live reservations, each made under an idempotency key (both maps grow with them). Each
 * hold's event is turned into JSON as an engine does to log it, which also flattens its id (see
 * bench/expiry-backlog.ts).
 */
function busyTenant(): LedgerState {
  const state = initialState();
  execute(state, { id: 'stock', type: 'adjust_stock', tenant, sku: 'HOT-1', location: 'default', set: 1_000_000_000, timeMs: startMs });
  for (let index = 0; index < holds; index += 1) {
    const { outcome } = execute(state, {
      id: `c${index}`, type: 'reserve', tenant, reservationId: randomUUID(), channel: 'web', lines: [{ sku: 'HOT-1', quantity: 1 }],
      ttlMs: 900_000, timeMs: startMs, idempotencyKey: `key-${index}`,
    });
    for (const event of outcome.events) JSON.stringify(event);
  }
  return state;
}

/** Each of the tenant's maps and indexes copied, entries shared. */
function mapCopies(state: LedgerState): LedgerState {
  const live = state.tenants.get(tenant) as TenantState;
  return {
    tenants: new Map([[tenant, {
      skus: new Map(live.skus), reservations: new Map(live.reservations), channels: new Map(live.channels),
      sourceSeqs: new Map(live.sourceSeqs), idempotency: new Map(live.idempotency), expiries: live.expiries.slice(), finished: live.finished.slice(),
    }]]),
  };
}

function wholeCopy(state: LedgerState): LedgerState {
  return fromSnapshot(toSnapshot({ tenants: new Map([[tenant, state.tenants.get(tenant) as TenantState]]) }, { withIdempotency: true }));
}

/** Milliseconds to copy and run the group, each repeat; the copy is dropped after. */
function time(state: LedgerState, copy: (state: LedgerState) => LedgerState, group: Command[], times: number): number[] {
  const runs: number[] = [];
  for (let repeat = 0; repeat < times; repeat += 1) {
    const started = performance.now();
    const scratch = copy(state);
    for (const command of group) execute(scratch, command);
    runs.push(Math.round((performance.now() - started) * 10) / 10);
  }
  return runs;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1] as number;

const state = busyTenant();
const adjust: Command[] = [{ id: 'trial', type: 'adjust_stock', tenant, sku: 'HOT-1', location: 'default', delta: 5, timeMs: startMs + 1_000 }];
const tick: Command[] = [{ id: 'trial', type: 'expire_due', tenant, nowMs: startMs + 1_000, timeMs: startMs + 1_000 }];
const results = {
  holds, repeats, node: process.version, date: new Date().toISOString(),
  adjustment: {
    trialMs: time(state, (live) => trialState(live, adjust), adjust, repeats),
    mapCopiesMs: time(state, mapCopies, adjust, repeats),
    wholeCopyMs: time(state, wholeCopy, adjust, Math.min(repeats, 2)),
  },
  expiryTick: {
    trialMs: time(state, (live) => trialState(live, tick), tick, repeats),
    wholeCopyMs: time(state, wholeCopy, tick, Math.min(repeats, 2)),
  },
};
const summary = {
  holds,
  adjustment: { trialMs: median(results.adjustment.trialMs), mapCopiesMs: median(results.adjustment.mapCopiesMs), wholeCopyMs: median(results.adjustment.wholeCopyMs) },
  expiryTick: { trialMs: median(results.expiryTick.trialMs), wholeCopyMs: median(results.expiryTick.wholeCopyMs) },
};
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/import-trial.json', `${JSON.stringify({ ...results, median: summary }, null, 2)}\n`);
console.log(JSON.stringify(summary, null, 2));
