// Specs for what happens to a hold after reserve: commit, release, cancel, fulfil, and direct sales.

import { describe, expect, it } from 'vitest';
import type { CommandDraft } from '../../support/ledger-dsl.js';
import { given, receive, reserve, t0Ms } from '../../support/ledger-dsl.js';

const atMs = t0Ms + 30_000;
const line = { sku: 'tee-m', location: 'wh-1', quantity: 3 };

function sale(reservationId: string, lines: Array<{ sku: string; quantity: number; location?: string }>, extra: Partial<CommandDraft> = {}): CommandDraft {
  return { type: 'record_sale', reservationId, channel: 'shopify', lines, ...extra } as CommandDraft;
}

const stocked = receive('tee-m', 'wh-1', 10);
const held = reserve('cart-1', [{ sku: 'tee-m', quantity: 3 }], { orderRef: 'web-1', ttlMs: 60_000 });
const commit: CommandDraft = { type: 'commit', reservationId: 'cart-1' };
const release: CommandDraft = { type: 'release', reservationId: 'cart-1', reason: 'released' };
const cancel: CommandDraft = { type: 'release', reservationId: 'cart-1', reason: 'cancelled' };
const fulfil: CommandDraft = { type: 'fulfil', reservationId: 'cart-1' };

describe('record_sale (a sale the channel already made)', () => {
  it('commits stock directly, without a hold', () => {
    const result = given(stocked)
      .when(sale('shop-1', [{ sku: 'tee-m', quantity: 4 }], { orderRef: '#1001', source: 'shopify' }))
      .then([{ type: 'order_committed', source: 'shopify', data: { reservationId: 'shop-1', channel: 'shopify', direct: true, orderRef: '#1001', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 4 }] } }]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 10, committed: 4, reserved: 0 });
    expect(result.reservation('shop-1')).toMatchObject({ status: 'committed', channel: 'shopify', orderRef: '#1001', expiresAtMs: 0 });
    expect(result.tenant.expiries).toEqual([]);
  });

  it('accepts a sale beyond stock as a fact and records the oversell per location', () => {
    const result = given(stocked, receive('tee-m', 'wh-2', 1))
      .when(sale('shop-1', [{ sku: 'tee-m', quantity: 14 }], { orderRef: '#1001' }))
      .then([
        { type: 'order_committed', data: { reservationId: 'shop-1', channel: 'shopify', direct: true, orderRef: '#1001', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 13 }, { sku: 'tee-m', location: 'wh-2', quantity: 1 }] } },
        { type: 'conflict_detected', data: { kind: 'oversell', sku: 'tee-m', location: 'wh-1', shortfall: 3, channel: 'shopify', orderRef: '#1001' } },
      ]);
    expect(result.available('tee-m', 'wh-1')).toBe(-3);
    expect(result.availableToSell('shopify', 'tee-m')).toBe(0);
    expect(result.availableToSell('web', 'tee-m')).toBe(0);
  });

  it('counts the whole line as the shortfall when the location was already short', () => {
    given(stocked, reserve('r0', [{ sku: 'tee-m', quantity: 10 }]), receive('tee-m', 'wh-1', -2))
      .when(sale('shop-1', [{ sku: 'tee-m', quantity: 3, location: 'wh-1' }]))
      .then([
        { type: 'order_committed', data: { reservationId: 'shop-1', channel: 'shopify', direct: true, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 3 }] } },
        { type: 'conflict_detected', data: { kind: 'oversell', sku: 'tee-m', location: 'wh-1', shortfall: 3, channel: 'shopify' } },
      ]);
  });

  it('ignores the channel buffer: the units were sold already', () => {
    given(stocked, { type: 'set_channel_policy', channel: 'shopify', locations: null, bufferUnits: 5, maxUnits: null, backorder: false })
      .when(sale('shop-1', [{ sku: 'tee-m', quantity: 8 }]))
      .then([{ type: 'order_committed', data: { reservationId: 'shop-1', channel: 'shopify', direct: true, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 8 }] } }]);
  });

  it('records a sale of a deleted SKU', () => {
    given(stocked, { type: 'delete_sku', sku: 'tee-m' })
      .when(sale('shop-1', [{ sku: 'tee-m', quantity: 1 }]))
      .then([{ type: 'order_committed', data: { reservationId: 'shop-1', channel: 'shopify', direct: true, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1 }] } }]);
  });

  it('refuses an order id that is already recorded', () => {
    given(stocked, sale('shop-1', [{ sku: 'tee-m', quantity: 1 }]))
      .when(sale('shop-1', [{ sku: 'tee-m', quantity: 1 }]))
      .thenRejects('RESERVATION_EXISTS', { reservationId: 'shop-1' });
  });

  it('is fulfilled like any committed order', () => {
    const result = given(stocked, sale('cart-1', [{ sku: 'tee-m', quantity: 4 }]))
      .when(fulfil)
      .then([{ type: 'order_fulfilled', data: { reservationId: 'cart-1', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 4 }] } }]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 6, committed: 0, reserved: 0 });
  });
});

