// decide(state, command) -> outcome: the only place the ledger says yes or no. Pure; never mutates.

import { channelAvailableRaw, channelPolicyOf, sellingLocations } from './availability.js';
import type {
  AdjustStock, CartLine, Command, Commit, DeleteSku, ExpireDue, Fulfil, RecordSale, RecordSync, Release,
  Reserve, RestoreSku, SetChannelPolicy,
} from './commands.js';
import type { AllocatedLine, ConflictDetected, InventoryEvent } from './events.js';
import { defaultLocation, defaultSource, limits } from './limits.js';
import type { Outcome, Rejection, ShortLine } from './rejections.js';
import { absentTenant, availableOf, sourceSeqKey, stockAt } from './state.js';
import type { ChannelPolicy, ExpiryEntry, Reservation, SkuState, TenantState } from './state.js';
import { expiresBefore } from './evolve.js';
import { heapPop, heapPush } from './heap.js';
import { compareSequence, formatTime } from './time.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type EventDraft = DistributiveOmit<InventoryEvent, 'id' | 'tenant' | 'time' | 'source'> & { source?: string };

/** Builds the outcome of an accepted command from event drafts, stamping the envelope (no spreads: this is the hot path). */
function accept(command: Command, drafts: EventDraft[], rejection?: Rejection): Outcome {
  const time = formatTime(command.timeMs);
  const source = command.source ?? defaultSource;
  const events = new Array<InventoryEvent>(drafts.length);
  for (let index = 0; index < drafts.length; index += 1) {
    const draft = drafts[index] as EventDraft;
    const event = {
      id: drafts.length === 1 ? command.id : `${command.id}.${index}`,
      type: draft.type, tenant: command.tenant, time, source: draft.source ?? source,
    } as InventoryEvent;
    if (draft.sourceSeq !== undefined) event.sourceSeq = draft.sourceSeq;
    event.data = draft.data;
    events[index] = event;
  }
  return rejection === undefined ? { events } : { events, rejection };
}

function reject(rejection: Rejection): Outcome {
  return { events: [], rejection };
}

export function decide(state: TenantState | undefined, command: Command): Outcome {
  const tenant = state ?? absentTenant;
  switch (command.type) {
    case 'adjust_stock': return decideAdjust(tenant, command);
    case 'reserve': return decideReserve(tenant, command);
    case 'record_sale': return decideRecordSale(tenant, command);
    case 'commit': return decideCommit(tenant, command);
    case 'release': return decideRelease(tenant, command);
    case 'fulfil': return decideFulfil(tenant, command);
    case 'expire_due': return decideExpireDue(tenant, command);
    case 'delete_sku': return decideDeleteSku(tenant, command);
    case 'restore_sku': return decideRestoreSku(tenant, command);
    case 'set_channel_policy': return decideChannelPolicy(tenant, command);
    case 'record_sync': return decideRecordSync(command);
  }
}

