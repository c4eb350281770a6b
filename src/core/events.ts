// The events of the ledger: the contract users integrate with (see schema/inventory-event.schema.json).

export interface AllocatedLine {
  sku: string;
  location: string;
  quantity: number;
}

export interface EventEnvelope<Type extends string, Data> {
  id: string;
  type: Type;
  tenant: string;
  /** RFC 3339. */
  time: string;
  source: string;
  sourceSeq?: string;
  data: Data;
}

export type StockAdjustment = EventEnvelope<'stock_adjustment', {
  sku: string;
  location: string;
  mode: 'delta' | 'set';
  delta: number;
  onHand: number;
  reason?: string;
}>;

export type OrderReserved = EventEnvelope<'order_reserved', {
  reservationId: string;
  channel: string;
  orderRef?: string;
  expiresAt: string;
  lines: AllocatedLine[];
}>;

export type ReservationReleased = EventEnvelope<'reservation_released', {
  reservationId: string;
  reason: 'released' | 'expired' | 'cancelled';
  /** What the reservation was before: a held cart or a committed order. */
  from: 'held' | 'committed';
  lines: AllocatedLine[];
}>;

export type OrderCommitted = EventEnvelope<'order_committed', {
  reservationId: string;
  channel: string;
  orderRef?: string;
  /** True for a sale the channel made without a hold (a marketplace order). */
  direct: boolean;
  lines: AllocatedLine[];
}>;

export type OrderFulfilled = EventEnvelope<'order_fulfilled', {
  reservationId: string;
  lines: AllocatedLine[];
}>;

export type SkuDeleted = EventEnvelope<'sku_deleted', { sku: string }>;
export type SkuRestored = EventEnvelope<'sku_restored', { sku: string }>;

export type ChannelPolicySet = EventEnvelope<'channel_policy_set', {
  channel: string;
  locations: string[] | null;
  bufferUnits: number;
  maxUnits: number | null;
  backorder: boolean;
  /**
   * How many times the channel's policy has been set, this time included. Every replica takes it from the
   * event rather than counting, so all agree; events written before it existed carry none.
   */
  version?: number;
}>;

export type SyncComplete = EventEnvelope<'sync_complete', {
  channel: string;
  sku: string;
  quantity: number;
  latencyMs: number;
}>;

export type ConflictDetected = EventEnvelope<'conflict_detected', {
  kind: 'stale_sequence' | 'oversell';
  sku: string;
  location: string;
  /** stale_sequence: the source whose update was refused and the two sequences. */
  conflictSource?: string;
  appliedSeq?: string;
  incomingSeq?: string;
  /** oversell: how many more units the change leaves sold beyond what is there, and who sold them. */
  shortfall?: number;
  channel?: string;
  orderRef?: string;
}>;

export type InventoryEvent =
  | StockAdjustment
  | OrderReserved
  | ReservationReleased
  | OrderCommitted
  | OrderFulfilled
  | SkuDeleted
  | SkuRestored
  | ChannelPolicySet
  | SyncComplete
  | ConflictDetected;

export type EventType = InventoryEvent['type'];

export const eventTypes: readonly EventType[] = [
  'stock_adjustment', 'order_reserved', 'reservation_released', 'order_committed', 'order_fulfilled',
  'sku_deleted', 'sku_restored', 'channel_policy_set', 'sync_complete', 'conflict_detected',
];
