// evolve(state, event) -> state: applies one event to the state in place. Pure apart from that mutation.

import type { AllocatedLine, InventoryEvent } from './events.js';
import { heapPop, heapPush } from './heap.js';
import { limits } from './limits.js';
import { emptyTenant, newReservation, sourceSeqKey } from './state.js';
import type { ExpiryEntry, FinishedEntry, LedgerState, LocationStock, SkuState, TenantState } from './state.js';
import type { ReservationStatus } from './rejections.js';
import { compareSequence, parseTime } from './time.js';

export function tenantOf(state: LedgerState, tenant: string): TenantState {
  let existing = state.tenants.get(tenant);
  if (existing === undefined) {
    existing = emptyTenant();
    state.tenants.set(tenant, existing);
  }
  return existing;
}

function skuOf(tenant: TenantState, sku: string): SkuState {
  let existing = tenant.skus.get(sku);
  if (existing === undefined) {
    existing = { deleted: false, version: 0, locations: new Map() };
    tenant.skus.set(sku, existing);
  }
  return existing;
}

function stockOf(tenant: TenantState, sku: string, location: string): LocationStock {
  const skuState = skuOf(tenant, sku);
  let stock = skuState.locations.get(location);
  if (stock === undefined) {
    stock = { onHand: 0, committed: 0, reserved: 0 };
    skuState.locations.set(location, stock);
    skuState.sortedLocations = undefined;
  }
  return stock;
}

function touch(tenant: TenantState, lines: readonly AllocatedLine[]): void {
  if (lines.length === 1) {
    skuOf(tenant, (lines[0] as AllocatedLine).sku).version += 1;
    return;
  }
  for (const sku of new Set(lines.map((line) => line.sku))) skuOf(tenant, sku).version += 1;
}

function moveLines(tenant: TenantState, lines: readonly AllocatedLine[], apply: (stock: LocationStock, quantity: number) => void): void {
  for (const line of lines) apply(stockOf(tenant, line.sku, line.location), line.quantity);
  touch(tenant, lines);
}

type FinishedStatus = Exclude<ReservationStatus, 'held' | 'committed'>;

/** Puts a reservation in a finished status and indexes it, so that it is forgotten once its retention has passed. */
function finish(tenant: TenantState, reservationId: string, status: FinishedStatus, time: string): void {
  const reservation = tenant.reservations.get(reservationId);
  if (reservation === undefined) return;
  const finishedAtMs = parseTime(time);
  reservation.status = status;
  reservation.finishedAtMs = finishedAtMs;
  heapPush(tenant.finished, { finishedAtMs, id: reservationId }, finishedBefore);
}

/** `forgotten`, when given, collects the ids of the finished reservations this event made the tenant forget. */
export function evolve(state: LedgerState, event: InventoryEvent, forgotten?: string[]): LedgerState {
  const tenant = tenantOf(state, event.tenant);
  switch (event.type) {
    case 'stock_adjustment': {
      const { sku, location, onHand } = event.data;
      stockOf(tenant, sku, location).onHand = onHand;
      skuOf(tenant, sku).version += 1;
      if (event.sourceSeq !== undefined) {
        const key = sourceSeqKey(sku, location, event.source);
        const applied = tenant.sourceSeqs.get(key);
        if (applied === undefined || compareSequence(event.sourceSeq, applied) > 0) tenant.sourceSeqs.set(key, event.sourceSeq);
      }
      break;
    }
    case 'order_reserved': {
      const { reservationId, channel, orderRef, expiresAt, lines } = event.data;
      const expiresAtMs = parseTime(expiresAt);
      tenant.reservations.set(reservationId, newReservation(reservationId, channel, 'held', expiresAtMs, parseTime(event.time), lines, orderRef));
      heapPush(tenant.expiries, { expiresAtMs, id: reservationId }, expiresBefore);
      moveLines(tenant, lines, (stock, quantity) => { stock.reserved += quantity; });
      break;
    }
    case 'order_committed': {
      const { reservationId, channel, orderRef, direct, lines } = event.data;
      if (direct) {
        tenant.reservations.set(reservationId, newReservation(reservationId, channel, 'committed', 0, parseTime(event.time), lines, orderRef));
        moveLines(tenant, lines, (stock, quantity) => { stock.committed += quantity; });
      } else {
        const reservation = tenant.reservations.get(reservationId);
        if (reservation !== undefined) {
          reservation.status = 'committed';
          if (orderRef !== undefined) reservation.orderRef = orderRef;
        }
        moveLines(tenant, lines, (stock, quantity) => { stock.reserved -= quantity; stock.committed += quantity; });
        dropStaleExpiries(tenant);
      }
      break;
    }
    case 'reservation_released': {
      const { reservationId, reason, from, lines } = event.data;
      finish(tenant, reservationId, reason, event.time);
      moveLines(tenant, lines, from === 'held'
        ? (stock, quantity) => { stock.reserved -= quantity; }
        : (stock, quantity) => { stock.committed -= quantity; });
      dropStaleExpiries(tenant);
      break;
    }
    case 'order_fulfilled': {
      finish(tenant, event.data.reservationId, 'fulfilled', event.time);
      moveLines(tenant, event.data.lines, (stock, quantity) => {
        stock.committed -= quantity;
        stock.onHand = stock.onHand > quantity ? stock.onHand - quantity : 0;
      });
      break;
    }
    case 'sku_deleted': {
      const sku = skuOf(tenant, event.data.sku);
      sku.deleted = true;
      sku.version += 1;
      break;
    }
    case 'sku_restored': {
      const sku = skuOf(tenant, event.data.sku);
      sku.deleted = false;
      sku.version += 1;
      break;
    }
    case 'channel_policy_set': {
      const { channel, locations, bufferUnits, maxUnits, backorder } = event.data;
      // An event without a version (written before events carried it) keeps the one the policy had: never lower.
      const version = event.data.version ?? tenant.channels.get(channel)?.version;
      tenant.channels.set(channel, { locations, bufferUnits, maxUnits, backorder, ...(version === undefined ? {} : { version }) });
      break;
    }
    case 'sync_complete':
    case 'conflict_detected':
      break;
  }
  // Every event of the tenant moves its clock on; most find nothing finished, or nothing old enough.
  if (tenant.finished.length > 0) forgetFinished(tenant, parseTime(event.time) - limits.reservationRetentionMs, forgotten);
  return state;
}