function decideAdjust(tenant: TenantState, command: AdjustStock): Outcome {
  const { sku, location } = command;
  const skuState = tenant.skus.get(sku);
  const stock = stockAt(skuState, location);
  const source = command.source ?? defaultSource;
  if (command.sourceSeq !== undefined) {
    const applied = tenant.sourceSeqs.get(sourceSeqKey(sku, location, source));
    if (applied !== undefined && compareSequence(command.sourceSeq, applied) <= 0) {
      const conflict: EventDraft = {
        type: 'conflict_detected', sourceSeq: command.sourceSeq,
        data: { kind: 'stale_sequence', sku, location, conflictSource: source, appliedSeq: applied, incomingSeq: command.sourceSeq },
      };
      return accept(command, [conflict], {
        code: 'STALE_SEQUENCE', sku, location, source, appliedSeq: applied, incomingSeq: command.sourceSeq,
        message: `sequence ${command.sourceSeq} of ${source} is not newer than ${applied} already applied to ${sku} at ${location}`,
      });
    }
  }
  const onHand = command.set ?? stock.onHand + (command.delta ?? 0);
  const delta = onHand - stock.onHand;
  if (onHand < 0 || onHand > limits.quantityMax) {
    return reject({
      code: 'INVALID_QUANTITY', sku, location, onHand: stock.onHand, delta,
      message: `on hand of ${sku} at ${location} would be ${onHand}; it must stay within 0..${limits.quantityMax}`,
    });
  }
  const adjustment: EventDraft = {
    type: 'stock_adjustment',
    ...(command.sourceSeq === undefined ? {} : { sourceSeq: command.sourceSeq }),
    data: { sku, location, mode: command.set === undefined ? 'delta' : 'set', delta, onHand, ...(command.reason === undefined ? {} : { reason: command.reason }) },
  };
  // What this recount adds to the units sold beyond what is there, as a channel's sale counts it: a second
  // recount below an oversell already recorded is another incident only for the units it adds.
  const shortfall = Math.max(0, stock.committed + stock.reserved - onHand) - Math.max(0, -availableOf(stock));
  if (shortfall > 0) {
    return accept(command, [adjustment, { type: 'conflict_detected', data: { kind: 'oversell', sku, location, shortfall } }]);
  }
  return accept(command, [adjustment]);
}

interface Allocation {
  lines: AllocatedLine[];
  short: ShortLine[];
}

/** Fills cart lines from the channel's locations; reports every line that cannot be filled. */
function allocate(tenant: TenantState, policy: ChannelPolicy, lines: CartLine[], allowShort: boolean): Allocation {
  if (lines.length === 1) return allocateOne(tenant, policy, lines[0] as CartLine, allowShort);
  const remaining = new Map<string, number>();
  const taken = new Map<string, number>();
  const keyOf = (sku: string, location: string): string => `${sku}\u0000${location}`;
  const availableAt = (sku: string, location: string): number => {
    const key = keyOf(sku, location);
    return remaining.get(key) ?? availableOf(stockAt(tenant.skus.get(sku), location));
  };
  const take = (sku: string, location: string, quantity: number, out: AllocatedLine[]): void => {
    const key = keyOf(sku, location);
    remaining.set(key, availableAt(sku, location) - quantity);
    taken.set(sku, (taken.get(sku) ?? 0) + quantity);
    out.push({ sku, location, quantity });
  };
  const allocated: AllocatedLine[] = [];
  const short: ShortLine[] = [];
  for (const line of lines) {
    const skuState = tenant.skus.get(line.sku);
    const locations = sellingLocations(policy, skuState);
    const sellable = channelAvailableRaw(policy, skuState) - policy.bufferUnits;
    const budget = (policy.maxUnits === null ? sellable : Math.min(sellable, policy.maxUnits)) - (taken.get(line.sku) ?? 0);
    if (line.location !== undefined) {
      const free = Math.min(availableAt(line.sku, line.location), budget);
      if (free < line.quantity && !allowShort) {
        short.push({ sku: line.sku, location: line.location, requested: line.quantity, available: Math.max(free, 0) });
        continue;
      }
      take(line.sku, line.location, line.quantity, allocated);
      continue;
    }
    let needed = line.quantity;
    if (budget < needed && !allowShort) {
      short.push({ sku: line.sku, requested: line.quantity, available: Math.max(budget, 0) });
      continue;
    }
    for (const location of locations) {
      if (needed === 0) break;
      const free = availableAt(line.sku, location);
      if (free <= 0) continue;
      const quantity = Math.min(free, needed);
      take(line.sku, location, quantity, allocated);
      needed -= quantity;
    }
    if (needed === 0) continue;
    if (!allowShort) {
      short.push({ sku: line.sku, requested: line.quantity, available: line.quantity - needed });
      continue;
    }
    take(line.sku, locations[0] ?? defaultLocation, needed, allocated);
  }
  return { lines: mergeLines(allocated), short: exactly(short) };
}

