// The commands the ledger decides on. Time and ids arrive with each command; the ledger never makes them.

export interface CommandMeta {
  /** Unique id of this command; the ids of its events derive from it. */
  id: string;
  tenant: string;
  /** Epoch milliseconds at which the command is decided. */
  timeMs: number;
  /** Optional key under which the first outcome is remembered and returned on retries. */
  idempotencyKey?: string;
  /** Who sent it: `api`, `pg:<slot>`, `shopify`, `import`, ... */
  source?: string;
}

export interface CartLine {
  sku: string;
  quantity: number;
  /** Without a location, the line is filled from the channel's locations in order. */
  location?: string;
}

export interface AdjustStock extends CommandMeta {
  type: 'adjust_stock';
  sku: string;
  location: string;
  /** Exactly one of `delta` and `set`. */
  delta?: number;
  set?: number;
  reason?: string;
  /** For `set` from a source of record: the source's sequence (e.g. an LSN) as a decimal string. */
  sourceSeq?: string;
}

export interface Reserve extends CommandMeta {
  type: 'reserve';
  reservationId: string;
  channel: string;
  lines: CartLine[];
  ttlMs: number;
  orderRef?: string;
}

/** A sale a channel already made (a marketplace order): accepted as a fact, even beyond stock. */
export interface RecordSale extends CommandMeta {
  type: 'record_sale';
  reservationId: string;
  channel: string;
  lines: CartLine[];
  orderRef?: string;
}

export interface Commit extends CommandMeta {
  type: 'commit';
  reservationId: string;
  orderRef?: string;
}

export interface Release extends CommandMeta {
  type: 'release';
  reservationId: string;
  /**
   * `released` gives back a hold; `cancelled` also cancels a committed order; `expired` expires one held
   * reservation that is due at the command's time, as a tick would have (imports; not offered by the API).
   */
  reason: 'released' | 'cancelled' | 'expired';
}

export interface Fulfil extends CommandMeta {
  type: 'fulfil';
  reservationId: string;
}

export interface ExpireDue extends CommandMeta {
  type: 'expire_due';
  /** Holds whose expiry is at or before this instant are released. */
  nowMs: number;
}

export interface DeleteSku extends CommandMeta {
  type: 'delete_sku';
  sku: string;
}

export interface RestoreSku extends CommandMeta {
  type: 'restore_sku';
  sku: string;
}

export interface SetChannelPolicy extends CommandMeta {
  type: 'set_channel_policy';
  channel: string;
  /** `null`: every location. */
  locations: string[] | null;
  bufferUnits: number;
  /** `null`: no maximum. */
  maxUnits: number | null;
  backorder: boolean;
}

/** A channel acknowledged a push; recorded so the ledger carries the propagation latency. */
export interface RecordSync extends CommandMeta {
  type: 'record_sync';
  channel: string;
  sku: string;
  quantity: number;
  latencyMs: number;
}

export type Command =
  | AdjustStock
  | Reserve
  | RecordSale
  | Commit
  | Release
  | Fulfil
  | ExpireDue
  | DeleteSku
  | RestoreSku
  | SetChannelPolicy
  | RecordSync;

export type CommandType = Command['type'];
