// The flash sale of `stockline demo`, planned up front from a seed: catalogue, stock, every shopper's visits, restocks.
// Both the live run and the polling simulation play this same plan, so their numbers compare the same sale.

import type { ChannelPolicy } from '../../core/index.js';
import { integerBetween, seededRandom, weightedIndex } from './random.js';

export const demoChannels = ['storefront', 'b2b', 'shopify'] as const;
export type DemoChannel = (typeof demoChannels)[number];
export const apiChannels: readonly DemoChannel[] = ['storefront', 'b2b'];

export const demoLimits = {
  skus: 200,
  durationSecondsMin: 1,
  durationSecondsMax: 600,
  durationSecondsDefault: 20,
  shoppersMin: 1,
  shoppersMax: 5_000,
  shoppersDefault: 300,
  /** Holds of the sale expire this soon: an abandoned cart is back on sale within seconds. */
  ttlSeconds: 2,
  /** Every shopper's first visit lands in this window, on the hot SKU: the drop opens. */
  rushMs: 250,
  thinkMsMin: 1_000,
  thinkMsMax: 4_000,
  checkoutMsMin: 300,
  checkoutMsMax: 1_500,
  abandonShare: 0.15,
  hotSkuShare: 0.4,
  /** The hot SKU's stock is this share of what shoppers will ask for: it sells out part way through. */
  hotStockShareOfDemand: 0.25,
  restockSkus: 8,
} as const;

export interface DemoVisit {
  shopper: number;
  /** Index of the visit among the shopper's visits. */
  index: number;
  /** When the shopper arrives, from the start of the sale. */
  atMs: number;
  channel: DemoChannel;
  sku: string;
  quantity: number;
  /** From arriving to paying. */
  checkoutMs: number;
  /** The shopper leaves before paying: an API hold is left to expire. */
  abandon: boolean;
}

export interface DemoStock {
  sku: string;
  location: string;
  onHand: number;
}

export interface DemoRestock {
  atMs: number;
  sku: string;
  location: string;
  delta: number;
}

export interface SalePlan {
  seed: number;
  durationMs: number;
  shoppers: number;
  tenant: string;
  locations: readonly [string, string];
  hotSku: string;
  skus: string[];
  stock: DemoStock[];
  /** Per shopper, in time order. */
  visits: DemoVisit[][];
  restocks: DemoRestock[];
  policies: Record<DemoChannel, ChannelPolicy>;
}

export const demoTenant = 'flashsale';
const warehouse = 'warehouse';
const store = 'store';
const channelWeights: Array<[DemoChannel, number]> = [['storefront', 0.5], ['shopify', 0.35], ['b2b', 0.15]];
const products = ['TEE', 'HOODIE', 'CAP', 'SOCK', 'MUG', 'TOTE', 'BOTTLE', 'SCARF'];
const colours = ['BLK', 'WHT', 'NVY', 'RED', 'OLV'];

function catalogue(): { hotSku: string; skus: string[] } {
  const hotSku = 'DROP-SNEAKER-42';
  const skus = [hotSku];
  for (let index = 0; skus.length < demoLimits.skus; index += 1) {
    const product = products[index % products.length] as string;
    const colour = colours[Math.floor(index / products.length) % colours.length] as string;
    skus.push(`${product}-${colour}-${String(index + 1).padStart(3, '0')}`);
  }
  return { hotSku, skus };
}

/** Popularity falls with rank, as in real catalogues: a few SKUs get most of the traffic. */
function cumulativePopularity(count: number): number[] {
  const cumulative: number[] = [];
  let total = 0;
  for (let rank = 0; rank < count; rank += 1) {
    total += 1 / (rank + 1) ** 0.8;
    cumulative.push(total);
  }
  return cumulative;
}

function pickChannel(random: () => number): DemoChannel {
  let draw = random();
  for (const [channel, weight] of channelWeights) {
    if (draw < weight) return channel;
    draw -= weight;
  }
  return 'storefront';
}

