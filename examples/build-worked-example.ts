// Builds examples/worked-example-inventory-sync.json by running the real ledger over one merchant's day.
// Run: npx tsx examples/build-worked-example.ts   (writes the example and its expected state; --check only compares)

import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { availableToSell, channelPolicyOf, execute, formatTime, initialState, toSnapshot } from '../src/core/index.js';
import type { Command, CommandMeta, InventoryEvent, LedgerState, Rejection, StateSnapshot } from '../src/core/index.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A command as the story writes it: the builder stamps the id, the tenant and the time. */
type Draft = DistributiveOmit<Command, keyof CommandMeta> & { source?: string; idempotencyKey?: string };

export const tenant = 'northwind';
export const channels = ['storefront', 'b2b', 'shopify'] as const;
export const skus = ['TEE-ORG-M', 'MUG-STONE', 'KETTLE-CU', 'CANDLE-FIG'] as const;
const cdcSource = 'pg:inventory';
const day = '2026-11-27';

export interface WorkedStep {
  title: string;
  explanation: string;
  events: InventoryEvent[];
  /** Business refusals of this step: they write no events, except a stale sequence, which is logged as a conflict. */
  rejections?: Array<{ code: Rejection['code']; message: string }>;
  /** What each channel may sell of each SKU once the step's events are applied. */
  availableToSell: Record<string, Record<string, number>>;
}

export interface WorkedExample {
  description: string;
  steps: WorkedStep[];
  events: InventoryEvent[];
  expectedState: StateSnapshot;
}

/** `09:00:05` or `09:00:05.250` on the example's day, as epoch milliseconds. */
function at(clock: string): number {
  return Date.parse(`${day}T${clock}${clock.includes('.') ? '' : '.000'}Z`);
}

