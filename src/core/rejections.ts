// Business refusals: data returned by decide, each with a stable code.

import type { AllocatedLine, InventoryEvent } from './events.js';

export interface ShortLine {
  sku: string;
  location?: string;
  requested: number;
  available: number;
}

export type Rejection =
  | { code: 'INSUFFICIENT_STOCK'; message: string; lines: ShortLine[] }
  | { code: 'STALE_SEQUENCE'; message: string; sku: string; location: string; source: string; appliedSeq: string; incomingSeq: string }
  | { code: 'SKU_DELETED'; message: string; sku: string }
  | { code: 'UNKNOWN_SKU'; message: string; sku: string }
  | { code: 'UNKNOWN_RESERVATION'; message: string; reservationId: string }
  | { code: 'RESERVATION_NOT_HELD'; message: string; reservationId: string; status: ReservationStatus }
  | { code: 'RESERVATION_NOT_COMMITTED'; message: string; reservationId: string; status: ReservationStatus }
  | { code: 'RESERVATION_EXPIRED'; message: string; reservationId: string; expiredAtMs: number }
  | { code: 'RESERVATION_NOT_DUE'; message: string; reservationId: string; expiresAtMs: number }
  | { code: 'RESERVATION_EXISTS'; message: string; reservationId: string }
  | { code: 'DUPLICATE'; message: string; first: Outcome }
  | { code: 'IDEMPOTENCY_KEY_REUSED'; message: string; idempotencyKey: string }
  | { code: 'INVALID_QUANTITY'; message: string; sku: string; location: string; onHand: number; delta: number }
  /** Lines of one SKU that land on one location are one line: their sum is bounded as each line is. */
  | { code: 'INVALID_QUANTITY'; message: string; sku: string; location: string; quantity: number }
  | { code: 'UNKNOWN_LOCATION'; message: string; location: string; channel: string }
  /** Engines only: a command of an all-or-nothing batch that was not applied because another was rejected. */
  | { code: 'NOT_APPLIED'; message: string };

export type RejectionCode = Rejection['code'];

export type ReservationStatus = 'held' | 'committed' | 'fulfilled' | 'released' | 'expired' | 'cancelled';

/** What a command came to: its events, and a rejection when it was refused (a refusal may still record events). */
export interface Outcome {
  events: InventoryEvent[];
  rejection?: Rejection;
}

/** The outcome itself, or, for a retry under a known idempotency key (DUPLICATE), the first outcome it repeats. */
export function firstOutcome(outcome: Outcome): Outcome {
  return outcome.rejection?.code === 'DUPLICATE' ? outcome.rejection.first : outcome;
}

export type { AllocatedLine };
