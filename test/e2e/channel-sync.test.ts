// Channel sync end to end: a real `stockline serve` process with a YAML config whose channels point at the fake Shopify
// and at signed-webhook receivers run here; stock changes through the HTTP API must reach every channel, exactly.

import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { sendShopifyWebhook, signShopifyWebhook } from '../fakes/fake-shopify.js';
import { metricValue, shopDomain, shopifyAppSecret, startChannelStack } from '../support/channel-config.js';
import type { ChannelStack, ChannelStackOptions } from '../support/channel-config.js';
import { pollUntil } from '../support/prometheus.js';
import { arrivalViolations } from '../support/webhook-receiver.js';
import { seededRandom } from '../../src/app/demo/random.js';

const cliTimeoutMs = 30_000;

let stack: ChannelStack | undefined;

afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function open(options: ChannelStackOptions): Promise<ChannelStack> {
  stack = await startChannelStack(options);
  return stack;
}

/** Calls the API and insists on the status, showing the body when it differs. */
async function expectCall(target: ChannelStack, status: number, method: string, path: string, body?: unknown): Promise<unknown> {
  const answer = await target.api(method, path, body);
  expect(answer.status, `${method} ${path}: ${JSON.stringify(answer.body)}`).toBe(status);
  return answer.body;
}

function tenantPath(target: ChannelStack, path: string): string {
  return `/v1/tenants/${target.tenant}${path}`;
}

async function setStock(target: ChannelStack, levels: Array<{ sku: string; location?: string; set: number }>): Promise<void> {
  const result = await expectCall(target, 200, 'POST', tenantPath(target, '/adjustments'), { adjustments: levels });
  expect((result as { rejected: number }).rejected).toBe(0);
}

async function adjust(target: ChannelStack, sku: string, delta: number, location?: string): Promise<void> {
  await expectCall(target, 200, 'POST', tenantPath(target, '/adjustments'), { sku, delta, ...(location === undefined ? {} : { location }) });
}

/** Events other than `sync_complete`, which acknowledgements keep appending on their own. */
async function ledgerEvents(target: ChannelStack): Promise<Array<{ type: string; data: Record<string, unknown> }>> {
  const answer = await expectCall(target, 200, 'GET', tenantPath(target, '/events?after=0&limit=1000'));
  return (answer as { events: Array<{ event: { type: string; data: Record<string, unknown> } }> }).events
    .map((logged) => logged.event)
    .filter((event) => event.type !== 'sync_complete');
}

function shopifyOrder(orderId: number, lines: Array<{ sku: string; quantity: number }>): Record<string, unknown> {
  return {
    id: orderId, admin_graphql_api_id: `gid://shopify/Order/${orderId}`, name: `#${orderId}`,
    line_items: lines.map((line, index) => ({ id: orderId * 10 + index, sku: line.sku, quantity: line.quantity, gift_card: false })),
  };
}

