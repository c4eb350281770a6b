// The same sale under a polling sync, simulated: each channel learns availability only at its polls, sells from that
// view (less what it sold itself since), and every order is accepted as a fact, as a marketplace does.

import { demoChannels } from './plan.js';
import type { DemoChannel, DemoVisit, SalePlan } from './plan.js';

export const pollingDefaults = {
  /** How often the polling sync refreshes every channel, in a real sale. */
  pollIntervalSeconds: 30,
  /** Sale time runs this many times faster in the simulation: a 20 s demo stands for a 10-minute sale. */
  timeCompression: 30,
} as const;

export interface ChannelTally {
  /** Orders the channel accepted. */
  orders: number;
  unitsSold: number;
  /** Shoppers turned away because the channel showed too little. */
  refused: number;
  /** Units sold beyond what the locations held when the order came in. */
  unitsOversold: number;
  /** Orders that took at least one unit that was not there. */
  oversoldOrders: number;
}

export interface PollingResult {
  pollIntervalSeconds: number;
  timeCompression: number;
  /** The poll interval in the demo's (compressed) time. */
  pollEveryMs: number;
  polls: number;
  channels: Record<DemoChannel, ChannelTally>;
  unitsOversold: number;
}

export function emptyTally(): ChannelTally {
  return { orders: 0, unitsSold: 0, refused: 0, unitsOversold: 0, oversoldOrders: 0 };
}

type Happening =
  | { atMs: number; order: 0; kind: 'poll' }
  | { atMs: number; order: 1; kind: 'restock'; sku: string; location: string; delta: number }
  | { atMs: number; order: 2; kind: 'checkout'; visit: DemoVisit };

function timeline(plan: SalePlan, pollEveryMs: number): Happening[] {
  const happenings: Happening[] = [];
  for (let atMs = 0; atMs < plan.durationMs + pollEveryMs; atMs += pollEveryMs) happenings.push({ atMs, order: 0, kind: 'poll' });
  for (const restock of plan.restocks) happenings.push({ order: 1, kind: 'restock', ...restock });
  // Abandoned carts never reach a checkout, and a polling sync holds nothing for carts.
  for (const visit of plan.visits.flat()) if (!visit.abandon) happenings.push({ atMs: visit.atMs + visit.checkoutMs, order: 2, kind: 'checkout', visit });
  const rank = (happening: Happening): number => (happening.kind === 'checkout' ? happening.visit.shopper * 1_000_000 + happening.visit.index : 0);
  return happenings.sort((a, b) => a.atMs - b.atMs || a.order - b.order || rank(a) - rank(b));
}

/** Plays the plan against a polling sync. Pure and deterministic: the same plan gives the same result. */
export function simulatePolling(plan: SalePlan, options: Partial<typeof pollingDefaults> = {}): PollingResult {
  const pollIntervalSeconds = options.pollIntervalSeconds ?? pollingDefaults.pollIntervalSeconds;
  const timeCompression = options.timeCompression ?? pollingDefaults.timeCompression;
  const pollEveryMs = Math.max(1, Math.round((pollIntervalSeconds * 1000) / timeCompression));
  const key = (sku: string, location: string): string => `${sku}\u0000${location}`;
  const available = new Map<string, number>();
  for (const entry of plan.stock) available.set(key(entry.sku, entry.location), entry.onHand);
  const locationsOf = (channel: DemoChannel): string[] => plan.policies[channel].locations ?? [...plan.locations].sort();
  const rawOf = (channel: DemoChannel, sku: string): number => locationsOf(channel).reduce((sum, location) => sum + (available.get(key(sku, location)) ?? 0), 0);
  const views = new Map<string, number>();
  const channels = Object.fromEntries(demoChannels.map((channel) => [channel, emptyTally()])) as Record<DemoChannel, ChannelTally>;
  let polls = 0;
  for (const happening of timeline(plan, pollEveryMs)) {
    if (happening.kind === 'poll') {
      polls += 1;
      for (const channel of demoChannels) {
        const policy = plan.policies[channel];
        for (const sku of plan.skus) {
          const shown = Math.max(0, rawOf(channel, sku) - policy.bufferUnits);
          views.set(`${channel}\u0000${sku}`, policy.maxUnits === null ? shown : Math.min(shown, policy.maxUnits));
        }
      }
    } else if (happening.kind === 'restock') {
      const at = key(happening.sku, happening.location);
      available.set(at, (available.get(at) ?? 0) + happening.delta);
    } else {
      const { channel, sku, quantity } = happening.visit;
      const tally = channels[channel];
      const viewKey = `${channel}\u0000${sku}`;
      const shown = views.get(viewKey) ?? 0;
      if (shown < quantity) {
        tally.refused += 1;
        continue;
      }
      views.set(viewKey, shown - quantity);
      const oversold = Math.min(quantity, Math.max(0, quantity - Math.max(0, rawOf(channel, sku))));
      take(available, locationsOf(channel).map((location) => key(sku, location)), quantity);
      tally.orders += 1;
      tally.unitsSold += quantity;
      tally.unitsOversold += oversold;
      if (oversold > 0) tally.oversoldOrders += 1;
    }
  }
  const unitsOversold = demoChannels.reduce((sum, channel) => sum + channels[channel].unitsOversold, 0);
  return { pollIntervalSeconds, timeCompression, pollEveryMs, polls, channels, unitsOversold };
}

/** Takes units from the locations in order; what none of them has is taken from the first, below zero. */
function take(available: Map<string, number>, keys: string[], quantity: number): void {
  let needed = quantity;
  for (const at of keys) {
    const free = available.get(at) ?? 0;
    if (free <= 0 || needed === 0) continue;
    const taken = Math.min(free, needed);
    available.set(at, free - taken);
    needed -= taken;
  }
  const first = keys[0];
  if (needed > 0 && first !== undefined) available.set(first, (available.get(first) ?? 0) - needed);
}
