// The Shopify connector against the fake Admin API on loopback: compare-and-set, throttling, failures, idempotency, reads.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChannelPush } from '../../src/adapters/channels/connector.js';
import { ChannelError } from '../../src/adapters/channels/errors.js';
import { createConnector, shopifyWebhookChannels, validateChannelConfig } from '../../src/adapters/channels/factory.js';
import type { ChannelConfig } from '../../src/adapters/channels/factory.js';
import { ShopifyConnector } from '../../src/adapters/channels/shopify/connector.js';
import type { ShopifyConnectorOptions } from '../../src/adapters/channels/shopify/connector.js';
import { namePattern, skuPattern, tenantIdPattern } from '../../src/core/index.js';
import { startFakeShopify } from '../fakes/fake-shopify.js';
import type { FakeShopify } from '../fakes/fake-shopify.js';

const accessToken = 'shpat_test_token_0123456789';
let fake: FakeShopify;
const connectors: ShopifyConnector[] = [];

function connect(options: Partial<ShopifyConnectorOptions> = {}): ShopifyConnector {
  const connector = new ShopifyConnector({
    channel: 'shop', tenant: 'acme', shop: 'acme.myshopify.com', accessToken, locationId: fake.locationId, baseUrl: fake.url, timeoutMs: 2_000, ...options,
  });
  connectors.push(connector);
  return connector;
}

let version = 0;
function pushOf(sku: string, quantity: number, previousQuantity: number | null): ChannelPush {
  version += 1;
  return { tenant: 'acme', channel: 'shop', sku, quantity, previousQuantity, version, idempotencyKey: `push-${version}` };
}

function itemId(sku: string): string {
  const id = fake.idOf(sku);
  if (id === undefined) throw new Error(`the fake has no ${sku}`);
  return id;
}

function operations(): string[] {
  return fake.requests.map((request) => request.operation);
}

