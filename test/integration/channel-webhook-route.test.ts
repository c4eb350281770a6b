// The Shopify webhook route through Fastify's inject: signed deliveries become commands, anything else changes nothing.

import { createHmac } from 'node:crypto';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { channelWebhookRoutes } from '../../src/adapters/http/routes/channel-webhooks.js';
import type { ChannelWebhookOptions } from '../../src/adapters/http/routes/channel-webhooks.js';
import { ChannelError } from '../../src/adapters/channels/errors.js';
import type { VariantItemLookup } from '../../src/adapters/channels/shopify/variant-items.js';
import type { ShopifyWebhookChannel } from '../../src/adapters/channels/shopify/webhooks.js';
import { AppError } from '../../src/app/engine.js';
import type { CommandBus, CommandInput, DeadLetter, Submitted } from '../../src/app/ports.js';
import { problemTypeOf } from '../../src/errors.js';

const secret = 'shopify-app-secret';
const shop = 'acme.myshopify.com';

/** Records what it is given; `failWith` makes the next submission throw like an engine that cannot write. */
class RecordingBus implements CommandBus {
  readonly submitted: CommandInput[][] = [];
  failWith: Error | undefined;
  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }
  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    if (this.failWith !== undefined) throw this.failWith;
    this.submitted.push(commands);
    return commands.map(() => ({ outcome: { events: [] } }));
  }
}

let app: FastifyInstance;
let bus: RecordingBus;
let deadLetters: DeadLetter[];

async function build(options: Partial<ChannelWebhookOptions> = {}): Promise<void> {
  app = Fastify();
  // Stand-in for the server's API-key hook: a /v1 route not marked public would need a key Shopify never sends.
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/v1/') && request.routeOptions.config.public !== true) await reply.code(401).send({ error: 'API key required' });
  });
  // A sibling route: its JSON parsing must stay untouched by the webhook plugin's raw-body parser.
  app.post('/echo', async (request) => ({ body: request.body }));
  await app.register(channelWebhookRoutes, {
    bus,
    channels: [{ channel: 'shop', tenant: 'acme', type: 'shopify', webhookSecret: secret, shopDomain: shop, restockLocation: 'main' }],
    deadLetters: { deadLetter: (letter) => deadLetters.push(letter) },
    ...options,
  });
  await app.ready();
}

beforeEach(async () => {
  bus = new RecordingBus();
  deadLetters = [];
  await build();
});

afterEach(async () => {
  await app.close();
});

const orderPayload = { id: 820982911, admin_graphql_api_id: 'gid://shopify/Order/820982911', name: '#1001', line_items: [{ sku: 'tee-m', quantity: 2 }, { sku: null, quantity: 1 }] };

function deliver(options: { body?: string | Buffer; topic?: string; eventId?: string | null; signature?: string | null; channel?: string; shopDomain?: string } = {}) {
  const body = options.body ?? JSON.stringify(orderPayload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-shopify-topic': options.topic ?? 'orders/create',
    'x-shopify-shop-domain': options.shopDomain ?? shop,
  };
  if (options.eventId !== null) headers['x-shopify-event-id'] = options.eventId ?? 'evt-100';
  const signature = options.signature === undefined ? createHmac('sha256', secret).update(body).digest('base64') : options.signature;
  if (signature !== null) headers['x-shopify-hmac-sha256'] = signature;
  return app.inject({ method: 'POST', url: `/v1/webhooks/shopify/${options.channel ?? 'shop'}`, headers, payload: body });
}

function expectProblem(response: Awaited<ReturnType<typeof deliver>>, status: number, code: string): void {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.json()).toMatchObject({ type: problemTypeOf(code), title: expect.any(String), status, detail: expect.any(String), code });
}

