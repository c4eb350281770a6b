// Specs for reserve: filling carts from a channel's locations, all or nothing, buffers, backorders.

import { describe, expect, it } from 'vitest';
import { formatTime } from '../../../src/core/time.js';
import type { CommandDraft } from '../../support/ledger-dsl.js';
import { given, receive, reserve, t0Ms } from '../../support/ledger-dsl.js';

/** The instant every `when` below is pinned to, well after its givens. */
const atMs = t0Ms + 3_600_000;
const ttlMs = 60_000;
const expiresAt = formatTime(atMs + ttlMs);

function reserveAt(reservationId: string, lines: Array<{ sku: string; quantity: number; location?: string }>, extra: Partial<CommandDraft> = {}): CommandDraft {
  return reserve(reservationId, lines, { timeMs: atMs, ttlMs, ...extra });
}

function policy(channel: string, locations: string[] | null, bufferUnits = 0, maxUnits: number | null = null, backorder = false): CommandDraft {
  return { type: 'set_channel_policy', channel, locations, bufferUnits, maxUnits, backorder };
}

describe('reserve a single line', () => {
  it('holds stock from the only location and records the hold', () => {
    const result = given(receive('tee-m', 'wh-1', 10))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 3 }], { orderRef: 'web-1001' }))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'web', orderRef: 'web-1001', expiresAt, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 3 }] } }]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 10, committed: 0, reserved: 3 });
    expect(result.available('tee-m', 'wh-1')).toBe(7);
    expect(result.availableToSell('web', 'tee-m')).toBe(7);
    expect(result.reservation('cart-1')).toEqual({
      id: 'cart-1', channel: 'web', status: 'held', expiresAtMs: atMs + ttlMs, createdAtMs: atMs, orderRef: 'web-1001',
      lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 3 }],
    });
    expect(result.tenant.expiries).toEqual([{ expiresAtMs: atMs + ttlMs, id: 'cart-1' }]);
  });

  it('takes everything there is', () => {
    given(receive('tee-m', 'wh-1', 3))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 3 }]))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'web', expiresAt, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 3 }] } }]);
  });

  it('holds at the location the line names', () => {
    const result = given(receive('tee-m', 'wh-1', 10), receive('tee-m', 'wh-2', 10))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 4, location: 'wh-2' }]))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'web', expiresAt, lines: [{ sku: 'tee-m', location: 'wh-2', quantity: 4 }] } }]);
    expect(result.stock('tee-m', 'wh-1').reserved).toBe(0);
    expect(result.stock('tee-m', 'wh-2').reserved).toBe(4);
  });

  it('without a location, fills from the locations in name order and skips empty and oversold ones', () => {
    const result = given(
      receive('tee-m', 'wh-c', 5), receive('tee-m', 'wh-a', 2), receive('tee-m', 'wh-b', 1),
      reserveAt('other', [{ sku: 'tee-m', quantity: 1, location: 'wh-b' }], { timeMs: t0Ms }), receive('tee-m', 'wh-b', -1),
      receive('tee-m', 'wh-d', 4), reserve('sold', [{ sku: 'tee-m', quantity: 4, location: 'wh-d' }]), receive('tee-m', 'wh-d', -2),
    )
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 4 }]))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'web', expiresAt, lines: [{ sku: 'tee-m', location: 'wh-a', quantity: 2 }, { sku: 'tee-m', location: 'wh-c', quantity: 2 }] } }]);
    expect(result.available('tee-m', 'wh-d')).toBe(-2);
    expect(result.available('tee-m', 'wh-c')).toBe(3);
  });

  it('refuses more than there is with INSUFFICIENT_STOCK, requested and available', () => {
    const result = given(receive('tee-m', 'wh-1', 2), receive('tee-m', 'wh-2', 1))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 4 }]))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee-m', requested: 4, available: 3 }] });
    expect(result.stock('tee-m', 'wh-1').reserved).toBe(0);
    expect(result.reservation('cart-1')).toBeUndefined();
  });

  it('refuses more than the named location holds, naming the location', () => {
    given(receive('tee-m', 'wh-1', 2), receive('tee-m', 'wh-2', 10))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 3, location: 'wh-1' }]))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee-m', location: 'wh-1', requested: 3, available: 2 }] });
  });

  it('reports zero available for an unknown SKU and for a location the SKU is not stocked at', () => {
    given().when(reserveAt('cart-1', [{ sku: 'ghost', quantity: 1 }]))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'ghost', requested: 1, available: 0 }] });
    given(receive('tee-m', 'wh-1', 5)).when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 1, location: 'wh-9' }]))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee-m', location: 'wh-9', requested: 1, available: 0 }] });
  });

  it('reports zero, not a negative number, when the SKU is oversold', () => {
    given(receive('tee-m', 'wh-1', 5), reserve('r0', [{ sku: 'tee-m', quantity: 5 }]), receive('tee-m', 'wh-1', -3))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 1 }]))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee-m', requested: 1, available: 0 }] });
  });

  it('refuses a reservation id that already exists, whatever its state', () => {
    given(receive('tee-m', 'wh-1', 10), reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }]))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 1 }]))
      .thenRejects('RESERVATION_EXISTS', { reservationId: 'cart-1' });
    given(receive('tee-m', 'wh-1', 10), reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }]), { type: 'release', reservationId: 'cart-1', reason: 'released' })
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 1 }]))
      .thenRejects('RESERVATION_EXISTS', { reservationId: 'cart-1' });
  });

  it('refuses a deleted SKU with SKU_DELETED', () => {
    given(receive('tee-m', 'wh-1', 10), { type: 'delete_sku', sku: 'tee-m' })
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 1 }]))
      .thenRejects('SKU_DELETED', { sku: 'tee-m' });
  });
});