function webhookUrl(target: ChannelStack): string {
  return `${target.url()}/v1/webhooks/shopify/shop`;
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `stockline reconcile` as an operator runs it, next to the running server, on the same data folder. */
function runReconcile(target: ChannelStack, args: string[]): Promise<CliRun> {
  const child = spawn(process.execPath, ['bin/stockline.js', 'reconcile', '--config', target.configFile, '--data-dir', target.dataDir, ...args], {
    env: { ...process.env, ...target.env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), cliTimeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('a flash sale across a storefront, a B2B portal and Shopify', () => {
  const skus = Array.from({ length: 12 }, (_, index) => `FS-${String(index + 1).padStart(2, '0')}`);
  const hot = 'FS-01';
  const channels = ['shop', 'storefront', 'b2b'];

  it('leaves every channel showing exactly its available-to-sell, and no channel ever goes back to an older value', async () => {
    const target = await open({ tenant: 'flash', skus, webhooks: [{ id: 'storefront' }, { id: 'b2b' }] });
    await expectCall(target, 200, 'PUT', tenantPath(target, '/channels/storefront'), { bufferUnits: 2 });
    await expectCall(target, 200, 'PUT', tenantPath(target, '/channels/b2b'), { locations: ['main'], maxUnits: 25 });
    await expectCall(target, 200, 'PUT', tenantPath(target, '/channels/shop'), { bufferUnits: 1 });
    await setStock(target, skus.flatMap((sku) => [{ sku, location: 'main', set: sku === hot ? 60 : 40 }, { sku, location: 'outlet', set: 10 }]));
    expect(await target.converge(skus)).toEqual([]);

    // A buyer-side view: sample what the webhook channels show while the sale runs.
    const lastSampled = new Map<string, number>();
    const regressions: string[] = [];
    const sample = (): void => {
      for (const [channel, receiver] of target.receivers) {
        for (const sku of skus) {
          const version = receiver.shown(sku)?.version;
          if (version === undefined) continue;
          const key = `${channel}/${sku}`;
          const before = lastSampled.get(key);
          if (before !== undefined && version < before) regressions.push(`${key}: showed version ${before}, then ${version}`);
          lastSampled.set(key, version);
        }
      }
    };
    const sampler = setInterval(sample, 10);

    const random = seededRandom(20_260_501);
    const counts = { held: 0, refused: 0, committed: 0, released: 0, receipts: 0 };
    const operations = 480;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < operations) {
        const index = next++;
        if (index % 40 === 39) {
          await adjust(target, skus[Math.floor(random() * skus.length)] as string, 3, 'main');
          counts.receipts += 1;
          continue;
        }
        const sku = random() < 0.6 ? hot : (skus[1 + Math.floor(random() * (skus.length - 1))] as string);
        const channel = channels[Math.floor(random() * channels.length)] as string;
        const reserved = await target.api('POST', tenantPath(target, '/reservations'), {
          reservationId: `cart-${index}`, channel, lines: [{ sku, quantity: 1 + Math.floor(random() * 3) }],
        });
        if (reserved.status === 409) {
          counts.refused += 1;
          continue;
        }
        expect(reserved.status, JSON.stringify(reserved.body)).toBe(201);
        counts.held += 1;
        const fate = random();
        if (fate < 0.5) {
          await expectCall(target, 200, 'POST', tenantPath(target, `/reservations/cart-${index}/commit`), { orderRef: `order-${index}` });
          counts.committed += 1;
        } else if (fate < 0.8) {
          await expectCall(target, 200, 'POST', tenantPath(target, `/reservations/cart-${index}/release`), {});
          counts.released += 1;
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: 24 }, () => worker()));
    } finally {
      clearInterval(sampler);
    }
    sample();

    // The workload really was a sale: many holds, and the hot SKU ran out at least once.
    expect(counts.held).toBeGreaterThan(200);
    expect(counts.refused).toBeGreaterThan(0);
    expect(counts.committed + counts.released).toBeGreaterThan(100);

    const drift = await target.converge(skus, 30_000);
    expect(drift, 'channels that do not show the ledger\'s available-to-sell').toEqual([]);
    const wanted = await target.availableToSell(skus);
    for (const channel of channels) {
      for (const sku of skus) expect(target.shown(channel, sku), `${channel}/${sku}`).toBeLessThanOrEqual(wanted.get(channel)?.get(sku) ?? -1);
    }
    for (const sku of skus) {
      const view = (await expectCall(target, 200, 'GET', tenantPath(target, `/skus/${sku}`))) as { available: number };
      expect(view.available, `${sku} oversold by reservations`).toBeGreaterThanOrEqual(0);
    }
    expect(regressions).toEqual([]);
    for (const receiver of target.receivers.values()) {
      expect(receiver.refused, `${receiver.channel} refused pushes`).toEqual([]);
      expect(arrivalViolations(receiver.received), `${receiver.channel} got an older version after a newer one`).toEqual([]);
      expect(receiver.received.length).toBeGreaterThan(skus.length);
    }
  }, 120_000);
});

describe('Shopify failures', () => {
  const skus = ['ST-1', 'ST-2', 'ST-3', 'ST-4'];

  async function changeAll(target: ChannelStack): Promise<void> {
    for (const sku of skus) await adjust(target, sku, -1);
  }

  function outcomesSince(target: ChannelStack, mark: number): Array<{ status: number; outcome: string }> {
    return target.fake.requests.slice(mark);
  }

  it('converges after 429 storms, GraphQL throttling, 500s and timeouts once Shopify recovers', async () => {
    const target = await open({ tenant: 'storm', skus, shopify: { timeoutMs: 1_000, ratePerSecond: 20 }, webhooks: [{ id: 'storefront' }] });
    await setStock(target, skus.map((sku) => ({ sku, set: 100 })));
    expect(await target.converge(skus)).toEqual([]);

    // HTTP 429 with Retry-After, on every request, for a while.
    let mark = target.fake.requests.length;
    target.fake.throttle('http429');
    await changeAll(target);
    await pollUntil('two rounds of 429s', async () => (outcomesSince(target, mark).filter((request) => request.status === 429).length >= 2 ? true : undefined), 20_000);
    expect(target.stockline.child.exitCode).toBeNull();
    target.fake.throttle(false);
    expect(await target.converge(skus)).toEqual([]);

    // GraphQL THROTTLED answers (HTTP 200), as Shopify sends when the cost bucket is empty.
    mark = target.fake.requests.length;
    target.fake.throttle('graphql');
    await changeAll(target);
    await pollUntil('three THROTTLED answers', async () => (outcomesSince(target, mark).filter((request) => request.outcome === 'throttled').length >= 3 ? true : undefined), 20_000);
    target.fake.throttle(false);
    expect(await target.converge(skus)).toEqual([]);

    // 500s and 502s.
    mark = target.fake.requests.length;
    target.fake.failNext(4, 500);
    target.fake.failNext(3, 502);
    await changeAll(target);
    expect(await target.converge(skus)).toEqual([]);
    expect(outcomesSince(target, mark).filter((request) => request.outcome === 'injected')).toHaveLength(7);

    // Answers slower than the connector's 1 s timeout: the mutation still lands late, and the retry must not undo it.
    const retriesBefore = await metricValue(target.url(), 'stockline_channel_pushes_total', { channel: 'shop', outcome: 'retry' });
    target.fake.setLatencyMs(1_500);
    await changeAll(target);
    await changeAll(target);
    await pollUntil('pushes to time out', async () => {
      const retries = await metricValue(target.url(), 'stockline_channel_pushes_total', { channel: 'shop', outcome: 'retry' });
      return retries >= retriesBefore + 2 ? true : undefined;
    }, 20_000);
    target.fake.setLatencyMs(0);
    expect(await target.converge(skus)).toEqual([]);
    expect(await metricValue(target.url(), 'stockline_channel_pushes_total', { channel: 'shop', outcome: 'failed' })).toBe(0);
    expect(await metricValue(target.url(), 'stockline_engine_ready'), 'a channel that fails leaves the engine ready').toBe(1);
  }, 120_000);

  it('resumes pushes left pending by a crash (SIGKILL) while Shopify was unreachable', async () => {
    const target = await open({ tenant: 'crash', skus, webhooks: [{ id: 'storefront' }] });
    await setStock(target, skus.map((sku) => ({ sku, set: 50 })));
    expect(await target.converge(skus)).toEqual([]);

    target.fake.setReachable(false);
    target.receivers.get('storefront')?.setDown(503);
    for (const sku of skus) await adjust(target, sku, -7);
    await expectCall(target, 201, 'POST', tenantPath(target, '/reservations'), { channel: 'storefront', lines: [{ sku: 'ST-1', quantity: 5 }] });
    await pollUntil('failed pushes on both channels', async () => {
      const shop = await metricValue(target.url(), 'stockline_channel_pushes_total', { channel: 'shop', outcome: 'retry' });
      const storefront = await metricValue(target.url(), 'stockline_channel_pushes_total', { channel: 'storefront', outcome: 'retry' });
      return shop > 0 && storefront > 0 ? true : undefined;
    }, 20_000);
    expect(await metricValue(target.url(), 'stockline_outbox_depth')).toBe(skus.length * 2);
    // Nothing got through before the crash: every channel still shows the old 50.
    for (const sku of skus) {
      expect(target.shown('shop', sku)).toBe(50);
      expect(target.shown('storefront', sku)).toBe(50);
    }

    await target.restart('SIGKILL');
    target.fake.setReachable(true);
    target.receivers.get('storefront')?.setDown(undefined);

    expect(await target.converge(skus, 30_000)).toEqual([]);
    expect(target.shown('shop', 'ST-1')).toBe(38);
    expect(target.shown('storefront', 'ST-2')).toBe(43);
    expect(arrivalViolations(target.receivers.get('storefront')?.received ?? [])).toEqual([]);
  }, 90_000);

  it('never lets a push that timed out and lands late overwrite a newer quantity, and counts it in the lag until it is answered', async () => {
    const target = await open({ tenant: 'late', skus: ['LT-1', 'LT-2'], shopify: { timeoutMs: 1_000 } });
    await setStock(target, [{ sku: 'LT-1', set: 10 }, { sku: 'LT-2', set: 10 }]);
    expect(await target.converge(['LT-1', 'LT-2'])).toEqual([]);
    const item = target.itemOf('LT-1');
    const mark = target.fake.requests.length;

    // Shopify is slow: 10 -> 8 outlives the connector's 1 s timeout, and Shopify applies it 3 s after it was sent.
    target.fake.setLatencyMs(3_000);
    await adjust(target, 'LT-1', -2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    target.fake.setLatencyMs(0);
    // The ledger wants 10 again: the compare base of that slow push.
    await adjust(target, 'LT-1', 2);
    await adjust(target, 'LT-2', -1);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // The slow push may still land: LT-1 is not in step yet, and the lag says so; the channel's other SKUs go on.
    expect(target.shown('shop', 'LT-2')).toBe(9);
    expect(await metricValue(target.url(), 'stockline_outbox_depth', { channel: 'shop' })).toBe(1);
    expect(await metricValue(target.url(), 'stockline_reconciliation_lag_seconds', { tenant: 'late', channel: 'shop' })).toBeGreaterThan(0);

    const sets = (): string[] => target.fake.requests.slice(mark)
      .filter((request) => request.operation === 'inventorySetQuantities' && JSON.stringify(request.variables).includes(item))
      .map((request) => {
        const [entry] = (request.variables as { input: { quantities: Array<{ quantity: number; changeFromQuantity: number }> } }).input.quantities;
        return `${request.outcome}:${entry?.quantity}<-${entry?.changeFromQuantity}`;
      });
    await pollUntil('the slow push to land', async () => (sets().includes('ok:8<-10') ? true : undefined), 20_000);
    expect(await target.converge(['LT-1', 'LT-2'])).toEqual([]);
    expect(target.shown('shop', 'LT-1')).toBe(10);
    // Sent again under its key until answered, then the newer quantity compared against what it left.
    expect(sets().filter((text) => !text.endsWith(':8<-10'))).toEqual(['ok:10<-8']);
    expect(await metricValue(target.url(), 'stockline_channel_pushes_total', { channel: 'shop', outcome: 'failed' })).toBe(0);
  }, 60_000);

  it('resolves a compare-and-set mismatch when someone changed the level in Shopify', async () => {
    const target = await open({ tenant: 'cas', skus: ['CAS-1', 'CAS-2'] });
    await setStock(target, [{ sku: 'CAS-1', set: 30 }, { sku: 'CAS-2', set: 30 }]);
    expect(await target.converge(['CAS-1', 'CAS-2'])).toEqual([]);

    // A merchant edits the level in the Shopify admin, behind Stockline's back.
    target.fake.setLevel(target.itemOf('CAS-1'), 99);
    const mark = target.fake.requests.length;
    await adjust(target, 'CAS-1', -2);

    expect(await target.converge(['CAS-1', 'CAS-2'])).toEqual([]);
    expect(target.shown('shop', 'CAS-1')).toBe(28);
    const refusals = target.fake.requests.slice(mark).filter((request) => request.operation === 'inventorySetQuantities' && request.outcome === 'userError');
    expect(refusals.length, 'the first push must have been refused as stale').toBeGreaterThanOrEqual(1);
    const sets = target.fake.requests.slice(mark).filter((request) => request.operation === 'inventorySetQuantities' && request.outcome === 'ok');
    expect(sets.at(-1)?.variables).toMatchObject({ input: { quantities: [{ quantity: 28, changeFromQuantity: 99 }] } });
  }, 60_000);
});

describe('Shopify order webhooks', () => {
  it('ignores forged deliveries and applies a replayed one once', async () => {
    const target = await open({ tenant: 'hooks', skus: ['WH-1'], webhooks: [{ id: 'storefront' }] });
    await setStock(target, [{ sku: 'WH-1', set: 20 }]);
    expect(await target.converge(['WH-1'])).toEqual([]);
    const skuBefore = await expectCall(target, 200, 'GET', tenantPath(target, '/skus/WH-1'));
    const eventsBefore = await ledgerEvents(target);
    const order = shopifyOrder(5001, [{ sku: 'WH-1', quantity: 3 }]);

    const forged = [
      await sendShopifyWebhook(webhookUrl(target), 'orders/create', order, 'not-the-app-secret', 'evt-forged-1', { shopDomain }),
      await sendShopifyWebhook(webhookUrl(target), 'orders/create', order, shopifyAppSecret, 'evt-forged-2', { shopDomain, signature: null }),
      await sendShopifyWebhook(webhookUrl(target), 'orders/create', order, shopifyAppSecret, 'evt-forged-3', {
        shopDomain, signature: signShopifyWebhook(JSON.stringify(shopifyOrder(5001, [{ sku: 'WH-1', quantity: 1 }])), shopifyAppSecret),
      }),
    ];
    expect(forged.map((answer) => answer.status)).toEqual([401, 401, 401]);
    const otherShop = await sendShopifyWebhook(webhookUrl(target), 'orders/create', order, shopifyAppSecret, 'evt-forged-4', { shopDomain: 'someone-else.myshopify.com' });
    expect(otherShop.status).toBe(403);
    expect(await expectCall(target, 200, 'GET', tenantPath(target, '/skus/WH-1'))).toEqual(skuBefore);
    expect(await ledgerEvents(target)).toEqual(eventsBefore);

    // The genuine delivery, and Shopify delivering it again; Shopify's own level drops with its sale.
    target.fake.setLevel(target.itemOf('WH-1'), 17);
    const first = await sendShopifyWebhook(webhookUrl(target), 'orders/create', order, shopifyAppSecret, 'evt-order-5001', { shopDomain });
    const again = await sendShopifyWebhook(webhookUrl(target), 'orders/create', order, shopifyAppSecret, 'evt-order-5001', { shopDomain });
    expect(first.status, first.body).toBe(200);
    expect(JSON.parse(first.body)).toMatchObject({ status: 'applied', results: ['accepted'] });
    expect(again.status, again.body).toBe(200);
    expect(JSON.parse(again.body)).toMatchObject({ results: ['DUPLICATE'] });

    const view = (await expectCall(target, 200, 'GET', tenantPath(target, '/skus/WH-1'))) as { onHand: number; committed: number; available: number };
    expect(view).toMatchObject({ onHand: 20, committed: 3, available: 17 });
    expect((await ledgerEvents(target)).filter((event) => event.type === 'order_committed')).toHaveLength(1);
    expect(await target.converge(['WH-1'])).toEqual([]);
    expect(target.shown('storefront', 'WH-1')).toBe(17);
  }, 60_000);

  it('keeps an order whose cancellation arrived first from holding stock', async () => {
    const target = await open({ tenant: 'early', skus: ['EC-1'], webhooks: [{ id: 'storefront' }] });
    await setStock(target, [{ sku: 'EC-1', set: 10 }]);
    const order = shopifyOrder(6001, [{ sku: 'EC-1', quantity: 4 }]);
    const cancel = await sendShopifyWebhook(webhookUrl(target), 'orders/cancelled', { ...order, cancelled_at: '2026-12-07T10:00:00Z' }, shopifyAppSecret, 'evt-cancel-6001', { shopDomain });
    expect(cancel.status, cancel.body).toBe(200);
    expect(JSON.parse(cancel.body)).toMatchObject({ results: ['CANCELLED_BEFORE_SALE'] });
    const create = await sendShopifyWebhook(webhookUrl(target), 'orders/create', order, shopifyAppSecret, 'evt-order-6001', { shopDomain });
    expect(create.status, create.body).toBe(200);
    expect(JSON.parse(create.body)).toMatchObject({ results: ['CANCELLED_BEFORE_SALE'] });
    expect(await expectCall(target, 200, 'GET', tenantPath(target, '/skus/EC-1'))).toMatchObject({ onHand: 10, committed: 0, available: 10 });
    expect((await ledgerEvents(target)).filter((event) => event.type === 'order_committed')).toHaveLength(0);
  }, 60_000);
});

describe('Shopify orders of items mapped under inventoryItems', () => {
  it('sells them as the mapped SKUs, whatever SKU their variants carry in Shopify, and pushes no other SKU to those items', async () => {
    const target = await open({ tenant: 'mapped', skus: ['TEE-M', 'MUG-1'] });
    await setStock(target, [{ sku: 'TEE-M', set: 10 }, { sku: 'MUG-1', set: 10 }]);
    expect(await target.converge(['TEE-M', 'MUG-1'])).toEqual([]);
    // In Shopify the T-shirt's variant carries another SKU, and the mug's none: the configuration maps both by item.
    const tee = target.itemOf('TEE-M');
    const mug = target.itemOf('MUG-1');
    target.fake.inventoryItems.set(tee, 'SHOP-TEE-M-BLUE');
    target.fake.inventoryItems.set(mug, null);
    // A buyer orders 2 of each in Shopify, which takes them off its own levels and sends orders/create.
    target.fake.setLevel(tee, 8);
    target.fake.setLevel(mug, 8);
    const order = {
      id: 820982911946154500, admin_graphql_api_id: 'gid://shopify/Order/820982911946154500', name: '#1001',
      line_items: [target.fake.lineItemOf(tee, 2), target.fake.lineItemOf(mug, 2)],
    };
    const delivered = await sendShopifyWebhook(webhookUrl(target), 'orders/create', order, shopifyAppSecret, 'evt-mapped-1', { shopDomain });
    expect(delivered.status, delivered.body).toBe(200);
    expect(JSON.parse(delivered.body)).toMatchObject({ results: ['accepted'], skipped: [] });

    for (const sku of ['TEE-M', 'MUG-1']) {
      expect(await expectCall(target, 200, 'GET', tenantPath(target, `/skus/${sku}`))).toMatchObject({ onHand: 10, committed: 2, available: 8 });
    }
    expect(await target.converge(['TEE-M', 'MUG-1'])).toEqual([]);
    const skus = (await expectCall(target, 200, 'GET', tenantPath(target, '/skus'))) as { skus: Array<{ sku: string }> };
    expect(skus.skus.map((entry) => entry.sku).sort()).toEqual(['MUG-1', 'TEE-M']);
    expect(target.shown('shop', 'TEE-M')).toBe(8);
    expect((await ledgerEvents(target)).filter((event) => event.type === 'conflict_detected')).toEqual([]);
  }, 60_000);
});

describe('catalogue changes', () => {
  const channels = ['shop', 'storefront', 'b2b'];

  it('pushes 0 for a soft-deleted SKU and republishes it when restored', async () => {
    const target = await open({ tenant: 'catalog', skus: ['SD-1', 'SD-2'], webhooks: [{ id: 'storefront' }, { id: 'b2b' }] });
    await setStock(target, [{ sku: 'SD-1', set: 12 }, { sku: 'SD-2', set: 4 }]);
    expect(await target.converge(['SD-1', 'SD-2'])).toEqual([]);

    await expectCall(target, 200, 'DELETE', tenantPath(target, '/skus/SD-1'));
    expect(await target.converge(['SD-1', 'SD-2'])).toEqual([]);
    for (const channel of channels) {
      expect(target.shown(channel, 'SD-1'), `${channel} after the delete`).toBe(0);
      expect(target.shown(channel, 'SD-2'), `${channel} keeps the other SKU`).toBe(4);
    }

    await expectCall(target, 200, 'POST', tenantPath(target, '/skus/SD-1/restore'));
    expect(await target.converge(['SD-1', 'SD-2'])).toEqual([]);
    for (const channel of channels) expect(target.shown(channel, 'SD-1'), `${channel} after the restore`).toBe(12);
  }, 60_000);

  it('accepts an oversold Shopify order, records the conflict, and corrects every channel', async () => {
    const target = await open({ tenant: 'oversell', skus: ['OS-1'], webhooks: [{ id: 'storefront' }, { id: 'b2b' }] });
    await setStock(target, [{ sku: 'OS-1', set: 5 }]);
    expect(await target.converge(['OS-1'])).toEqual([]);

    // Shopify sold 8 of the 5 it showed (its level went to -3) before it heard of anything.
    target.fake.setLevel(target.itemOf('OS-1'), -3);
    const delivery = await sendShopifyWebhook(webhookUrl(target), 'orders/create', shopifyOrder(7001, [{ sku: 'OS-1', quantity: 8 }]), shopifyAppSecret, 'evt-order-7001', { shopDomain });
    expect(delivery.status, delivery.body).toBe(200);
    expect(JSON.parse(delivery.body)).toMatchObject({ results: ['accepted'] });

    const conflicts = (await ledgerEvents(target)).filter((event) => event.type === 'conflict_detected');
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]?.data).toMatchObject({ kind: 'oversell', sku: 'OS-1', shortfall: 3, channel: 'shop' });
    expect(await metricValue(target.url(), 'stockline_oversell_incidents_total', { channel: 'shop' })).toBe(1);
    expect(await target.converge(['OS-1'])).toEqual([]);
    for (const channel of channels) expect(target.shown(channel, 'OS-1'), channel).toBe(0);

    // A receipt of 10 covers the 3 short: 15 on hand, 8 sold, 7 to sell everywhere.
    await adjust(target, 'OS-1', 10);
    expect(await target.converge(['OS-1'])).toEqual([]);
    for (const channel of channels) expect(target.shown(channel, 'OS-1'), channel).toBe(7);
  }, 60_000);
});