/** The common one-line cart, without the bookkeeping a cart needs to share stock between its lines. */
function allocateOne(tenant: TenantState, policy: ChannelPolicy, line: CartLine, allowShort: boolean): Allocation {
  const skuState = tenant.skus.get(line.sku);
  const sellable = channelAvailableRaw(policy, skuState) - policy.bufferUnits;
  const budget = policy.maxUnits === null ? sellable : Math.min(sellable, policy.maxUnits);
  if (line.location !== undefined) {
    const free = Math.min(availableOf(stockAt(skuState, line.location)), budget);
    if (free < line.quantity && !allowShort) return { lines: [], short: [{ sku: line.sku, location: line.location, requested: line.quantity, available: Math.max(free, 0) }] };
    return { lines: [{ sku: line.sku, location: line.location, quantity: line.quantity }], short: [] };
  }
  if (budget < line.quantity && !allowShort) return { lines: [], short: [{ sku: line.sku, requested: line.quantity, available: Math.max(budget, 0) }] };
  const locations = sellingLocations(policy, skuState);
  const allocated: AllocatedLine[] = [];
  let needed = line.quantity;
  for (const location of locations) {
    if (needed === 0) break;
    const free = availableOf(stockAt(skuState, location));
    if (free <= 0) continue;
    const quantity = free < needed ? free : needed;
    allocated.push({ sku: line.sku, location, quantity });
    needed -= quantity;
  }
  if (needed > 0) {
    if (!allowShort) return { lines: [], short: [{ sku: line.sku, requested: line.quantity, available: line.quantity - needed }] };
    const fallback = locations[0] ?? defaultLocation;
    const existing = allocated.find((entry) => entry.location === fallback);
    if (existing === undefined) allocated.push({ sku: line.sku, location: fallback, quantity: needed });
    else existing.quantity += needed;
  }
  return { lines: exactly(allocated), short: [] };
}

/**
 * The same items in an array of their own length. An array filled by push keeps room for 17 items, 152 bytes
 * where one line needs 24: a hold keeps its lines for as long as the state keeps it (25 hours once finished),
 * and a refused keyed reservation keeps its short lines in its record for a day.
 */
function exactly<T>(items: T[]): T[] {
  return items.slice();
}

/**
 * The first line past the bound of one quantity. A cart's lines are each within it, but lines of one SKU that
 * land on one location are merged, and where stock does not bound them (a backorder, a recorded sale) their
 * sum could pass it, and the events' own bound with it.
 */
function oversizedLine(lines: readonly AllocatedLine[]): Rejection | undefined {
  for (const { sku, location, quantity } of lines) {
    if (quantity > limits.quantityMax) {
      return { code: 'INVALID_QUANTITY', sku, location, quantity, message: `the lines of ${sku} at ${location} add up to ${quantity}; at most ${limits.quantityMax} fit one line` };
    }
  }
  return undefined;
}

/** Merges lines that landed on the same SKU and location, keeping first-seen order. */
function mergeLines(lines: AllocatedLine[]): AllocatedLine[] {
  const merged = new Map<string, AllocatedLine>();
  for (const line of lines) {
    const key = `${line.sku}\u0000${line.location}`;
    const existing = merged.get(key);
    if (existing === undefined) merged.set(key, { ...line });
    else existing.quantity += line.quantity;
  }
  return [...merged.values()];
}

function checkLocations(policy: ChannelPolicy, channel: string, lines: CartLine[]): Rejection | undefined {
  if (policy.locations === null) return undefined;
  for (const line of lines) {
    if (line.location !== undefined && !policy.locations.includes(line.location)) {
      return { code: 'UNKNOWN_LOCATION', location: line.location, channel, message: `channel ${channel} does not sell from location ${line.location}` };
    }
  }
  return undefined;
}

function firstDeleted(tenant: TenantState, lines: CartLine[]): string | undefined {
  for (const line of lines) if (tenant.skus.get(line.sku)?.deleted === true) return line.sku;
  return undefined;
}

