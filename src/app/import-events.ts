// Turns schema events (vendor onboarding dumps) into the commands that would have produced them.

import { createHash } from 'node:crypto';
import { firstOutcome, parseTime } from '../core/index.js';
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
    case 'channel_policy_set': {
      // The version is the ledger's count, decided again: the dump's own is not kept.
      const { version: _version, ...policy } = event.data;
      return { command: { ...base, type: 'set_channel_policy', ...policy } };
    }
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
  /** True when every event was applied (now, or before under the same key); false when none was. */
  applied: boolean;
  /** Applied before under the same idempotency key: nothing was applied again; the items are the first outcomes. */
  replayed?: boolean;
  /**
   * The idempotency key was used for another import, or the first import's records are no longer all kept:
   * nothing was applied.
   */
  keyReused?: boolean;
  items: ImportItem[];
}

export interface AtomicBus {
  submitAtomic(commands: CommandInput[]): Promise<{ applied: boolean; results: Array<{ outcome: Outcome }> }>;
}

/**
 * The keys of the commands made from an import's applicable events, under the import's key: a digest of the
 * key and the command's place. They are as short whatever the key, and a client sending its own keys does
 * not meet them by chance.
 */
export function importCommandKeys(idempotencyKey: string): (index: number) => string {
  // 128 bits of the digest: no two keys meet by chance, and a group of 10,000 commands stays small.
  const digest = createHash('sha256').update(idempotencyKey).digest('base64url').slice(0, 22);
  return (index) => `import:${digest}:${index}`;
}

/**
 * Re-decides a dump of events all or nothing; the caller has validated them against the schema.
 *
 * Under an idempotency key each command carries the key and its place, so the ledger remembers each one with
 * the import's events, in the same write. A retry finds every command remembered with the same request and
 * applies nothing (so does an import of the first events of one already applied: each was applied once).
 * Any other mix (some remembered, some new, or one remembered with another request) is another import under
 * the same key, refused whole. A refused import remembers nothing, as it applies nothing: the same key may
 * carry it again.
 */
export async function importEvents(bus: AtomicBus, events: InventoryEvent[], idempotencyKey?: string): Promise<ImportResult> {
  const mapped = events.map(eventToCommand);
  const keyOf = idempotencyKey === undefined ? undefined : importCommandKeys(idempotencyKey);
  const commands: CommandInput[] = [];
  for (const mapping of mapped) {
    if (!('command' in mapping)) continue;
    commands.push(keyOf === undefined ? mapping.command : { ...mapping.command, idempotencyKey: keyOf(commands.length) });
  }
  const { applied, results } = await bus.submitAtomic(commands);
  const codes = results.map((result) => result.outcome.rejection?.code);
  const remembered = codes.filter((code) => code === 'DUPLICATE').length;
  const replayed = commands.length > 0 && remembered === commands.length;
  const keyReused = !replayed && (remembered > 0 || codes.includes('IDEMPOTENCY_KEY_REUSED'));
  let next = 0;
  const items = mapped.map((mapping, index): ImportItem => {
    if ('skip' in mapping) return { index, skipped: mapping.skip };
    const result = results[next];
    next += 1;
    if (result === undefined) return { index };
    return { index, outcome: replayed ? firstOutcome(result.outcome) : result.outcome };
  });
  if (replayed) return { applied: true, replayed, items };
  return keyReused ? { applied: false, keyReused, items } : { applied, items };
}
