// Plain-data form of the state: for snapshots on disk, for comparing states, and for printing them.

import type { AllocatedLine } from './events.js';
import type { ReservationStatus } from './rejections.js';
import { emptyTenant, newReservation } from './state.js';
import type { ChannelPolicy, IdempotencyRecord, LedgerState, Reservation, TenantState } from './state.js';

/**
 * The version of the snapshot file, stored in it (`format`) so that a later version can tell whether it may
 * start from it: its shape, and the rules of the ledger that derived the state in it. Format 4 is the packed
 * form (`packState`) of a state whose finished reservations are forgotten at most
 * `limits.reservationForgetsPerEventMax` an event. Formats 2 (the plain-data form below) and 3 (packed) were
 * derived forgetting them all at once, so their states can differ from what this version derives from the
 * same log: it replays the log instead.
 */
export const snapshotFormat = 4;

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
    for (const [id, value] of Object.entries(data.reservations)) {
      // A snapshot written before format 2 has no finishedAtMs: its finished reservations get no index entry
      // and are never forgotten, so the state it restores is not exactly a replay of the log. The embedded
      // engine therefore ignores such snapshots and replays the log.
      const reservation = newReservation(id, value.channel, value.status, value.expiresAtMs, value.createdAtMs, value.lines, value.orderRef, value.finishedAtMs);
      tenant.reservations.set(id, reservation);
    }
    indexReservations(tenant);
    for (const [channel, policy] of Object.entries(data.channels)) tenant.channels.set(channel, { ...policy });
    for (const [key, seq] of Object.entries(data.sourceSeqs)) tenant.sourceSeqs.set(key, seq);
    const records = Object.entries(data.idempotency ?? {}).sort(([, a], [, b]) => a.timeMs - b.timeMs);
    for (const [key, record] of records) tenant.idempotency.set(key, record);
    state.tenants.set(name, tenant);
  }
  return state;
}

/** Rebuilds a restored tenant's expiry and finished indexes from its reservations. */
function indexReservations(tenant: TenantState): void {
  const held: Reservation[] = [];
  const finished: Reservation[] = [];
  for (const reservation of tenant.reservations.values()) {
    if (reservation.status === 'held') held.push(reservation);
    if (reservation.finishedAtMs !== undefined) finished.push(reservation);
  }
  // A sorted array is a valid min-heap.
  held.sort((a, b) => a.expiresAtMs - b.expiresAtMs || compareIds(a.id, b.id));
  tenant.expiries = held.map((reservation) => ({ expiresAtMs: reservation.expiresAtMs, id: reservation.id }));
  finished.sort((a, b) => (a.finishedAtMs as number) - (b.finishedAtMs as number) || compareIds(a.id, b.id));
  tenant.finished = finished.map((reservation) => ({ finishedAtMs: reservation.finishedAtMs as number, id: reservation.id }));
}

/** A line as `[sku, location, quantity]`. */
export type PackedLine = [sku: string, location: string, quantity: number];

/** A reservation as a tuple: the plain-data form repeats every key for every hold, which is most of its bytes. */
export type PackedReservation = [
  id: string, channel: string, status: ReservationStatus, expiresAtMs: number, createdAtMs: number,
  orderRef: string | null, finishedAtMs: number | null, lines: PackedLine[],
];

export type PackedSku = [sku: string, deleted: boolean, version: number, locations: Array<[location: string, onHand: number, committed: number, reserved: number]>];

export interface PackedTenant {
  skus: PackedSku[];
  reservations: PackedReservation[];
  channels: Array<[channel: string, policy: ChannelPolicy]>;
  sourceSeqs: Array<[key: string, seq: string]>;
}

/** Tenant name and its state, in the state's own order. */
export type PackedState = Array<[tenant: string, state: PackedTenant]>;

/**
 * The state the events determine (no idempotency records), packed into arrays in the state's own order: the
 * snapshot file's form. Unlike `toSnapshot` it neither sorts nor builds an object per reservation, so writing
 * and reading a snapshot of many holds costs a fraction as much, and the restored maps keep the order of the
 * original.
 */
export function packState(state: LedgerState): PackedState {
  const packed: PackedState = [];
  for (const [name, tenant] of state.tenants) {
    if (tenant.skus.size === 0 && tenant.reservations.size === 0 && tenant.channels.size === 0) continue;
    const skus: PackedSku[] = [];
    for (const [sku, value] of tenant.skus) {
      const locations: PackedSku[3] = [];
      for (const [location, stock] of value.locations) locations.push([location, stock.onHand, stock.committed, stock.reserved]);
      skus.push([sku, value.deleted, value.version, locations]);
    }
    const reservations: PackedReservation[] = [];
    for (const reservation of tenant.reservations.values()) {
      const lines: PackedLine[] = [];
      for (const line of reservation.lines) lines.push([line.sku, line.location, line.quantity]);
      reservations.push([
        reservation.id, reservation.channel, reservation.status, reservation.expiresAtMs, reservation.createdAtMs,
        reservation.orderRef ?? null, reservation.finishedAtMs ?? null, lines,
      ]);
    }
    const channels: PackedTenant['channels'] = [];
    for (const [channel, policy] of tenant.channels) channels.push([channel, { ...policy }]);
    packed.push([name, { skus, reservations, channels, sourceSeqs: [...tenant.sourceSeqs] }]);
  }
  return packed;
}

/** The state a packed one describes, indexes rebuilt. */
export function unpackState(packed: PackedState): LedgerState {
  const state: LedgerState = { tenants: new Map() };
  for (const [name, data] of packed) {
    const tenant = emptyTenant();
    for (const [sku, deleted, version, locations] of data.skus) {
      const stock = new Map<string, { onHand: number; committed: number; reserved: number }>();
      for (const [location, onHand, committed, reserved] of locations) stock.set(location, { onHand, committed, reserved });
      tenant.skus.set(sku, { deleted, version, locations: stock });
    }
    for (const [id, channel, status, expiresAtMs, createdAtMs, orderRef, finishedAtMs, lines] of data.reservations) {
      const allocated = lines.map(([sku, location, quantity]) => ({ sku, location, quantity }));
      tenant.reservations.set(id, newReservation(id, channel, status, expiresAtMs, createdAtMs, allocated, orderRef ?? undefined, finishedAtMs ?? undefined));
    }
    indexReservations(tenant);
    for (const [channel, policy] of data.channels) tenant.channels.set(channel, { ...policy });
    for (const [key, seq] of data.sourceSeqs) tenant.sourceSeqs.set(key, seq);
    state.tenants.set(name, tenant);
  }
  return state;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
