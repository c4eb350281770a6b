// Bugs the property tests found in the ledger, each kept here so it cannot come back.

import { describe, expect, it } from 'vitest';
import { execute, fromSnapshot, initialState, parseTime, formatTime, toSnapshot } from '../../../src/core/index.js';
import type { Command } from '../../../src/core/index.js';
import { given, receive, reserve, setOnHand } from '../../support/ledger-dsl.js';

const policy = (channel: string, locations: string[] | null, maxUnits: number | null = null) =>
  ({ type: 'set_channel_policy' as const, channel, locations, bufferUnits: 0, maxUnits, backorder: false });

describe('ledger regressions', () => {
  it('a delta carrying an older sequence is refused and does not lower the applied sequence', () => {
    given(setOnHand('tee', 'wh', 40, { source: 'pg', sourceSeq: '10' }))
      .when(receive('tee', 'wh', 1, { source: 'pg', sourceSeq: '5' }))
      .thenRejects('STALE_SEQUENCE', { appliedSeq: '10', incomingSeq: '5' }, [
        { type: 'conflict_detected', source: 'pg', sourceSeq: '5', data: { kind: 'stale_sequence', sku: 'tee', location: 'wh', conflictSource: 'pg', appliedSeq: '10', incomingSeq: '5' } },
      ]);
  });

  it('a reservation cannot take more than the channel shows (its maximum)', () => {
    given(receive('tee', 'wh', 10), policy('m', null, 3))
      .when(reserve('cart', [{ sku: 'tee', quantity: 5 }], { channel: 'm' }))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee', requested: 5, available: 3 }] });
  });

  it('a location named twice in a policy is counted once', () => {
    given(receive('tee', 'y', 5), policy('dup', ['y', 'y']))
      .when(reserve('cart', [{ sku: 'tee', quantity: 8 }], { channel: 'dup' }))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee', requested: 8, available: 5 }] });
  });

  it('a reservation or idempotency key named __proto__ survives a snapshot', () => {
    const state = initialState();
    const run = (command: Omit<Command, 'id' | 'timeMs' | 'tenant'>, index: number) =>
      execute(state, { ...command, id: `c${index}`, timeMs: 1_700_000_000_000 + index, tenant: 't' } as Command);
    run({ type: 'adjust_stock', sku: 'tee', location: 'wh', delta: 5 } as Omit<Command, 'id' | 'timeMs' | 'tenant'>, 0);
    run({ type: 'reserve', reservationId: '__proto__', channel: 'web', lines: [{ sku: 'tee', quantity: 2 }], ttlMs: 60_000, idempotencyKey: '__proto__' } as Omit<Command, 'id' | 'timeMs' | 'tenant'>, 1);
    const restored = fromSnapshot(JSON.parse(JSON.stringify(toSnapshot(state, { withIdempotency: true }))));
    expect(restored.tenants.get('t')?.reservations.get('__proto__')?.status).toBe('held');
    expect(restored.tenants.get('t')?.idempotency.has('__proto__')).toBe(true);
  });

  it('a cart with one SKU in two locations raises its version once', () => {
    const result = given(receive('a', 'x', 1), receive('a', 'y', 1), receive('b', 'x', 1))
      .when(reserve('cart', [{ sku: 'a', quantity: 1, location: 'x' }, { sku: 'b', quantity: 1 }, { sku: 'a', quantity: 1, location: 'y' }]))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart', channel: 'web', expiresAt: expect.any(String) as unknown as string, lines: [
        { sku: 'a', location: 'x', quantity: 1 }, { sku: 'b', location: 'x', quantity: 1 }, { sku: 'a', location: 'y', quantity: 1 }] } }]);
    expect(result.tenant.skus.get('a')?.version).toBe(3);
  });

  it('parseTime refuses impossible dates and offsets', () => {
    expect(parseTime('2024-02-31T00:00:00Z')).toBeNaN();
    expect(parseTime('2023-02-29T00:00:00Z')).toBeNaN();
    expect(parseTime('2024-02-29T00:00:00Z')).toBe(Date.UTC(2024, 1, 29));
    expect(parseTime('2024-01-01T00:00:00+99:99')).toBeNaN();
    // The canonical form formatTime writes is read without a regex: it must refuse the same things.
    expect(parseTime('2024-02-31T00:00:00.000Z')).toBeNaN();
    expect(parseTime('2024-0a-01T00:00:00.000Z')).toBeNaN();
    expect(parseTime('2024-01-01T24:00:00.000Z')).toBeNaN();
    expect(parseTime('2024-02-29T23:59:59.999Z')).toBe(Date.UTC(2024, 1, 29, 23, 59, 59, 999));
    expect(parseTime(formatTime(Date.UTC(2026, 10, 27, 13, 5, 7, 9)))).toBe(Date.UTC(2026, 10, 27, 13, 5, 7, 9));
  });
});
