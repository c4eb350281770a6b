// Pushes a channel's available-to-sell to one Shopify location through the GraphQL Admin API, with compare-and-set.

import { createHash } from 'node:crypto';
import { BoundedMap } from '../bounded-map.js';
import type { ChannelConnector, ChannelPush, PushResult } from '../connector.js';
import { ChannelError } from '../errors.js';
import { classifyStatus, exchange, parseRetryAfterMs, sleep } from '../http.js';
import { channelLimits } from '../limits.js';
import { CostBucket, throttledDelayMs } from './cost-bucket.js';
import type { ItemLevel, UserError } from './graphql.js';
import {
  availableName, itemsBySkuQuery, itemsOfNodes, itemsOfSearch, levelsByIdQuery, parseEnvelope, parseSetPayload,
  setAvailableMutation, skuSearch,
} from './graphql.js';

/** The first version where compare-and-set and the idempotency key are mandatory; the connector sends both. */
export const shopifyApiVersionDefault = '2026-04';

export interface ShopifyConnectorOptions {
  /** The ledger's channel id. */
  channel: string;
  tenant: string;
  /** `example.myshopify.com`. */
  shop: string;
  accessToken: string;
  /** The Shopify location that shows the channel's available-to-sell: `gid://shopify/Location/<n>`. */
  locationId: string;
  apiVersion?: string;
  /** Replaces `https://{shop}` (tests, the demo's fake Shopify, a proxy). */
  baseUrl?: string;
  /** SKU -> `gid://shopify/InventoryItem/<n>`; SKUs not listed are searched by SKU and remembered. */
  inventoryItems?: Record<string, string>;
  timeoutMs?: number;
  maxConcurrency?: number;
  ratePerSecond?: number;
  throttleWaitMsMax?: number;
  nowMs?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

type NotOk = Extract<PushResult, { kind: 'retry' } | { kind: 'failed' }>;
type Step<T> = { ok: true; value: T } | { ok: false; result: NotOk };
type Data = Record<string, unknown> | null;
type Operation = 'set' | 'lookup' | 'levels';

/** First guesses of each operation's cost in points, replaced by what Shopify reports. */
const costGuess: Record<Operation, number> = { set: 10, lookup: 2 + 3 * 2 * channelLimits.skuLookupBatchMax, levels: 1 + 3 * channelLimits.levelReadBatchMax };
const staleCodes = new Set(['CHANGE_FROM_QUANTITY_STALE', 'COMPARE_QUANTITY_STALE']);
const retryableGraphqlCodes = new Set(['INTERNAL_SERVER_ERROR', 'SERVICE_UNAVAILABLE', 'TIMEOUT']);
const reasonLengthMax = 300;

const ok = <T>(value: T): Step<T> => ({ ok: true, value });
const retry = (reason: string, retryAfterMs?: number): Step<never> =>
  ({ ok: false, result: retryAfterMs === undefined ? { kind: 'retry', reason: clip(reason) } : { kind: 'retry', reason: clip(reason), retryAfterMs } });
const failed = (reason: string): Step<never> => ({ ok: false, result: { kind: 'failed', reason: clip(reason) } });

function clip(text: string): string {
  return text.length > reasonLengthMax ? `${text.slice(0, reasonLengthMax - 1)}…` : text;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let index = 0; index < items.length; index += size) out.push(items.slice(index, index + size));
  return out;
}

const statusHints: Record<number, string> = {
  401: ' (check the access token)',
  402: ' (the shop is frozen for an unpaid bill)',
  403: ' (the token lacks the read_inventory/write_inventory scopes)',
  404: ' (check the shop domain and the API version)',
  423: ' (the shop is locked)',
};