/** Polls until `check` holds; bounded, so a broken fake fails the test instead of hanging it. */
async function until(check: () => boolean, waitMsMax = 5_000): Promise<void> {
  for (let waited = 0; !check(); waited += 10) {
    if (waited > waitMsMax) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

beforeEach(async () => {
  fake = await startFakeShopify({ accessToken, items: [{ sku: 'sku-1', available: 5 }, { sku: 'sku-2', available: 0 }, { sku: 'unstocked', available: null }] });
});

afterEach(async () => {
  for (const connector of connectors.splice(0)) await connector.close();
  await fake.stop();
});

describe('push', () => {
  it('sets available with compare-and-set and an idempotency key', async () => {
    const result = await connect().push(pushOf('sku-1', 7, 5));
    expect(result).toEqual({ kind: 'ok' });
    expect(fake.levels.get(itemId('sku-1'))).toBe(7);
    const set = fake.requests.find((request) => request.operation === 'inventorySetQuantities');
    expect(set?.idempotencyKey).toMatch(/^stockline-[0-9a-f]{48}$/);
    expect(set?.variables).toMatchObject({
      input: {
        name: 'available', reason: 'correction', referenceDocumentUri: expect.stringMatching(/^gid:\/\/stockline\//),
        quantities: [{ inventoryItemId: itemId('sku-1'), locationId: fake.locationId, quantity: 7, changeFromQuantity: 5 }],
      },
    });
  });

  it('reads the current level first when the channel never acknowledged a quantity', async () => {
    fake.setLevel(itemId('sku-1'), 11);
    expect(await connect().push(pushOf('sku-1', 4, null))).toEqual({ kind: 'ok' });
    expect(operations()).toEqual(['inventoryItems', 'nodes', 'inventorySetQuantities']);
    expect(fake.requests[2]?.variables).toMatchObject({ input: { quantities: [{ changeFromQuantity: 11 }] } });
    expect(fake.levels.get(itemId('sku-1'))).toBe(4);
  });

  it('reports a mismatch with what Shopify shows when the compare fails, and changes nothing', async () => {
    fake.setLevel(itemId('sku-1'), 3);
    const connector = connect();
    expect(await connector.push(pushOf('sku-1', 9, 5))).toEqual({ kind: 'mismatch', actual: 3 });
    expect(fake.levels.get(itemId('sku-1'))).toBe(3);
    expect(await connector.push(pushOf('sku-1', 9, 3))).toEqual({ kind: 'ok' });
    expect(fake.levels.get(itemId('sku-1'))).toBe(9);
  });

  it('answers ok when the compare fails but Shopify already shows the wanted quantity', async () => {
    fake.setLevel(itemId('sku-1'), 9);
    expect(await connect().push(pushOf('sku-1', 9, 5))).toEqual({ kind: 'ok' });
  });

  it('retries a stale push with a fresh key once the level is back, instead of replaying the stale answer', async () => {
    const connector = connect();
    const push = pushOf('sku-1', 8, 5);
    fake.setLevel(itemId('sku-1'), 6);
    expect(await connector.push(push)).toEqual({ kind: 'mismatch', actual: 6 });
    fake.setLevel(itemId('sku-1'), 5);
    expect(await connector.push(push)).toEqual({ kind: 'ok' });
    expect(fake.levels.get(itemId('sku-1'))).toBe(8);
    const keys = fake.requests.filter((request) => request.operation === 'inventorySetQuantities').map((request) => request.idempotencyKey);
    expect(new Set(keys).size).toBe(2);
  });

  it('replays the first answer when the same push is sent again under its idempotency key', async () => {
    const connector = connect();
    const push = pushOf('sku-1', 7, 5);
    expect(await connector.push(push)).toEqual({ kind: 'ok' });
    // Without the key this second call would be stale (5 != 7); Shopify answers the first result instead.
    expect(await connector.push(push)).toEqual({ kind: 'ok' });
    const sets = fake.requests.filter((request) => request.operation === 'inventorySetQuantities');
    expect(sets.map((request) => request.outcome)).toEqual(['ok', 'replayed']);
    expect(sets[0]?.idempotencyKey).toBe(sets[1]?.idempotencyKey);
    expect(fake.levels.get(itemId('sku-1'))).toBe(7);
  });

  it('fails for good on SKUs Shopify does not know, holds twice, or does not stock at the location', async () => {
    fake.addItem('twice', 1);
    fake.addItem('twice', 1);
    const connector = connect();
    expect(await connector.push(pushOf('nowhere', 1, 0))).toMatchObject({ kind: 'failed', reason: expect.stringContaining('no Shopify inventory item has SKU nowhere') });
    expect(await connector.push(pushOf('twice', 1, 1))).toMatchObject({ kind: 'failed', reason: expect.stringContaining('2 Shopify inventory items have SKU twice') });
    expect(await connector.push(pushOf('unstocked', 1, null))).toMatchObject({ kind: 'failed', reason: expect.stringContaining('not stocked') });
    expect(await connector.push(pushOf('unstocked', 1, 0))).toMatchObject({ kind: 'failed', reason: expect.stringContaining('ITEM_NOT_STOCKED_AT_LOCATION') });
  });

  it('refuses pushes of another tenant or channel, and quantities Shopify cannot hold', async () => {
    const connector = connect();
    expect(await connector.push({ ...pushOf('sku-1', 1, 5), tenant: 'other' })).toMatchObject({ kind: 'failed' });
    expect(await connector.push({ ...pushOf('sku-1', 1, 5), channel: 'b2b' })).toMatchObject({ kind: 'failed' });
    expect(await connector.push(pushOf('sku-1', -1, 5))).toMatchObject({ kind: 'failed' });
    expect(await connector.push(pushOf('sku-1', 1.5, 5))).toMatchObject({ kind: 'failed' });
    expect(fake.requests).toHaveLength(0);
  });

  it('fails with a hint and without the token when the token is refused', async () => {
    const result = await connect({ accessToken: 'shpat_wrong_secret_value' }).push(pushOf('sku-1', 1, 5));
    expect(result).toMatchObject({ kind: 'failed', reason: expect.stringContaining('401') });
    expect(JSON.stringify(result)).not.toContain('shpat_wrong_secret_value');
  });
});

describe('SKU lookup', () => {
  it('searches a SKU once and remembers its inventory item', async () => {
    const connector = connect();
    expect(await connector.push(pushOf('sku-1', 6, 5))).toEqual({ kind: 'ok' });
    expect(await connector.push(pushOf('sku-1', 7, 6))).toEqual({ kind: 'ok' });
    expect(operations()).toEqual(['inventoryItems', 'inventorySetQuantities', 'inventorySetQuantities']);
    expect(fake.requests[0]?.variables).toMatchObject({ query: 'sku:"sku-1"' });
  });

  it('uses the configured inventory items without searching', async () => {
    expect(await connect({ inventoryItems: { 'sku-1': itemId('sku-1') } }).push(pushOf('sku-1', 6, 5))).toEqual({ kind: 'ok' });
    expect(operations()).toEqual(['inventorySetQuantities']);
  });

  it('never takes a searched SKU to an item mapped to another SKU, and says why', async () => {
    // The item that carries the SKU sku-1 in Shopify shows TEE-M's quantity: a Stockline SKU sku-1 must not overwrite it.
    const mapped = itemId('sku-1');
    const connector = connect({ inventoryItems: { 'TEE-M': mapped } });
    const result = await connector.push(pushOf('sku-1', 0, 5));
    expect(result).toMatchObject({ kind: 'failed', reason: expect.stringContaining(`is mapped to TEE-M under the channel's inventoryItems`) });
    expect(fake.levels.get(mapped)).toBe(5);
    expect(await connector.read('acme', ['sku-1', 'TEE-M'])).toEqual(new Map([['TEE-M', 5]]));
    // An item of its own with that SKU is found (the mapped one is left out, so the SKU is not ambiguous).
    const own = fake.addItem('sku-1', 3);
    expect(await connector.push(pushOf('sku-1', 2, 3))).toEqual({ kind: 'ok' });
    expect(fake.levels.get(own)).toBe(2);
    expect(fake.levels.get(mapped)).toBe(5);
  });
});

describe('throttling', () => {
  it('retries through a 429 storm with Retry-After, then succeeds once Shopify recovers', async () => {
    const connector = connect({ inventoryItems: { 'sku-1': itemId('sku-1') } });
    const push = pushOf('sku-1', 6, 5);
    fake.throttle('http429');
    for (let attempt = 0; attempt < 3; attempt += 1) {
      expect(await connector.push(push)).toEqual({ kind: 'retry', reason: expect.stringContaining('429'), retryAfterMs: 2_000 });
    }
    fake.throttle(false);
    expect(await connector.push(push)).toEqual({ kind: 'ok' });
    expect(fake.levels.get(itemId('sku-1'))).toBe(6);
  });

  it('retries after the delay implied by throttleStatus when Shopify answers THROTTLED', async () => {
    const connector = connect({ inventoryItems: { 'sku-1': itemId('sku-1') } });
    const push = pushOf('sku-1', 6, 5);
    fake.throttle('graphql');
    // Bucket empty, the mutation costs 10 points, 100 points come back per second: 100 ms.
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: expect.stringContaining('throttled'), retryAfterMs: 100 });
    fake.throttle(false);
    expect(await connector.push(push)).toEqual({ kind: 'ok' });
  });

  it('waits on its own estimate of the bucket instead of getting throttled', async () => {
    const waits: number[] = [];
    const sleep = (ms: number): Promise<void> => {
      waits.push(ms);
      return new Promise((resolve) => setTimeout(resolve, ms));
    };
    const connector = connect({ inventoryItems: { 'sku-1': itemId('sku-1') }, sleep });
    fake.throttle({ maximumAvailable: 30, restoreRate: 100, currentlyAvailable: 30 });
    for (let quantity = 6; quantity < 11; quantity += 1) {
      expect(await connector.push(pushOf('sku-1', quantity, quantity - 1))).toEqual({ kind: 'ok' });
    }
    expect(waits.some((ms) => ms > 0)).toBe(true);
    expect(fake.requests.every((request) => request.outcome === 'ok')).toBe(true);
  });

  it('hands long waits back to the caller without sending anything', async () => {
    const connector = connect({ inventoryItems: { 'sku-1': itemId('sku-1') } });
    fake.throttle({ maximumAvailable: 20, restoreRate: 1, currentlyAvailable: 20 });
    expect(await connector.push(pushOf('sku-1', 6, 5))).toEqual({ kind: 'ok' });
    expect(await connector.push(pushOf('sku-1', 7, 6))).toEqual({ kind: 'ok' });
    const sent = fake.requests.length;
    const result = await connector.push(pushOf('sku-1', 8, 7));
    expect(result).toMatchObject({ kind: 'retry', reason: expect.stringContaining('local estimate') });
    expect(result.kind === 'retry' ? result.retryAfterMs : 0).toBeGreaterThan(2_000);
    expect(fake.requests).toHaveLength(sent);
  });
});

describe('failures', () => {
  it('retries on 5xx and succeeds afterwards', async () => {
    const connector = connect({ inventoryItems: { 'sku-1': itemId('sku-1') } });
    const push = pushOf('sku-1', 6, 5);
    fake.failNext(2, 500);
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: 'Shopify answered 500', applied: 'unknown' });
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: 'Shopify answered 500', applied: 'unknown' });
    expect(await connector.push(push)).toEqual({ kind: 'ok' });
  });

  it('retries after a timeout, and the retry replays the mutation that landed late', async () => {
    const connector = connect({ inventoryItems: { 'sku-1': itemId('sku-1') }, timeoutMs: 150 });
    const push = pushOf('sku-1', 6, 5);
    fake.setLatencyMs(1_000);
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: 'Shopify: no answer within 150 ms', applied: 'unknown' });
    await until(() => fake.requests.some((request) => request.operation === 'inventorySetQuantities'));
    expect(fake.levels.get(itemId('sku-1'))).toBe(6);
    fake.setLatencyMs(0);
    expect(await connector.push(push)).toEqual({ kind: 'ok' });
    expect(fake.requests.map((request) => request.outcome)).toEqual(['ok', 'replayed']);
  });

  it('retries when Shopify cannot be reached', async () => {
    fake.setReachable(false);
    const result = await connect({ inventoryItems: { 'sku-1': itemId('sku-1') } }).push(pushOf('sku-1', 6, 5));
    // The connection was taken, then dropped: the request may have been read.
    expect(result).toMatchObject({ kind: 'retry', reason: expect.stringContaining('network error'), applied: 'unknown' });
  });

  it('says whether a refused push may have been applied: in doubt only when it was sent and its answer says nothing', async () => {
    const items = { 'sku-1': itemId('sku-1'), unstocked: itemId('unstocked') };
    const connector = connect({ inventoryItems: items });
    // The same request again while the first still runs: Shopify answers IDEMPOTENCY_CONCURRENT_REQUEST.
    fake.setLatencyMs(500);
    const push = pushOf('sku-1', 6, 5);
    const first = connector.push(push);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await connector.push(push)).toEqual({ kind: 'retry', reason: 'Shopify is still processing the same request', retryAfterMs: 1_000, applied: 'unknown' });
    expect(await first).toEqual({ kind: 'ok' });
    fake.setLatencyMs(0);
    // Refused before it ran: nothing is said about the push being applied.
    fake.throttle('http429');
    expect(await connector.push(pushOf('sku-1', 7, 6))).not.toHaveProperty('applied');
    fake.throttle('graphql');
    expect(await connector.push(pushOf('sku-1', 7, 6))).not.toHaveProperty('applied');
    fake.throttle(false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Processed and refused: definitely not applied.
    expect(await connector.push(pushOf('unstocked', 1, 0))).toMatchObject({ kind: 'failed', applied: 'no' });
    // Never connected: nothing was sent.
    const gone = await startFakeShopify({ accessToken });
    await gone.stop();
    const nowhere = await connect({ baseUrl: gone.url, inventoryItems: items }).push(pushOf('sku-1', 7, 6));
    expect(nowhere).toMatchObject({ kind: 'retry', reason: expect.stringContaining('ECONNREFUSED') });
    expect(nowhere).not.toHaveProperty('applied');
  });

  it('says a stale answer replayed under a key applied nothing, even to a connector that never sent that key', async () => {
    const push = pushOf('sku-1', 8, 5);
    fake.setLevel(itemId('sku-1'), 6);
    expect(await connect().push(push)).toEqual({ kind: 'mismatch', actual: 6 });
    fake.setLevel(itemId('sku-1'), 5);
    // A restarted process: Shopify replays the stale answer of the first key; the level shows it was not applied.
    expect(await connect().push(push)).toMatchObject({ kind: 'retry', retryAfterMs: 0, applied: 'no' });
    expect(fake.levels.get(itemId('sku-1'))).toBe(5);
  });

  it('retries once closed, so the push is not lost', async () => {
    const connector = connect();
    await connector.close();
    expect(await connector.push(pushOf('sku-1', 6, 5))).toEqual({ kind: 'retry', reason: 'connector closed' });
  });
});

