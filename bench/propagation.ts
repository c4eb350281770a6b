// Propagation latency: from a reservation answered (HTTP 201) to the fake Shopify applying the new quantity, with the
// fake answering every request in 20 ms, at steady rates, across many SKUs and on one hot SKU (where pushes coalesce).
// Run: npm run build && npx tsx bench/propagation.ts [--seconds 10]
//
// `stockline serve` runs as a child process, configured from a YAML file like a deployment; the load generator and the
// fake Shopify share this process and its clock. The k-th reservation of a SKU to be answered has reached Shopify
// once the fake applies a quantity of at most (start - k): by then at least k reservations are durable, each of 1 unit.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakeShopify } from '../src/adapters/channels/shopify/fake-server.js';
import type { FakeShopify } from '../src/adapters/channels/shopify/fake-server.js';
import { callApi, shopifyAccessToken, waitForOutboxEmpty, writeChannelConfig } from '../test/support/channel-config.js';
import { startStockline } from '../test/support/stockline-process.js';
import type { StocklineProcess } from '../test/support/stockline-process.js';

const secondsFlag = process.argv.indexOf('--seconds');
const durationSeconds = secondsFlag > 0 ? Number(process.argv[secondsFlag + 1]) : 10;
const fakeLatencyMs = 20;
const tenant = 'bench';
const skuCount = 200;
const stockPerSku = 1_000_000;
const settleTimeoutMs = 120_000;
const goalP99Ms = 100;
/** Between runs: the previous run's acknowledgements are still being recorded (`sync_complete`) for a moment. */
const quietMs = 2_000;

interface ChannelSettings {
  name: string;
  ratePerSecond: number;
  maxConcurrency: number;
}

/** Pushes limited only by the fake's latency: what the engine itself adds. */
const open: ChannelSettings = { name: 'channel 1000/s, 32 in flight', ratePerSecond: 1_000, maxConcurrency: 32 };
/** Stockline's defaults for a Shopify channel, sized for a standard plan (10 mutations/s). */
const shopifyDefaults: ChannelSettings = { name: 'Shopify defaults 5/s, 4 in flight', ratePerSecond: 5, maxConcurrency: 4 };

interface Scenario {
  label: string;
  channel: ChannelSettings;
  ratePerSecond: number;
  hot: boolean;
}

const scenarios: Scenario[] = [
  { label: `${skuCount} SKUs`, channel: open, ratePerSecond: 50, hot: false },
  { label: `${skuCount} SKUs`, channel: open, ratePerSecond: 200, hot: false },
  { label: 'one hot SKU', channel: open, ratePerSecond: 50, hot: true },
  { label: 'one hot SKU', channel: open, ratePerSecond: 200, hot: true },
  { label: 'one hot SKU', channel: shopifyDefaults, ratePerSecond: 50, hot: true },
  { label: 'one hot SKU', channel: shopifyDefaults, ratePerSecond: 200, hot: true },
];

interface Answered {
  sku: string;
  sentMs: number;
  answeredMs: number;
}

interface Arrival {
  atMs: number;
  quantity: number;
}

interface Result {
  scenario: string;
  channel: string;
  ratePerSecond: number;
  durationSeconds: number;
  reservations: number;
  refusedOrFailed: number;
  pushes: number;
  propagationP50Ms: number;
  propagationP99Ms: number;
  propagationMaxMs: number;
  notPropagated: number;
  reserveP50Ms: number;
  reserveP99Ms: number;
}

const skus = Array.from({ length: skuCount }, (_, index) => `P-${String(index).padStart(3, '0')}`);
const hotSku = 'HOT-1';

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index] as number;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

/** Every quantity the fake applies, per inventory item, with the time it was applied. */
function recordArrivals(fake: FakeShopify): Map<string, Arrival[]> {
  const arrivals = new Map<string, Arrival[]>();
  const set = fake.levels.set.bind(fake.levels);
  fake.levels.set = (itemId: string, quantity: number) => {
    const list = arrivals.get(itemId) ?? [];
    list.push({ atMs: performance.now(), quantity });
    arrivals.set(itemId, list);
    return set(itemId, quantity);
  };
  return arrivals;
}

