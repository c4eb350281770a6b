// Read-side quantities: per-location availability and a channel's available-to-sell.

import { defaultChannelPolicy, availableOf } from './state.js';
import type { ChannelPolicy, SkuState, TenantState } from './state.js';

export function channelPolicyOf(tenant: TenantState, channel: string): ChannelPolicy {
  return tenant.channels.get(channel) ?? defaultChannelPolicy;
}

/** The locations a channel sells a SKU from, in the order holds are filled. */
export function sellingLocations(policy: ChannelPolicy, sku: SkuState | undefined): string[] {
  if (policy.locations !== null) return policy.locations;
  if (sku === undefined) return [];
  sku.sortedLocations ??= [...sku.locations.keys()].sort();
  return sku.sortedLocations;
}

/** Sum of available units over the channel's locations, before buffer and maximum. */
export function channelAvailableRaw(policy: ChannelPolicy, sku: SkuState | undefined): number {
  if (sku === undefined) return 0;
  let total = 0;
  for (const location of sellingLocations(policy, sku)) {
    const stock = sku.locations.get(location);
    if (stock !== undefined) total += availableOf(stock);
  }
  return total;
}

/** clamp(sum of available over the channel's locations - buffer, 0, max); zero for a deleted SKU. */
export function availableToSell(policy: ChannelPolicy, sku: SkuState | undefined): number {
  if (sku === undefined || sku.deleted) return 0;
  const raw = channelAvailableRaw(policy, sku) - policy.bufferUnits;
  const floor = raw < 0 ? 0 : raw;
  return policy.maxUnits === null ? floor : Math.min(floor, policy.maxUnits);
}

export interface SkuTotals {
  onHand: number;
  committed: number;
  reserved: number;
  available: number;
}

export function skuTotals(sku: SkuState | undefined): SkuTotals {
  const totals = { onHand: 0, committed: 0, reserved: 0, available: 0 };
  if (sku === undefined) return totals;
  for (const stock of sku.locations.values()) {
    totals.onHand += stock.onHand;
    totals.committed += stock.committed;
    totals.reserved += stock.reserved;
    totals.available += availableOf(stock);
  }
  return totals;
}
