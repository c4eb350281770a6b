// `stockline demo`: a flash sale on your laptop, on the embedded engine in a temporary data folder. Storefront and B2B
// shoppers use the HTTP API, Shopify runs against an in-process fake; optional stock feed from PostgreSQL.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { resolveConfig } from '../app/config.js';
import type { LoggedEvent } from '../app/engine.js';
import { demoChannels, demoLimits, planSale } from '../app/demo/plan.js';
import type { DemoChannel, SalePlan } from '../app/demo/plan.js';
import { simulatePolling } from '../app/demo/polling.js';
import type { PollingResult } from '../app/demo/polling.js';
import { openPostgresFeed } from '../app/demo/postgres-feed.js';
import type { PostgresFeed } from '../app/demo/postgres-feed.js';
import { reportFromLog, summarise } from '../app/demo/report.js';
import type { LogReport } from '../app/demo/report.js';
import { runSale } from '../app/demo/sale.js';
import type { SaleRun, SaleTargets } from '../app/demo/sale.js';
import { startPushReceiver } from '../app/demo/webhook-receiver.js';
import type { PushReceiver } from '../app/demo/webhook-receiver.js';
import { startFakeShopify } from '../adapters/channels/shopify/fake-server.js';
import type { FakeShopify } from '../adapters/channels/shopify/fake-server.js';
import { ApiKeyStore } from '../adapters/sqlite/api-keys.js';
import type { EmbeddedEngine } from '../adapters/sqlite/embedded-engine.js';
import { start } from '../main.js';
import type { Running } from '../main.js';
import { decimalInteger, parseArgs, refuseExtraArguments, UsageError } from './io.js';
import type { CliIo } from './io.js';

export const demoUsage = `usage: stockline demo [--duration S] [--shoppers N] [--seed N] [--port N] [--compare-polling] [--exit]
  --duration S        length of the sale in seconds (default ${demoLimits.durationSecondsDefault})
  --shoppers N        virtual shoppers at once (default ${demoLimits.shoppersDefault})
  --seed N            the sale's random seed: the same seed plans the same sale (default 42)
  --port N            port of the API and dashboard (default 8080; with --exit, any free port)
  --compare-polling   also play the same sale against a simulated 30 s polling sync, side by side
  --exit              stop after the summary instead of leaving the server up
`;

const demoTimeouts = {
  openingStockMs: 30_000,
  inStepMs: 60_000,
  expiryGraceMs: 3_000,
  pollMs: 50,
} as const;
const eventsPageSize = 5_000;
const defaultPort = 8080;
const env = { shopifyToken: 'STOCKLINE_DEMO_SHOPIFY_TOKEN', shopifySecret: 'STOCKLINE_DEMO_SHOPIFY_SECRET', webhookSecret: 'STOCKLINE_DEMO_WEBHOOK_SECRET' } as const;
const shopDomain = 'stockline-demo.myshopify.com';

interface DemoOptions {
  durationSeconds: number;
  shoppers: number;
  seed: number;
  port: number | undefined;
  comparePolling: boolean;
  exit: boolean;
}

interface Stage {
  plan: SalePlan;
  /** Aborted by Ctrl-C (SIGINT) or SIGTERM: every wait ends and the demo cleans up. */
  stop: AbortSignal;
  dataDir: string;
  running: Running;
  fake: FakeShopify;
  receiver: PushReceiver;
  feed: PostgresFeed | undefined;
  key: string;
  itemOf: Map<string, string>;
  shopifySecret: string;
}

function integerOption(value: string | boolean | undefined, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = typeof value === 'string' ? decimalInteger(value, min, max) : undefined;
  if (parsed === undefined) throw new UsageError(`--${name} must be a decimal integer ${min}..${max}`);
  return parsed;
}

