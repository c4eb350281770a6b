// What one expiry tick holds a tenant up for when many holds are due at once (after an outage, or when holds
// fall due faster than ticks release them): a tick as the ledger decides and applies it now (the first 500
// due, found by walking the expiry heap in order), against the selection ticks used before in the same run
// (every due hold collected and sorted, the first 10,000 kept). Either way the tenant's other commands wait.
// Run: npx tsx bench/expiry-backlog.ts [--ticks 5]

import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dueReservations } from '../src/core/decide.js';
import { execute } from '../src/core/ledger.js';
import { limits } from '../src/core/limits.js';
import { initialState } from '../src/core/state.js';
import type { LedgerState, Reservation, TenantState } from '../src/core/state.js';
import { flag } from './flags.js';

const ticks = flag('--ticks', 5);
const tenant = 'bench';
const startMs = Date.UTC(2026, 0, 1);
const backlogs = [10_000, 100_000, 500_000];

/**
 * `holds` holds made at a flash sale's pace (20 a millisecond share an expiry), all due an hour later. Each
 * hold's event is turned into JSON as an engine does to log it: that also flattens the id, which V8 builds
 * from pieces in randomUUID, and ids in pieces compare several times slower in the expiry heap.
 */
function dueTenant(holds: number): LedgerState {
  const state = initialState();
  execute(state, { id: 'stock', type: 'adjust_stock', tenant, sku: 'HOT-1', location: 'default', set: 1_000_000_000, timeMs: startMs });
  for (let index = 0; index < holds; index += 1) {
    const { outcome } = execute(state, {
      id: `c${index}`, type: 'reserve', tenant, reservationId: randomUUID(), channel: 'web', lines: [{ sku: 'HOT-1', quantity: 1 }],
      ttlMs: 900_000 + Math.floor(index / 20), timeMs: startMs,
    });
    for (const event of outcome.events) JSON.stringify(event);
  }
  return state;
}

/** The selection before: every due hold collected from the heap, sorted, the first `max` kept. */
function sortedSelection(state: TenantState, nowMs: number, max: number): Reservation[] {
  const due: Reservation[] = [];
  const pending = state.expiries.length > 0 ? [0] : [];
  while (pending.length > 0) {
    const index = pending.pop() as number;
    const entry = state.expiries[index];
    if (entry === undefined || entry.expiresAtMs > nowMs) continue;
    const reservation = state.reservations.get(entry.id);
    if (reservation !== undefined && reservation.status === 'held' && reservation.expiresAtMs === entry.expiresAtMs) due.push(reservation);
    pending.push(2 * index + 1, 2 * index + 2);
  }
  due.sort((a, b) => a.expiresAtMs - b.expiresAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return due.slice(0, max);
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1] as number;
const ms = (started: number): number => Math.round((performance.now() - started) * 10) / 10;

const rows = [];
for (const holds of backlogs) {
  const state = dueTenant(holds);
  const live = state.tenants.get(tenant) as TenantState;
  const nowMs = startMs + 3_600_000;
  const tickMs: number[] = [];
  const selectMs: number[] = [];
  const selectBeforeMs: number[] = [];
  for (let round = 0; round < ticks; round += 1) {
    let started = performance.now();
    dueReservations(live, nowMs, limits.expirationsPerTickMax);
    selectMs.push(ms(started));
    started = performance.now();
    sortedSelection(live, nowMs, 10_000);
    selectBeforeMs.push(ms(started));
    started = performance.now();
    const released = execute(state, { id: `tick${round}`, type: 'expire_due', tenant, nowMs, timeMs: nowMs }).outcome.events.length;
    tickMs.push(ms(started));
    if (released !== limits.expirationsPerTickMax) throw new Error(`a tick released ${released}`);
  }
  rows.push({ dueHolds: holds, tickMs: median(tickMs), perRelease: `${Math.round((1000 * median(tickMs)) / limits.expirationsPerTickMax)} µs`, selectMs: median(selectMs), selectBeforeMs: median(selectBeforeMs), runs: { tickMs, selectMs, selectBeforeMs } });
}
const results = { ticks, releasesPerTick: limits.expirationsPerTickMax, node: process.version, date: new Date().toISOString(), rows };
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/expiry-backlog.json', `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(rows.map(({ runs: _runs, ...row }) => row), null, 2));