describe('commit', () => {
  it('turns a hold into a committed order, keeping its order reference', () => {
    const result = given(stocked, held).when(commit).then([
      { type: 'order_committed', data: { reservationId: 'cart-1', channel: 'web', direct: false, orderRef: 'web-1', lines: [line] } },
    ]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 10, committed: 3, reserved: 0 });
    expect(result.available('tee-m', 'wh-1')).toBe(7);
    expect(result.reservation('cart-1')?.status).toBe('committed');
  });

  it('takes the order reference of the commit when it has one', () => {
    const result = given(stocked, held).when({ ...commit, orderRef: 'order-77' }).then([
      { type: 'order_committed', data: { reservationId: 'cart-1', channel: 'web', direct: false, orderRef: 'order-77', lines: [line] } },
    ]);
    expect(result.reservation('cart-1')?.orderRef).toBe('order-77');
  });

  it('commits a hold one millisecond before it expires', () => {
    given(stocked, { ...held, timeMs: atMs }).when({ ...commit, timeMs: atMs + 59_999 }).then([
      { type: 'order_committed', data: { reservationId: 'cart-1', channel: 'web', direct: false, orderRef: 'web-1', lines: [line] } },
    ]);
  });

  it('refuses a hold at or past its expiry with RESERVATION_EXPIRED, even before a tick released it', () => {
    const result = given(stocked, { ...held, timeMs: atMs }).when({ ...commit, timeMs: atMs + 60_000 })
      .thenRejects('RESERVATION_EXPIRED', { reservationId: 'cart-1', expiredAtMs: atMs + 60_000 });
    expect(result.stock('tee-m', 'wh-1').reserved).toBe(3);
  });

  it('refuses an unknown reservation with UNKNOWN_RESERVATION', () => {
    given(stocked).when(commit).thenRejects('UNKNOWN_RESERVATION', { reservationId: 'cart-1' });
  });

  it('refuses a reservation that is not held with RESERVATION_NOT_HELD and its status', () => {
    given(stocked, held, commit).when(commit).thenRejects('RESERVATION_NOT_HELD', { reservationId: 'cart-1', status: 'committed' });
    given(stocked, held, release).when(commit).thenRejects('RESERVATION_NOT_HELD', { status: 'released' });
    given(stocked, held, cancel).when(commit).thenRejects('RESERVATION_NOT_HELD', { status: 'cancelled' });
    given(stocked, held, commit, fulfil).when(commit).thenRejects('RESERVATION_NOT_HELD', { status: 'fulfilled' });
  });

  it('refuses a hold the ticker released as expired, as it refuses one the ticker has not reached', () => {
    const expiry = { type: 'expire_due', nowMs: atMs + 60_000, timeMs: atMs + 60_000 } as const;
    given(stocked, { ...held, timeMs: atMs }, expiry)
      .when({ ...commit, timeMs: atMs + 60_001 }).thenRejects('RESERVATION_EXPIRED', { reservationId: 'cart-1', expiredAtMs: atMs + 60_000 });
    given(stocked, { ...held, timeMs: atMs })
      .when({ ...commit, timeMs: atMs + 60_001 }).thenRejects('RESERVATION_EXPIRED', { reservationId: 'cart-1', expiredAtMs: atMs + 60_000 });
  });
});

