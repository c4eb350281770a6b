// One spec per rejection code: the table is typed by RejectionCode, so a new code fails to compile until it has a spec.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RejectionCode } from '../../../src/core/rejections.js';
import type { CommandDraft } from '../../support/ledger-dsl.js';
import { attempt, given, receive, reserve, setOnHand, t0Ms } from '../../support/ledger-dsl.js';

const policy: CommandDraft = { type: 'set_channel_policy', channel: 'b2b', locations: ['wh-2'], bufferUnits: 0, maxUnits: null, backorder: false };

const specs: Record<RejectionCode, () => void> = {
  INSUFFICIENT_STOCK: () => {
    given(receive('tee-m', 'wh-1', 2), receive('cap', 'wh-1', 1))
      .when(reserve('cart-1', [{ sku: 'tee-m', quantity: 5 }, { sku: 'cap', quantity: 2, location: 'wh-1' }]))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee-m', requested: 5, available: 2 }, { sku: 'cap', location: 'wh-1', requested: 2, available: 1 }] });
  },
  STALE_SEQUENCE: () => {
    given(setOnHand('tee-m', 'wh-1', 9, { sourceSeq: '20', source: 'pg:s' }))
      .when(setOnHand('tee-m', 'wh-1', 3, { sourceSeq: '19', source: 'pg:s' }))
      .thenRejects('STALE_SEQUENCE', { sku: 'tee-m', location: 'wh-1', source: 'pg:s', appliedSeq: '20', incomingSeq: '19' }, [
        { type: 'conflict_detected', source: 'pg:s', sourceSeq: '19', data: { kind: 'stale_sequence', sku: 'tee-m', location: 'wh-1', conflictSource: 'pg:s', appliedSeq: '20', incomingSeq: '19' } },
      ]);
  },
  SKU_DELETED: () => {
    given(receive('tee-m', 'wh-1', 2), { type: 'delete_sku', sku: 'tee-m' })
      .when(reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }])).thenRejects('SKU_DELETED', { sku: 'tee-m' });
  },
  UNKNOWN_SKU: () => {
    given().when({ type: 'restore_sku', sku: 'tee-m' }).thenRejects('UNKNOWN_SKU', { sku: 'tee-m' });
  },
  UNKNOWN_RESERVATION: () => {
    given().when({ type: 'commit', reservationId: 'nope' }).thenRejects('UNKNOWN_RESERVATION', { reservationId: 'nope' });
  },
  RESERVATION_NOT_HELD: () => {
    given(receive('tee-m', 'wh-1', 2), reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }]), { type: 'commit', reservationId: 'cart-1' })
      .when({ type: 'release', reservationId: 'cart-1', reason: 'released' })
      .thenRejects('RESERVATION_NOT_HELD', { reservationId: 'cart-1', status: 'committed' });
  },
  RESERVATION_NOT_COMMITTED: () => {
    given(receive('tee-m', 'wh-1', 2), reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }]))
      .when({ type: 'fulfil', reservationId: 'cart-1' })
      .thenRejects('RESERVATION_NOT_COMMITTED', { reservationId: 'cart-1', status: 'held' });
  },
  RESERVATION_EXPIRED: () => {
    given(receive('tee-m', 'wh-1', 2), reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }], { timeMs: t0Ms + 10_000, ttlMs: 5_000 }))
      .when({ type: 'commit', reservationId: 'cart-1', timeMs: t0Ms + 15_000 })
      .thenRejects('RESERVATION_EXPIRED', { reservationId: 'cart-1', expiredAtMs: t0Ms + 15_000 });
  },
  RESERVATION_NOT_DUE: () => {
    given(receive('tee-m', 'wh-1', 2), reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }], { timeMs: t0Ms + 10_000, ttlMs: 5_000 }))
      .when({ type: 'release', reservationId: 'cart-1', reason: 'expired', timeMs: t0Ms + 14_999 })
      .thenRejects('RESERVATION_NOT_DUE', { reservationId: 'cart-1', expiresAtMs: t0Ms + 15_000 });
  },
  RESERVATION_EXISTS: () => {
    given(receive('tee-m', 'wh-1', 2), reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }]))
      .when(reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }])).thenRejects('RESERVATION_EXISTS', { reservationId: 'cart-1' });
  },
  DUPLICATE: () => {
    const command = reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }], { idempotencyKey: 'k-1' });
    const scenario = given(receive('tee-m', 'wh-1', 2));
    const first = scenario.when(command).result.outcome;
    scenario.when(command).thenRejects('DUPLICATE', { first });
  },
  IDEMPOTENCY_KEY_REUSED: () => {
    given(receive('tee-m', 'wh-1', 2, { idempotencyKey: 'k-1' }))
      .when(receive('tee-m', 'wh-1', 3, { idempotencyKey: 'k-1' })).thenRejects('IDEMPOTENCY_KEY_REUSED', { idempotencyKey: 'k-1' });
  },
  INVALID_QUANTITY: () => {
    given(receive('tee-m', 'wh-1', 2)).when(receive('tee-m', 'wh-1', -3))
      .thenRejects('INVALID_QUANTITY', { sku: 'tee-m', location: 'wh-1', onHand: 2, delta: -3 });
    // Lines of one SKU merged on one location: each within the bound, their sum past it. Stock bounds a
    // plain hold's lines; a recorded sale and a backorder hold are not bounded by stock.
    const halves = [{ sku: 'tee-m', quantity: 600_000_000, location: 'wh-1' }, { sku: 'tee-m', quantity: 600_000_000, location: 'wh-1' }];
    given(receive('tee-m', 'wh-1', 2)).when({ type: 'record_sale', reservationId: 'shop-1', channel: 'shopify', lines: halves })
      .thenRejects('INVALID_QUANTITY', { sku: 'tee-m', location: 'wh-1', quantity: 1_200_000_000 });
    given(receive('tee-m', 'wh-1', 2), { type: 'set_channel_policy', channel: 'b2b', locations: null, bufferUnits: 0, maxUnits: null, backorder: true })
      .when(reserve('cart-1', halves, { channel: 'b2b' }))
      .thenRejects('INVALID_QUANTITY', { sku: 'tee-m', location: 'wh-1', quantity: 1_200_000_000 });
    // At the bound exactly: one line's worth, accepted.
    const atBound = given(receive('tee-m', 'wh-1', 2)).when({
      type: 'record_sale', reservationId: 'shop-2', channel: 'shopify',
      lines: [{ sku: 'tee-m', quantity: 999_999_999, location: 'wh-1' }, { sku: 'tee-m', quantity: 1, location: 'wh-1' }],
    }).result;
    expect(atBound.outcome.rejection).toBeUndefined();
    expect(atBound.events[0]).toMatchObject({ type: 'order_committed', data: { lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1_000_000_000 }] } });
  },
  UNKNOWN_LOCATION: () => {
    given(receive('tee-m', 'wh-1', 2), policy)
      .when(reserve('cart-1', [{ sku: 'tee-m', quantity: 1, location: 'wh-1' }], { channel: 'b2b' }))
      .thenRejects('UNKNOWN_LOCATION', { location: 'wh-1', channel: 'b2b' });
  },
  NOT_APPLIED: () => {
    // Engines answer it for the rest of an all-or-nothing batch; the ledger itself never does (the property suite checks every outcome).
    for (const file of ['decide.ts', 'ledger.ts', 'evolve.ts']) {
      expect(readFileSync(new URL(`../../../src/core/${file}`, import.meta.url), 'utf8')).not.toContain('NOT_APPLIED');
    }
  },
};

describe('every rejection code', () => {
  for (const [code, spec] of Object.entries(specs)) it(code, spec);

  it('has a spec for each code in src/core/rejections.ts', () => {
    const source = readFileSync(new URL('../../../src/core/rejections.ts', import.meta.url), 'utf8');
    const codes = [...source.matchAll(/code: '([A-Z_]+)'/g)].map((match) => match[1]);
    expect(new Set(codes)).toEqual(new Set(Object.keys(specs)));
  });

  it('changes nothing but the conflict log when it refuses', () => {
    const result = given(receive('tee-m', 'wh-1', 2), attempt(reserve('cart-1', [{ sku: 'tee-m', quantity: 5 }])))
      .when(reserve('cart-2', [{ sku: 'tee-m', quantity: 2 }])).then([
        { type: 'order_reserved', data: { reservationId: 'cart-2', channel: 'web', expiresAt: '2025-01-01T00:01:02.000Z', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 2 }] } },
      ]);
    expect(result.reservation('cart-1')).toBeUndefined();
  });
});
