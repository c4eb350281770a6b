// Specs for the read side: per-location availability and a channel's available-to-sell.

import { describe, expect, it } from 'vitest';
import { availableToSell, channelAvailableRaw, sellingLocations, skuTotals } from '../../../src/core/availability.js';
import type { ChannelPolicy, SkuState } from '../../../src/core/state.js';
import { defaultChannelPolicy } from '../../../src/core/state.js';

function sku(locations: Record<string, [number, number, number]>, deleted = false): SkuState {
  return { deleted, version: 1, locations: new Map(Object.entries(locations).map(([name, [onHand, committed, reserved]]) => [name, { onHand, committed, reserved }])) };
}

function policy(fields: Partial<ChannelPolicy>): ChannelPolicy {
  return { ...defaultChannelPolicy, ...fields };
}

describe('availableToSell', () => {
  const stock = sku({ 'wh-b': [10, 2, 3], 'wh-a': [4, 0, 0], 'wh-c': [1, 3, 0] });

  it('sums available over every location by default, an oversold one included', () => {
    expect(channelAvailableRaw(defaultChannelPolicy, stock)).toBe(5 + 4 - 2);
    expect(availableToSell(defaultChannelPolicy, stock)).toBe(7);
  });

  it('sums only the channel locations and ignores ones the SKU lacks', () => {
    expect(availableToSell(policy({ locations: ['wh-a', 'wh-z'] }), stock)).toBe(4);
  });

  it('takes off the buffer and never goes below zero', () => {
    expect(availableToSell(policy({ bufferUnits: 3 }), stock)).toBe(4);
    expect(availableToSell(policy({ bufferUnits: 30 }), stock)).toBe(0);
    expect(availableToSell(policy({ locations: ['wh-c'] }), stock)).toBe(0);
  });

  it('shows at most the maximum', () => {
    expect(availableToSell(policy({ maxUnits: 5 }), stock)).toBe(5);
    expect(availableToSell(policy({ maxUnits: 50 }), stock)).toBe(7);
    expect(availableToSell(policy({ maxUnits: 0 }), stock)).toBe(0);
  });

  it('is zero for a deleted or unknown SKU', () => {
    expect(availableToSell(defaultChannelPolicy, sku({ 'wh-a': [4, 0, 0] }, true))).toBe(0);
    expect(availableToSell(defaultChannelPolicy, undefined)).toBe(0);
  });

  it('fills from locations in name order by default, in policy order otherwise', () => {
    expect(sellingLocations(defaultChannelPolicy, stock)).toEqual(['wh-a', 'wh-b', 'wh-c']);
    expect(sellingLocations(policy({ locations: ['wh-c', 'wh-a'] }), stock)).toEqual(['wh-c', 'wh-a']);
    expect(sellingLocations(defaultChannelPolicy, undefined)).toEqual([]);
  });
});

describe('skuTotals', () => {
  it('adds up every location', () => {
    expect(skuTotals(sku({ 'wh-a': [10, 2, 3], 'wh-b': [1, 3, 0] }))).toEqual({ onHand: 11, committed: 5, reserved: 3, available: 3 });
    expect(skuTotals(undefined)).toEqual({ onHand: 0, committed: 0, reserved: 0, available: 0 });
  });
});
