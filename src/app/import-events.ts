// Turns schema events (vendor onboarding dumps) into the commands that would have produced them.

import { parseTime } from '../core/index.js';
import type { InventoryEvent, Outcome } from '../core/index.js';
import type { CommandInput } from './ports.js';

export type ImportMapping = { command: CommandInput } | { skip: string };

/**
 * Events are re-decided, not copied into the log: an imported dump can never put the ledger in a
 * state its own rules forbid. Derived events (conflicts) are recomputed, so they are skipped.
 */
export function eventToCommand(event: InventoryEvent): ImportMapping {
  const base = { tenant: event.tenant, source: event.source, timeMs: parseTime(event.time) };
  switch (event.type) {
    case 'stock_adjustment': {
      const { sku, location, mode, delta, onHand, reason } = event.data;
      const change = mode === 'set' ? { set: onHand } : { delta };
      return { command: { ...base, type: 'adjust_stock', sku, location, ...change, ...(reason === undefined ? {} : { reason }), ...(event.sourceSeq === undefined ? {} : { sourceSeq: event.sourceSeq }) } };
    }
    case 'order_reserved': {
      const { reservationId, channel, orderRef, expiresAt, lines } = event.data;
      return { command: { ...base, type: 'reserve', reservationId, channel, lines, ttlMs: parseTime(expiresAt) - base.timeMs, ...(orderRef === undefined ? {} : { orderRef }) } };
    }
    case 'order_committed': {
      const { reservationId, channel, orderRef, direct, lines } = event.data;
      const ref = orderRef === undefined ? {} : { orderRef };
      return direct
        ? { command: { ...base, type: 'record_sale', reservationId, channel, lines, ...ref } }
        : { command: { ...base, type: 'commit', reservationId, ...ref } };
    }
    case 'reservation_released': {
      const { reservationId, reason, from } = event.data;
      // That one hold's expiry, not a tick (expire_due), which would release every hold due then and nothing when this one is not due.
      if (reason === 'expired') return { command: { ...base, type: 'release', reservationId, reason } };
      return { command: { ...base, type: 'release', reservationId, reason: from === 'committed' ? 'cancelled' : reason } };
    }
    case 'order_fulfilled':
      return { command: { ...base, type: 'fulfil', reservationId: event.data.reservationId } };
    case 'sku_deleted':
      return { command: { ...base, type: 'delete_sku', sku: event.data.sku } };
    case 'sku_restored':
      return { command: { ...base, type: 'restore_sku', sku: event.data.sku } };
    case 'channel_policy_set':
      return { command: { ...base, type: 'set_channel_policy', ...event.data } };
    case 'sync_complete':
      return { command: { ...base, type: 'record_sync', ...event.data } };
    case 'conflict_detected':
      return { skip: 'conflicts are derived by the ledger, not imported' };
  }
}

export interface ImportItem {
  index: number;
  /** Absent for a skipped event. */
  outcome?: Outcome;
  skipped?: string;
}

export interface ImportResult {
  /** True when every event was applied; false when none was. */
  applied: boolean;
  items: ImportItem[];
}

export interface AtomicBus {
  submitAtomic(commands: CommandInput[]): Promise<{ applied: boolean; results: Array<{ outcome: Outcome }> }>;
}

/** Re-decides a dump of events all or nothing; the caller has validated them against the schema. */
export async function importEvents(bus: AtomicBus, events: InventoryEvent[]): Promise<ImportResult> {
  const mapped = events.map(eventToCommand);
  const commands: CommandInput[] = [];
  for (const mapping of mapped) if ('command' in mapping) commands.push(mapping.command);
  const { applied, results } = await bus.submitAtomic(commands);
  let next = 0;
  const items = mapped.map((mapping, index): ImportItem => {
    if ('skip' in mapping) return { index, skipped: mapping.skip };
    const result = results[next];
    next += 1;
    return result === undefined ? { index } : { index, outcome: result.outcome };
  });
  return { applied, items };
}
