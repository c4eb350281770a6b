// One shop's GraphQL Admin API: sends a request within the shop's cost limits and sorts the answer into data, retry or failure.

import type { PushApplied, PushResult } from '../connector.js';
import { classifyStatus, exchange, parseRetryAfterMs, sleep } from '../http.js';
import { channelLimits } from '../limits.js';
import { CostBucket, throttledDelayMs } from './cost-bucket.js';
import { parseEnvelope } from './graphql.js';

/** The first version where compare-and-set and the idempotency key are mandatory; the connector sends both. */
export const shopifyApiVersionDefault = '2026-04';

/** What is sent: `set` is the one mutation, the others only read. */
export type Operation = 'set' | 'lookup' | 'levels' | 'variants';

export type NotOk = Extract<PushResult, { kind: 'retry' } | { kind: 'failed' }>;
export type Step<T> = { ok: true; value: T } | { ok: false; result: NotOk };
export type Data = Record<string, unknown> | null;

export interface ShopifyAdminOptions {
  /** `example.myshopify.com`. */
  shop: string;
  accessToken: string;
  apiVersion?: string;
  /** Replaces `https://{shop}` (tests, the demo's fake Shopify, a proxy). */
  baseUrl?: string;
  timeoutMs?: number;
  throttleWaitMsMax?: number;
  nowMs?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** First guesses of each operation's cost in points, replaced by what Shopify reports. */
const costGuess: Record<Operation, number> = {
  set: 10,
  lookup: 2 + 3 * channelLimits.skuSearchHitsPerSkuMax * channelLimits.skuLookupBatchMax,
  levels: 1 + 3 * channelLimits.levelReadBatchMax,
  variants: 1 + 2 * channelLimits.variantLookupBatchMax,
};
const retryableGraphqlCodes = new Set(['INTERNAL_SERVER_ERROR', 'SERVICE_UNAVAILABLE', 'TIMEOUT']);
const reasonLengthMax = 300;

const statusHints: Record<number, string> = {
  401: ' (check the access token)',
  402: ' (the shop is frozen for an unpaid bill)',
  403: ' (the token lacks the read_inventory/write_inventory scopes)',
  404: ' (check the shop domain and the API version)',
  423: ' (the shop is locked)',
};

export function clip(text: string): string {
  return text.length > reasonLengthMax ? `${text.slice(0, reasonLengthMax - 1)}…` : text;
}

export const ok = <T>(value: T): Step<T> => ({ ok: true, value });

export function retry(reason: string, retryAfterMs?: number, applied?: PushApplied): Step<never> {
  return { ok: false, result: { kind: 'retry', reason: clip(reason), ...(retryAfterMs === undefined ? {} : { retryAfterMs }), ...(applied === undefined ? {} : { applied }) } };
}

export function failed(reason: string, applied?: PushApplied): Step<never> {
  return { ok: false, result: { kind: 'failed', reason: clip(reason), ...(applied === undefined ? {} : { applied }) } };
}

/** The same refusal with what is known of the push being applied replaced (undefined: nothing is said). */
export function withApplied(result: NotOk, applied: PushApplied | undefined): NotOk {
  const copy: NotOk = { ...result };
  delete copy.applied;
  if (applied !== undefined) copy.applied = applied;
  return copy;
}

export class ShopifyAdminClient {
  readonly #endpoint: string;
  readonly #accessToken: string;
  readonly #timeoutMs: number;
  readonly #throttleWaitMsMax: number;
  readonly #nowMs: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #bucket = new CostBucket();
  readonly #costs = new Map<Operation, number>();
  #closed = false;

  constructor(options: ShopifyAdminOptions) {
    const base = (options.baseUrl ?? `https://${options.shop}`).replace(/\/+$/, '');
    this.#endpoint = `${base}/admin/api/${options.apiVersion ?? shopifyApiVersionDefault}/graphql.json`;
    this.#accessToken = options.accessToken;
    this.#timeoutMs = options.timeoutMs ?? channelLimits.requestTimeoutMsDefault;
    this.#throttleWaitMsMax = options.throttleWaitMsMax ?? channelLimits.throttleWaitMsMax;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#sleep = options.sleep ?? sleep;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#closed = true;
  }

  /**
   * Sends one request. A refusal of the mutation says whether it may have been applied (`applied`): only a request
   * that left and got no definite answer is `unknown`; a throttled or never sent one is neither.
   */
  async request(operation: Operation, query: string, variables: Record<string, unknown>): Promise<Step<Data>> {
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
    const step = answer.kind === 'unreachable'
      ? retry(`Shopify: ${answer.reason}`, undefined, answer.maybeSent ? 'unknown' : undefined)
      : this.#interpret(operation, answer.status, answer.headers, answer.body);
    // A query applies nothing: only the mutation's refusals speak of a push being applied.
    return step.ok || operation === 'set' ? step : { ok: false, result: withApplied(step.result, undefined) };
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
      // 429 is refused before it runs; 408 and 425 were not read whole; a 5xx may come after the work was done.
      if (status === 429) return retry('Shopify answered 429 Too Many Requests', retryAfterMs ?? channelLimits.retryAfterMsDefault);
      if (statusClass === 'retry') return retry(`Shopify answered ${status}`, retryAfterMs, status >= 500 ? 'unknown' : undefined);
      return failed(`Shopify answered ${status}${statusHints[status] ?? ''}`);
    }
    const envelope = parseEnvelope(body);
    if (envelope === undefined) return retry('Shopify answered something that is not GraphQL', undefined, 'unknown');
    if (envelope.throttleStatus !== undefined) this.#bucket.observe(envelope.throttleStatus, this.#nowMs());
    if (envelope.requestedCost !== undefined) this.#costs.set(operation, envelope.requestedCost);
    const error = envelope.errors[0];
    if (error === undefined) return ok(envelope.data);
    if (error.code === 'THROTTLED') return retry('Shopify throttled the request', throttledDelayMs(envelope.requestedCost, envelope.throttleStatus));
    if (error.code !== undefined && retryableGraphqlCodes.has(error.code)) return retry(`Shopify ${error.code}: ${error.message}`, undefined, 'unknown');
    return failed(`Shopify GraphQL error${error.code === undefined ? '' : ` ${error.code}`}: ${error.message}`);
  }
}
