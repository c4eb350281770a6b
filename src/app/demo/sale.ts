// Plays a sale plan against a running Stockline: storefront and B2B shoppers hold and pay through the HTTP API,
// Shopify shoppers buy what the (fake) Shopify shows and their orders arrive as signed orders/create webhooks.

import { setMaxListeners } from 'node:events';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { signShopifyWebhook } from '../../adapters/channels/shopify/fake-server.js';
import { emptyTally } from './polling.js';
import type { ChannelTally } from './polling.js';
import { demoChannels, demoLimits } from './plan.js';
import type { DemoChannel, DemoRestock, DemoVisit, SalePlan } from './plan.js';

export const saleLimits = {
  /** A visit not started this long after the sale's end is skipped: the run stays bounded on a slow machine. */
  lateStartMsMax: 2_000,
  requestTimeoutMs: 10_000,
  errorsKeptMax: 5,
  /** Connections the shoppers share, kept alive: one per shopper would cost more than the sale itself. */
  socketsMax: 256,
} as const;

export interface LiveTally extends ChannelTally {
  /** API channels: holds taken; Shopify: shoppers who reached the checkout. */
  holds: number;
  /** Holds left to expire by shoppers who did not pay. */
  abandoned: number;
  /** Payments that came after the hold expired (409 RESERVATION_EXPIRED). */
  expiredBeforePayment: number;
  /** Answers that were neither a yes nor a business no (timeouts, 5xx). */
  errors: number;
}

export interface SaleRun {
  channels: Record<DemoChannel, LiveTally>;
  /** Round trips of POST /reservations, in milliseconds. */
  reserveLatenciesMs: number[];
  visits: number;
  skippedVisits: number;
  restocks: number;
  elapsedMs: number;
  /** The first few unexpected answers, for the summary. */
  errorSamples: string[];
}

export interface SaleTargets {
  url: string;
  key: string;
  /** What Shopify shows of a SKU, and the sale Shopify makes of it before it tells anyone. */
  shopify: { levelOf(sku: string): number; sell(sku: string, quantity: number): void; webhookUrl: string; secret: string; shopDomain: string };
  restock(restock: DemoRestock): Promise<void>;
}

interface Answer {
  status: number;
  text: string;
}

/** A POST over node:http with a shared keep-alive agent: lighter than fetch when shoppers and server share a process. */
function post(agent: Agent, url: string, headers: Record<string, string>, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sent = request(url, {
      method: 'POST', agent, timeout: saleLimits.requestTimeoutMs,
      headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    sent.on('timeout', () => sent.destroy(new Error(`no answer within ${saleLimits.requestTimeoutMs} ms`)));
    sent.on('error', reject);
    sent.end(body);
  });
}

