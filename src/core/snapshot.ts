// Plain-data form of the state: for snapshots on disk, for comparing states, and for printing them.

import type { AllocatedLine } from './events.js';
import type { ReservationStatus } from './rejections.js';
import { emptyTenant } from './state.js';
import type { ChannelPolicy, IdempotencyRecord, LedgerState, Reservation, TenantState } from './state.js';

/**
 * The version of the snapshot shape, which engines store beside a snapshot they write (`format`) so that a
 * later version can tell whether it may start from it. Format 2 added `finishedAtMs` to finished reservations.
 */
export const snapshotFormat = 2;

export interface ReservationSnapshot {
  channel: string;
  status: ReservationStatus;
  expiresAtMs: number;
  createdAtMs: number;
  orderRef?: string;
  finishedAtMs?: number;
  lines: AllocatedLine[];
}

export interface TenantSnapshot {
  skus: Record<string, { deleted: boolean; version: number; locations: Record<string, { onHand: number; committed: number; reserved: number }> }>;
  reservations: Record<string, ReservationSnapshot>;
  channels: Record<string, ChannelPolicy>;
  sourceSeqs: Record<string, string>;
  idempotency?: Record<string, IdempotencyRecord>;
}

export interface StateSnapshot {
  /** `snapshotFormat`, on snapshots an engine stored; absent on those stored before format 2. */
  format?: number;
  tenants: Record<string, TenantSnapshot>;
}

function sortedRecord<V, W>(map: Map<string, V>, convert: (value: V) => W): Record<string, W> {
  // No prototype: a key such as `__proto__` must be kept as data, not swallowed by the setter.
  const out = Object.create(null) as Record<string, W>;
  for (const key of [...map.keys()].sort()) out[key] = convert(map.get(key) as V);
  return out;
}

/**
 * Field by field, without spreads: the Kafka changelog writes one of these for every reservation a transaction
 * changes. `lines` is set last to keep the key order snapshots have always had (optional fields before lines).
 */
function reservationSnapshot(reservation: Reservation): ReservationSnapshot {
  const snapshot = {
    channel: reservation.channel, status: reservation.status, expiresAtMs: reservation.expiresAtMs, createdAtMs: reservation.createdAtMs,
  } as ReservationSnapshot;
  if (reservation.orderRef !== undefined) snapshot.orderRef = reservation.orderRef;
  if (reservation.finishedAtMs !== undefined) snapshot.finishedAtMs = reservation.finishedAtMs;
  snapshot.lines = reservation.lines;
  return snapshot;
}

function tenantSnapshot(tenant: TenantState, withIdempotency: boolean): TenantSnapshot {
  const snapshot: TenantSnapshot = {
    skus: sortedRecord(tenant.skus, (sku) => ({
      deleted: sku.deleted, version: sku.version,
      locations: sortedRecord(sku.locations, (stock) => ({ onHand: stock.onHand, committed: stock.committed, reserved: stock.reserved })),
    })),
    reservations: sortedRecord(tenant.reservations, reservationSnapshot),
    channels: sortedRecord(tenant.channels, (policy) => ({ ...policy })),
    sourceSeqs: sortedRecord(tenant.sourceSeqs, (seq) => seq),
  };
  if (withIdempotency) {
    const idempotency = Object.create(null) as Record<string, IdempotencyRecord>;
    for (const [key, record] of tenant.idempotency) idempotency[key] = record;
    snapshot.idempotency = idempotency;
  }
  return snapshot;
}

/** The state as plain data. Without `withIdempotency`, just what the events determine. */
export function toSnapshot(state: LedgerState, options: { withIdempotency?: boolean } = {}): StateSnapshot {
  const tenants = Object.create(null) as Record<string, TenantSnapshot>;
  for (const name of [...state.tenants.keys()].sort()) {
    const tenant = state.tenants.get(name) as TenantState;
    if (!options.withIdempotency && tenant.skus.size === 0 && tenant.reservations.size === 0 && tenant.channels.size === 0) continue;
    tenants[name] = tenantSnapshot(tenant, options.withIdempotency === true);
  }
  return { tenants };
}

export function fromSnapshot(snapshot: StateSnapshot): LedgerState {
  const state: LedgerState = { tenants: new Map() };
  for (const [name, data] of Object.entries(snapshot.tenants)) {
    const tenant = emptyTenant();
    for (const [sku, value] of Object.entries(data.skus)) {
      tenant.skus.set(sku, { deleted: value.deleted, version: value.version, locations: new Map(Object.entries(value.locations).map(([loc, stock]) => [loc, { ...stock }])) });
    }
    const held: Reservation[] = [];
    const finished: Reservation[] = [];
    for (const [id, value] of Object.entries(data.reservations)) {
      const reservation: Reservation = { id, channel: value.channel, status: value.status, expiresAtMs: value.expiresAtMs, createdAtMs: value.createdAtMs, lines: value.lines };
      if (value.orderRef !== undefined) reservation.orderRef = value.orderRef;
      // A snapshot written before format 2 has no finishedAtMs: its finished reservations get no index entry
      // and are never forgotten, so the state it restores is not exactly a replay of the log. The embedded
      // engine therefore ignores such snapshots and replays the log.
      if (value.finishedAtMs !== undefined) {
        reservation.finishedAtMs = value.finishedAtMs;
        finished.push(reservation);
      }
      tenant.reservations.set(id, reservation);
      if (value.status === 'held') held.push(reservation);
    }
    // A sorted array is a valid min-heap.
    held.sort((a, b) => a.expiresAtMs - b.expiresAtMs || compareIds(a.id, b.id));
    tenant.expiries = held.map((reservation) => ({ expiresAtMs: reservation.expiresAtMs, id: reservation.id }));
    finished.sort((a, b) => (a.finishedAtMs as number) - (b.finishedAtMs as number) || compareIds(a.id, b.id));
    tenant.finished = finished.map((reservation) => ({ finishedAtMs: reservation.finishedAtMs as number, id: reservation.id }));
    for (const [channel, policy] of Object.entries(data.channels)) tenant.channels.set(channel, { ...policy });
    for (const [key, seq] of Object.entries(data.sourceSeqs)) tenant.sourceSeqs.set(key, seq);
    const records = Object.entries(data.idempotency ?? {}).sort(([, a], [, b]) => a.timeMs - b.timeMs);
    for (const [key, record] of records) tenant.idempotency.set(key, record);
    state.tenants.set(name, tenant);
  }
  return state;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
