// A copy of the state to try a group of commands on, cheap in the size of the group rather than of the tenant.

import type { Command } from './commands.js';
import type { LedgerState, LocationStock, SkuState, TenantState } from './state.js';

/**
 * The tenants `commands` name, copied so that executing the commands on the copy leaves `state` as it was.
 * Deciding and applying these commands changes in place only the SKUs and reservations they name (a commit,
 * release or fulfil changes the SKUs of its reservation's lines); everything else changes by setting or
 * deleting entries of the tenant's maps and indexes. So the maps and indexes are copied, the named SKUs and
 * reservations are cloned, and the rest is shared. Undefined when a command may change what it does not
 * name (expire_due releases whatever is due): the tenants must then be copied whole.
 */
export function trialState(state: LedgerState, commands: readonly Command[]): LedgerState | undefined {
  const trial: LedgerState = { tenants: new Map() };
  for (const command of commands) {
    if (command.type === 'expire_due') return undefined;
    const live = state.tenants.get(command.tenant);
    // A tenant the state does not have yet is created in the copy when a command first touches it.
    if (live === undefined) continue;
    let tenant = trial.tenants.get(command.tenant);
    if (tenant === undefined) {
      tenant = containersOf(live);
      trial.tenants.set(command.tenant, tenant);
    }
    for (const sku of skusChangedBy(tenant, command)) {
      const skuState = live.skus.get(sku);
      if (skuState !== undefined && tenant.skus.get(sku) === skuState) tenant.skus.set(sku, cloneSku(skuState));
    }
    if ('reservationId' in command) {
      const reservation = live.reservations.get(command.reservationId);
      if (reservation !== undefined && tenant.reservations.get(command.reservationId) === reservation) {
        tenant.reservations.set(command.reservationId, { ...reservation });
      }
    }
  }
  return trial;
}

/** The tenant's maps and indexes, copied; their entries shared. Index entries are never changed in place. */
function containersOf(tenant: TenantState): TenantState {
  return {
    skus: new Map(tenant.skus), reservations: new Map(tenant.reservations), channels: new Map(tenant.channels),
    sourceSeqs: new Map(tenant.sourceSeqs), idempotency: new Map(tenant.idempotency),
    expiries: tenant.expiries.slice(), finished: tenant.finished.slice(),
  };
}

function cloneSku(sku: SkuState): SkuState {
  const locations = new Map<string, LocationStock>();
  for (const [name, stock] of sku.locations) locations.set(name, { onHand: stock.onHand, committed: stock.committed, reserved: stock.reserved });
  return { deleted: sku.deleted, version: sku.version, locations, sortedLocations: sku.sortedLocations?.slice() };
}

/** The SKUs whose stock or flags a command may change; a reservation's own are read from the tenant. */
function skusChangedBy(tenant: TenantState, command: Command): string[] {
  switch (command.type) {
    case 'adjust_stock':
    case 'delete_sku':
    case 'restore_sku':
      return [command.sku];
    case 'reserve':
    case 'record_sale':
      return command.lines.map((line) => line.sku);
    case 'commit':
    case 'release':
    case 'fulfil':
      return (tenant.reservations.get(command.reservationId)?.lines ?? []).map((line) => line.sku);
    case 'set_channel_policy':
    case 'record_sync':
    case 'expire_due':
      return [];
  }
}