/**
 * Forgets the reservations that finished at or before `cutoffMs`, the oldest first, at most
 * `limits.reservationForgetsPerEventMax` (the next events forget the rest). The index is ordered by
 * (finishedAtMs, id), so what is forgotten depends only on the reservations, not on the order they finished
 * in: a state restored from a snapshot forgets exactly what the replayed one does. An entry whose reservation
 * was replaced since (same id, another life) is dropped without touching the newer reservation, and without
 * counting: a restored index has no such entries.
 */
function forgetFinished(tenant: TenantState, cutoffMs: number, forgotten: string[] | undefined): void {
  const heap = tenant.finished;
  let left = limits.reservationForgetsPerEventMax;
  while (left > 0 && heap.length > 0 && (heap[0] as FinishedEntry).finishedAtMs <= cutoffMs) {
    const entry = heap[0] as FinishedEntry;
    heapPop(heap, finishedBefore);
    const reservation = tenant.reservations.get(entry.id);
    if (reservation !== undefined && isFinished(reservation.status) && reservation.finishedAtMs === entry.finishedAtMs) {
      tenant.reservations.delete(entry.id);
      forgotten?.push(entry.id);
      left -= 1;
    }
  }
}

function isFinished(status: ReservationStatus): boolean {
  return status !== 'held' && status !== 'committed';
}

function isLive(tenant: TenantState, entry: ExpiryEntry): boolean {
  const reservation = tenant.reservations.get(entry.id);
  return reservation !== undefined && reservation.status === 'held' && reservation.expiresAtMs === entry.expiresAtMs;
}

/** Pops index entries of holds that are no longer held, so the heap stays as small as the live holds. */
export function dropStaleExpiries(tenant: TenantState): void {
  const heap = tenant.expiries;
  while (heap.length > 0 && !isLive(tenant, heap[0] as ExpiryEntry)) heapPop(heap, expiresBefore);
}

/** The expiry index's order: by expiry, then id. */
export function expiresBefore(a: ExpiryEntry, b: ExpiryEntry): boolean {
  return a.expiresAtMs < b.expiresAtMs || (a.expiresAtMs === b.expiresAtMs && a.id < b.id);
}

function finishedBefore(a: FinishedEntry, b: FinishedEntry): boolean {
  return a.finishedAtMs < b.finishedAtMs || (a.finishedAtMs === b.finishedAtMs && a.id < b.id);
}

/** Folds events into a fresh state: what every engine does on restore. */
export function replay(events: Iterable<InventoryEvent>, state: LedgerState = { tenants: new Map() }): LedgerState {
  for (const event of events) evolve(state, event);
  return state;
}