export class ShopifyConnector implements ChannelConnector {
  readonly channel: string;
  readonly tenant: string;
  readonly maxConcurrency: number;
  readonly ratePerSecond: number;
  readonly #endpoint: string;
  readonly #accessToken: string;
  readonly #locationId: string;
  readonly #timeoutMs: number;
  readonly #throttleWaitMsMax: number;
  readonly #nowMs: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #configuredItems: ReadonlyMap<string, string>;
  readonly #cachedItems = new BoundedMap<string, string>(channelLimits.skuCacheEntriesMax);
  readonly #keyGenerations = new BoundedMap<string, number>(channelLimits.idempotencyGenerationsMax);
  readonly #bucket = new CostBucket();
  readonly #costs = new Map<Operation, number>();
  #closed = false;

  constructor(options: ShopifyConnectorOptions) {
    if (options.accessToken === '') throw new ChannelError('CHANNEL_CONFIG_INVALID', `channel ${options.channel}: the Shopify access token is empty`);
    this.channel = options.channel;
    this.tenant = options.tenant;
    this.maxConcurrency = options.maxConcurrency ?? 4;
    this.ratePerSecond = options.ratePerSecond ?? 5;
    const base = (options.baseUrl ?? `https://${options.shop}`).replace(/\/+$/, '');
    this.#endpoint = `${base}/admin/api/${options.apiVersion ?? shopifyApiVersionDefault}/graphql.json`;
    this.#accessToken = options.accessToken;
    this.#locationId = options.locationId;
    this.#timeoutMs = options.timeoutMs ?? channelLimits.requestTimeoutMsDefault;
    this.#throttleWaitMsMax = options.throttleWaitMsMax ?? channelLimits.throttleWaitMsMax;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#sleep = options.sleep ?? sleep;
    this.#configuredItems = new Map(Object.entries(options.inventoryItems ?? {}));
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
        const only = hits[0];
        if (hits.length === 1 && only !== undefined && only.available !== null) shown.set(sku, only.available);
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
    this.#closed = true;
  }

  #refusal(push: ChannelPush): PushResult | undefined {
    if (this.#closed) return { kind: 'retry', reason: 'connector closed' };
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
    if (userErrors === undefined) return { kind: 'failed', reason: 'Shopify answered inventorySetQuantities without its payload' };
    const first = userErrors[0];
    if (first === undefined) return { kind: 'ok' };
    return this.#onUserError(push, itemId, changeFrom, first);
  }