describe('reserve a cart of several lines', () => {
  it('holds every line in one event', () => {
    const result = given(receive('tee-m', 'wh-1', 10), receive('cap', 'wh-1', 5), receive('cap', 'wh-2', 5))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 2 }, { sku: 'cap', quantity: 7 }]))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'web', expiresAt, lines: [
        { sku: 'tee-m', location: 'wh-1', quantity: 2 }, { sku: 'cap', location: 'wh-1', quantity: 5 }, { sku: 'cap', location: 'wh-2', quantity: 2 },
      ] } }]);
    expect(result.tenant.skus.get('cap')?.version).toBe(3);
  });

  it('merges lines of the same SKU and location', () => {
    given(receive('tee-m', 'wh-1', 10))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 2 }, { sku: 'tee-m', quantity: 3, location: 'wh-1' }]))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'web', expiresAt, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 5 }] } }]);
  });

  it('is all or nothing: one short line refuses the cart and holds nothing', () => {
    const result = given(receive('tee-m', 'wh-1', 10), receive('cap', 'wh-1', 1))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 2 }, { sku: 'cap', quantity: 2 }, { sku: 'tee-m', quantity: 1 }]))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'cap', requested: 2, available: 1 }] });
    expect(result.stock('tee-m', 'wh-1').reserved).toBe(0);
    expect(result.stock('cap', 'wh-1').reserved).toBe(0);
  });

  it('reports every short line, counting what earlier lines of the cart took', () => {
    given(receive('tee-m', 'wh-1', 5), receive('cap', 'wh-1', 1))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 3 }, { sku: 'tee-m', quantity: 3 }, { sku: 'cap', quantity: 4, location: 'wh-1' }]))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [
        { sku: 'tee-m', requested: 3, available: 2 },
        { sku: 'cap', location: 'wh-1', requested: 4, available: 1 },
      ] });
  });

  it('counts a named-location line against the SKU total of later lines', () => {
    given(receive('tee-m', 'wh-1', 3), receive('tee-m', 'wh-2', 3))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 3, location: 'wh-2' }, { sku: 'tee-m', quantity: 4 }]))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee-m', requested: 4, available: 3 }] });
  });

  it('refuses the whole cart when one SKU is deleted', () => {
    given(receive('tee-m', 'wh-1', 10), receive('cap', 'wh-1', 10), { type: 'delete_sku', sku: 'cap' })
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 1 }, { sku: 'cap', quantity: 1 }]))
      .thenRejects('SKU_DELETED', { sku: 'cap' });
  });
});

