// Every bound the channel connectors and the channel webhook route enforce, in one place.

export const channelLimits = {
  /** A request to a channel that has not answered by then is abandoned and retried later. */
  requestTimeoutMsDefault: 5_000,
  requestTimeoutMsMin: 100,
  requestTimeoutMsMax: 60_000,
  /** Larger answers are cut off: no channel needs more to answer the queries we send. */
  responseBytesMax: 4 * 1024 * 1024,
  /** Used when a channel asks us to slow down without saying for how long. */
  retryAfterMsDefault: 1_000,
  /** A longer Retry-After is capped, so one bad header cannot park a SKU for days. */
  retryAfterMsMax: 15 * 60_000,
  /** Waits for the local rate estimate up to this long; longer waits go back to the sync worker. */
  throttleWaitMsMax: 2_000,
  /** SKU -> Shopify inventory item ids remembered per connector. */
  skuCacheEntriesMax: 10_000,
  /** SKUs looked up in one `inventoryItems` search. */
  skuLookupBatchMax: 25,
  /**
   * Items asked for per SKU searched: a SKU two items share shows up as ambiguous instead of hiding one, even when
   * a third is mapped to another SKU (and so left out).
   */
  skuSearchHitsPerSkuMax: 3,
  /** Inventory items read in one `nodes` query. */
  levelReadBatchMax: 50,
  /** Product variants of order lines resolved to their inventory items in one `nodes` query. */
  variantLookupBatchMax: 50,
  /** Product variant -> inventory item ids remembered per Shopify channel (the pair never changes in Shopify). */
  variantCacheEntriesMax: 10_000,
  /** Idempotency keys whose attempts failed for good, remembered so a retry uses a fresh key. */
  idempotencyGenerationsMax: 10_000,
  /** Shopify refuses quantities above this. */
  shopifyQuantityMax: 1_000_000_000,
  /** Body of an inbound channel webhook; Shopify order payloads are far smaller. */
  webhookBodyBytesMax: 1024 * 1024,
  /** Signed webhook receivers reject timestamps further than this from their clock. */
  signatureToleranceSecondsDefault: 300,
  /** Longest Stockline-Signature header a receiver parses. */
  signatureHeaderLengthMax: 1_024,
  /** SKUs asked for in one GET of a signed webhook channel's read endpoint. */
  webhookReadSkusPerRequestMax: 50,
  /** Commands one inbound webhook may turn into (an order of many SKUs is split into carts of cartLinesMax lines). */
  webhookCommandsMax: 250,
  /** Product variants of one inbound Shopify webhook matched to inventory items (a few Admin API requests at most). */
  webhookVariantsMax: 500,
  /**
   * Shopify waits 5 s for a webhook's answer: matching lines to items waits at most this long for an Admin API
   * answer, and this long for the local rate estimate, leaving room for the ledger.
   */
  webhookLookupTimeoutMsMax: 2_500,
  webhookLookupThrottleWaitMsMax: 500,
  /** Length of a channel event id (X-Shopify-Event-Id) accepted into an idempotency key. */
  eventIdLengthMax: 200,
} as const;

/** `items` in consecutive parts of at most `size`: how lists are sent to a channel within its per-request bounds above. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let index = 0; index < items.length; index += size) out.push(items.slice(index, index + size));
  return out;
}