function decideReserve(tenant: TenantState, command: Reserve): Outcome {
  if (reservationAt(tenant, command.reservationId, command.timeMs) !== undefined) {
    return reject({ code: 'RESERVATION_EXISTS', reservationId: command.reservationId, message: `reservation ${command.reservationId} already exists` });
  }
  const deleted = firstDeleted(tenant, command.lines);
  if (deleted !== undefined) return reject({ code: 'SKU_DELETED', sku: deleted, message: `SKU ${deleted} is deleted` });
  const policy = channelPolicyOf(tenant, command.channel);
  const badLocation = checkLocations(policy, command.channel, command.lines);
  if (badLocation !== undefined) return reject(badLocation);
  const allocation = allocate(tenant, policy, command.lines, policy.backorder);
  if (allocation.short.length > 0) {
    return reject({ code: 'INSUFFICIENT_STOCK', lines: allocation.short, message: `not enough stock for ${allocation.short.length} of ${command.lines.length} lines` });
  }
  const oversized = oversizedLine(allocation.lines);
  if (oversized !== undefined) return reject(oversized);
  return accept(command, [{
    type: 'order_reserved',
    data: {
      reservationId: command.reservationId, channel: command.channel,
      ...(command.orderRef === undefined ? {} : { orderRef: command.orderRef }),
      expiresAt: formatTime(command.timeMs + command.ttlMs), lines: allocation.lines,
    },
  }]);
}

function decideRecordSale(tenant: TenantState, command: RecordSale): Outcome {
  if (reservationAt(tenant, command.reservationId, command.timeMs) !== undefined) {
    return reject({ code: 'RESERVATION_EXISTS', reservationId: command.reservationId, message: `order ${command.reservationId} is already recorded` });
  }
  const policy = channelPolicyOf(tenant, command.channel);
  const { lines } = allocate(tenant, { ...policy, bufferUnits: 0 }, command.lines, true);
  const oversized = oversizedLine(lines);
  if (oversized !== undefined) return reject(oversized);
  const drafts: EventDraft[] = [{
    type: 'order_committed',
    data: {
      reservationId: command.reservationId, channel: command.channel, direct: true,
      ...(command.orderRef === undefined ? {} : { orderRef: command.orderRef }), lines,
    },
  }];
  for (const line of lines) {
    const after = availableOf(stockAt(tenant.skus.get(line.sku), line.location)) - line.quantity;
    const shortfall = Math.min(line.quantity, -after);
    if (shortfall > 0) {
      const conflict: ConflictDetected['data'] = {
        kind: 'oversell', sku: line.sku, location: line.location, shortfall, channel: command.channel,
        ...(command.orderRef === undefined ? {} : { orderRef: command.orderRef }),
      };
      drafts.push({ type: 'conflict_detected', data: conflict });
    }
  }
  return accept(command, drafts);
}

/**
 * The tenant's reservation under `id` at `timeMs`. One finished reservationRetentionMs ago or more is forgotten
 * whether or not an event has removed it yet: a quiet tenant applies no event that would, and one event removes
 * at most reservationForgetsPerEventMax. Its id may then be used again.
 */
function reservationAt(tenant: TenantState, id: string, timeMs: number): Reservation | undefined {
  const reservation = tenant.reservations.get(id);
  const finishedAtMs = reservation?.finishedAtMs;
  return finishedAtMs !== undefined && finishedAtMs + limits.reservationRetentionMs <= timeMs ? undefined : reservation;
}

function findReservation(tenant: TenantState, reservationId: string, timeMs: number): Reservation | Outcome {
  const reservation = reservationAt(tenant, reservationId, timeMs);
  if (reservation === undefined) return reject({ code: 'UNKNOWN_RESERVATION', reservationId, message: `no reservation ${reservationId}` });
  return reservation;
}

function isOutcome(value: Reservation | Outcome): value is Outcome {
  return 'events' in value;
}