describe('reserve through a channel policy', () => {
  it('fills only from the channel locations, in the order the policy lists them', () => {
    const result = given(receive('tee-m', 'wh-1', 10), receive('tee-m', 'wh-2', 2), receive('tee-m', 'wh-3', 10), policy('b2b', ['wh-2', 'wh-3']))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 5 }], { channel: 'b2b' }))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'b2b', expiresAt, lines: [{ sku: 'tee-m', location: 'wh-2', quantity: 2 }, { sku: 'tee-m', location: 'wh-3', quantity: 3 }] } }]);
    expect(result.stock('tee-m', 'wh-1').reserved).toBe(0);
  });

  it('counts only the channel locations as available', () => {
    given(receive('tee-m', 'wh-1', 10), receive('tee-m', 'wh-2', 2), policy('b2b', ['wh-2']))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 3 }], { channel: 'b2b' }))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee-m', requested: 3, available: 2 }] });
  });

  it('refuses a line at a location the channel does not sell from with UNKNOWN_LOCATION', () => {
    given(receive('tee-m', 'wh-1', 10), policy('b2b', ['wh-2']))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 1, location: 'wh-1' }], { channel: 'b2b' }))
      .thenRejects('UNKNOWN_LOCATION', { location: 'wh-1', channel: 'b2b' });
  });

  it('holds back the buffer of the channel', () => {
    given(receive('tee-m', 'wh-1', 10), policy('shopify', null, 3))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 8 }], { channel: 'shopify' }))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee-m', requested: 8, available: 7 }] });
    const result = given(receive('tee-m', 'wh-1', 10), policy('shopify', null, 3))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 7 }], { channel: 'shopify' }))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'shopify', expiresAt, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 7 }] } }]);
    expect(result.availableToSell('shopify', 'tee-m')).toBe(0);
    expect(result.availableToSell('web', 'tee-m')).toBe(3);
  });

  it('holds back the buffer for a line at a named location too', () => {
    given(receive('tee-m', 'wh-1', 10), receive('tee-m', 'wh-2', 1), policy('shopify', null, 2))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 10, location: 'wh-1' }], { channel: 'shopify' }))
      .thenRejects('INSUFFICIENT_STOCK', { lines: [{ sku: 'tee-m', location: 'wh-1', requested: 10, available: 9 }] });
  });

  it('shows a channel at most its maximum', () => {
    const result = given(receive('tee-m', 'wh-1', 10), policy('marketplace', null, 1, 4))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 2 }], { channel: 'marketplace' }))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'marketplace', expiresAt, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 2 }] } }]);
    expect(result.availableToSell('marketplace', 'tee-m')).toBe(4);
    expect(result.availableToSell('web', 'tee-m')).toBe(8);
  });

  it('lets a backorder channel hold beyond stock at its first location, without an oversell incident', () => {
    const result = given(receive('tee-m', 'wh-2', 2), receive('tee-m', 'wh-1', 0), policy('preorder', ['wh-2', 'wh-1'], 0, null, true))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 5 }], { channel: 'preorder' }))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'preorder', expiresAt, lines: [{ sku: 'tee-m', location: 'wh-2', quantity: 5 }] } }]);
    expect(result.available('tee-m', 'wh-2')).toBe(-3);
    expect(result.availableToSell('preorder', 'tee-m')).toBe(0);
  });

  it('lets a backorder channel hold at a named location and an unknown SKU at the default location', () => {
    given(policy('preorder', null, 0, null, true))
      .when(reserveAt('cart-1', [{ sku: 'new-tee', quantity: 2 }, { sku: 'cap', quantity: 1, location: 'wh-7' }], { channel: 'preorder' }))
      .then([{ type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'preorder', expiresAt, lines: [{ sku: 'new-tee', location: 'default', quantity: 2 }, { sku: 'cap', location: 'wh-7', quantity: 1 }] } }]);
  });

  it('still refuses a deleted SKU on a backorder channel', () => {
    given(receive('tee-m', 'wh-1', 1), { type: 'delete_sku', sku: 'tee-m' }, policy('preorder', null, 0, null, true))
      .when(reserveAt('cart-1', [{ sku: 'tee-m', quantity: 1 }], { channel: 'preorder' }))
      .thenRejects('SKU_DELETED', { sku: 'tee-m' });
  });
});
