// Specs for adjust_stock: deltas, absolute sets from a source of record, sequence checks and corrections.

import { describe, expect, it } from 'vitest';
import { limits } from '../../../src/core/limits.js';
import { given, receive, reserve, setOnHand } from '../../support/ledger-dsl.js';

describe('adjust_stock by delta', () => {
  it('creates the SKU and location on the first receipt', () => {
    const result = given().when(receive('tee-m', 'wh-1', 12, { reason: 'received' })).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 12, onHand: 12, reason: 'received' } },
    ]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 12, committed: 0, reserved: 0 });
    expect(result.tenant.skus.get('tee-m')?.version).toBe(1);
  });

  it('adds to and takes from what is on hand', () => {
    const result = given(receive('tee-m', 'wh-1', 12)).when(receive('tee-m', 'wh-1', -5)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: -5, onHand: 7 } },
    ]);
    expect(result.available('tee-m', 'wh-1')).toBe(7);
  });

  it('keeps locations apart', () => {
    const result = given(receive('tee-m', 'wh-1', 12)).when(receive('tee-m', 'wh-2', 3)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-2', mode: 'delta', delta: 3, onHand: 3 } },
    ]);
    expect(result.stock('tee-m', 'wh-1').onHand).toBe(12);
    expect(result.stock('tee-m', 'wh-2').onHand).toBe(3);
  });

  it('records an oversell when a negative delta goes below what is committed and reserved', () => {
    const result = given(receive('tee-m', 'wh-1', 10), reserve('r1', [{ sku: 'tee-m', quantity: 6 }]))
      .when(receive('tee-m', 'wh-1', -7, { reason: 'damaged' }))
      .then([
        { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: -7, onHand: 3, reason: 'damaged' } },
        { type: 'conflict_detected', data: { kind: 'oversell', sku: 'tee-m', location: 'wh-1', shortfall: 3 } },
      ]);
    expect(result.available('tee-m', 'wh-1')).toBe(-3);
    expect(result.events.map((event) => event.id)).toEqual(['cmd-3.0', 'cmd-3.1']);
  });

  it('counts a recount below an oversell already recorded only for the units it adds, as a sale is counted', () => {
    const oversold = [receive('tee-m', 'wh-1', 10), reserve('r1', [{ sku: 'tee-m', quantity: 6 }]), receive('tee-m', 'wh-1', -7)] as const;
    given(...oversold).when(receive('tee-m', 'wh-1', -2)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: -2, onHand: 1 } },
      { type: 'conflict_detected', data: { kind: 'oversell', sku: 'tee-m', location: 'wh-1', shortfall: 2 } },
    ]);
    // Up, but still short: nothing more is sold beyond stock.
    given(...oversold).when(receive('tee-m', 'wh-1', 1)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: 4 } },
    ]);
    // From 1 available to 2 short: the 2 below zero.
    given(receive('tee-m', 'wh-1', 10), reserve('r1', [{ sku: 'tee-m', quantity: 6 }]), receive('tee-m', 'wh-1', -3))
      .when(receive('tee-m', 'wh-1', -3)).then([
        { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: -3, onHand: 4 } },
        { type: 'conflict_detected', data: { kind: 'oversell', sku: 'tee-m', location: 'wh-1', shortfall: 2 } },
      ]);
  });

  it('records no oversell when stock rises while still short', () => {
    const result = given(receive('tee-m', 'wh-1', 10), reserve('r1', [{ sku: 'tee-m', quantity: 10 }]), receive('tee-m', 'wh-1', -4))
      .when(receive('tee-m', 'wh-1', 1))
      .then([{ type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'delta', delta: 1, onHand: 7 } }]);
    expect(result.available('tee-m', 'wh-1')).toBe(-3);
  });

  it('refuses a delta that would take on hand below zero', () => {
    given(receive('tee-m', 'wh-1', 4)).when(receive('tee-m', 'wh-1', -5)).thenRejects('INVALID_QUANTITY', { sku: 'tee-m', location: 'wh-1', onHand: 4, delta: -5 });
  });

  it('refuses a delta that would pass the quantity limit', () => {
    given(receive('tee-m', 'wh-1', limits.quantityMax)).when(receive('tee-m', 'wh-1', 1)).thenRejects('INVALID_QUANTITY', { onHand: limits.quantityMax, delta: 1 });
  });
});