describe('read', () => {
  it('returns what Shopify shows for the SKUs it stocks, in batches', async () => {
    const skus = Array.from({ length: 60 }, (_, index) => `bulk-${index}`);
    for (const [index, sku] of skus.entries()) fake.addItem(sku, index);
    const connector = connect({ inventoryItems: { 'sku-1': itemId('sku-1') } });
    const shown = await connector.read('acme', ['sku-1', 'sku-2', 'unstocked', 'nowhere', ...skus]);
    expect(shown.get('sku-1')).toBe(5);
    expect(shown.get('sku-2')).toBe(0);
    expect(shown.has('unstocked')).toBe(false);
    expect(shown.has('nowhere')).toBe(false);
    for (const [index, sku] of skus.entries()) expect(shown.get(sku)).toBe(index);
    // 63 unknown SKUs need three searches of 25; the one configured item is one nodes query.
    expect(operations().filter((operation) => operation === 'inventoryItems')).toHaveLength(3);
    expect(operations().filter((operation) => operation === 'nodes')).toHaveLength(1);
    fake.requests.length = 0;
    // Found items are remembered: the next read asks by id.
    expect((await connector.read('acme', skus)).size).toBe(60);
    expect(operations()).toEqual(['nodes', 'nodes']);
  });

  it('throws a retryable ChannelError when Shopify fails, and refuses another tenant', async () => {
    const connector = connect();
    fake.failNext(1, 503);
    await expect(connector.read('acme', ['sku-1'])).rejects.toMatchObject({ code: 'CHANNEL_UNAVAILABLE', retryable: true });
    await expect(connector.read('other', ['sku-1'])).rejects.toBeInstanceOf(ChannelError);
  });
});