  async #onUserError(push: ChannelPush, itemId: string, changeFrom: number, error: UserError): Promise<PushResult> {
    const code = error.code ?? 'UNKNOWN';
    if (code === 'IDEMPOTENCY_CONCURRENT_REQUEST') {
      return { kind: 'retry', reason: 'Shopify is still processing the same request', retryAfterMs: channelLimits.retryAfterMsDefault };
    }
    // Any other user error ends this key's attempt for good: a later retry of this push must not replay it.
    this.#keyGenerations.set(push.idempotencyKey, (this.#keyGenerations.get(push.idempotencyKey) ?? 0) + 1);
    if (staleCodes.has(code)) return this.#mismatch(push, itemId, changeFrom);
    if (code === 'IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED' || code === 'IDEMPOTENCY_KEY_PARAMETER_MISMATCH') {
      return { kind: 'retry', reason: `Shopify ${code}; the next attempt uses a fresh idempotency key`, retryAfterMs: 0 };
    }
    if (code === 'INVALID_INVENTORY_ITEM') this.#cachedItems.delete(push.sku);
    return { kind: 'failed', reason: clip(`Shopify refused the quantity of ${push.sku}: ${code}: ${error.message}`) };
  }

  async #mismatch(push: ChannelPush, itemId: string, changeFrom: number): Promise<PushResult> {
    const level = await this.#levelOf(itemId, push.sku);
    if (!level.ok) return level.result;
    const actual = level.value;
    // An earlier attempt landed, or someone set the same value: the channel shows what we want.
    if (actual === push.quantity) return { kind: 'ok' };
    // "Stale" while the level equals our baseline: Shopify replayed an old failure under that key.
    if (actual === changeFrom) return { kind: 'retry', reason: 'Shopify replayed an earlier stale result; the next attempt uses a fresh key', retryAfterMs: 0 };
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
    const only = hits[0];
    if (only === undefined) return failed(`no Shopify inventory item has SKU ${sku}`);
    if (hits.length > 1) return failed(`${hits.length} Shopify inventory items have SKU ${sku}; map it under the channel's inventoryItems`);
    return ok(only.id);
  }

  /** Searches SKUs in batches and remembers each SKU that matched exactly one item. */
  async #lookup(skus: string[]): Promise<Step<Map<string, ItemLevel[]>>> {
    const hits = new Map<string, ItemLevel[]>();
    for (const batch of chunks(skus, channelLimits.skuLookupBatchMax)) {
      // Room for two items per SKU, so a duplicated SKU shows up as ambiguous instead of hiding one item.
      const variables = { query: skuSearch(batch), first: batch.length * 2, locationId: this.#locationId };
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
      const only = items[0];
      if (items.length === 1 && only !== undefined) this.#cachedItems.set(sku, only.id);
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

  async #graphql(operation: Operation, query: string, variables: Record<string, unknown>): Promise<Step<Data>> {
    if (this.#closed) return retry('connector closed');
    const budget = await this.#waitForBudget(operation);
    if (!budget.ok) return budget;
    const answer = await exchange({
      url: this.#endpoint,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-shopify-access-token': this.#accessToken },
      body: JSON.stringify({ query, variables }),
      timeoutMs: this.#timeoutMs,
      bodyBytesMax: channelLimits.responseBytesMax,
    });
    if (answer.kind === 'unreachable') return retry(`Shopify: ${answer.reason}`);
    return this.#interpret(operation, answer.status, answer.headers, answer.body);
  }

  /** Waits briefly when the local estimate says the bucket is low; longer waits go back to the caller. */
  async #waitForBudget(operation: Operation): Promise<Step<void>> {
    const cost = this.#costs.get(operation) ?? costGuess[operation];
    const delayMs = this.#bucket.delayMs(cost, this.#nowMs());
    if (delayMs > this.#throttleWaitMsMax) return retry('Shopify rate limit nearly reached (local estimate)', delayMs);
    if (delayMs > 0) await this.#sleep(delayMs);
    this.#bucket.take(cost, this.#nowMs());
    return ok(undefined);
  }

  #interpret(operation: Operation, status: number, headers: Headers, body: string): Step<Data> {
    const statusClass = classifyStatus(status);
    if (statusClass !== 'success') {
      const retryAfterMs = parseRetryAfterMs(headers.get('retry-after'), this.#nowMs());
      if (status === 429) return retry('Shopify answered 429 Too Many Requests', retryAfterMs ?? channelLimits.retryAfterMsDefault);
      if (statusClass === 'retry') return retry(`Shopify answered ${status}`, retryAfterMs);
      return failed(`Shopify answered ${status}${statusHints[status] ?? ''}`);
    }
    const envelope = parseEnvelope(body);
    if (envelope === undefined) return retry('Shopify answered something that is not GraphQL');
    if (envelope.throttleStatus !== undefined) this.#bucket.observe(envelope.throttleStatus, this.#nowMs());
    if (envelope.requestedCost !== undefined) this.#costs.set(operation, envelope.requestedCost);
    const error = envelope.errors[0];
    if (error === undefined) return ok(envelope.data);
    if (error.code === 'THROTTLED') return retry('Shopify throttled the request', throttledDelayMs(envelope.requestedCost, envelope.throttleStatus));
    if (error.code !== undefined && retryableGraphqlCodes.has(error.code)) return retry(`Shopify ${error.code}: ${error.message}`);
    return failed(`Shopify GraphQL error${error.code === undefined ? '' : ` ${error.code}`}: ${error.message}`);
  }
}

function orThrow<T>(step: Step<T>): T {
  if (step.ok) return step.value;
  const { result } = step;
  if (result.kind === 'failed') throw new ChannelError('CHANNEL_REJECTED', result.reason);
  throw new ChannelError('CHANNEL_UNAVAILABLE', result.reason, result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs });
}
