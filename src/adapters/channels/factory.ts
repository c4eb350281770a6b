// Builds channel connectors from the `channels:` configuration: the one place that reads their secrets from the environment.

import { readFileSync } from 'node:fs';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createAjv } from '../../app/ajv.js';
import { packagePath } from '../../app/paths.js';
import type { ChannelConnector } from './connector.js';
import { ChannelError } from './errors.js';
import { channelLimits } from './limits.js';
import { ShopifyConnector } from './shopify/connector.js';
import { ShopifyVariantItems } from './shopify/variant-items.js';
import type { MappedItems, ShopifyWebhookChannel } from './shopify/webhooks.js';
import { SignedWebhookConnector } from './webhook/connector.js';

export interface ShopifyChannelSettings {
  shop: string;
  apiVersion?: string;
  accessTokenEnv: string;
  webhookSecretEnv: string;
  baseUrl?: string;
  locationId: string;
  inventoryItems?: Record<string, string>;
  restockLocation?: string;
  timeoutMs?: number;
}

export interface WebhookChannelSettings {
  url: string;
  secretEnv: string;
  readUrl?: string;
  timeoutMs?: number;
}

/** One item of the configuration's `channels:` list; the contract is schema/channel-config.schema.json. */
export interface ChannelConfig {
  id: string;
  tenant: string;
  type: 'shopify' | 'webhook';
  ratePerSecond?: number;
  maxConcurrency?: number;
  shopify?: ShopifyChannelSettings;
  webhook?: WebhookChannelSettings;
}

export type Environment = Record<string, string | undefined>;

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  compiled ??= createAjv({ verbose: true }).compile(
    JSON.parse(readFileSync(packagePath('schema', 'channel-config.schema.json'), 'utf8')) as object,
  );
  return compiled;
}

function describe(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'additionalProperties') return `${error.instancePath}/${String(params.additionalProperty)} is not allowed`;
  if (error.keyword === 'required') return `${error.instancePath}/${String(params.missingProperty)} is required`;
  const where = error.instancePath || '/';
  if (error.keyword === 'false schema') return `${where} does not belong to a channel of this type`;
  const title = error.parentSchema?.title;
  if (error.keyword === 'pattern' && typeof title === 'string') return `${where} must be ${title}`;
  return `${where} ${error.message ?? error.keyword}`;
}

/** The schema violations of one channel item; empty when it is valid. Values are configuration, never secrets. */
export function validateChannelConfig(candidate: unknown): string[] {
  const validate = validator();
  if (validate(candidate)) return [];
  // `if`/`then` failures repeat what the inner errors already say.
  return (validate.errors ?? []).filter((error) => error.keyword !== 'if').map(describe);
}

function assertValid(config: unknown): asserts config is ChannelConfig {
  const violations = validateChannelConfig(config);
  const id = typeof config === 'object' && config !== null && typeof (config as { id?: unknown }).id === 'string' ? (config as { id: string }).id : '?';
  if (violations.length > 0) throw new ChannelError('CHANNEL_CONFIG_INVALID', `channel ${id}: ${violations.join('; ')}`);
  const shared = sharedItemOf((config as ChannelConfig).shopify?.inventoryItems ?? {});
  if (shared !== undefined) {
    // Both SKUs would be pushed to one item, each overwriting the other, and its orders could be neither's.
    throw new ChannelError('CHANNEL_CONFIG_INVALID', `channel ${id}: /shopify/inventoryItems maps ${shared.skus.join(' and ')} to one inventory item (${shared.item})`);
  }
}

/** The first inventory item two SKUs are mapped to, if any. */
function sharedItemOf(inventoryItems: Record<string, string>): { item: string; skus: [string, string] } | undefined {
  const skuOfItem = new Map<string, string>();
  for (const [sku, item] of Object.entries(inventoryItems)) {
    const other = skuOfItem.get(item);
    if (other !== undefined) return { item, skus: [other, sku] };
    skuOfItem.set(item, sku);
  }
  return undefined;
}

/** A secret from the environment; the error names the variable and what it is for, never a value. */
function secretFrom(env: Environment, name: string, what: string, channel: string): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new ChannelError('CHANNEL_SECRET_MISSING', `channel ${channel}: environment variable ${name} (${what}) is not set`);
  }
  return value;
}

export function createConnector(config: ChannelConfig, env: Environment): ChannelConnector {
  assertValid(config);
  const common = {
    channel: config.id,
    tenant: config.tenant,
    ...(config.maxConcurrency === undefined ? {} : { maxConcurrency: config.maxConcurrency }),
    ...(config.ratePerSecond === undefined ? {} : { ratePerSecond: config.ratePerSecond }),
  };
  if (config.type === 'shopify') {
    const settings = config.shopify as ShopifyChannelSettings;
    return new ShopifyConnector({
      ...common,
      shop: settings.shop,
      accessToken: secretFrom(env, settings.accessTokenEnv, 'the Shopify Admin API access token', config.id),
      locationId: settings.locationId,
      ...optional(settings, ['apiVersion', 'baseUrl', 'inventoryItems', 'timeoutMs']),
    });
  }
  const settings = config.webhook as WebhookChannelSettings;
  return new SignedWebhookConnector({
    ...common,
    url: settings.url,
    secret: secretFrom(env, settings.secretEnv, 'the webhook signing secret', config.id),
    ...optional(settings, ['readUrl', 'timeoutMs']),
  });
}

/** The Shopify channels whose order webhooks the HTTP server accepts, with their secrets resolved. */
export function shopifyWebhookChannels(configs: ChannelConfig[], env: Environment): ShopifyWebhookChannel[] {
  return configs.filter((config) => config.type === 'shopify').map((config) => {
    assertValid(config);
    const settings = config.shopify as ShopifyChannelSettings;
    const mappedItems = mappedItemsOf(config, settings, env);
    return {
      channel: config.id,
      tenant: config.tenant,
      type: 'shopify',
      webhookSecret: secretFrom(env, settings.webhookSecretEnv, 'the Shopify app secret that signs webhooks', config.id),
      shopDomain: settings.shop,
      ...(settings.restockLocation === undefined ? {} : { restockLocation: settings.restockLocation }),
      ...(mappedItems === undefined ? {} : { mappedItems }),
    };
  });
}

/**
 * With SKUs mapped under `inventoryItems`, order lines are matched by the inventory item of their variant, which
 * the webhook route asks the Admin API for (with the channel's access token). Without, a line sells its own SKU.
 */
function mappedItemsOf(config: ChannelConfig, settings: ShopifyChannelSettings, env: Environment): MappedItems | undefined {
  const entries = Object.entries(settings.inventoryItems ?? {});
  if (entries.length === 0) return undefined;
  const variants = new ShopifyVariantItems({
    shop: settings.shop,
    accessToken: secretFrom(env, settings.accessTokenEnv, 'the Shopify Admin API access token', config.id),
    ...optional(settings, ['apiVersion', 'baseUrl']),
    timeoutMs: Math.min(settings.timeoutMs ?? channelLimits.requestTimeoutMsDefault, channelLimits.webhookLookupTimeoutMsMax),
    throttleWaitMsMax: channelLimits.webhookLookupThrottleWaitMsMax,
  });
  return { itemOfSku: new Map(entries), skuOfItem: new Map(entries.map(([sku, item]) => [item, sku])), variants };
}

function optional<T extends object, K extends keyof T>(source: T, keys: K[]): Partial<Pick<T, K>> {
  const picked: Partial<Pick<T, K>> = {};
  for (const key of keys) if (source[key] !== undefined) picked[key] = source[key];
  return picked;
}