describe('POST /v1/webhooks/shopify/:channel', () => {
  it('submits the commands of a signed order, keyed by the order', async () => {
    const response = await deliver();
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ status: 'applied', commands: 1, results: ['accepted'], skipped: [{ index: 1, sku: null }] });
    expect(bus.submitted).toEqual([[{
      type: 'record_sale', tenant: 'acme', source: 'shopify', reservationId: 'shopify:820982911', channel: 'shop', orderRef: '#1001',
      lines: [{ sku: 'tee-m', quantity: 2 }], idempotencyKey: 'shopify-order:shopify:820982911',
    }]]);
  });

  it('answers 503 MEMORY_FULL while the heap is almost out, submitting nothing, so Shopify sends the delivery again', async () => {
    await app.close();
    let reason: string | undefined = 'the heap is almost out (1960 of 2048 MiB live after the last full collection)';
    await build({ heapFullReason: () => reason });
    const refused = await deliver();
    expectProblem(refused, 503, 'MEMORY_FULL');
    expect(refused.headers['retry-after']).toBe('1');
    expect(bus.submitted).toEqual([]);
    reason = undefined;
    expect((await deliver()).statusCode).toBe(200);
    expect(bus.submitted).toHaveLength(1);
  });

  it('submits identical commands when Shopify delivers the same event again, so the ledger can drop the repeat', async () => {
    await deliver();
    await deliver();
    expect(bus.submitted).toHaveLength(2);
    expect(bus.submitted[1]).toEqual(bus.submitted[0]);
  });

  it('sets aside an order sent as orders/cancelled whose body is not of a cancelled order: Shopify does not sign the topic', async () => {
    const response = await deliver({ topic: 'orders/cancelled', eventId: 'evt-replayed' });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({ status: 'set aside' });
    expect(bus.submitted).toEqual([]);
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]?.reason).toContain('its body is not of a cancelled order (no cancelled_at): nothing was released');
  });

  it('restocks a refund once however many event ids it comes under: the id is in the signed body, the event id is not', async () => {
    const refund = JSON.stringify({ id: 7, refund_line_items: [{ quantity: 1, restock_type: 'return', line_item: { sku: 'tee-m' } }] });
    await deliver({ topic: 'refunds/create', eventId: 'evt-a', body: refund });
    await deliver({ topic: 'refunds/create', eventId: 'evt-b', body: refund });
    expect(bus.submitted).toHaveLength(2);
    // The same command under the same key: the ledger answers the second as a repeat of the first.
    expect(bus.submitted[1]).toEqual(bus.submitted[0]);
    expect(bus.submitted[0]?.[0]).toMatchObject({ idempotencyKey: 'shopify:refund:7' });
  });

  it('maps cancellations and refunds of the channel', async () => {
    expect((await deliver({ topic: 'orders/cancelled', eventId: 'evt-101', body: JSON.stringify({ ...orderPayload, cancelled_at: '2026-05-01T10:00:00Z' }) })).statusCode).toBe(200);
    const refund = { id: 7, refund_line_items: [{ quantity: 1, restock_type: 'return', line_item: { sku: 'tee-m' } }] };
    expect((await deliver({ topic: 'refunds/create', eventId: 'evt-102', body: JSON.stringify(refund) })).statusCode).toBe(200);
    expect(bus.submitted).toEqual([
      [{ type: 'release', tenant: 'acme', source: 'shopify', reservationId: 'shopify:820982911', reason: 'cancelled', idempotencyKey: 'shopify:evt-101' }],
      [{ type: 'adjust_stock', tenant: 'acme', source: 'shopify', sku: 'tee-m', location: 'main', delta: 1, reason: 'returned (Shopify refund 7)', idempotencyKey: 'shopify:refund:7' }],
    ]);
  });

  it('answers 401 to a forged or unsigned delivery and submits nothing', async () => {
    expectProblem(await deliver({ signature: createHmac('sha256', 'not-the-secret').update(JSON.stringify(orderPayload)).digest('base64') }), 401, 'WEBHOOK_SIGNATURE_INVALID');
    expectProblem(await deliver({ signature: null }), 401, 'WEBHOOK_SIGNATURE_INVALID');
    const signedOther = createHmac('sha256', secret).update('{"id":1}').digest('base64');
    expectProblem(await deliver({ signature: signedOther }), 401, 'WEBHOOK_SIGNATURE_INVALID');
    expect(bus.submitted).toHaveLength(0);
  });

  it('answers 413 to a body over the limit and submits nothing', async () => {
    const body = JSON.stringify({ ...orderPayload, note: 'x'.repeat(1024 * 1024) });
    expectProblem(await deliver({ body }), 413, 'PAYLOAD_TOO_LARGE');
    await app.close();
    await build({ bodyBytesMax: 256 });
    expectProblem(await deliver({ body: JSON.stringify({ ...orderPayload, note: 'x'.repeat(300) }) }), 413, 'PAYLOAD_TOO_LARGE');
    expect(bus.submitted).toHaveLength(0);
  });

  it('answers 404 for an unknown channel and 403 for another shop signed with the same app secret', async () => {
    expectProblem(await deliver({ channel: 'elsewhere' }), 404, 'WEBHOOK_CHANNEL_UNKNOWN');
    expectProblem(await deliver({ shopDomain: 'other.myshopify.com' }), 403, 'WEBHOOK_SHOP_MISMATCH');
    expect(bus.submitted).toHaveLength(0);
  });

  it('acknowledges topics it does not handle with 202 and submits nothing', async () => {
    const response = await deliver({ topic: 'products/update' });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({ status: 'ignored', topic: 'products/update' });
    expect(bus.submitted).toHaveLength(0);
  });

  it('sets an order edit that adds units aside as a dead letter, answered 202, and submits nothing', async () => {
    // Units an edit adds left Shopify's stock but not the ledger's: ignored, the next push would offer them again.
    const editPayload = { order_edit: { id: 7, order_id: 450789469, line_items: { additions: [{ id: 9, delta: 2 }], removals: [] } } };
    const response = await deliver({ topic: 'orders/edited', body: JSON.stringify(editPayload) });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({ status: 'set aside', topic: 'orders/edited', reason: expect.stringContaining('2 units added, 0 removed') });
    expect(deadLetters).toMatchObject([{ source: 'shopify:shop', reason: expect.stringContaining('does not apply order edits'), payload: editPayload }]);
    expect(bus.submitted).toHaveLength(0);
  });

  it('refuses signed deliveries without event id, with a body that is not JSON, or that no command can be made of', async () => {
    expectProblem(await deliver({ eventId: null }), 400, 'WEBHOOK_EVENT_ID_MISSING');
    expectProblem(await deliver({ body: 'not json' }), 400, 'WEBHOOK_PAYLOAD_INVALID');
    expectProblem(await deliver({ body: JSON.stringify({ line_items: [] }) }), 422, 'WEBHOOK_PAYLOAD_UNUSABLE');
    expect(deadLetters).toMatchObject([{ source: 'shopify:shop', reason: expect.stringContaining('id'), payload: { line_items: [] } }]);
    expect(bus.submitted).toHaveLength(0);
  });

  it('answers 503 when the ledger cannot take the commands now, so Shopify delivers again', async () => {
    bus.failWith = new AppError('STORAGE_FAILED', 'disk full', true);
    const response = await deliver();
    expectProblem(response, 503, 'STORAGE_FAILED');
    expect(response.headers['retry-after']).toBeDefined();
    expect(deadLetters).toHaveLength(0);
  });

  it('answers 422 and keeps a dead letter when the ledger refuses the commands for good', async () => {
    bus.failWith = new AppError('COMMAND_INVALID', 'quantity out of range', false);
    expectProblem(await deliver(), 422, 'WEBHOOK_PAYLOAD_UNUSABLE');
    expect(deadLetters).toMatchObject([{ source: 'shopify:shop', reason: expect.stringContaining('quantity out of range') }]);
  });

  it('leaves JSON parsing of the other routes alone', async () => {
    const response = await app.inject({ method: 'POST', url: '/echo', payload: { a: 1 } });
    expect(response.json()).toEqual({ body: { a: 1 } });
  });
});

