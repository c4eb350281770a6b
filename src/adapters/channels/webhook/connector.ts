// Pushes available-to-sell as signed JSON to any HTTP endpoint: a storefront, a B2B portal, a marketplace bridge.

import type { ChannelConnector, ChannelPush, PushResult } from '../connector.js';
import { ChannelError } from '../errors.js';
import { classifyStatus, exchange, parseRetryAfterMs } from '../http.js';
import { channelLimits, chunks } from '../limits.js';
import { signStocklinePayload } from './signature.js';

export interface SignedWebhookOptions {
  channel: string;
  tenant: string;
  url: string;
  secret: string;
  /** Optional GET endpoint answering `{ "<sku>": <quantity> }` for `?sku=a&sku=b`. */
  readUrl?: string;
  timeoutMs?: number;
  maxConcurrency?: number;
  ratePerSecond?: number;
  nowMs?: () => number;
}

/** The body of every push; receivers keep, per SKU, the highest `version` they saw. */
export interface StocklineQuantityUpdate {
  tenant: string;
  channel: string;
  sku: string;
  quantity: number;
  version: number;
  /** RFC 3339 time of the push. */
  time: string;
}

/** Pushes answer nothing we read; a small cap keeps a chatty receiver from costing memory. */
const pushAnswerBytesMax = 64 * 1024;
const reasonLengthMax = 300;

export class SignedWebhookConnector implements ChannelConnector {
  readonly channel: string;
  readonly tenant: string;
  readonly maxConcurrency: number;
  readonly versionOrdered = true;
  readonly ratePerSecond: number;
  readonly #url: string;
  readonly #readUrl: string | undefined;
  readonly #secret: string;
  readonly #timeoutMs: number;
  readonly #nowMs: () => number;
  #closed = false;

  constructor(options: SignedWebhookOptions) {
    if (options.secret === '') throw new ChannelError('CHANNEL_CONFIG_INVALID', `channel ${options.channel}: the signing secret is empty`);
    this.channel = options.channel;
    this.tenant = options.tenant;
    this.maxConcurrency = options.maxConcurrency ?? 8;
    this.ratePerSecond = options.ratePerSecond ?? 50;
    this.#url = options.url;
    this.#readUrl = options.readUrl;
    this.#secret = options.secret;
    this.#timeoutMs = options.timeoutMs ?? channelLimits.requestTimeoutMsDefault;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** No compare-and-set: a push is idempotent by version, and receivers ignore versions lower than one they hold. */
  async push(push: ChannelPush): Promise<PushResult> {
    if (this.#closed) return { kind: 'retry', reason: 'connector closed' };
    if (push.tenant !== this.tenant || push.channel !== this.channel) {
      return { kind: 'failed', reason: `connector of ${this.tenant}/${this.channel} got a push for ${push.tenant}/${push.channel}` };
    }
    const nowMs = this.#nowMs();
    const update: StocklineQuantityUpdate = {
      tenant: push.tenant, channel: push.channel, sku: push.sku, quantity: push.quantity, version: push.version, time: new Date(nowMs).toISOString(),
    };
    const body = JSON.stringify(update);
    const answer = await exchange({
      url: this.#url,
      method: 'POST',
      headers: { ...this.#signed(body, nowMs), 'content-type': 'application/json', 'stockline-event-id': push.idempotencyKey },
      body,
      timeoutMs: this.#timeoutMs,
      bodyBytesMax: pushAnswerBytesMax,
    });
    if (answer.kind === 'unreachable') return { kind: 'retry', reason: answer.reason };
    return this.#outcome(answer.status, answer.headers, answer.body, nowMs);
  }

  async read(tenant: string, skus: string[]): Promise<Map<string, number>> {
    if (tenant !== this.tenant) throw new ChannelError('CHANNEL_TENANT_MISMATCH', `channel ${this.channel} serves tenant ${this.tenant}, not ${tenant}`);
    if (this.#readUrl === undefined) throw new ChannelError('CHANNEL_READ_UNSUPPORTED', `channel ${this.channel} has no readUrl: it cannot report what it shows`);
    const shown = new Map<string, number>();
    for (const batch of chunks([...new Set(skus)], channelLimits.webhookReadSkusPerRequestMax)) {
      for (const [sku, quantity] of await this.#readBatch(this.#readUrl, batch)) shown.set(sku, quantity);
    }
    return shown;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #signed(body: string, nowMs: number): Record<string, string> {
    return { 'stockline-signature': signStocklinePayload(body, this.#secret, Math.floor(nowMs / 1000)) };
  }

  #outcome(status: number, headers: Headers, body: string, nowMs: number): PushResult {
    const statusClass = classifyStatus(status);
    if (statusClass === 'success') return { kind: 'ok' };
    const detail = body.trim().slice(0, reasonLengthMax);
    const reason = `receiver answered ${status}${detail === '' ? '' : `: ${detail}`}`;
    if (statusClass === 'failed') return { kind: 'failed', reason: status >= 300 && status < 400 ? `${reason} (redirects are not followed; configure the final URL)` : reason };
    const retryAfterMs = parseRetryAfterMs(headers.get('retry-after'), nowMs) ?? (status === 429 ? channelLimits.retryAfterMsDefault : undefined);
    return retryAfterMs === undefined ? { kind: 'retry', reason } : { kind: 'retry', reason, retryAfterMs };
  }

  /** The GET is signed over its query string (without `?`), so the receiver can check who asks. */
  async #readBatch(readUrl: string, skus: string[]): Promise<Map<string, number>> {
    const url = new URL(readUrl);
    url.searchParams.set('tenant', this.tenant);
    url.searchParams.set('channel', this.channel);
    for (const sku of skus) url.searchParams.append('sku', sku);
    const nowMs = this.#nowMs();
    const answer = await exchange({
      url: url.toString(), method: 'GET', headers: { ...this.#signed(url.search.slice(1), nowMs), accept: 'application/json' },
      timeoutMs: this.#timeoutMs, bodyBytesMax: channelLimits.responseBytesMax,
    });
    if (answer.kind === 'unreachable') throw new ChannelError('CHANNEL_UNAVAILABLE', `read of channel ${this.channel}: ${answer.reason}`);
    const outcome = this.#outcome(answer.status, answer.headers, answer.body, nowMs);
    if (outcome.kind === 'retry') throw new ChannelError('CHANNEL_UNAVAILABLE', `read of channel ${this.channel}: ${outcome.reason}`, outcome.retryAfterMs === undefined ? {} : { retryAfterMs: outcome.retryAfterMs });
    if (outcome.kind === 'failed') throw new ChannelError('CHANNEL_REJECTED', `read of channel ${this.channel}: ${outcome.reason}`);
    return quantitiesOf(answer.body, skus, this.channel);
  }
}

/** Only the SKUs asked for, with integer quantities; anything else in the answer is ignored. */
function quantitiesOf(text: string, skus: string[], channel: string): Map<string, number> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ChannelError('CHANNEL_REJECTED', `read of channel ${channel}: the answer is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ChannelError('CHANNEL_REJECTED', `read of channel ${channel}: the answer is not an object of SKU to quantity`);
  }
  const answer = parsed as Record<string, unknown>;
  const shown = new Map<string, number>();
  for (const sku of skus) {
    const quantity = Object.hasOwn(answer, sku) ? answer[sku] : undefined;
    if (typeof quantity === 'number' && Number.isSafeInteger(quantity)) shown.set(sku, quantity);
  }
  return shown;
}
