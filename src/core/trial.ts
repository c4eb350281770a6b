// A copy of the state to try a group of commands on, cheap in the size of the group rather than of the tenant.

import type { Command } from './commands.js';
import { dueReservations } from './decide.js';
import { limits } from './limits.js';
import { OverlayMap } from './overlay-map.js';
import type { LedgerState, LocationStock, SkuState, TenantState } from './state.js';

/**
 * The tenants `commands` name, copied so that executing the commands on the copy leaves `state` as it was.
 * Deciding and applying these commands changes in place only the SKUs and reservations they name (a commit,
 * release or fulfil changes the SKUs of its reservation's lines; an expiry tick, the reservations due at its
 * time and their SKUs); everything else changes by setting or deleting entries of the tenant's maps and
 * indexes. So the maps are overlaid (writes stay in the copy, reads fall through), the indexes copied, the
 * SKUs and reservations a command changes cloned, and the rest is shared.
 */
export function trialState(state: LedgerState, commands: readonly Command[]): LedgerState {
  const trial: LedgerState = { tenants: new Map() };
  const ticks = new Map<string, number>();
  for (const command of commands) {
    const live = state.tenants.get(command.tenant);
    // A tenant the state does not have yet is created in the copy when a command first touches it.
    if (live === undefined) continue;
    let tenant = trial.tenants.get(command.tenant);
    if (tenant === undefined) {
      tenant = containersOf(live);
      trial.tenants.set(command.tenant, tenant);
    }
    let reservations: string[] = 'reservationId' in command ? [command.reservationId] : [];
    if (command.type === 'expire_due') {
      // A tick releases the first holds due then. The ticks before it in the group took at most as many each,
      // and every other command at most one, from the front of the same order.
      const tick = (ticks.get(command.tenant) ?? 0) + 1;
      ticks.set(command.tenant, tick);
      reservations = dueReservations(live, command.nowMs, tick * limits.expirationsPerTickMax + commands.length).map((reservation) => reservation.id);
    }
    for (const id of reservations) cloneReservation(live, tenant, id);
    for (const sku of skusChangedBy(tenant, command, reservations)) {
      const skuState = live.skus.get(sku);
      if (skuState !== undefined && tenant.skus.get(sku) === skuState) tenant.skus.set(sku, cloneSku(skuState));
    }
  }
  return trial;
}

/** The live reservation under `id`, cloned into the copy unless the copy already has its own. */
function cloneReservation(live: TenantState, tenant: TenantState, id: string): void {
  const reservation = live.reservations.get(id);
  if (reservation !== undefined && tenant.reservations.get(id) === reservation) tenant.reservations.set(id, { ...reservation });
}

/**
 * The tenant's maps as overlays on the live ones, and its indexes copied; their entries shared. Index entries
 * are never changed in place. The indexes are arrays of references, copied at memory speed (a few
 * milliseconds for a million); the maps would take as many hundreds.
 */
function containersOf(tenant: TenantState): TenantState {
  return {
    skus: new OverlayMap(tenant.skus), reservations: new OverlayMap(tenant.reservations), channels: new OverlayMap(tenant.channels),
    sourceSeqs: new OverlayMap(tenant.sourceSeqs), idempotency: new OverlayMap(tenant.idempotency),
    expiries: tenant.expiries.slice(), finished: tenant.finished.slice(),
  };
}

function cloneSku(sku: SkuState): SkuState {
  const locations = new Map<string, LocationStock>();
  for (const [name, stock] of sku.locations) locations.set(name, { onHand: stock.onHand, committed: stock.committed, reserved: stock.reserved });
  return { deleted: sku.deleted, version: sku.version, locations, sortedLocations: sku.sortedLocations?.slice() };
}

/** The SKUs whose stock or flags a command may change; those of its reservations are read from the copy. */
function skusChangedBy(tenant: TenantState, command: Command, reservations: readonly string[]): string[] {
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
    case 'expire_due':
      return reservations.flatMap((id) => (tenant.reservations.get(id)?.lines ?? []).map((line) => line.sku));
    case 'set_channel_policy':
    case 'record_sync':
      return [];
  }
}