describe('adjust_stock by set', () => {
  it('sets on hand without a sequence and reports the delta', () => {
    given(receive('tee-m', 'wh-1', 12)).when(setOnHand('tee-m', 'wh-1', 40)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'set', delta: 28, onHand: 40 } },
    ]);
  });

  it('accepts the same set twice without a sequence (no ordering to check)', () => {
    given(setOnHand('tee-m', 'wh-1', 40)).when(setOnHand('tee-m', 'wh-1', 40)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'set', delta: 0, onHand: 40 } },
    ]);
  });

  it('carries the sequence and the source of a source of record', () => {
    const result = given().when(setOnHand('tee-m', 'wh-1', 40, { sourceSeq: '1001', source: 'pg:main' })).then([
      { type: 'stock_adjustment', sourceSeq: '1001', source: 'pg:main', data: { sku: 'tee-m', location: 'wh-1', mode: 'set', delta: 40, onHand: 40 } },
    ]);
    expect(result.tenant.sourceSeqs.get('tee-m\u0000wh-1\u0000pg:main')).toBe('1001');
  });

  it('applies a newer sequence', () => {
    given(setOnHand('tee-m', 'wh-1', 40, { sourceSeq: '1001', source: 'pg:main' }))
      .when(setOnHand('tee-m', 'wh-1', 35, { sourceSeq: '1002', source: 'pg:main' }))
      .then([{ type: 'stock_adjustment', sourceSeq: '1002', source: 'pg:main', data: { sku: 'tee-m', location: 'wh-1', mode: 'set', delta: -5, onHand: 35 } }]);
  });

  it('refuses an older sequence with STALE_SEQUENCE and records the conflict', () => {
    const result = given(setOnHand('tee-m', 'wh-1', 40, { sourceSeq: '1002', source: 'pg:main' }))
      .when(setOnHand('tee-m', 'wh-1', 10, { sourceSeq: '1001', source: 'pg:main' }))
      .thenRejects('STALE_SEQUENCE', { sku: 'tee-m', location: 'wh-1', source: 'pg:main', appliedSeq: '1002', incomingSeq: '1001' }, [
        { type: 'conflict_detected', sourceSeq: '1001', source: 'pg:main', data: { kind: 'stale_sequence', sku: 'tee-m', location: 'wh-1', conflictSource: 'pg:main', appliedSeq: '1002', incomingSeq: '1001' } },
      ]);
    expect(result.stock('tee-m', 'wh-1').onHand).toBe(40);
    expect(result.tenant.sourceSeqs.get('tee-m\u0000wh-1\u0000pg:main')).toBe('1002');
  });

  it('refuses the same sequence again (a replayed change)', () => {
    given(setOnHand('tee-m', 'wh-1', 40, { sourceSeq: '7', source: 'pg:main' }))
      .when(setOnHand('tee-m', 'wh-1', 40, { sourceSeq: '7', source: 'pg:main' }))
      .thenRejects('STALE_SEQUENCE', { appliedSeq: '7', incomingSeq: '7' }, [
        { type: 'conflict_detected', sourceSeq: '7', source: 'pg:main', data: { kind: 'stale_sequence', sku: 'tee-m', location: 'wh-1', conflictSource: 'pg:main', appliedSeq: '7', incomingSeq: '7' } },
      ]);
  });

  it('compares 20-digit sequences exactly (beyond 2^53)', () => {
    given(setOnHand('tee-m', 'wh-1', 40, { sourceSeq: '18446744073709551615', source: 'pg:main' }))
      .when(setOnHand('tee-m', 'wh-1', 10, { sourceSeq: '18446744073709551614', source: 'pg:main' }))
      .thenRejects('STALE_SEQUENCE', { appliedSeq: '18446744073709551615', incomingSeq: '18446744073709551614' }, [
        { type: 'conflict_detected', sourceSeq: '18446744073709551614', source: 'pg:main', data: { kind: 'stale_sequence', sku: 'tee-m', location: 'wh-1', conflictSource: 'pg:main', appliedSeq: '18446744073709551615', incomingSeq: '18446744073709551614' } },
      ]);
    given(setOnHand('tee-m', 'wh-1', 40, { sourceSeq: '9999999999999999999', source: 'pg:main' }))
      .when(setOnHand('tee-m', 'wh-1', 10, { sourceSeq: '10000000000000000000', source: 'pg:main' }))
      .then([{ type: 'stock_adjustment', sourceSeq: '10000000000000000000', source: 'pg:main', data: { sku: 'tee-m', location: 'wh-1', mode: 'set', delta: -30, onHand: 10 } }]);
  });

  it('keeps sequences apart per source and per location', () => {
    given(setOnHand('tee-m', 'wh-1', 40, { sourceSeq: '500', source: 'pg:main' }))
      .when(setOnHand('tee-m', 'wh-1', 30, { sourceSeq: '3', source: 'pg:other' }))
      .then([{ type: 'stock_adjustment', sourceSeq: '3', source: 'pg:other', data: { sku: 'tee-m', location: 'wh-1', mode: 'set', delta: -10, onHand: 30 } }]);
    given(setOnHand('tee-m', 'wh-1', 40, { sourceSeq: '500', source: 'pg:main' }))
      .when(setOnHand('tee-m', 'wh-2', 30, { sourceSeq: '3', source: 'pg:main' }))
      .then([{ type: 'stock_adjustment', sourceSeq: '3', source: 'pg:main', data: { sku: 'tee-m', location: 'wh-2', mode: 'set', delta: 30, onHand: 30 } }]);
  });

  it('records an oversell when a recount lands below what is sold and held', () => {
    const result = given(receive('tee-m', 'wh-1', 10), reserve('r1', [{ sku: 'tee-m', quantity: 4 }]), { type: 'commit', reservationId: 'r1' }, reserve('r2', [{ sku: 'tee-m', quantity: 3 }]))
      .when(setOnHand('tee-m', 'wh-1', 5, { sourceSeq: '9', source: 'pg:main' }))
      .then([
        { type: 'stock_adjustment', sourceSeq: '9', source: 'pg:main', data: { sku: 'tee-m', location: 'wh-1', mode: 'set', delta: -5, onHand: 5 } },
        { type: 'conflict_detected', source: 'pg:main', data: { kind: 'oversell', sku: 'tee-m', location: 'wh-1', shortfall: 2 } },
      ]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 5, committed: 4, reserved: 3 });
  });

  it('refuses a negative set and a set above the limit', () => {
    given(receive('tee-m', 'wh-1', 3)).when(setOnHand('tee-m', 'wh-1', -1)).thenRejects('INVALID_QUANTITY', { onHand: 3, delta: -4 });
    given().when(setOnHand('tee-m', 'wh-1', limits.quantityMax + 1)).thenRejects('INVALID_QUANTITY', { onHand: 0, delta: limits.quantityMax + 1 });
  });

  it('does not record the sequence of a refused set', () => {
    const result = given(setOnHand('tee-m', 'wh-1', 4, { sourceSeq: '1', source: 'pg:main' }))
      .when(setOnHand('tee-m', 'wh-1', -1, { sourceSeq: '2', source: 'pg:main' }))
      .thenRejects('INVALID_QUANTITY');
    expect(result.tenant.sourceSeqs.get('tee-m\u0000wh-1\u0000pg:main')).toBe('1');
  });

  it('adjusts a deleted SKU (the source of record still counts it)', () => {
    const result = given(receive('tee-m', 'wh-1', 3), { type: 'delete_sku', sku: 'tee-m' }).when(setOnHand('tee-m', 'wh-1', 8)).then([
      { type: 'stock_adjustment', data: { sku: 'tee-m', location: 'wh-1', mode: 'set', delta: 5, onHand: 8 } },
    ]);
    expect(result.tenant.skus.get('tee-m')?.deleted).toBe(true);
  });
});
