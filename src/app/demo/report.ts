// What the demo reports, read back from Stockline's own log: oversells, expiries, propagation latency per channel,
// and an audit that no API hold ever took a unit that was not there.

import { availableOf, evolve, initialState, stockAt } from '../../core/index.js';
import type { InventoryEvent } from '../../core/index.js';
import type { LoggedEvent } from '../engine.js';
import { apiChannels, demoChannels } from './plan.js';
import type { DemoChannel } from './plan.js';

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface LogReport {
  /** Per channel, from conflict_detected (oversell) events of the sale. */
  oversold: Record<DemoChannel, { units: number; incidents: number }>;
  /** Units held by API channels beyond what their locations had, replaying the log event by event. Must be 0. */
  apiUnitsBeyondStock: number;
  /** reservation_released with reason expired during the sale. */
  expired: number;
  /** Orders the ledger holds as committed (or fulfilled) per channel. */
  committedOrders: Record<DemoChannel, number>;
  /** sync_complete latencies of the sale, per channel. */
  propagation: Record<DemoChannel, LatencySummary>;
}

/** Nearest-rank percentile of unsorted samples; 0 for none. */
export function percentile(samples: readonly number[], fraction: number): number {
  if (samples.length === 0) return 0;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank] as number;
}

export function summarise(samples: readonly number[]): LatencySummary {
  return { count: samples.length, p50Ms: percentile(samples, 0.5), p99Ms: percentile(samples, 0.99), maxMs: samples.length === 0 ? 0 : Math.max(...samples) };
}

function byChannel<T>(make: () => T): Record<DemoChannel, T> {
  return Object.fromEntries(demoChannels.map((channel) => [channel, make()])) as Record<DemoChannel, T>;
}

function isDemoChannel(channel: string | undefined): channel is DemoChannel {
  return (demoChannels as readonly string[]).includes(channel ?? '');
}

/**
 * Folds the tenant's whole log with the pure core and looks at each event of the sale (positions after `saleFrom`)
 * as it lands. An API hold is checked right after its own event, so a later marketplace sale cannot hide or fake it.
 */
export function reportFromLog(tenant: string, log: readonly LoggedEvent[], saleFrom: number): LogReport {
  const state = initialState();
  const oversold = byChannel(() => ({ units: 0, incidents: 0 }));
  const latencies = byChannel((): number[] => []);
  let apiUnitsBeyondStock = 0;
  let expired = 0;
  for (const { position, event } of log) {
    evolve(state, event);
    if (position <= saleFrom) continue;
    apiUnitsBeyondStock += unitsBeyondStock(state, tenant, event);
    if (event.type === 'conflict_detected' && event.data.kind === 'oversell' && isDemoChannel(event.data.channel)) {
      oversold[event.data.channel].units += event.data.shortfall ?? 0;
      oversold[event.data.channel].incidents += 1;
    } else if (event.type === 'sync_complete' && isDemoChannel(event.data.channel)) {
      latencies[event.data.channel].push(event.data.latencyMs);
    } else if (event.type === 'reservation_released' && event.data.reason === 'expired') {
      expired += 1;
    }
  }
  const committedOrders = byChannel(() => 0);
  for (const reservation of state.tenants.get(tenant)?.reservations.values() ?? []) {
    if ((reservation.status === 'committed' || reservation.status === 'fulfilled') && isDemoChannel(reservation.channel)) committedOrders[reservation.channel] += 1;
  }
  const propagation = byChannel(() => summarise([]));
  for (const channel of demoChannels) propagation[channel] = summarise(latencies[channel]);
  return { oversold, apiUnitsBeyondStock, expired, committedOrders, propagation };
}

function unitsBeyondStock(state: ReturnType<typeof initialState>, tenant: string, event: InventoryEvent): number {
  if (event.type !== 'order_reserved' || !(apiChannels as readonly string[]).includes(event.data.channel)) return 0;
  const skus = state.tenants.get(tenant)?.skus;
  let beyond = 0;
  for (const line of event.data.lines) {
    const available = availableOf(stockAt(skus?.get(line.sku), line.location));
    if (available < 0) beyond += Math.min(line.quantity, -available);
  }
  return beyond;
}
