// A `stockline serve` process with channels, for end-to-end tests: the fake Shopify and the signed-webhook receivers
// it pushes to, the YAML configuration and secrets that point at them, and bounded waits on its channel outbox.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startFakeShopify } from '../fakes/fake-shopify.js';
import type { FakeShopify } from '../fakes/fake-shopify.js';
import { pollUntil } from './prometheus.js';
import { processAdminKey, startStockline } from './stockline-process.js';
import type { StocklineProcess } from './stockline-process.js';
import { startWebhookReceiver } from './webhook-receiver.js';
import type { WebhookReceiver } from './webhook-receiver.js';

export const shopDomain = 'stockline-e2e.myshopify.com';
export const shopifyAccessToken = 'shpat_e2e_0123456789abcdef';
export const shopifyAppSecret = 'shopify-app-secret-e2e-0123456789';
const shopifyTokenEnv = 'STOCKLINE_E2E_SHOPIFY_TOKEN';
const shopifySecretEnv = 'STOCKLINE_E2E_SHOPIFY_APP_SECRET';

export const stackLimits = {
  /** A graceful stop waits this long (the sync worker waits up to 10 s for pushes in flight), then kills. */
  stopTimeoutMs: 15_000,
  requestTimeoutMs: 10_000,
  availabilitySkusPerRequestMax: 100,
} as const;

export interface ChannelTuning {
  ratePerSecond?: number;
  maxConcurrency?: number;
  timeoutMs?: number;
}

export interface ShopifyChannelSpec extends ChannelTuning {
  id: string;
  /** The fake's base URL. */
  url: string;
  locationId: string;
  /** SKU -> inventory item id, so no push has to search. */
  items: Record<string, string>;
}

export interface WebhookChannelSpec extends ChannelTuning {
  id: string;
  url: string;
  readUrl?: string;
}

export interface ChannelConfigSpec {
  tenant: string;
  dataDir: string;
  shopify?: ShopifyChannelSpec;
  webhooks?: WebhookChannelSpec[];
  /** 0 (the default here) turns the periodic reconciliation off, so drift stays until a test repairs it. */
  reconcileIntervalMs?: number;
}

/** The environment variable that holds a webhook channel's signing secret. */
export function secretEnvOf(channel: string): string {
  return `STOCKLINE_E2E_${channel.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_SECRET`;
}

export function webhookSecretOf(channel: string): string {
  return `webhook-secret-${channel}-0123456789`;
}

function tuning(spec: ChannelTuning): Record<string, number> {
  return {
    ...(spec.ratePerSecond === undefined ? {} : { ratePerSecond: spec.ratePerSecond }),
    ...(spec.maxConcurrency === undefined ? {} : { maxConcurrency: spec.maxConcurrency }),
  };
}

/** The configuration document (as `stockline serve --config` reads it) and the secrets its channels name. */
export function channelConfigOf(spec: ChannelConfigSpec): { document: Record<string, unknown>; env: Record<string, string> } {
  const channels: Array<Record<string, unknown>> = [];
  const env: Record<string, string> = {};
  if (spec.shopify !== undefined) {
    const shopify = spec.shopify;
    channels.push({
      id: shopify.id, tenant: spec.tenant, type: 'shopify', ...tuning(shopify),
      shopify: {
        shop: shopDomain, apiVersion: '2026-04', accessTokenEnv: shopifyTokenEnv, webhookSecretEnv: shopifySecretEnv,
        baseUrl: shopify.url, locationId: shopify.locationId, inventoryItems: shopify.items,
        ...(shopify.timeoutMs === undefined ? {} : { timeoutMs: shopify.timeoutMs }),
      },
    });
    env[shopifyTokenEnv] = shopifyAccessToken;
    env[shopifySecretEnv] = shopifyAppSecret;
  }
  for (const webhook of spec.webhooks ?? []) {
    channels.push({
      id: webhook.id, tenant: spec.tenant, type: 'webhook', ...tuning(webhook),
      webhook: {
        url: webhook.url, secretEnv: secretEnvOf(webhook.id),
        ...(webhook.readUrl === undefined ? {} : { readUrl: webhook.readUrl }),
        ...(webhook.timeoutMs === undefined ? {} : { timeoutMs: webhook.timeoutMs }),
      },
    });
    env[secretEnvOf(webhook.id)] = webhookSecretOf(webhook.id);
  }
  const document = {
    engine: 'embedded', dataDir: spec.dataDir, logLevel: 'warn',
    sync: { reconcileIntervalMs: spec.reconcileIntervalMs ?? 0 },
    channels,
  };
  return { document, env };
}