function parseDemoArgs(args: string[]): DemoOptions {
  const { options, positional } = parseArgs(args, { string: ['duration', 'shoppers', 'seed', 'port'], boolean: ['compare-polling', 'exit'] });
  refuseExtraArguments(positional);
  return {
    durationSeconds: integerOption(options.duration, 'duration', demoLimits.durationSecondsMin, demoLimits.durationSecondsMax, demoLimits.durationSecondsDefault),
    shoppers: integerOption(options.shoppers, 'shoppers', demoLimits.shoppersMin, demoLimits.shoppersMax, demoLimits.shoppersDefault),
    seed: integerOption(options.seed, 'seed', 0, 4_294_967_295, 42),
    port: options.port === undefined ? undefined : integerOption(options.port, 'port', 0, 65_535, defaultPort),
    comparePolling: options['compare-polling'] === true,
    exit: options.exit === true,
  };
}

export async function demoCommand(args: string[], io: CliIo): Promise<number> {
  let options: DemoOptions;
  try {
    options = parseDemoArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`stockline demo: ${error.message}\n${demoUsage}`);
    return 2;
  }
  const plan = planSale({ seed: options.seed, durationMs: options.durationSeconds * 1000, shoppers: options.shoppers });
  const cleanups: Array<() => Promise<void> | void> = [];
  const stop = stopOnSignal(io, cleanups);
  try {
    const stage = await setUp(plan, options, io, cleanups, stop);
    const played = await playSale(stage, io);
    if (stop.aborted) return 130;
    const { run, report } = played;
    printSummary(io, played);
    if (options.comparePolling) printComparison(io, plan, simulatePolling(plan), run, report);
    const broken = report.apiUnitsBeyondStock > 0 || apiOversold(report) > 0;
    if (broken) io.stderr('stockline demo: an API channel sold stock that was not there; this is a bug, please report it\n');
    if (!options.exit) await stayUp(stage, io);
    return broken ? 1 : 0;
  } catch (error) {
    if (stop.aborted) return 130;
    const { code, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
    if (code === 'EADDRINUSE') {
      io.stderr(`stockline demo: port ${port} on ${address} is in use by another process: stop it, or pick another port (--port N)\n`);
      return 2;
    }
    io.stderr(`stockline demo: ${(error as Error).message}\n`);
    return 1;
  } finally {
    for (const cleanup of cleanups.reverse()) await Promise.resolve().then(cleanup).catch((error: unknown) => io.stderr(`stockline demo: cleanup: ${(error as Error).message}\n`));
  }
}

/**
 * The first Ctrl-C or SIGTERM ends the demo at any point and still cleans up (the replication slot above all);
 * a second one is left to Node's default and ends the process at once.
 */
function stopOnSignal(io: CliIo, cleanups: Array<() => Promise<void> | void>): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    forget();
    io.stderr(`stockline demo: ${signal} received, stopping and cleaning up\n`);
    controller.abort();
  };
  const forget = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  cleanups.push(forget);
  return controller.signal;
}

function apiOversold(report: LogReport): number {
  return report.oversold.storefront.units + report.oversold.b2b.units;
}

/** Tells whether a port can be listened on now; the server binds it a moment later. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

async function choosePort(options: DemoOptions, io: CliIo): Promise<number> {
  if (options.port !== undefined) return options.port;
  if (options.exit) return 0;
  if (await portFree(defaultPort)) return defaultPort;
  io.stdout(`port ${defaultPort} is taken; using a free port instead (--port N to choose)\n`);
  return 0;
}

/** Sets a secret for this process only, and forgets it on exit. */
function demoSecret(name: string, cleanups: Array<() => void>): string {
  const value = randomBytes(24).toString('base64url');
  process.env[name] = value;
  cleanups.push(() => { delete process.env[name]; });
  return value;
}

