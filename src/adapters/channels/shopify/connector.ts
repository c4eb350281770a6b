// Pushes a channel's available-to-sell to one Shopify location through the GraphQL Admin API, with compare-and-set.

import { createHash } from 'node:crypto';
import { BoundedMap } from '../bounded-map.js';
import type { ChannelConnector, ChannelPush, PushResult } from '../connector.js';
import { ChannelError } from '../errors.js';
import { channelLimits, chunks } from '../limits.js';
import { clip, failed, ok, ShopifyAdminClient, withApplied } from './admin-client.js';
import type { Data, Operation, ShopifyAdminOptions, Step } from './admin-client.js';
import type { ItemLevel, UserError } from './graphql.js';
import {
  availableName, itemsBySkuQuery, itemsOfNodes, itemsOfSearch, levelsByIdQuery, parseSetPayload, setAvailableMutation, skuSearch,
} from './graphql.js';

export { shopifyApiVersionDefault } from './admin-client.js';

/** The Admin API client's options (shop, token, version, base URL, timeouts, clock), and what the connector adds. */
export interface ShopifyConnectorOptions extends ShopifyAdminOptions {
  /** The ledger's channel id. */
  channel: string;
  tenant: string;
  /** The Shopify location that shows the channel's available-to-sell: `gid://shopify/Location/<n>`. */
  locationId: string;
  /** SKU -> `gid://shopify/InventoryItem/<n>`; SKUs not listed are searched by SKU and remembered. */
  inventoryItems?: Record<string, string>;
  maxConcurrency?: number;
  ratePerSecond?: number;
}

const staleCodes = new Set(['CHANGE_FROM_QUANTITY_STALE', 'COMPARE_QUANTITY_STALE']);

export class ShopifyConnector implements ChannelConnector {
  readonly channel: string;
  readonly tenant: string;
  readonly maxConcurrency: number;
  readonly ratePerSecond: number;
  readonly #admin: ShopifyAdminClient;
  readonly #locationId: string;
  readonly #configuredItems: ReadonlyMap<string, string>;
  /** Inventory item -> the SKU mapped to it under `inventoryItems`: a search for another SKU never lands on it. */
  readonly #mappedItems: ReadonlyMap<string, string>;
  readonly #cachedItems = new BoundedMap<string, string>(channelLimits.skuCacheEntriesMax);
  readonly #keyGenerations = new BoundedMap<string, number>(channelLimits.idempotencyGenerationsMax);

  constructor(options: ShopifyConnectorOptions) {
    if (options.accessToken === '') throw new ChannelError('CHANNEL_CONFIG_INVALID', `channel ${options.channel}: the Shopify access token is empty`);
    this.channel = options.channel;
    this.tenant = options.tenant;
    this.maxConcurrency = options.maxConcurrency ?? 4;
    this.ratePerSecond = options.ratePerSecond ?? 5;
    this.#admin = new ShopifyAdminClient(options);
    this.#locationId = options.locationId;
    this.#configuredItems = new Map(Object.entries(options.inventoryItems ?? {}));
    this.#mappedItems = new Map([...this.#configuredItems].map(([sku, id]) => [id, sku]));
  }

  async push(push: ChannelPush): Promise<PushResult> {
    const refusal = this.#refusal(push);
    if (refusal !== undefined) return refusal;
    const item = await this.#itemIdOf(push.sku);
    if (!item.ok) return item.result;
    let changeFrom = push.previousQuantity;
    if (changeFrom === null) {
      // Never acknowledged: compare against what Shopify shows now rather than opting out of the check.
      const level = await this.#levelOf(item.value, push.sku);
      if (!level.ok) return level.result;
      changeFrom = level.value;
    }
    return this.#setAvailable(push, item.value, changeFrom);
  }