/** Waits, or less if the sale is stopped. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

class Sale {
  readonly run: SaleRun;
  private readonly startMs = performance.now();
  private readonly tenantPath: string;
  readonly agent = new Agent({ keepAlive: true, maxSockets: saleLimits.socketsMax });

  constructor(private readonly plan: SalePlan, private readonly targets: SaleTargets, private readonly signal: AbortSignal) {
    const channels = Object.fromEntries(demoChannels.map((channel) => [channel, { ...emptyTally(), holds: 0, abandoned: 0, expiredBeforePayment: 0, errors: 0 }]));
    this.run = { channels: channels as Record<DemoChannel, LiveTally>, reserveLatenciesMs: [], visits: 0, skippedVisits: 0, restocks: 0, elapsedMs: 0, errorSamples: [] };
    this.tenantPath = `${targets.url}/v1/tenants/${plan.tenant}`;
  }

  elapsedMs(): number {
    return performance.now() - this.startMs;
  }

  async shopper(visits: DemoVisit[]): Promise<void> {
    for (const visit of visits) {
      if (this.signal.aborted) return;
      if (this.elapsedMs() > this.plan.durationMs + saleLimits.lateStartMsMax) {
        this.run.skippedVisits += 1;
        continue;
      }
      await sleep(visit.atMs - this.elapsedMs(), this.signal);
      if (this.signal.aborted) return;
      this.run.visits += 1;
      try {
        if (visit.channel === 'shopify') await this.shopifyVisit(visit);
        else await this.apiVisit(visit);
      } catch (error) {
        this.error(visit.channel, `${visit.channel}: ${(error as Error).message}`);
      }
    }
  }

  async feed(): Promise<void> {
    for (const restock of this.plan.restocks) {
      await sleep(restock.atMs - this.elapsedMs(), this.signal);
      if (this.signal.aborted) return;
      try {
        await this.targets.restock(restock);
        this.run.restocks += 1;
      } catch (error) {
        if (this.run.errorSamples.length < saleLimits.errorsKeptMax) this.run.errorSamples.push(`stock feed: ${(error as Error).message}`);
      }
    }
  }

  private error(channel: DemoChannel, sample: string): void {
    this.run.channels[channel].errors += 1;
    if (this.run.errorSamples.length < saleLimits.errorsKeptMax) this.run.errorSamples.push(sample);
  }

  private post(path: string, body: unknown, idempotencyKey: string): Promise<Answer> {
    const headers = { authorization: `Bearer ${this.targets.key}`, 'idempotency-key': idempotencyKey };
    return post(this.agent, `${this.tenantPath}${path}`, headers, JSON.stringify(body));
  }

  /** Delivers orders/create the way Shopify does: the raw body signed with the app secret, the event id in a header. */
  private deliverOrder(payload: unknown, eventId: string): Promise<Answer> {
    const body = JSON.stringify(payload);
    const { shopify } = this.targets;
    return post(this.agent, shopify.webhookUrl, {
      'x-shopify-topic': 'orders/create', 'x-shopify-shop-domain': shopify.shopDomain, 'x-shopify-api-version': '2026-04',
      'x-shopify-event-id': eventId, 'x-shopify-hmac-sha256': signShopifyWebhook(body, shopify.secret),
    }, body);
  }

  /** Add to cart holds the units; paying commits them; a shopper who leaves lets the hold expire. */
  private async apiVisit(visit: DemoVisit): Promise<void> {
    const tally = this.run.channels[visit.channel];
    const id = `${visit.channel}-${visit.shopper}-${visit.index}`;
    const sentMs = performance.now();
    const held = await this.post('/reservations', {
      reservationId: id, channel: visit.channel, lines: [{ sku: visit.sku, quantity: visit.quantity }], ttlSeconds: demoLimits.ttlSeconds,
    }, `${id}:reserve`);
    this.run.reserveLatenciesMs.push(performance.now() - sentMs);
    if (held.status === 409) {
      tally.refused += 1;
      return;
    }
    if (held.status !== 201) return this.error(visit.channel, `POST /reservations answered ${held.status}: ${held.text.slice(0, 200)}`);
    tally.holds += 1;
    if (visit.abandon) {
      tally.abandoned += 1;
      return;
    }
    await sleep(visit.checkoutMs, this.signal);
    const paid = await this.post(`/reservations/${encodeURIComponent(id)}/commit`, {}, `${id}:commit`);
    if (paid.status === 409) {
      tally.expiredBeforePayment += 1;
      return;
    }
    if (paid.status !== 200) return this.error(visit.channel, `POST /reservations/{id}/commit answered ${paid.status}: ${paid.text.slice(0, 200)}`);
    tally.orders += 1;
    tally.unitsSold += visit.quantity;
  }

  /** Shopify checks only its own count at checkout, decrements it, and tells Stockline afterwards by webhook. */
  private async shopifyVisit(visit: DemoVisit): Promise<void> {
    const tally = this.run.channels.shopify;
    await sleep(visit.checkoutMs, this.signal);
    if (visit.abandon) {
      tally.abandoned += 1;
      return;
    }
    if (this.targets.shopify.levelOf(visit.sku) < visit.quantity) {
      tally.refused += 1;
      return;
    }
    tally.holds += 1;
    this.targets.shopify.sell(visit.sku, visit.quantity);
    const orderId = 7_000_000_000 + visit.shopper * 10_000 + visit.index;
    const payload = {
      id: orderId, admin_graphql_api_id: `gid://shopify/Order/${orderId}`, name: `#D${visit.shopper}-${visit.index}`,
      line_items: [{ sku: visit.sku, quantity: visit.quantity, title: visit.sku }],
    };
    const delivered = await this.deliverOrder(payload, `demo-${this.plan.seed}-${visit.shopper}-${visit.index}`);
    if (delivered.status !== 200) return this.error('shopify', `orders/create webhook answered ${delivered.status}: ${delivered.text.slice(0, 200)}`);
    tally.orders += 1;
    tally.unitsSold += visit.quantity;
  }
}

/** Every shopper at once, each on its own schedule, with the stock feed beside them; `signal` ends it early. */
export async function runSale(plan: SalePlan, targets: SaleTargets, signal: AbortSignal): Promise<SaleRun> {
  // Every shopper waits on the signal at once; that many listeners is the design, not a leak.
  setMaxListeners(plan.shoppers + 16, signal);
  const sale = new Sale(plan, targets, signal);
  try {
    await Promise.all([sale.feed(), ...plan.visits.map((visits) => sale.shopper(visits))]);
  } finally {
    sale.agent.destroy();
  }
  sale.run.elapsedMs = sale.elapsedMs();
  return sale.run;
}