/** Writes the configuration file; returns the environment the process needs for its secrets. */
export function writeChannelConfig(file: string, spec: ChannelConfigSpec): Record<string, string> {
  const { document, env } = channelConfigOf(spec);
  writeFileSync(file, stringify(document));
  return env;
}

export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** One call of the HTTP API with the admin key; JSON in, JSON (or text) out. */
export async function callApi(baseUrl: string, method: string, path: string, body?: unknown): Promise<ApiAnswer> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${processAdminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(stackLimits.requestTimeoutMs),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: keep the text for the failure message.
  }
  return { status: response.status, body: parsed };
}

export interface MetricSample {
  labels: Record<string, string>;
  value: number;
}

/** Samples of one metric from a Prometheus text exposition. */
export function parseMetric(text: string, name: string): MetricSample[] {
  const samples: MetricSample[] = [];
  const line = new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`);
  for (const row of text.split('\n')) {
    const match = line.exec(row);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] as string] = pair[2] as string;
    samples.push({ labels, value: Number(match[2]) });
  }
  return samples;
}

export async function readMetric(baseUrl: string, name: string): Promise<MetricSample[]> {
  const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(stackLimits.requestTimeoutMs) });
  return parseMetric(await response.text(), name);
}

/** Sum of a counter or gauge over the samples whose labels include `labels`. */
export async function metricValue(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const samples = await readMetric(baseUrl, name);
  return samples
    .filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}

/**
 * Waits until no channel quantity waits to be pushed or acknowledged (`stockline_outbox_depth` all zero). A change is
 * in the outbox once its request is answered, so after the last answer this means every channel acknowledged it.
 */
export async function waitForOutboxEmpty(baseUrl: string, timeoutMs: number): Promise<void> {
  await pollUntil('every channel to acknowledge (outbox depth 0)', async () => {
    const depth = await readMetric(baseUrl, 'stockline_outbox_depth');
    return depth.every((sample) => sample.value === 0) ? true : undefined;
  }, timeoutMs);
}

export interface ChannelStackOptions {
  tenant: string;
  /** SKUs the fake Shopify stocks (at 0) and the config maps to inventory items. */
  skus: string[];
  /** The Shopify channel `shop`, unless false. */
  shopify?: ChannelTuning | false;
  /** Signed-webhook channels, each with its own receiver (with a read endpoint). */
  webhooks?: Array<ChannelTuning & { id: string }>;
}

export interface Drift {
  channel: string;
  sku: string;
  availableToSell: number;
  shown: number | null;
}

export interface ChannelStack {
  tenant: string;
  dataDir: string;
  configFile: string;
  /** The secrets the process (and `stockline reconcile`) needs. */
  env: Record<string, string>;
  fake: FakeShopify;
  /** Shopify inventory item id of a SKU. */
  itemOf(sku: string): string;
  receivers: Map<string, WebhookReceiver>;
  /** Every channel id, Shopify first. */
  channels: string[];
  stockline: StocklineProcess;
  url(): string;
  api(method: string, path: string, body?: unknown): Promise<ApiAnswer>;
  /** What a channel shows for a SKU, or null when it shows nothing. */
  shown(channel: string, sku: string): number | null;
  /** The ledger's available-to-sell per channel for these SKUs, from the HTTP API. */
  availableToSell(skus: string[]): Promise<Map<string, Map<string, number>>>;
  /** Every (channel, SKU) whose shown quantity is not the ledger's available-to-sell. */
  drift(skus: string[]): Promise<Drift[]>;
  /** Waits for the outbox to empty, then returns the drift left (a test expects none). */
  converge(skus: string[], timeoutMs?: number): Promise<Drift[]>;
  /** Stops the process (SIGKILL: a crash) and starts it again on the same data and configuration. */
  restart(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  close(): Promise<void>;
}

async function stopProcess(stockline: StocklineProcess, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const timer = setTimeout(() => stockline.child.kill('SIGKILL'), stackLimits.stopTimeoutMs);
  try {
    await stockline.stop(signal);
  } finally {
    clearTimeout(timer);
  }
}

export async function startChannelStack(options: ChannelStackOptions): Promise<ChannelStack> {
  const directory = mkdtempSync(join(tmpdir(), `stockline-e2e-${options.tenant}-`));
  const dataDir = join(directory, 'data');
  const configFile = join(directory, 'stockline.yaml');
  const fake = await startFakeShopify({ accessToken: shopifyAccessToken });
  const receivers = new Map<string, WebhookReceiver>();
  let stockline: StocklineProcess | undefined;
  const cleanup = async (): Promise<void> => {
    if (stockline !== undefined) await stopProcess(stockline, 'SIGTERM');
    await fake.stop();
    await Promise.all([...receivers.values()].map((receiver) => receiver.stop()));
    rmSync(directory, { recursive: true, force: true });
  };
  try {
    const items: Record<string, string> = {};
    for (const sku of options.skus) items[sku] = fake.addItem(sku, 0);
    const shopify = options.shopify === false ? undefined : { id: 'shop', url: fake.url, locationId: fake.locationId, items, ...options.shopify };
    const webhooks = await startReceivers(options, receivers);
    const env = writeChannelConfig(configFile, { tenant: options.tenant, dataDir, ...(shopify === undefined ? {} : { shopify }), webhooks });
    const args = ['--config', configFile, '--data-dir', dataDir];
    stockline = await startStockline(args, env);
    const channels = [...(shopify === undefined ? [] : [shopify.id]), ...webhooks.map((webhook) => webhook.id)];
    const current = (): StocklineProcess => stockline as StocklineProcess;
    const stack: ChannelStack = {
      tenant: options.tenant, dataDir, configFile, env, fake, receivers, channels,
      get stockline() { return current(); },
      itemOf: (sku) => {
        const id = items[sku];
        if (id === undefined) throw new Error(`the fake Shopify has no item for ${sku}`);
        return id;
      },
      url: () => current().url,
      api: (method, path, body) => callApi(current().url, method, path, body),
      shown: (channel, sku) => {
        if (channel === shopify?.id) return fake.levels.get(stack.itemOf(sku)) ?? null;
        const receiver = receivers.get(channel);
        if (receiver === undefined) throw new Error(`no channel ${channel}`);
        return receiver.shown(sku)?.quantity ?? null;
      },
      availableToSell: (skus) => availableToSellOf(current().url, options.tenant, channels, skus),
      async drift(skus) {
        const wanted = await stack.availableToSell(skus);
        const drift: Drift[] = [];
        for (const [channel, bySku] of wanted) {
          for (const [sku, availableToSell] of bySku) {
            const shown = stack.shown(channel, sku);
            if (shown !== availableToSell) drift.push({ channel, sku, availableToSell, shown });
          }
        }
        return drift;
      },
      async converge(skus, timeoutMs = 30_000) {
        await waitForOutboxEmpty(current().url, timeoutMs);
        return stack.drift(skus);
      },
      async restart(signal) {
        await stopProcess(current(), signal);
        stockline = await startStockline(args, env);
      },
      close: cleanup,
    };
    return stack;
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** One receiver per webhook channel; returns the channels' specs pointing at them. */
async function startReceivers(options: ChannelStackOptions, receivers: Map<string, WebhookReceiver>): Promise<WebhookChannelSpec[]> {
  const specs: WebhookChannelSpec[] = [];
  for (const webhook of options.webhooks ?? []) {
    const receiver = await startWebhookReceiver({ tenant: options.tenant, channel: webhook.id, secret: webhookSecretOf(webhook.id) });
    receivers.set(webhook.id, receiver);
    specs.push({ ...webhook, url: receiver.url, readUrl: receiver.readUrl });
  }
  return specs;
}

async function availableToSellOf(baseUrl: string, tenant: string, channels: string[], skus: string[]): Promise<Map<string, Map<string, number>>> {
  const result = new Map<string, Map<string, number>>();
  for (const channel of channels) {
    const bySku = new Map<string, number>();
    for (let index = 0; index < skus.length; index += stackLimits.availabilitySkusPerRequestMax) {
      const batch = skus.slice(index, index + stackLimits.availabilitySkusPerRequestMax);
      const answer = await callApi(baseUrl, 'GET', `/v1/tenants/${tenant}/availability?channel=${channel}&skus=${batch.join(',')}`);
      if (answer.status !== 200) throw new Error(`availability of ${channel}: ${answer.status} ${JSON.stringify(answer.body)}`);
      for (const item of (answer.body as { skus: Array<{ sku: string; availableToSell: number }> }).skus) bySku.set(item.sku, item.availableToSell);
    }
    result.set(channel, bySku);
  }
  return result;
}
