// Which inventory item each product variant of an order line is, asked of the GraphQL Admin API and remembered.

import { BoundedMap } from '../bounded-map.js';
import { ChannelError } from '../errors.js';
import { channelLimits, chunks } from '../limits.js';
import { ShopifyAdminClient } from './admin-client.js';
import type { NotOk, ShopifyAdminOptions } from './admin-client.js';
import { itemsOfVariants, variantGidOf, variantItemsQuery } from './graphql.js';

/** What the webhook route asks to match order lines to the SKUs mapped under a channel's `inventoryItems`. */
export interface VariantItemLookup {
  /**
   * Variant id (the digits of an order line's `variant_id`) -> its inventory item id; a variant Shopify does not
   * have (deleted since the order) is absent. Throws a ChannelError when Shopify cannot answer.
   */
  itemsOf(variantIds: readonly string[]): Promise<Map<string, string>>;
}

function errorOf(result: NotOk): ChannelError {
  if (result.kind === 'failed') return new ChannelError('CHANNEL_REJECTED', result.reason);
  return new ChannelError('CHANNEL_UNAVAILABLE', result.reason, result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs });
}

/**
 * A variant's inventory item never changes in Shopify (they are one to one, for the variant's life), so an answer
 * is remembered, up to `variantCacheEntriesMax` variants, least recently used forgotten first. A variant Shopify
 * does not know is asked again next time.
 */
export class ShopifyVariantItems implements VariantItemLookup {
  readonly #admin: ShopifyAdminClient;
  readonly #cache = new BoundedMap<string, string>(channelLimits.variantCacheEntriesMax);

  constructor(options: ShopifyAdminOptions) {
    this.#admin = new ShopifyAdminClient(options);
  }

  async itemsOf(variantIds: readonly string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const missing: string[] = [];
    for (const id of new Set(variantIds)) {
      const cached = this.#cache.get(id);
      if (cached === undefined) missing.push(id);
      else found.set(id, cached);
    }
    for (const batch of chunks(missing, channelLimits.variantLookupBatchMax)) {
      const step = await this.#admin.request('variants', variantItemsQuery, { ids: batch.map(variantGidOf) });
      if (!step.ok) throw errorOf(step.result);
      const items = itemsOfVariants(step.value);
      if (items === undefined) throw new ChannelError('CHANNEL_UNAVAILABLE', 'Shopify answered nodes(ids:) for product variants with an unexpected shape');
      for (const id of batch) {
        const item = items.get(variantGidOf(id));
        if (item === undefined) continue;
        this.#cache.set(id, item);
        found.set(id, item);
      }
    }
    return found;
  }
}