function decideCommit(tenant: TenantState, command: Commit): Outcome {
  const reservation = findReservation(tenant, command.reservationId, command.timeMs);
  if (isOutcome(reservation)) return reservation;
  // A hold the ticker already released is as expired as one it has not reached yet: the client is told the same.
  if (reservation.status !== 'held' && reservation.status !== 'expired') {
    return reject({ code: 'RESERVATION_NOT_HELD', reservationId: reservation.id, status: reservation.status, message: `reservation ${reservation.id} is ${reservation.status}, not held` });
  }
  if (reservation.status === 'expired' || command.timeMs >= reservation.expiresAtMs) {
    return reject({ code: 'RESERVATION_EXPIRED', reservationId: reservation.id, expiredAtMs: reservation.expiresAtMs, message: `reservation ${reservation.id} expired at ${formatTime(reservation.expiresAtMs)}` });
  }
  const orderRef = command.orderRef ?? reservation.orderRef;
  return accept(command, [{
    type: 'order_committed',
    data: { reservationId: reservation.id, channel: reservation.channel, direct: false, ...(orderRef === undefined ? {} : { orderRef }), lines: reservation.lines },
  }]);
}

function decideRelease(tenant: TenantState, command: Release): Outcome {
  const reservation = findReservation(tenant, command.reservationId, command.timeMs);
  if (isOutcome(reservation)) return reservation;
  const releasable = reservation.status === 'held' || (command.reason === 'cancelled' && reservation.status === 'committed');
  if (!releasable) {
    return reject({ code: 'RESERVATION_NOT_HELD', reservationId: reservation.id, status: reservation.status, message: `reservation ${reservation.id} is ${reservation.status}; only a held reservation can be released, or a committed one cancelled` });
  }
  // An expiry is decided from the command's time, as a tick's is: a hold expires at its expiry instant, not before.
  if (command.reason === 'expired' && command.timeMs < reservation.expiresAtMs) {
    return reject({ code: 'RESERVATION_NOT_DUE', reservationId: reservation.id, expiresAtMs: reservation.expiresAtMs, message: `reservation ${reservation.id} is not due until ${formatTime(reservation.expiresAtMs)}; a hold expires only once it is due` });
  }
  return accept(command, [{
    type: 'reservation_released',
    data: { reservationId: reservation.id, reason: command.reason, from: reservation.status === 'held' ? 'held' : 'committed', lines: reservation.lines },
  }]);
}

function decideFulfil(tenant: TenantState, command: Fulfil): Outcome {
  const reservation = findReservation(tenant, command.reservationId, command.timeMs);
  if (isOutcome(reservation)) return reservation;
  if (reservation.status !== 'committed') {
    return reject({ code: 'RESERVATION_NOT_COMMITTED', reservationId: reservation.id, status: reservation.status, message: `reservation ${reservation.id} is ${reservation.status}; only a committed order can be fulfilled` });
  }
  const short = shippedBeyondOnHand(tenant, reservation.lines);
  if (short !== undefined) {
    const { sku, location, onHand, quantity } = short;
    return reject({
      code: 'INVALID_QUANTITY', sku, location, onHand, delta: -quantity,
      message: `fulfilling ${reservation.id} ships ${quantity} of ${sku} from ${location}, which has ${onHand} on hand; record the stock that arrived there first`,
    });
  }
  return accept(command, [{ type: 'order_fulfilled', data: { reservationId: reservation.id, lines: reservation.lines } }]);
}

/**
 * The first SKU and location an order ships more of than is on hand there. An order sold beyond the stock (a
 * marketplace sale, a backorder) ships only once the stock has arrived: shipped first, on hand would stop at 0
 * and the units still to come would later read as free to sell.
 */
function shippedBeyondOnHand(tenant: TenantState, lines: readonly AllocatedLine[]): { sku: string; location: string; onHand: number; quantity: number } | undefined {
  const shipped = new Map<string, number>();
  for (const { sku, location, quantity } of lines) {
    const key = `${sku}\u0000${location}`;
    const total = (shipped.get(key) ?? 0) + quantity;
    shipped.set(key, total);
    const onHand = stockAt(tenant.skus.get(sku), location).onHand;
    if (total > onHand) return { sku, location, onHand, quantity: total };
  }
  return undefined;
}