/** A PostgreSQL LSN (`16/B374D848`) as the decimal sequence Stockline stores. */
export function lsn(text: string): string {
  const [high, low] = text.split('/') as [string, string];
  return ((BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`)).toString();
}

/** The row change of the warehouse table as the CDC source submits it: an absolute count at the commit's LSN. */
function cdcSet(sku: string, location: string, onHand: number, commitLsn: string): Draft {
  return { type: 'adjust_stock', sku, location, set: onHand, source: cdcSource, sourceSeq: lsn(commitLsn), reason: 'cdc' };
}

/**
 * A channel acknowledged a push `latencyMs` after the change at `changedAt`: recorded then, with the quantity the
 * ledger says the channel may sell at that moment.
 */
function acked(changedAt: string, channel: string, sku: string, latencyMs: number): [string, (state: LedgerState) => Draft] {
  const clock = formatTime(at(changedAt) + latencyMs).slice(11, 23);
  return [clock, (state) => ({ type: 'record_sync', channel, sku, quantity: availableNow(state)[sku]?.[channel] ?? 0, latencyMs, source: 'sync' })];
}

interface StoryStep {
  title: string;
  explanation: string;
  /** [clock, command] pairs, decided in order; a function is given the state as it is then. */
  commands: Array<[string, Draft | ((state: LedgerState) => Draft)]>;
  /** Codes this step is meant to be refused with, in order: the builder fails if the ledger says otherwise. */
  refused?: Array<Rejection['code']>;
}

const openingLsn = '16/B374D848';
const receiptLsn = '16/B3A1F0C0';
const recountLsn = '16/B3C90A18';
const deliveryLsn = '16/B3E25B70';
const discontinuedLsn = '16/B3F00E28';

/** The merchant's day. Every number in docs/worked-example.md comes from running this through the ledger. */
const story: StoryStep[] = [
  {
    title: 'The merchant describes its channels',
    explanation: 'Three channels sell the same stock. The headless storefront sells from both locations, distribution centre first. The B2B portal sells from the distribution centre only and may backorder (trade customers accept a later ship date). Shopify keeps 2 units back as a buffer and never shows more than 20.',
    commands: [
      ['08:00:00', { type: 'set_channel_policy', channel: 'storefront', locations: null, bufferUnits: 0, maxUnits: null, backorder: false }],
      ['08:00:00', { type: 'set_channel_policy', channel: 'b2b', locations: ['dc-north'], bufferUnits: 0, maxUnits: null, backorder: true }],
      ['08:00:00', { type: 'set_channel_policy', channel: 'shopify', locations: null, bufferUnits: 2, maxUnits: 20, backorder: false }],
    ],
  },
  {
    title: 'Opening stock arrives from the warehouse database (CDC snapshot)',
    explanation: `The CDC source reads the merchant's PostgreSQL table once under the replication slot's snapshot. Every row becomes an absolute count (mode set) from source ${cdcSource}, stamped with the slot's consistent point, LSN ${openingLsn}.`,
    commands: [
      ['08:30:00', cdcSet('TEE-ORG-M', 'dc-north', 40, openingLsn)],
      ['08:30:00', cdcSet('TEE-ORG-M', 'store-riverside', 8, openingLsn)],
      ['08:30:00', cdcSet('MUG-STONE', 'dc-north', 120, openingLsn)],
      ['08:30:00', cdcSet('MUG-STONE', 'store-riverside', 24, openingLsn)],
      ['08:30:00', cdcSet('KETTLE-CU', 'dc-north', 5, openingLsn)],
      ['08:30:00', cdcSet('KETTLE-CU', 'store-riverside', 1, openingLsn)],
      ['08:30:00', cdcSet('CANDLE-FIG', 'dc-north', 12, openingLsn)],
      ['08:30:00', cdcSet('CANDLE-FIG', 'store-riverside', 6, openingLsn)],
    ],
  },
  {
    title: 'Every channel is told',
    explanation: 'The push worker sends each channel its available-to-sell and records each acknowledgement with its propagation latency. Shopify is slower: each push is a GraphQL mutation under a cost limit.',
    commands: [
      acked('08:30:00', 'storefront', 'CANDLE-FIG', 14),
      acked('08:30:00', 'storefront', 'KETTLE-CU', 12),
      acked('08:30:00', 'storefront', 'MUG-STONE', 13),
      acked('08:30:00', 'storefront', 'TEE-ORG-M', 11),
      acked('08:30:00', 'b2b', 'CANDLE-FIG', 41),
      acked('08:30:00', 'b2b', 'KETTLE-CU', 38),
      acked('08:30:00', 'b2b', 'MUG-STONE', 44),
      acked('08:30:00', 'b2b', 'TEE-ORG-M', 39),
      acked('08:30:00', 'shopify', 'CANDLE-FIG', 212),
      acked('08:30:00', 'shopify', 'KETTLE-CU', 187),
      acked('08:30:00', 'shopify', 'MUG-STONE', 236),
      acked('08:30:00', 'shopify', 'TEE-ORG-M', 198),
    ],
  },
  {
    title: 'A delivery is received at the distribution centre (CDC)',
    explanation: `A pallet of 48 mugs is booked into the warehouse system. The row's new count arrives as set 168 at LSN ${receiptLsn}, newer than the snapshot, so it applies.`,
    commands: [['08:45:12', cdcSet('MUG-STONE', 'dc-north', 168, receiptLsn)]],
  },
  {
    title: 'Carts on every channel hold stock',
    explanation: 'Two storefront carts, a B2B quote for 60 mugs valid for two days, and a Shopify checkout (held through the reservations API by the merchant\'s checkout app) each hold their units with a TTL. Lines without a location are filled from the channel\'s locations in order. The storefront\'s first request timed out on its side and it sent it again with the same Idempotency-Key: the ledger answers DUPLICATE with the first outcome and writes nothing. Holds need no row lock: the tenant\'s commands have one writer.',
    commands: [
      ['09:00:00', { type: 'reserve', reservationId: 'sf-cart-1001', channel: 'storefront', lines: [{ sku: 'TEE-ORG-M', quantity: 2 }, { sku: 'MUG-STONE', quantity: 1 }], ttlMs: 30 * 60_000, idempotencyKey: 'cart-1001-reserve' }],
      ['09:00:02', { type: 'reserve', reservationId: 'sf-cart-1001', channel: 'storefront', lines: [{ sku: 'TEE-ORG-M', quantity: 2 }, { sku: 'MUG-STONE', quantity: 1 }], ttlMs: 30 * 60_000, idempotencyKey: 'cart-1001-reserve' }],
      ['09:00:30', { type: 'reserve', reservationId: 'sf-cart-1002', channel: 'storefront', lines: [{ sku: 'KETTLE-CU', quantity: 1 }], ttlMs: 10 * 60_000 }],
      ['09:01:00', { type: 'reserve', reservationId: 'b2b-quote-77', channel: 'b2b', orderRef: 'PO-4471', lines: [{ sku: 'MUG-STONE', quantity: 60 }], ttlMs: 48 * 3_600_000 }],
      ['09:02:00', { type: 'reserve', reservationId: 'shopify-checkout-5531', channel: 'shopify', lines: [{ sku: 'TEE-ORG-M', quantity: 3 }], ttlMs: 15 * 60_000 }],
    ],
    refused: ['DUPLICATE'],
  },
  {
    title: 'Two carts become orders',
    explanation: 'The storefront cart and the Shopify checkout are paid: their held units become committed. Available-to-sell does not move, because held units were already out of it.',
    commands: [
      ['09:04:10', { type: 'commit', reservationId: 'sf-cart-1001', orderRef: 'SF-20931' }],
      ['09:05:00', { type: 'commit', reservationId: 'shopify-checkout-5531', orderRef: '#1041' }],
    ],
  },
  {
    title: 'An abandoned cart expires',
    explanation: 'Nobody paid for cart sf-cart-1002. Its hold was due at 09:10:30; the engine\'s expiry tick (a command carrying the time, once a second) releases it with reason expired, and the kettle is for sale again. Replaying the log gives the same result because expiry is decided from the tick\'s time, not a clock.',
    commands: [['09:10:31', { type: 'expire_due', nowMs: at('09:10:31'), source: 'expiry' }]],
  },
  {
    title: 'The B2B quote is ordered and shipped',
    explanation: 'The trade customer approves purchase order PO-4471: the quote is committed, then the warehouse ships it. Fulfilment takes the 60 mugs out of committed and out of on hand.',
    commands: [
      ['09:20:00', { type: 'commit', reservationId: 'b2b-quote-77' }],
      ['11:15:00', { type: 'fulfil', reservationId: 'b2b-quote-77' }],
    ],
  },
  {
    title: 'A stale CDC update is refused by its sequence number',
    explanation: `After a network blip, PostgreSQL sends the receipt transaction again (set 168 at LSN ${receiptLsn}). Applying it would bring back the 60 mugs that just shipped. The ledger already applied that LSN for MUG-STONE at dc-north, so it refuses the copy with STALE_SEQUENCE and logs a conflict_detected (stale_sequence) event. On hand stays 108.`,
    commands: [['11:20:05', cdcSet('MUG-STONE', 'dc-north', 168, receiptLsn)]],
    refused: ['STALE_SEQUENCE'],
  },
  {
    title: 'Kettles sell on the storefront, then a recount finds two damaged',
    explanation: `A storefront shopper buys 2 kettles (held and committed at once). Then the warehouse recounts: 2 of the remaining kettles are dented, and the row becomes 3 (LSN ${recountLsn}). The ledger has 1 kettle left for sale in the distribution centre and 1 in the store; Shopify, with its buffer of 2, should now show 0.`,
    commands: [
      ['12:00:00', { type: 'reserve', reservationId: 'sf-cart-1003', channel: 'storefront', lines: [{ sku: 'KETTLE-CU', quantity: 2 }], ttlMs: 15 * 60_000 }],
      ['12:00:40', { type: 'commit', reservationId: 'sf-cart-1003', orderRef: 'SF-20977' }],
      ['12:01:00', cdcSet('KETTLE-CU', 'dc-north', 3, recountLsn)],
    ],
  },
  {
    title: 'Shopify sells kettles that were not there',
    explanation: 'Shopify still showed 4 kettles: the pushes of 2 (after the storefront cart) and 0 (after the recount) were waiting out Shopify\'s API throttle. A buyer ordered 3. The orders/create webhook is a fact, not a request: the ledger records the sale (order_committed, direct) and, since only 2 were available, an oversell incident of 1 unit at dc-north (conflict_detected, oversell). Shopify is pushed 0 at once; the storefront and the portal acknowledge within milliseconds, Shopify once its throttle lets the push through, 62.4 s after the first change it had not shown (the cart at 12:00:00).',
    commands: [
      ['12:01:02', { type: 'record_sale', reservationId: 'shopify:5120339001', channel: 'shopify', orderRef: '#1042', lines: [{ sku: 'KETTLE-CU', quantity: 3 }], source: 'shopify', idempotencyKey: 'shopify:7b3e9a10-4f1c-4d7e-9a55-0c2b8f61d001' }],
      acked('12:01:02', 'storefront', 'KETTLE-CU', 14),
      acked('12:01:02', 'b2b', 'KETTLE-CU', 39),
      acked('12:00:00', 'shopify', 'KETTLE-CU', 62_410),
    ],
  },
  {
    title: 'The oversell is corrected by a delivery',
    explanation: `Customer service keeps order #1042 and the buyer asks for the missing kettle; the supplier's delivery of 6 arrives that afternoon and the warehouse row becomes 9 (LSN ${deliveryLsn}). The distribution centre is back above what it owes: available 5.`,
    commands: [
      ['15:30:00', cdcSet('KETTLE-CU', 'dc-north', 9, deliveryLsn)],
      acked('15:30:00', 'storefront', 'KETTLE-CU', 13),
      acked('15:30:00', 'b2b', 'KETTLE-CU', 36),
      acked('15:30:00', 'shopify', 'KETTLE-CU', 241),
    ],
  },
  {
    title: 'A SKU is discontinued (soft delete)',
    explanation: `The merchant stops selling the fig candle: the warehouse system sets discontinued_at on both of its rows in one transaction. The CDC source submits each row (unchanged counts, LSN ${discontinuedLsn}) followed by delete_sku; the second delete finds the SKU deleted already and writes nothing. Every channel now sells 0 of it, its stock and history stay, and a later storefront cart for it is refused with SKU_DELETED.`,
    commands: [
      ['16:00:00', cdcSet('CANDLE-FIG', 'dc-north', 12, discontinuedLsn)],
      ['16:00:00', { type: 'delete_sku', sku: 'CANDLE-FIG', source: cdcSource }],
      ['16:00:00', cdcSet('CANDLE-FIG', 'store-riverside', 6, discontinuedLsn)],
      ['16:00:00', { type: 'delete_sku', sku: 'CANDLE-FIG', source: cdcSource }],
      acked('16:00:00', 'storefront', 'CANDLE-FIG', 12),
      acked('16:00:00', 'b2b', 'CANDLE-FIG', 35),
      acked('16:00:00', 'shopify', 'CANDLE-FIG', 228),
      ['16:02:00', { type: 'reserve', reservationId: 'sf-cart-1004', channel: 'storefront', lines: [{ sku: 'CANDLE-FIG', quantity: 1 }], ttlMs: 15 * 60_000 }],
    ],
    refused: ['SKU_DELETED'],
  },
  {
    title: 'End-of-day reconciliation',
    explanation: 'Reconciliation reads the 12 quantities the channels show and compares them with what they should show. Ten match. Two drifted outside Stockline: a member of staff typed 5 kettles into Shopify\'s admin, and the B2B portal restored its stock cache from a morning backup (120 mugs). Both are repaired with a push, and the acknowledgements are recorded as sync_complete with their latency.',
    commands: [
      acked('18:00:00', 'shopify', 'KETTLE-CU', 264),
      acked('18:00:00', 'b2b', 'MUG-STONE', 41),
    ],
  },
];

function availableNow(state: LedgerState): Record<string, Record<string, number>> {
  const tenantState = state.tenants.get(tenant);
  const table: Record<string, Record<string, number>> = {};
  for (const sku of skus) {
    const row: Record<string, number> = {};
    for (const channel of channels) row[channel] = tenantState === undefined ? 0 : availableToSell(channelPolicyOf(tenantState, channel), tenantState.skus.get(sku));
    table[sku] = row;
  }
  return table;
}

/** Runs the story through `execute`, the engines' own entry point. Fails if the ledger tells a different story. */
export function buildWorkedExample(): WorkedExample {
  const state = initialState();
  const events: InventoryEvent[] = [];
  const steps: WorkedStep[] = [];
  let counter = 0;
  for (const step of story) {
    const stepEvents: InventoryEvent[] = [];
    const rejections: NonNullable<WorkedStep['rejections']> = [];
    // Stable sort: a log is in time order; commands of the same instant keep the order the story gives.
    const commands = [...step.commands].sort(([a], [b]) => at(a) - at(b));
    for (const [clock, given] of commands) {
      counter += 1;
      const draft = typeof given === 'function' ? given(state) : given;
      const command = { ...draft, id: `nw-${String(counter).padStart(4, '0')}`, tenant, timeMs: at(clock) } as Command;
      const { outcome } = execute(state, command);
      if (outcome.rejection !== undefined) rejections.push({ code: outcome.rejection.code, message: outcome.rejection.message });
      stepEvents.push(...outcome.events);
    }
    const codes = rejections.map((rejection) => rejection.code);
    if (JSON.stringify(codes) !== JSON.stringify(step.refused ?? [])) {
      throw new Error(`step "${step.title}": expected refusals ${JSON.stringify(step.refused ?? [])}, the ledger gave ${JSON.stringify(codes)}`);
    }
    events.push(...stepEvents);
    steps.push({
      title: step.title, explanation: step.explanation, events: stepEvents,
      ...(rejections.length === 0 ? {} : { rejections }), availableToSell: availableNow(state),
    });
  }
  return {
    description: `One merchant (tenant ${tenant}) on ${day}: 4 SKUs in 2 locations (dc-north, store-riverside) sold on a headless storefront, a B2B portal and Shopify. Stock arrives by CDC from PostgreSQL; carts hold, expire and commit; a stale CDC update is refused; Shopify oversells and it is corrected; a SKU is soft-deleted; the day ends with a reconciliation. Generated by examples/build-worked-example.ts from the real ledger; walk-through in docs/worked-example.md. Only the channel acknowledgements the story needs are shown; a live log has one per change and channel.`,
    steps,
    events,
    expectedState: toSnapshot(state),
  };
}

export const examplePath = fileURLToPath(new URL('./worked-example-inventory-sync.json', import.meta.url));
export const expectedStatePath = fileURLToPath(new URL('./worked-example-expected-state.json', import.meta.url));

/** The two files' exact text. */
export function renderWorkedExample(example: WorkedExample = buildWorkedExample()): { example: string; expectedState: string } {
  return { example: `${JSON.stringify(example, null, 1)}\n`, expectedState: `${JSON.stringify(example.expectedState, null, 1)}\n` };
}

function main(): number {
  const rendered = renderWorkedExample();
  const files: Array<[string, string]> = [[examplePath, rendered.example], [expectedStatePath, rendered.expectedState]];
  if (process.argv.includes('--check')) {
    const stale = files.filter(([path, text]) => {
      try {
        return readFileSync(path, 'utf8') !== text;
      } catch {
        return true;
      }
    });
    for (const [path] of stale) process.stderr.write(`${path} is out of date: run npx tsx examples/build-worked-example.ts\n`);
    return stale.length === 0 ? 0 : 1;
  }
  for (const [path, text] of files) writeFileSync(path, text);
  process.stdout.write(`wrote ${files.map(([path]) => relative(process.cwd(), path)).join(' and ')}\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main();