function channelConfigs(plan: SalePlan, fake: FakeShopify, receiver: PushReceiver, itemOf: Map<string, string>): Array<Record<string, unknown>> {
  const webhook = (channel: DemoChannel): Record<string, unknown> => ({
    id: channel, tenant: plan.tenant, type: 'webhook', ratePerSecond: 5_000, maxConcurrency: 32,
    webhook: { url: receiver.urlOf(channel), secretEnv: env.webhookSecret },
  });
  return [webhook('storefront'), webhook('b2b'), {
    id: 'shopify', tenant: plan.tenant, type: 'shopify', ratePerSecond: 100, maxConcurrency: 8,
    shopify: {
      shop: shopDomain, accessTokenEnv: env.shopifyToken, webhookSecretEnv: env.shopifySecret, baseUrl: fake.url,
      locationId: fake.locationId, inventoryItems: Object.fromEntries(itemOf),
    },
  }];
}

async function setUp(plan: SalePlan, options: DemoOptions, io: CliIo, cleanups: Array<() => Promise<void> | void>, stop: AbortSignal): Promise<Stage> {
  io.stdout(`stockline demo: a flash sale of ${plan.skus.length} SKUs in ${plan.locations.length} locations on ${demoChannels.length} channels, ${plan.shoppers} shoppers for ${options.durationSeconds} s (seed ${plan.seed})\n`);
  const dataDir = mkdtempSync(join(tmpdir(), 'stockline-demo-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const token = demoSecret(env.shopifyToken, cleanups);
  const shopifySecret = demoSecret(env.shopifySecret, cleanups);
  const webhookSecret = demoSecret(env.webhookSecret, cleanups);
  // Shopify Plus-sized cost limits (1,000 points/s): a standard plan's 100 points/s allows only 10 pushes a second.
  const fake = await startFakeShopify({ items: plan.skus.map((sku) => ({ sku, available: 0 })), accessToken: token, bucket: { maximumAvailable: 10_000, restoreRate: 1_000 } });
  cleanups.push(() => fake.stop());
  const itemOf = new Map(plan.skus.map((sku) => [sku, fake.idOf(sku) as string]));
  const receiver = await startPushReceiver(webhookSecret);
  cleanups.push(() => receiver.close());
  const outcome = await openPostgresFeed(plan.tenant, plan.stock);
  const feed = 'feed' in outcome ? outcome.feed : undefined;
  if (feed !== undefined) cleanups.push(() => feed.drop());
  io.stdout(feed === undefined
    ? `  stock feed: PostgreSQL skipped: ${(outcome as { skipped: string }).skipped}; opening stock and restocks go through POST /adjustments instead\n`
    : `  stock feed: PostgreSQL logical replication from ${feed.table} (slot ${feed.slot}); restocks are UPDATEs of that table\n`);
  io.stdout(`  shopify: the fake Shopify Admin API at ${fake.url}; its orders arrive as signed orders/create webhooks\n`);
  const config = resolveConfig({
    dataDir, logLevel: 'warn', server: { host: '127.0.0.1', port: await choosePort(options, io) }, ledger: { expiryIntervalMs: 100 },
    sources: feed === undefined ? [] : [feed.source], channels: channelConfigs(plan, fake, receiver, itemOf),
  });
  const running = await start({ config, io });
  cleanups.push(() => running.close());
  const key = new ApiKeyStore((running.engine as EmbeddedEngine).db).create({ tenant: plan.tenant, scopes: ['read', 'write'] }).key;
  const stage: Stage = { plan, stop, dataDir, running, fake, receiver, feed, key, itemOf, shopifySecret };
  await openShop(stage, io);
  return stage;
}

async function api(stage: Stage, method: 'PUT' | 'POST', path: string, body: unknown): Promise<void> {
  const response = await fetch(`${stage.running.url}/v1/tenants/${stage.plan.tenant}${path}`, {
    method, headers: { authorization: `Bearer ${stage.key}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
}

async function until(check: () => boolean, timeoutMs: number, what: string, stop: AbortSignal): Promise<number> {
  const startMs = performance.now();
  while (!check()) {
    if (stop.aborted) throw new Error(`stopped while waiting for ${what}`);
    if (performance.now() - startMs > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, demoTimeouts.pollMs));
  }
  return performance.now() - startMs;
}

function inStep(stage: Stage): boolean {
  return stage.running.channels.outbox.oldestUnsynced().length === 0;
}

/** Channel policies and opening stock, then waits until every channel shows it. */
async function openShop(stage: Stage, io: CliIo): Promise<void> {
  const { plan } = stage;
  for (const channel of demoChannels) await api(stage, 'PUT', `/channels/${channel}`, plan.policies[channel]);
  if (stage.feed === undefined) {
    await api(stage, 'POST', '/adjustments', { adjustments: plan.stock.map(({ sku, location, onHand }) => ({ sku, location, set: onHand, reason: 'opening stock' })) });
  } else {
    const source = stage.running.sources[0];
    await until(() => {
      const status = source?.status();
      if (status?.state === 'failed') throw new Error(`the PostgreSQL source stopped: ${status.lastError === null ? 'no reason given' : `${status.lastError.code}: ${status.lastError.message}`}`);
      return plan.stock.every((entry) => stage.running.engine.tenant(plan.tenant)?.skus.get(entry.sku)?.locations.get(entry.location)?.onHand === entry.onHand);
    }, demoTimeouts.openingStockMs, 'the PostgreSQL snapshot to load the opening stock', stage.stop);
  }
  const syncMs = await until(() => inStep(stage), demoTimeouts.inStepMs, 'every channel to show the opening stock', stage.stop);
  const units = plan.stock.reduce((sum, entry) => sum + entry.onHand, 0);
  io.stdout(`  opening stock: ${units.toLocaleString('en-US')} units; every channel showed it ${Math.round(syncMs)} ms later\n`);
}

function targetsOf(stage: Stage): SaleTargets {
  const { fake, itemOf, running } = stage;
  const itemId = (sku: string): string => itemOf.get(sku) as string;
  return {
    url: running.url,
    key: stage.key,
    shopify: {
      levelOf: (sku) => fake.levels.get(itemId(sku)) ?? 0,
      sell: (sku, quantity) => fake.setLevel(itemId(sku), (fake.levels.get(itemId(sku)) ?? 0) - quantity),
      webhookUrl: `${running.url}/v1/webhooks/shopify/shopify`,
      secret: stage.shopifySecret,
      shopDomain,
    },
    restock: async (restock) => {
      if (stage.feed !== undefined) return stage.feed.restock(restock.sku, restock.location, restock.delta);
      await api(stage, 'POST', '/adjustments', { sku: restock.sku, location: restock.location, delta: restock.delta, reason: 'received' });
    },
  };
}

async function readLog(stage: Stage): Promise<LoggedEvent[]> {
  const events: LoggedEvent[] = [];
  for (let after = 0; ;) {
    const page = await stage.running.engine.eventsAfter(stage.plan.tenant, after, eventsPageSize);
    events.push(...page.events);
    if (page.events.length === 0 || page.next === after) return events;
    after = page.next;
  }
}

type PushCounts = Record<DemoChannel, { ok: number; retry: number; failed: number }>;

/** Channel pushes by outcome, from the Prometheus counters. */
async function pushCounts(running: Running): Promise<PushCounts> {
  const counts = Object.fromEntries(demoChannels.map((channel) => [channel, { ok: 0, retry: 0, failed: 0 }])) as PushCounts;
  const metric = await running.metrics.registry.getSingleMetric('stockline_channel_pushes_total')?.get();
  for (const { labels, value } of metric?.values ?? []) {
    const entry = counts[labels.channel as DemoChannel] as PushCounts[DemoChannel] | undefined;
    const outcome = labels.outcome as keyof PushCounts[DemoChannel];
    if (entry !== undefined && outcome in entry) entry[outcome] += value;
  }
  return counts;
}

interface Played {
  run: SaleRun;
  report: LogReport;
  settleMs: number;
  /** Pushes of the sale, by channel and outcome. */
  pushes: PushCounts;
}

async function playSale(stage: Stage, io: CliIo): Promise<Played> {
  const { plan, running } = stage;
  const saleFrom = running.engine.position();
  const pushesBefore = await pushCounts(running);
  io.stdout(`\nthe sale is on: ${plan.visits.flat().length.toLocaleString('en-US')} visits planned, ${plan.hotSku} is the hot SKU...\n`);
  const run = await runSale(plan, targetsOf(stage), stage.stop);
  const held = (): boolean => [...(running.engine.tenant(plan.tenant)?.reservations.values() ?? [])].some((reservation) => reservation.status === 'held');
  const expiredMs = await until(() => !held(), demoLimits.ttlSeconds * 1000 + demoTimeouts.expiryGraceMs, 'the abandoned carts to expire', stage.stop);
  const settleMs = expiredMs + await until(() => inStep(stage), demoTimeouts.inStepMs, 'every channel to show the final stock', stage.stop);
  const pushes = await pushCounts(running);
  for (const channel of demoChannels) {
    for (const outcome of ['ok', 'retry', 'failed'] as const) pushes[channel][outcome] -= pushesBefore[channel][outcome];
  }
  return { run, report: reportFromLog(plan.tenant, await readLog(stage), saleFrom), settleMs, pushes };
}

const number = (value: number): string => value.toLocaleString('en-US');
const units = (value: number): string => `${number(value)} ${value === 1 ? 'unit' : 'units'}`;
const pad = (text: string | number, width: number): string => String(text).padStart(width);
const milliseconds = (value: number): string => (value < 10 ? value.toFixed(1) : number(Math.round(value)));

function printSummary(io: CliIo, { run, report, settleMs, pushes }: Played): void {
  const lines = [`\nsale over: ${number(run.visits)} visits in ${(run.elapsedMs / 1000).toFixed(1)} s, ${run.restocks} restocks from the stock feed${run.skippedVisits > 0 ? `, ${number(run.skippedVisits)} visits skipped (the machine could not keep up)` : ''}`];
  lines.push('', `orders            ${pad('accepted', 9)} ${pad('units', 7)} ${pad('refused', 8)} ${pad('abandoned', 10)} ${pad('errors', 7)}`);
  for (const channel of demoChannels) {
    const tally = run.channels[channel];
    lines.push(`  ${channel.padEnd(15)} ${pad(number(tally.orders), 9)} ${pad(number(tally.unitsSold), 7)} ${pad(number(tally.refused + tally.expiredBeforePayment), 8)} ${pad(number(tally.abandoned), 10)} ${pad(tally.errors, 7)}`);
  }
  lines.push(`  refused: no stock for the hold (API), expired before payment, or shown sold out (Shopify); ${number(report.expired)} abandoned holds expired after ${demoLimits.ttlSeconds} s`);
  lines.push('', 'oversells (units sold beyond stock)');
  for (const channel of demoChannels) {
    const { units: oversoldUnits, incidents } = report.oversold[channel];
    const note = channel !== 'shopify' ? 'holds are checked against the ledger'
      : incidents === 0 ? 'marketplace orders are facts; none came in for stock that was gone'
        : `${incidents} ${incidents === 1 ? 'order' : 'orders'} taken before Shopify heard of a change: each recorded as conflict_detected, Shopify pushed 0`;
    lines.push(`  ${channel.padEnd(12)} ${pad(oversoldUnits, 5)} ${oversoldUnits === 1 ? 'unit ' : 'units'}  (${note})`);
  }
  lines.push(`  audit: replaying the log, API holds beyond stock: ${units(report.apiUnitsBeyondStock)}`);
  const latency = summarise(run.reserveLatenciesMs);
  lines.push('', `reservation latency (HTTP round trip, shoppers and server in one process): p50 ${milliseconds(latency.p50Ms)} ms, p99 ${milliseconds(latency.p99Ms)} ms (${number(latency.count)} holds)`);
  lines.push('propagation lag (sync_complete: change to channel acknowledgement)');
  for (const channel of demoChannels) {
    const lag = report.propagation[channel];
    const retried = pushes[channel].retry + pushes[channel].failed;
    lines.push(`  ${channel.padEnd(12)} p50 ${pad(milliseconds(lag.p50Ms), 6)} ms  p99 ${pad(milliseconds(lag.p99Ms), 6)} ms  max ${pad(milliseconds(lag.maxMs), 6)} ms  (${number(lag.count)} pushes acknowledged, ${number(retried)} retried)`);
  }
  if (pushes.shopify.retry > 0) lines.push('  Shopify retries are mostly compare-and-set refusals: Shopify sold the SKU itself between our read and our write');
  lines.push(settleMs < 1
    ? '  every channel already showed the final stock when the last shopper left'
    : `  every channel showed the final stock ${number(Math.round(settleMs))} ms after the last shopper left (abandoned holds expire up to ${demoLimits.ttlSeconds} s later)`);
  const mismatch = demoChannels.filter((channel) => report.committedOrders[channel] !== run.channels[channel].orders);
  if (mismatch.length > 0) lines.push(`  note: the ledger's committed orders differ from the shoppers' count on ${mismatch.join(', ')}`);
  lines.push(...run.errorSamples.map((sample) => `  error: ${sample}`));
  io.stdout(`${lines.join('\n')}\n`);
}

function printComparison(io: CliIo, plan: SalePlan, polling: PollingResult, run: SaleRun, report: LogReport): void {
  const saleMinutes = (plan.durationMs * polling.timeCompression) / 60_000;
  const lines = [
    '', `the same sale (seed ${plan.seed}) under a polling sync, simulated`,
    `  every channel learns availability every ${polling.pollIntervalSeconds} s, sells from that view less its own sales, and accepts every order as a fact;`,
    `  time is compressed ${polling.timeCompression}x: the ${plan.durationMs / 1000} s sale stands for ${saleMinutes.toFixed(1)} minutes, so a poll lands every ${polling.pollEveryMs} ms (${polling.polls} polls)`,
    '',
    `                  polling every ${polling.pollIntervalSeconds} s        Stockline`,
    `  channel         ${pad('sold', 8)} ${pad('oversold', 9)}     ${pad('sold', 8)} ${pad('oversold', 9)}`,
  ];
  let stocklineOversold = 0;
  for (const channel of demoChannels) {
    const simulated = polling.channels[channel];
    const oversold = report.oversold[channel].units;
    stocklineOversold += oversold;
    lines.push(`  ${channel.padEnd(15)} ${pad(number(simulated.unitsSold), 8)} ${pad(number(simulated.unitsOversold), 9)}     ${pad(number(run.channels[channel].unitsSold), 8)} ${pad(number(oversold), 9)}`);
  }
  const pollingOrders = demoChannels.reduce((sum, channel) => sum + polling.channels[channel].oversoldOrders, 0);
  lines.push(`  polling sync oversold ${units(polling.unitsOversold)} in ${number(pollingOrders)} ${pollingOrders === 1 ? 'order' : 'orders'}; Stockline oversold ${units(apiOversold(report))} on the API channels and ${number(stocklineOversold - apiOversold(report))} on Shopify`);
  io.stdout(`${lines.join('\n')}\n`);
}

async function stayUp(stage: Stage, io: CliIo): Promise<void> {
  const { running, plan } = stage;
  io.stdout(`
Stockline is still running with the sale's data (Ctrl-C to stop; the temporary data folder is then removed):
  API:        ${running.url}/v1/tenants/${plan.tenant}/skus/${plan.hotSku}
  key:        ${stage.key}   (tenant ${plan.tenant}, read and write)
  dashboard:  ${running.url}/?tenant=${plan.tenant}   (enter the key)
  metrics:    ${running.url}/metrics
try:
  curl -s -H 'Authorization: Bearer ${stage.key}' ${running.url}/v1/tenants/${plan.tenant}/skus/${plan.hotSku}
`);
  if (stage.stop.aborted) return;
  await new Promise<void>((resolve) => stage.stop.addEventListener('abort', () => resolve(), { once: true }));
}