  /** What Shopify shows as available at the location, for the SKUs it knows; unknown or unstocked SKUs are absent. */
  async read(tenant: string, skus: string[]): Promise<Map<string, number>> {
    if (tenant !== this.tenant) throw new ChannelError('CHANNEL_TENANT_MISMATCH', `channel ${this.channel} serves tenant ${this.tenant}, not ${tenant}`);
    const known: Array<[sku: string, id: string]> = [];
    const unknown: string[] = [];
    for (const sku of new Set(skus)) {
      const id = this.#configuredItems.get(sku) ?? this.#cachedItems.get(sku);
      if (id === undefined) unknown.push(sku);
      else known.push([sku, id]);
    }
    const shown = new Map<string, number>();
    if (unknown.length > 0) {
      for (const [sku, hits] of orThrow(await this.#lookup(unknown))) {
        const free = this.#unmapped(hits);
        const only = free[0];
        if (free.length === 1 && only !== undefined && only.available !== null) shown.set(sku, only.available);
      }
    }
    const levels = orThrow(await this.#levels(known.map(([, id]) => id)));
    for (const [sku, id] of known) {
      const available = levels.get(id)?.available;
      if (available !== undefined && available !== null) shown.set(sku, available);
    }
    return shown;
  }

  async close(): Promise<void> {
    this.#admin.close();
  }

  #refusal(push: ChannelPush): PushResult | undefined {
    if (this.#admin.closed) return { kind: 'retry', reason: 'connector closed' };
    if (push.tenant !== this.tenant || push.channel !== this.channel) {
      return { kind: 'failed', reason: `connector of ${this.tenant}/${this.channel} got a push for ${push.tenant}/${push.channel}` };
    }
    if (!Number.isInteger(push.quantity) || push.quantity < 0 || push.quantity > channelLimits.shopifyQuantityMax) {
      return { kind: 'failed', reason: `quantity ${push.quantity} is outside 0..${channelLimits.shopifyQuantityMax}` };
    }
    if (push.previousQuantity !== null && !Number.isSafeInteger(push.previousQuantity)) {
      return { kind: 'failed', reason: `previous quantity ${push.previousQuantity} is not an integer` };
    }
    return undefined;
  }

  /**
   * The one mutation. Sent again with the same push it is the same request under the same key (the item, the
   * location and the compare base are those of the push), so Shopify answers a repeat of a request whose answer
   * was lost from its idempotency store instead of applying it again.
   */
  async #setAvailable(push: ChannelPush, itemId: string, changeFrom: number): Promise<PushResult> {
    const input = {
      name: availableName,
      reason: 'correction',
      referenceDocumentUri: `gid://stockline/ChannelPush/${push.version}`,
      quantities: [{ inventoryItemId: itemId, locationId: this.#locationId, quantity: push.quantity, changeFromQuantity: changeFrom }],
    };
    const step = await this.#graphql('set', setAvailableMutation(this.#shopifyKey(push, itemId, changeFrom)), { input });
    if (!step.ok) return step.result;
    const userErrors = parseSetPayload(step.value);
    if (userErrors === undefined) return { kind: 'failed', reason: 'Shopify answered inventorySetQuantities without its payload', applied: 'unknown' };
    const first = userErrors[0];
    if (first === undefined) return { kind: 'ok' };
    return this.#onUserError(push, itemId, changeFrom, first);
  }

  async #onUserError(push: ChannelPush, itemId: string, changeFrom: number, error: UserError): Promise<PushResult> {
    const code = error.code ?? 'UNKNOWN';
    if (code === 'IDEMPOTENCY_CONCURRENT_REQUEST') {
      // The first request under this key is still running: it may yet apply.
      return { kind: 'retry', reason: 'Shopify is still processing the same request', retryAfterMs: channelLimits.retryAfterMsDefault, applied: 'unknown' };
    }
    // Any other user error ends this key's attempt for good: a later retry of this push must not replay it.
    this.#keyGenerations.set(push.idempotencyKey, (this.#keyGenerations.get(push.idempotencyKey) ?? 0) + 1);
    if (staleCodes.has(code)) return this.#mismatch(push, itemId, changeFrom);
    if (code === 'IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED' || code === 'IDEMPOTENCY_KEY_PARAMETER_MISMATCH') {
      return { kind: 'retry', reason: `Shopify ${code}; the next attempt uses a fresh idempotency key`, retryAfterMs: 0, applied: 'no' };
    }
    if (code === 'INVALID_INVENTORY_ITEM') this.#cachedItems.delete(push.sku);
    return { kind: 'failed', reason: clip(`Shopify refused the quantity of ${push.sku}: ${code}: ${error.message}`), applied: 'no' };
  }

  /** The compare-and-set was refused, so the push applied nothing; what Shopify shows decides what comes next. */
  async #mismatch(push: ChannelPush, itemId: string, changeFrom: number): Promise<PushResult> {
    const level = await this.#levelOf(itemId, push.sku);
    if (!level.ok) return withApplied(level.result, 'no');
    const actual = level.value;
    // An earlier attempt landed, or someone set the same value: the channel shows what we want.
    if (actual === push.quantity) return { kind: 'ok' };
    // "Stale" while the level equals our baseline: Shopify replayed an old failure under that key.
    if (actual === changeFrom) return { kind: 'retry', reason: 'Shopify replayed an earlier stale result; the next attempt uses a fresh key', retryAfterMs: 0, applied: 'no' };
    return { kind: 'mismatch', actual };
  }

  /** Derived from what the request asks, so a retry of the same request replays and a different one never collides. */
  #shopifyKey(push: ChannelPush, itemId: string, changeFrom: number): string {
    const generation = this.#keyGenerations.get(push.idempotencyKey) ?? 0;
    const request = [push.idempotencyKey, itemId, this.#locationId, changeFrom, push.quantity, generation].join('\n');
    return `stockline-${createHash('sha256').update(request).digest('hex').slice(0, 48)}`;
  }

  async #itemIdOf(sku: string): Promise<Step<string>> {
    const known = this.#configuredItems.get(sku) ?? this.#cachedItems.get(sku);
    if (known !== undefined) return ok(known);
    const found = await this.#lookup([sku]);
    if (!found.ok) return found;
    const hits = found.value.get(sku) ?? [];
    const free = this.#unmapped(hits);
    const only = free[0];
    if (only === undefined) {
      const claimed = hits[0];
      if (claimed === undefined) return failed(`no Shopify inventory item has SKU ${sku}`);
      return failed(`the Shopify inventory item with SKU ${sku} (${claimed.id}) is mapped to ${this.#mappedItems.get(claimed.id) ?? '?'} under the channel's inventoryItems; map ${sku} to an item of its own`);
    }
    if (free.length > 1) return failed(`${free.length} Shopify inventory items have SKU ${sku}; map it under the channel's inventoryItems`);
    return ok(only.id);
  }