interface Stack {
  fake: FakeShopify;
  stockline: StocklineProcess;
  items: Record<string, string>;
  arrivals: Map<string, Arrival[]>;
  close(): Promise<void>;
}

async function startStack(channel: ChannelSettings): Promise<Stack> {
  // A cost bucket wide enough that Shopify's own limit never throttles: the channel settings are the limit measured.
  const fake = await startFakeShopify({ accessToken: shopifyAccessToken, bucket: { maximumAvailable: 1_000_000, restoreRate: 1_000_000 } });
  const items: Record<string, string> = {};
  for (const sku of [...skus, hotSku]) items[sku] = fake.addItem(sku, 0);
  const directory = mkdtempSync(join(tmpdir(), 'stockline-bench-propagation-'));
  const configFile = join(directory, 'stockline.yaml');
  const dataDir = join(directory, 'data');
  const env = writeChannelConfig(configFile, {
    tenant, dataDir,
    shopify: { id: 'shop', url: fake.url, locationId: fake.locationId, items, ratePerSecond: channel.ratePerSecond, maxConcurrency: channel.maxConcurrency },
  });
  const stockline = await startStockline(['--config', configFile, '--data-dir', dataDir], env);
  const stocked = await callApi(stockline.url, 'POST', `/v1/tenants/${tenant}/adjustments`, {
    adjustments: [...skus, hotSku].map((sku) => ({ sku, set: stockPerSku })),
  });
  if (stocked.status !== 200) throw new Error(`stocking failed: ${stocked.status} ${JSON.stringify(stocked.body)}`);
  // Every SKU pushed once (the first push reads the level), so the runs measure steady-state pushes.
  await waitForOutboxEmpty(stockline.url, settleTimeoutMs);
  fake.setLatencyMs(fakeLatencyMs);
  const arrivals = recordArrivals(fake);
  return {
    fake, stockline, items, arrivals,
    async close() {
      await stockline.stop('SIGTERM');
      await fake.stop();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** Open loop: request i is sent at start + i / rate, whether or not earlier ones were answered. */
async function load(stack: Stack, scenario: Scenario, reservedSoFar: Map<string, number>): Promise<{ answered: Answered[]; failed: number }> {
  const total = Math.round(scenario.ratePerSecond * durationSeconds);
  const intervalMs = 1_000 / scenario.ratePerSecond;
  const answered: Answered[] = [];
  let failed = 0;
  const inFlight: Array<Promise<void>> = [];
  const startMs = performance.now();
  for (let index = 0; index < total; index += 1) {
    const dueMs = startMs + index * intervalMs;
    const waitMs = dueMs - performance.now();
    if (waitMs > 1) await sleep(waitMs);
    const sku = scenario.hot ? hotSku : (skus[index % skus.length] as string);
    const sentMs = performance.now();
    inFlight.push(callApi(stack.stockline.url, 'POST', `/v1/tenants/${tenant}/reservations`, { channel: 'shop', lines: [{ sku, quantity: 1 }] })
      .then((answer) => {
        if (answer.status === 201) answered.push({ sku, sentMs, answeredMs: performance.now() });
        else failed += 1;
      }, () => { failed += 1; }));
  }
  await Promise.all(inFlight);
  for (const { sku } of answered) reservedSoFar.set(sku, (reservedSoFar.get(sku) ?? 0) + 1);
  return { answered, failed };
}

/** For each answered reservation: the first applied quantity that reflects it. */
function propagation(stack: Stack, answered: Answered[], reservedBefore: Map<string, number>): { latenciesMs: number[]; missing: number } {
  const bySku = new Map<string, Answered[]>();
  for (const one of answered) bySku.set(one.sku, [...(bySku.get(one.sku) ?? []), one]);
  const latenciesMs: number[] = [];
  let missing = 0;
  for (const [sku, list] of bySku) {
    list.sort((a, b) => a.answeredMs - b.answeredMs);
    const arrivals = stack.arrivals.get(stack.items[sku] as string) ?? [];
    const before = reservedBefore.get(sku) ?? 0;
    let cursor = 0;
    list.forEach((one, index) => {
      const target = stockPerSku - before - (index + 1);
      // Quantities only fall during a run, so the first arrival at or below the target is found by moving forward.
      while (cursor < arrivals.length && (arrivals[cursor] as Arrival).quantity > target) cursor += 1;
      const arrival = arrivals[cursor];
      if (arrival === undefined) missing += 1;
      else latenciesMs.push(Math.max(0, arrival.atMs - one.answeredMs));
    });
  }
  return { latenciesMs: latenciesMs.sort((a, b) => a - b), missing };
}

async function run(stack: Stack, scenario: Scenario, reservedSoFar: Map<string, number>): Promise<Result> {
  await sleep(quietMs);
  const reservedBefore = new Map(reservedSoFar);
  for (const list of stack.arrivals.values()) list.length = 0;
  const { answered, failed } = await load(stack, scenario, reservedSoFar);
  await waitForOutboxEmpty(stack.stockline.url, settleTimeoutMs);
  const { latenciesMs, missing } = propagation(stack, answered, reservedBefore);
  const reserveMs = answered.map((one) => one.answeredMs - one.sentMs).sort((a, b) => a - b);
  let pushes = 0;
  for (const list of stack.arrivals.values()) pushes += list.length;
  return {
    scenario: scenario.label, channel: scenario.channel.name, ratePerSecond: scenario.ratePerSecond, durationSeconds,
    reservations: answered.length, refusedOrFailed: failed, pushes,
    propagationP50Ms: round(percentile(latenciesMs, 0.5)), propagationP99Ms: round(percentile(latenciesMs, 0.99)),
    propagationMaxMs: round(latenciesMs.at(-1) ?? Number.NaN), notPropagated: missing,
    reserveP50Ms: round(percentile(reserveMs, 0.5)), reserveP99Ms: round(percentile(reserveMs, 0.99)),
  };
}

function table(results: Result[]): string {
  const header = ['scenario', 'channel', 'rate/s', 'reserved', 'pushes', 'p50 ms', 'p99 ms', 'max ms', 'reserve p99 ms'];
  const rows = results.map((result) => [
    result.scenario, result.channel, String(result.ratePerSecond), String(result.reservations), String(result.pushes),
    String(result.propagationP50Ms), String(result.propagationP99Ms), String(result.propagationMaxMs), String(result.reserveP99Ms),
  ]);
  const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => (row[column] ?? '').length)));
  return [header, ...rows].map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const loadAverage1mAtStart = round(loadavg()[0] ?? 0);
  const results: Result[] = [];
  for (const channel of [open, shopifyDefaults]) {
    const stack = await startStack(channel);
    try {
      const reservedSoFar = new Map<string, number>();
      for (const scenario of scenarios.filter((candidate) => candidate.channel === channel)) {
        const result = await run(stack, scenario, reservedSoFar);
        results.push(result);
        console.error(`${result.scenario}, ${result.channel}, ${result.ratePerSecond}/s: p50 ${result.propagationP50Ms} ms, p99 ${result.propagationP99Ms} ms`);
      }
    } finally {
      await stack.close();
    }
  }
  const report = {
    date: new Date().toISOString(), node: process.version, cpus: cpus().length, loadAverage1mAtStart, loadAverage1mAtEnd: round(loadavg()[0] ?? 0),
    fakeLatencyMs, durationSeconds, goalP99Ms,
    goalMet: results.filter((result) => result.channel === open.name).every((result) => result.propagationP99Ms < goalP99Ms && result.notPropagated === 0),
    results,
  };
  console.log(table(results));
  console.log(JSON.stringify(report, null, 2));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/propagation.json', `${JSON.stringify(report, null, 2)}\n`);
}

await main();
