// What each channel should show: available-to-sell per (tenant, channel, SKU), recomputed for what a batch touched.

import { availableToSell, channelPolicyOf } from '../core/index.js';
import type { LedgerState } from '../core/index.js';
import { allSkus } from './engine.js';
import type { CommittedBatch } from './engine.js';

export interface DesiredRow {
  tenant: string;
  channel: string;
  sku: string;
  quantity: number;
  changedAtMs: number;
  position: number;
}

/** Channels that sync, by tenant: only these get desired-state rows. */
export type SyncedChannels = Map<string, string[]>;

export function syncedChannels(channels: Array<{ tenant: string; id: string }>): SyncedChannels {
  const byTenant: SyncedChannels = new Map();
  for (const { tenant, id } of channels) byTenant.set(tenant, [...(byTenant.get(tenant) ?? []), id]);
  return byTenant;
}

/** Rows for every SKU the batch touched, on every synced channel of its tenant. */
export function desiredRowsFor(batch: CommittedBatch, state: LedgerState, channels: SyncedChannels, nowMs: number): DesiredRow[] {
  const rows: DesiredRow[] = [];
  const position = batch.events.at(-1)?.position ?? 0;
  for (const [tenantId, skus] of batch.touched) {
    const channelIds = channels.get(tenantId);
    const tenant = state.tenants.get(tenantId);
    if (channelIds === undefined || tenant === undefined) continue;
    const names = skus.has(allSkus) ? tenant.skus.keys() : skus.values();
    for (const sku of names) {
      const skuState = tenant.skus.get(sku);
      for (const channel of channelIds) {
        rows.push({ tenant: tenantId, channel, sku, quantity: availableToSell(channelPolicyOf(tenant, channel), skuState), changedAtMs: nowMs, position });
      }
    }
  }
  return rows;
}

/** Rows for every SKU of every synced tenant: seeds the outbox at start (unchanged rows are no-ops). */
export function allDesiredRows(state: LedgerState, channels: SyncedChannels, nowMs: number, position: number): DesiredRow[] {
  const touched = new Map<string, Set<string>>();
  for (const tenant of channels.keys()) touched.set(tenant, new Set([allSkus]));
  return desiredRowsFor({ events: [{ position, event: undefined as never }], touched }, state, channels, nowMs);
}