/**
 * The held reservations due at `nowMs`, oldest first, at most `max`: read from the expiry heap in its order
 * without popping it. A frontier of heap positions (itself a heap) holds the next candidates, so the walk
 * costs what it returns, however many more are due: after an outage, or when holds fall due faster than
 * ticks release them, a tick does not pay for the whole backlog.
 */
export function dueReservations(tenant: TenantState, nowMs: number, max: number): Reservation[] {
  const due: Reservation[] = [];
  const heap = tenant.expiries;
  const isDue = (index: number): boolean => index < heap.length && (heap[index] as ExpiryEntry).expiresAtMs <= nowMs;
  const before = (a: number, b: number): boolean => expiresBefore(heap[a] as ExpiryEntry, heap[b] as ExpiryEntry);
  const frontier: number[] = isDue(0) ? [0] : [];
  while (frontier.length > 0 && due.length < max) {
    const index = frontier[0] as number;
    heapPop(frontier, before);
    const entry = heap[index] as ExpiryEntry;
    const reservation = tenant.reservations.get(entry.id);
    // An id used again after its first reservation was forgotten may have two entries with the same expiry:
    // in heap order they are neighbours, and the hold expires once.
    if (reservation !== undefined && reservation.status === 'held' && reservation.expiresAtMs === entry.expiresAtMs && reservation !== due.at(-1)) {
      due.push(reservation);
    }
    // A child is never due before its parent: below one not due, nothing is.
    if (isDue(2 * index + 1)) heapPush(frontier, 2 * index + 1, before);
    if (isDue(2 * index + 2)) heapPush(frontier, 2 * index + 2, before);
  }
  return due;
}

function decideExpireDue(tenant: TenantState, command: ExpireDue): Outcome {
  const due = dueReservations(tenant, command.nowMs, limits.expirationsPerTickMax);
  return accept(command, due.map((reservation) => ({
    type: 'reservation_released' as const,
    data: { reservationId: reservation.id, reason: 'expired' as const, from: 'held' as const, lines: reservation.lines },
  })));
}

function knownSku(tenant: TenantState, sku: string): SkuState | Outcome {
  const state = tenant.skus.get(sku);
  if (state === undefined) return reject({ code: 'UNKNOWN_SKU', sku, message: `no SKU ${sku}` });
  return state;
}

function decideDeleteSku(tenant: TenantState, command: DeleteSku): Outcome {
  const sku = knownSku(tenant, command.sku);
  if ('events' in sku) return sku;
  return sku.deleted ? accept(command, []) : accept(command, [{ type: 'sku_deleted', data: { sku: command.sku } }]);
}

function decideRestoreSku(tenant: TenantState, command: RestoreSku): Outcome {
  const sku = knownSku(tenant, command.sku);
  if ('events' in sku) return sku;
  return sku.deleted ? accept(command, [{ type: 'sku_restored', data: { sku: command.sku } }]) : accept(command, []);
}

function decideChannelPolicy(tenant: TenantState, command: SetChannelPolicy): Outcome {
  // A location named twice would be counted twice: keep the first of each, in order.
  const locations = command.locations === null ? null : [...new Set(command.locations)];
  const version = (tenant.channels.get(command.channel)?.version ?? 0) + 1;
  return accept(command, [{
    type: 'channel_policy_set',
    data: { channel: command.channel, locations, bufferUnits: command.bufferUnits, maxUnits: command.maxUnits, backorder: command.backorder, version },
  }]);
}

function decideRecordSync(command: RecordSync): Outcome {
  return accept(command, [{
    type: 'sync_complete',
    data: { channel: command.channel, sku: command.sku, quantity: command.quantity, latencyMs: command.latencyMs },
  }]);
}