describe('release', () => {
  it('gives a hold back', () => {
    const result = given(stocked, held).when(release).then([
      { type: 'reservation_released', data: { reservationId: 'cart-1', reason: 'released', from: 'held', lines: [line] } },
    ]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 10, committed: 0, reserved: 0 });
    expect(result.reservation('cart-1')?.status).toBe('released');
    expect(result.tenant.expiries).toEqual([]);
  });

  it('cancels a hold', () => {
    const result = given(stocked, held).when(cancel).then([
      { type: 'reservation_released', data: { reservationId: 'cart-1', reason: 'cancelled', from: 'held', lines: [line] } },
    ]);
    expect(result.stock('tee-m', 'wh-1').reserved).toBe(0);
    expect(result.reservation('cart-1')?.status).toBe('cancelled');
  });

  it('cancels a committed order and gives its stock back', () => {
    const result = given(stocked, held, commit).when(cancel).then([
      { type: 'reservation_released', data: { reservationId: 'cart-1', reason: 'cancelled', from: 'committed', lines: [line] } },
    ]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 10, committed: 0, reserved: 0 });
  });

  it('cancels a direct sale', () => {
    const result = given(stocked, sale('cart-1', [{ sku: 'tee-m', quantity: 2 }])).when(cancel).then([
      { type: 'reservation_released', data: { reservationId: 'cart-1', reason: 'cancelled', from: 'committed', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 2 }] } },
    ]);
    expect(result.stock('tee-m', 'wh-1').committed).toBe(0);
  });

  it('releases a hold that is past its expiry but not yet expired by a tick', () => {
    given(stocked, { ...held, timeMs: atMs }).when({ ...release, timeMs: atMs + 120_000 }).then([
      { type: 'reservation_released', data: { reservationId: 'cart-1', reason: 'released', from: 'held', lines: [line] } },
    ]);
  });

  it('refuses to release a committed order (only cancel undoes it)', () => {
    given(stocked, held, commit).when(release).thenRejects('RESERVATION_NOT_HELD', { reservationId: 'cart-1', status: 'committed' });
  });

  it('refuses to release or cancel twice, or after fulfilment or expiry', () => {
    given(stocked, held, release).when(release).thenRejects('RESERVATION_NOT_HELD', { status: 'released' });
    given(stocked, held, release).when(cancel).thenRejects('RESERVATION_NOT_HELD', { status: 'released' });
    given(stocked, held, commit, cancel).when(cancel).thenRejects('RESERVATION_NOT_HELD', { status: 'cancelled' });
    given(stocked, held, commit, fulfil).when(cancel).thenRejects('RESERVATION_NOT_HELD', { status: 'fulfilled' });
    given(stocked, { ...held, timeMs: atMs }, { type: 'expire_due', nowMs: atMs + 60_000, timeMs: atMs + 60_000 })
      .when({ ...release, timeMs: atMs + 60_001 }).thenRejects('RESERVATION_NOT_HELD', { status: 'expired' });
  });

  it('refuses an unknown reservation with UNKNOWN_RESERVATION', () => {
    given(stocked).when(cancel).thenRejects('UNKNOWN_RESERVATION', { reservationId: 'cart-1' });
  });
});

describe('fulfil', () => {
  it('ships a committed order: committed and on hand both go down', () => {
    const result = given(stocked, held, commit).when(fulfil).then([
      { type: 'order_fulfilled', data: { reservationId: 'cart-1', lines: [line] } },
    ]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 7, committed: 0, reserved: 0 });
    expect(result.available('tee-m', 'wh-1')).toBe(7);
    expect(result.reservation('cart-1')?.status).toBe('fulfilled');
  });

  it('refuses to ship an oversold order before its stock arrived (INVALID_QUANTITY), and ships it once it has', () => {
    // Shipped first, on hand would stop at 0 and the 3 units still to come would read as free to sell.
    given(receive('tee-m', 'wh-1', 2), sale('cart-1', [{ sku: 'tee-m', quantity: 5 }])).when(fulfil)
      .thenRejects('INVALID_QUANTITY', { sku: 'tee-m', location: 'wh-1', onHand: 2, delta: -5 });
    const result = given(receive('tee-m', 'wh-1', 2), sale('cart-1', [{ sku: 'tee-m', quantity: 5 }]), receive('tee-m', 'wh-1', 3)).when(fulfil).then([
      { type: 'order_fulfilled', data: { reservationId: 'cart-1', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 5 }] } },
    ]);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 0, committed: 0, reserved: 0 });
  });

  it('counts every line of a SKU at one location against what is on hand there', () => {
    const twoLines = sale('cart-1', [{ sku: 'tee-m', quantity: 2 }, { sku: 'tee-m', quantity: 2 }]);
    given(receive('tee-m', 'wh-1', 3), twoLines).when(fulfil).thenRejects('INVALID_QUANTITY', { sku: 'tee-m', location: 'wh-1', onHand: 3, delta: -4 });
  });

  it('refuses a hold, a fulfilled order and a cancelled one with RESERVATION_NOT_COMMITTED', () => {
    given(stocked, held).when(fulfil).thenRejects('RESERVATION_NOT_COMMITTED', { reservationId: 'cart-1', status: 'held' });
    given(stocked, held, commit, fulfil).when(fulfil).thenRejects('RESERVATION_NOT_COMMITTED', { status: 'fulfilled' });
    given(stocked, held, commit, cancel).when(fulfil).thenRejects('RESERVATION_NOT_COMMITTED', { status: 'cancelled' });
  });

  it('refuses an unknown reservation with UNKNOWN_RESERVATION', () => {
    given(stocked).when(fulfil).thenRejects('UNKNOWN_RESERVATION', { reservationId: 'cart-1' });
  });
});