  /**
   * The hits of a SKU search this SKU may be pushed to: never an item mapped to another SKU under `inventoryItems`
   * (that SKU's quantity is pushed there; pushing this one too would overwrite it, and orders of that item are
   * sold as the mapped SKU).
   */
  #unmapped(hits: readonly ItemLevel[]): ItemLevel[] {
    return hits.filter((item) => !this.#mappedItems.has(item.id));
  }

  /** Searches SKUs in batches and remembers each SKU that matched exactly one item not mapped to another SKU. */
  async #lookup(skus: string[]): Promise<Step<Map<string, ItemLevel[]>>> {
    const hits = new Map<string, ItemLevel[]>();
    for (const batch of chunks(skus, channelLimits.skuLookupBatchMax)) {
      const variables = { query: skuSearch(batch), first: batch.length * channelLimits.skuSearchHitsPerSkuMax, locationId: this.#locationId };
      const step = await this.#graphql('lookup', itemsBySkuQuery, variables);
      if (!step.ok) return step;
      const items = itemsOfSearch(step.value);
      if (items === undefined) return failed('Shopify answered inventoryItems without its nodes');
      const wanted = new Set(batch);
      for (const item of items) {
        // Search may match loosely; only an exact SKU counts.
        if (item.sku !== null && wanted.has(item.sku)) hits.set(item.sku, [...(hits.get(item.sku) ?? []), item]);
      }
    }
    for (const [sku, items] of hits) {
      const free = this.#unmapped(items);
      const only = free[0];
      if (free.length === 1 && only !== undefined) this.#cachedItems.set(sku, only.id);
    }
    return ok(hits);
  }

  async #levels(ids: string[]): Promise<Step<Map<string, ItemLevel>>> {
    const found = new Map<string, ItemLevel>();
    for (const batch of chunks([...new Set(ids)], channelLimits.levelReadBatchMax)) {
      const step = await this.#graphql('levels', levelsByIdQuery, { ids: batch, locationId: this.#locationId });
      if (!step.ok) return step;
      const items = itemsOfNodes(step.value);
      if (items === undefined) return failed('Shopify answered nodes(ids:) with an unexpected shape');
      for (const item of items) found.set(item.id, item);
    }
    return ok(found);
  }

  async #levelOf(itemId: string, sku: string): Promise<Step<number>> {
    const step = await this.#levels([itemId]);
    if (!step.ok) return step;
    const item = step.value.get(itemId);
    if (item === undefined) {
      this.#cachedItems.delete(sku);
      return failed(`Shopify has no inventory item ${itemId} (SKU ${sku})`);
    }
    if (item.available === null) return failed(`SKU ${sku} is not stocked at Shopify location ${this.#locationId}`);
    return ok(item.available);
  }

  #graphql(operation: Operation, query: string, variables: Record<string, unknown>): Promise<Step<Data>> {
    return this.#admin.request(operation, query, variables);
  }
}

function orThrow<T>(step: Step<T>): T {
  if (step.ok) return step.value;
  const { result } = step;
  if (result.kind === 'failed') throw new ChannelError('CHANNEL_REJECTED', result.reason);
  throw new ChannelError('CHANNEL_UNAVAILABLE', result.reason, result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs });
}