describe('stockline reconcile', () => {
  const skus = ['RC-1', 'RC-2', 'RC-3'];

  it('finds drift injected behind Stockline\'s back (exit 1) and --repair fixes it (exit 0)', async () => {
    const target = await open({ tenant: 'recon', skus, webhooks: [{ id: 'storefront' }] });
    await setStock(target, skus.map((sku) => ({ sku, set: 10 })));
    expect(await target.converge(skus)).toEqual([]);
    const clean = await runReconcile(target, []);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);

    // Someone sets a level in Shopify; the storefront loses one SKU (restored from an old backup).
    target.fake.setLevel(target.itemOf('RC-2'), 999);
    target.receivers.get('storefront')?.forget('RC-3');

    const found = await runReconcile(target, ['--json']);
    expect(found.code, found.stdout + found.stderr).toBe(1);
    const report = JSON.parse(found.stdout) as { checked: number; drift: unknown[] };
    expect(report.checked).toBe(skus.length * 2);
    expect(report.drift).toEqual(expect.arrayContaining([
      expect.objectContaining({ channel: 'shop', sku: 'RC-2', desired: 10, shown: 999 }),
      expect.objectContaining({ channel: 'storefront', sku: 'RC-3', desired: 10, shown: null }),
    ]));
    expect(report.drift).toHaveLength(2);
    // Finding drift changes nothing.
    expect(target.shown('shop', 'RC-2')).toBe(999);

    const repaired = await runReconcile(target, ['--repair']);
    expect(repaired.code, repaired.stdout + repaired.stderr).toBe(0);
    // The running server pushes the repairs.
    expect(await target.converge(skus)).toEqual([]);
    const after = await runReconcile(target, []);
    expect(after.code, after.stdout + after.stderr).toBe(0);
  }, 90_000);
});
