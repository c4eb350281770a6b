// Specs for delete_sku / restore_sku, set_channel_policy and record_sync.

import { describe, expect, it } from 'vitest';
import type { CommandDraft } from '../../support/ledger-dsl.js';
import { given, receive, reserve } from '../../support/ledger-dsl.js';

const deleteSku: CommandDraft = { type: 'delete_sku', sku: 'tee-m' };
const restoreSku: CommandDraft = { type: 'restore_sku', sku: 'tee-m' };

describe('delete_sku', () => {
  it('marks the SKU deleted and shows every channel zero', () => {
    const result = given(receive('tee-m', 'wh-1', 10)).when(deleteSku).then([{ type: 'sku_deleted', data: { sku: 'tee-m' } }]);
    expect(result.tenant.skus.get('tee-m')).toMatchObject({ deleted: true, version: 2 });
    expect(result.availableToSell('web', 'tee-m')).toBe(0);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 10, committed: 0, reserved: 0 });
  });

  it('refuses new holds with SKU_DELETED but lets existing ones finish', () => {
    given(receive('tee-m', 'wh-1', 10), deleteSku).when(reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }])).thenRejects('SKU_DELETED', { sku: 'tee-m' });
    given(receive('tee-m', 'wh-1', 10), reserve('cart-1', [{ sku: 'tee-m', quantity: 1 }]), deleteSku)
      .when({ type: 'commit', reservationId: 'cart-1' })
      .then([{ type: 'order_committed', data: { reservationId: 'cart-1', channel: 'web', direct: false, lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 1 }] } }]);
  });

  it('emits nothing for a SKU already deleted', () => {
    given(receive('tee-m', 'wh-1', 10), deleteSku).when(deleteSku).then([]);
  });

  it('refuses a SKU it has never seen with UNKNOWN_SKU', () => {
    given().when(deleteSku).thenRejects('UNKNOWN_SKU', { sku: 'tee-m' });
  });
});

describe('restore_sku', () => {
  it('brings a deleted SKU back with its stock', () => {
    const result = given(receive('tee-m', 'wh-1', 10), deleteSku).when(restoreSku).then([{ type: 'sku_restored', data: { sku: 'tee-m' } }]);
    expect(result.tenant.skus.get('tee-m')).toMatchObject({ deleted: false, version: 3 });
    expect(result.availableToSell('web', 'tee-m')).toBe(10);
  });

  it('lets a restored SKU be reserved again', () => {
    given(receive('tee-m', 'wh-1', 10), deleteSku, restoreSku).when(reserve('cart-1', [{ sku: 'tee-m', quantity: 2 }], { ttlMs: 1_000, timeMs: 0 })).then([
      { type: 'order_reserved', data: { reservationId: 'cart-1', channel: 'web', expiresAt: '1970-01-01T00:00:01.000Z', lines: [{ sku: 'tee-m', location: 'wh-1', quantity: 2 }] } },
    ]);
  });

  it('emits nothing for a SKU that is not deleted', () => {
    given(receive('tee-m', 'wh-1', 10)).when(restoreSku).then([]);
  });

  it('refuses a SKU it has never seen with UNKNOWN_SKU', () => {
    given().when(restoreSku).thenRejects('UNKNOWN_SKU', { sku: 'tee-m' });
  });
});

describe('set_channel_policy', () => {
  it('records the policy and the channel sees stock through it', () => {
    const result = given(receive('tee-m', 'wh-1', 10), receive('tee-m', 'wh-2', 5))
      .when({ type: 'set_channel_policy', channel: 'shopify', locations: ['wh-2'], bufferUnits: 1, maxUnits: 3, backorder: false })
      .then([{ type: 'channel_policy_set', data: { channel: 'shopify', locations: ['wh-2'], bufferUnits: 1, maxUnits: 3, backorder: false, version: 1 } }]);
    expect(result.tenant.channels.get('shopify')).toEqual({ locations: ['wh-2'], bufferUnits: 1, maxUnits: 3, backorder: false, version: 1 });
    expect(result.availableToSell('shopify', 'tee-m')).toBe(3);
    expect(result.availableToSell('web', 'tee-m')).toBe(15);
  });

  it('replaces an earlier policy of the same channel', () => {
    const result = given(receive('tee-m', 'wh-1', 10), { type: 'set_channel_policy', channel: 'shopify', locations: ['wh-2'], bufferUnits: 1, maxUnits: 3, backorder: false })
      .when({ type: 'set_channel_policy', channel: 'shopify', locations: null, bufferUnits: 2, maxUnits: null, backorder: true })
      .then([{ type: 'channel_policy_set', data: { channel: 'shopify', locations: null, bufferUnits: 2, maxUnits: null, backorder: true, version: 2 } }]);
    expect(result.availableToSell('shopify', 'tee-m')).toBe(8);
    expect(result.tenant.channels.get('shopify')?.version).toBe(2);
  });
});

describe('record_sync', () => {
  it('records the acknowledged push and changes no stock', () => {
    const result = given(receive('tee-m', 'wh-1', 10))
      .when({ type: 'record_sync', channel: 'shopify', sku: 'tee-m', quantity: 10, latencyMs: 42, source: 'shopify' })
      .then([{ type: 'sync_complete', source: 'shopify', data: { channel: 'shopify', sku: 'tee-m', quantity: 10, latencyMs: 42 } }]);
    expect(result.tenant.skus.get('tee-m')?.version).toBe(1);
    expect(result.stock('tee-m', 'wh-1')).toEqual({ onHand: 10, committed: 0, reserved: 0 });
  });
});