describe('order lines of items mapped under inventoryItems', () => {
  const items: Record<string, string> = { 'TEE-M': 'gid://shopify/InventoryItem/1001', 'MUG-1': 'gid://shopify/InventoryItem/1002' };
  // Variant 11 is TEE-M's item (its own Shopify SKU is another), 12 MUG-1's (no SKU in Shopify), 13 an item no SKU is
  // mapped to, 14 another item that carries the SKU TEE-M in Shopify but is not the one TEE-M is shown on.
  const itemOfVariant = new Map([
    ['11', items['TEE-M'] as string], ['12', items['MUG-1'] as string], ['13', 'gid://shopify/InventoryItem/1003'], ['14', 'gid://shopify/InventoryItem/1004'],
  ]);
  let asked: string[][];
  let lookupError: Error | undefined;
  const variants: VariantItemLookup = {
    async itemsOf(ids) {
      asked.push([...ids]);
      if (lookupError !== undefined) throw lookupError;
      return new Map(ids.flatMap((id): Array<[string, string]> => (itemOfVariant.has(id) ? [[id, itemOfVariant.get(id) as string]] : [])));
    },
  };
  const channel: ShopifyWebhookChannel = {
    channel: 'shop', tenant: 'acme', type: 'shopify', webhookSecret: secret, shopDomain: shop, restockLocation: 'main',
    mappedItems: { itemOfSku: new Map(Object.entries(items)), skuOfItem: new Map(Object.entries(items).map(([sku, item]) => [item, sku])), variants },
  };
  const order = {
    id: 4401, admin_graphql_api_id: 'gid://shopify/Order/4401', name: '#4401',
    line_items: [
      { id: 1, variant_id: 11, sku: 'SHOP-TEE-M-BLUE', quantity: 2, gift_card: false },
      { id: 2, variant_id: 12, sku: null, quantity: 2, gift_card: false },
      { id: 3, variant_id: 13, sku: 'mug', quantity: 1, gift_card: false },
      { id: 4, variant_id: 14, sku: 'TEE-M', quantity: 1, gift_card: false },
      { id: 5, variant_id: null, sku: 'custom', quantity: 1, gift_card: false },
      { id: 6, variant_id: 11, sku: 'SHOP-TEE-M-BLUE', quantity: 1, gift_card: false },
    ],
  };

  beforeEach(async () => {
    asked = [];
    lookupError = undefined;
    await app.close();
    await build({ channels: [channel] });
  });

  it('sells a line of a mapped item as the mapped SKU, whatever SKU its variant carries, and no other item as that SKU', async () => {
    const response = await deliver({ body: JSON.stringify(order) });
    expect(response.statusCode, response.body).toBe(200);
    expect(asked).toEqual([['11', '12', '13', '14']]);
    expect(bus.submitted).toEqual([[{
      type: 'record_sale', tenant: 'acme', source: 'shopify', reservationId: 'shopify:4401', channel: 'shop', orderRef: '#4401',
      lines: [{ sku: 'TEE-M', quantity: 3 }, { sku: 'MUG-1', quantity: 2 }, { sku: 'mug', quantity: 1 }, { sku: 'custom', quantity: 1 }],
      idempotencyKey: 'shopify-order:shopify:4401',
    }]]);
    expect(response.json().skipped).toEqual([
      { index: 3, sku: 'TEE-M', quantity: 1, reason: expect.stringContaining('TEE-M is mapped under inventoryItems to another Shopify inventory item') },
    ]);
  });

  it('returns the units of a mapped item to the mapped SKU, and asks Shopify only about lines it uses', async () => {
    const refund = {
      id: 77, order_id: 4401, refund_line_items: [
        { quantity: 1, restock_type: 'return', line_item: { variant_id: 12, sku: null } },
        { quantity: 1, restock_type: 'no_restock', line_item: { variant_id: 13, sku: 'mug' } },
      ],
    };
    expect((await deliver({ topic: 'refunds/create', eventId: 'evt-300', body: JSON.stringify(refund) })).statusCode).toBe(200);
    // Only the count of an order's lines matters to its cancellation: an order of one cart needs no lookup.
    expect((await deliver({ topic: 'orders/cancelled', eventId: 'evt-301', body: JSON.stringify({ ...order, cancelled_at: '2026-05-01T10:00:00Z' }) })).statusCode).toBe(200);
    expect(asked).toEqual([['12']]);
    expect(bus.submitted).toEqual([
      [{ type: 'adjust_stock', tenant: 'acme', source: 'shopify', sku: 'MUG-1', location: 'main', delta: 1, reason: 'returned (Shopify refund 77)', idempotencyKey: 'shopify:refund:77' }],
      [{ type: 'release', tenant: 'acme', source: 'shopify', reservationId: 'shopify:4401', reason: 'cancelled', idempotencyKey: 'shopify:evt-301' }],
    ]);
  });

  it('applies nothing and makes Shopify deliver again when Shopify cannot say which items the lines are', async () => {
    lookupError = new ChannelError('CHANNEL_UNAVAILABLE', 'Shopify answered 503', { retryAfterMs: 2_500 });
    const unavailable = await deliver({ body: JSON.stringify(order) });
    expect(unavailable.statusCode).toBe(503);
    expect(unavailable.headers['retry-after']).toBe('3');
    expect(unavailable.json()).toMatchObject({ code: 'WEBHOOK_ITEMS_UNAVAILABLE', detail: expect.stringContaining('Shopify answered 503') });
    lookupError = new ChannelError('CHANNEL_REJECTED', 'Shopify answered 401 (check the access token)');
    const refused = await deliver({ body: JSON.stringify(order) });
    expect(refused.statusCode).toBe(502);
    expect(refused.json()).toMatchObject({ code: 'WEBHOOK_ITEMS_REFUSED', detail: expect.stringContaining('401') });
    expect(bus.submitted).toHaveLength(0);
    expect(deadLetters).toHaveLength(0);
  });
});