describe('createConnector', () => {
  const config: ChannelConfig = {
    id: 'shop', tenant: 'acme', type: 'shopify',
    shopify: { shop: 'acme.myshopify.com', accessTokenEnv: 'SHOP_TOKEN', webhookSecretEnv: 'SHOP_SECRET', locationId: 'gid://shopify/Location/1', restockLocation: 'main' },
  };

  it('builds a working Shopify connector from configuration and the environment', async () => {
    const connector = createConnector({ ...config, shopify: { ...config.shopify!, baseUrl: fake.url, locationId: fake.locationId } }, { SHOP_TOKEN: accessToken });
    expect(connector.channel).toBe('shop');
    expect(await connector.push(pushOf('sku-1', 6, 5))).toEqual({ kind: 'ok' });
    await connector.close();
  });

  it('names a missing environment variable and never prints a secret', () => {
    const attempt = (): unknown => createConnector(config, { OTHER: 'x' });
    expect(attempt).toThrow(/environment variable SHOP_TOKEN/);
    expect(attempt).toThrow(expect.objectContaining({ code: 'CHANNEL_SECRET_MISSING', retryable: false }));
    expect(shopifyWebhookChannels([config], { SHOP_SECRET: 'whsec' })).toEqual([
      { channel: 'shop', tenant: 'acme', type: 'shopify', webhookSecret: 'whsec', shopDomain: 'acme.myshopify.com', restockLocation: 'main' },
    ]);
    expect(() => shopifyWebhookChannels([config], {})).toThrow(/SHOP_SECRET/);
  });

  it('gives the webhook route the mapped items, and each variant\'s inventory item from the Admin API, remembered', async () => {
    const item = itemId('sku-1');
    const mapped = { ...config, shopify: { ...config.shopify!, baseUrl: fake.url, inventoryItems: { 'TEE-M': item } } };
    const [channel] = shopifyWebhookChannels([mapped], { SHOP_SECRET: 'whsec', SHOP_TOKEN: accessToken });
    expect(channel?.mappedItems?.itemOfSku).toEqual(new Map([['TEE-M', item]]));
    expect(channel?.mappedItems?.skuOfItem).toEqual(new Map([[item, 'TEE-M']]));
    const variant = (fake.variantOf(item) as string).split('/').pop() as string;
    expect(await channel?.mappedItems?.variants.itemsOf([variant, '999999'])).toEqual(new Map([[variant, item]]));
    expect(await channel?.mappedItems?.variants.itemsOf([variant])).toEqual(new Map([[variant, item]]));
    expect(operations()).toEqual(['nodes']);
    expect(fake.requests[0]?.variables).toEqual({ ids: [fake.variantOf(item), 'gid://shopify/ProductVariant/999999'] });
    expect(() => shopifyWebhookChannels([mapped], { SHOP_SECRET: 'whsec' })).toThrow(/SHOP_TOKEN/);
  });

  it('refuses two SKUs mapped to one inventory item', () => {
    const shared = { ...config, shopify: { ...config.shopify!, inventoryItems: { 'TEE-M': 'gid://shopify/InventoryItem/7', 'TEE-M-2': 'gid://shopify/InventoryItem/7' } } };
    const env = { SHOP_TOKEN: accessToken, SHOP_SECRET: 'whsec' };
    expect(() => createConnector(shared, env)).toThrow(expect.objectContaining({ code: 'CHANNEL_CONFIG_INVALID', message: expect.stringContaining('TEE-M and TEE-M-2') }));
    expect(() => shopifyWebhookChannels([shared], env)).toThrow(/TEE-M and TEE-M-2/);
  });

  it('refuses configurations outside the schema, with the reason', () => {
    expect(() => createConnector({ ...config, shopify: { ...config.shopify!, accessTokenEnv: 'shpat_0123' } }, {})).toThrow(/accessTokenEnv must be an environment variable name/);
    expect(validateChannelConfig({ ...config, webhook: { url: 'https://example.test/hook', secretEnv: 'S' } })).toEqual(['/webhook does not belong to a channel of this type']);
    expect(validateChannelConfig({ ...config, shopify: { ...config.shopify!, apiVersion: '2025-10' } })).toHaveLength(1);
    expect(validateChannelConfig({ id: 'b2b', tenant: 'acme', type: 'webhook', webhook: { url: 'https://portal.example.test/stock', secretEnv: 'B2B_SECRET' } })).toEqual([]);
  });

  it('keeps the schema patterns in step with the ledger', async () => {
    const schema = (await import('../../schema/channel-config.schema.json', { with: { type: 'json' } })).default as {
      properties: { id: { pattern: string }; tenant: { pattern: string } }; $defs: { sku: { pattern: string } };
    };
    expect(schema.properties.id.pattern).toBe(namePattern);
    expect(schema.properties.tenant.pattern).toBe(tenantIdPattern);
    expect(schema.$defs.sku.pattern).toBe(skuPattern);
  });
});
