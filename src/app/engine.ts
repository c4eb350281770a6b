// The engine port: what the HTTP API, the sources and the channel sync need from an engine (embedded or Kafka).

import type { InventoryEvent, LedgerState, TenantState } from '../core/index.js';
import type { AtomicBus, ImportResult } from './import-events.js';
import type { CommandBus, DeadLetterSink } from './ports.js';

export interface LoggedEvent {
  /** Position in the log: increasing, unique per engine (per tenant in Kafka mode). */
  position: number;
  event: InventoryEvent;
}

/** One committed batch: what subscribers (SSE, channel sync, metrics) see after it is durable. */
/** In `CommittedBatch.touched`: every SKU of the tenant may have changed (a channel policy changed). */
export const allSkus = '*';

export interface CommittedBatch {
  events: LoggedEvent[];
  /** Tenants and SKUs whose quantities may have changed; `allSkus` stands for all of a tenant's. */
  touched: Map<string, Set<string>>;
  /**
   * The position the changes of tenants touched without events are as of: a Kafka node's replica that took
   * tenants again from the changelog (their events were deleted before it read them) tells of them this way.
   */
  position?: number;
}

export interface EventPage {
  events: LoggedEvent[];
  /** Pass as `after` to read on; equals `after` when nothing is newer. */
  next: number;
}

export interface Engine extends CommandBus, DeadLetterSink, AtomicBus {
  readonly kind: 'embedded' | 'kafka';
  /** True once state is restored and the engine takes commands. */
  ready(): boolean;
  /** Why `ready()` is false, when the engine can say more than that it is starting or stopping. */
  notReadyReason?(): string | undefined;
  /** The in-memory state; read it, never change it. */
  state(): LedgerState;
  tenant(tenant: string): TenantState | undefined;
  eventsAfter(tenant: string, after: number, limit: number): Promise<EventPage>;
  /** Called after each durable batch, in order. Returns an unsubscribe function. */
  subscribe(listener: (batch: CommittedBatch) => void): () => void;
  /** The log position of the newest event in `state()`; the embedded engine decides ahead of its writes, so it may not be durable yet. */
  position(): number;
  /**
   * The log position of the newest durable event: `eventsAfter` holds every event up to it, and every batch told
   * to subscribers from now on comes after it.
   */
  committedPosition(): number;
  /**
   * Every position this engine gives is above it: one at or below it was given before this process started (a Kafka
   * node numbers events anew at each start) and says nothing of what changed since. Absent: 0 (the embedded
   * engine's positions are the log's, the same across restarts).
   */
  positionFloor?(): number;
  /**
   * Whether this node pushes the tenant's channels now: in Kafka mode, the node whose processor is assigned the
   * tenant's commands partition, so each change reaches a channel once. Absent: every tenant (one process).
   */
  ownsTenant?(tenant: string): boolean;
  /** Called when the tenants this node owns may have changed (a rebalance). Returns an unsubscribe function. */
  onOwnershipChange?(listener: () => void): () => void;
  /** Re-decides schema events all or nothing, once under an idempotency key (see import-events.ts). */
  importEvents(tenant: string, events: InventoryEvent[], idempotencyKey?: string): Promise<ImportResult>;
  close(): Promise<void>;
}

/** Operating errors of engines and adapters: a stable code and whether retrying can help. */
export class AppError extends Error {
  constructor(readonly code: string, message: string, readonly retryable: boolean, readonly statusHint?: number) {
    super(message);
    this.name = 'AppError';
  }
}

/** Records in `touched` which of its tenant's SKUs an event may have changed (a policy change: all of them). */
export function noteTouched(touched: Map<string, Set<string>>, event: InventoryEvent): void {
  let skus = touched.get(event.tenant);
  if (skus === undefined) {
    skus = new Set();
    touched.set(event.tenant, skus);
  }
  switch (event.type) {
    case 'stock_adjustment':
    case 'sku_deleted':
    case 'sku_restored':
      skus.add(event.data.sku);
      break;
    case 'order_reserved':
    case 'order_committed':
    case 'reservation_released':
    case 'order_fulfilled':
      for (const line of event.data.lines) skus.add(line.sku);
      break;
    case 'channel_policy_set':
      skus.add(allSkus);
      break;
    default:
      break;
  }
}