function planVisits(random: () => number, shoppers: number, durationMs: number, hotSku: string, others: string[]): DemoVisit[][] {
  const popularity = cumulativePopularity(others.length);
  const all: DemoVisit[][] = [];
  for (let shopper = 0; shopper < shoppers; shopper += 1) {
    const visits: DemoVisit[] = [];
    let atMs = integerBetween(random, 0, demoLimits.rushMs);
    while (atMs < durationMs) {
      const channel = pickChannel(random);
      const first = visits.length === 0;
      const sku = first || random() < demoLimits.hotSkuShare ? hotSku : others[weightedIndex(random, popularity)] as string;
      const quantity = channel === 'b2b' ? integerBetween(random, 2, 6) : random() < 0.8 ? 1 : 2;
      const checkoutMs = integerBetween(random, demoLimits.checkoutMsMin, demoLimits.checkoutMsMax);
      const abandon = random() < demoLimits.abandonShare;
      visits.push({ shopper, index: visits.length, atMs, channel, sku, quantity, checkoutMs, abandon });
      atMs += checkoutMs + integerBetween(random, demoLimits.thinkMsMin, demoLimits.thinkMsMax);
    }
    all.push(visits);
  }
  return all;
}

/** Stock is a share of what the plan's shoppers will ask for, so every run sells out, whatever its size. */
function planStock(random: () => number, visits: DemoVisit[][], hotSku: string, skus: string[]): DemoStock[] {
  const demand = new Map<string, number>();
  for (const visit of visits.flat()) if (!visit.abandon) demand.set(visit.sku, (demand.get(visit.sku) ?? 0) + visit.quantity);
  const stock: DemoStock[] = [];
  for (const sku of skus) {
    const asked = demand.get(sku) ?? 0;
    const units = sku === hotSku
      ? Math.max(10, Math.round(asked * demoLimits.hotStockShareOfDemand))
      : Math.round(asked * (0.3 + 0.9 * random())) + integerBetween(random, 0, 3);
    const inWarehouse = Math.round(units * (sku === hotSku ? 0.8 : 0.5 + 0.4 * random()));
    stock.push({ sku, location: warehouse, onHand: inWarehouse }, { sku, location: store, onHand: units - inWarehouse });
  }
  return stock;
}

function planRestocks(random: () => number, durationMs: number, hotSku: string, hotStock: number, others: string[]): DemoRestock[] {
  const restocks: DemoRestock[] = [];
  for (const share of [0.3, 0.6]) {
    const atMs = Math.round(durationMs * share);
    restocks.push({ atMs, sku: hotSku, location: warehouse, delta: Math.max(2, Math.round(hotStock * 0.15)) });
    for (let count = 0; count < demoLimits.restockSkus / 2; count += 1) {
      restocks.push({ atMs, sku: others[integerBetween(random, 0, others.length - 1)] as string, location: warehouse, delta: integerBetween(random, 2, 6) });
    }
  }
  return restocks;
}

export function planSale(options: { seed: number; durationMs: number; shoppers: number }): SalePlan {
  const random = seededRandom(options.seed);
  const { hotSku, skus } = catalogue();
  const others = skus.filter((sku) => sku !== hotSku);
  const visits = planVisits(random, options.shoppers, options.durationMs, hotSku, others);
  const stock = planStock(random, visits, hotSku, skus);
  const hotStock = stock.filter((entry) => entry.sku === hotSku).reduce((sum, entry) => sum + entry.onHand, 0);
  return {
    ...options,
    tenant: demoTenant,
    locations: [warehouse, store],
    hotSku,
    skus,
    stock,
    visits,
    restocks: planRestocks(random, options.durationMs, hotSku, hotStock, others),
    policies: {
      storefront: { locations: null, bufferUnits: 0, maxUnits: null, backorder: false },
      b2b: { locations: [warehouse], bufferUnits: 0, maxUnits: null, backorder: false },
      shopify: { locations: null, bufferUnits: 2, maxUnits: null, backorder: false },
    },
  };
}
