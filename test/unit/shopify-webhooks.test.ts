// Shopify webhooks: the HMAC check, and orders, cancellations and refunds mapped to ledger commands (and applied to it).

import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cancelledBeforeSale, settleShopifyCommands, shopifyWebhookToCommands, verifyShopifyHmac } from '../../src/adapters/channels/shopify/webhooks.js';
import type { ShopifyWebhookContext } from '../../src/adapters/channels/shopify/webhooks.js';
import type { CommandBus, CommandInput, Submitted } from '../../src/app/ports.js';
import type { Command, LedgerState } from '../../src/core/index.js';
import { execute, initialState, limits, stockAt } from '../../src/core/index.js';

const secret = 'app-secret-for-tests';
const context: ShopifyWebhookContext = { tenant: 'acme', channel: 'shop', eventId: 'evt-1' };

function hmacOf(body: Buffer, key = secret): string {
  return createHmac('sha256', key).update(body).digest('base64');
}

function order(lines: unknown[], id = '5012345678901234567'): Record<string, unknown> {
  // The numeric id is past 2^53 on purpose: only the GID keeps all its digits.
  return { id: Number(id), admin_graphql_api_id: `gid://shopify/Order/${id}`, name: '#1001', line_items: lines };
}

function commandsOf(topic: string, payload: unknown, at: ShopifyWebhookContext = context): CommandInput[] {
  const mapping = shopifyWebhookToCommands(topic, payload, at);
  if (mapping.kind !== 'commands') throw new Error(`expected commands, got ${JSON.stringify(mapping)}`);
  return mapping.commands;
}

let commandCounter = 0;
function run(state: LedgerState, commands: CommandInput[]): string[] {
  return commands.map((input) => {
    commandCounter += 1;
    const command = { ...input, id: `cmd-${commandCounter}`, timeMs: 1_700_000_000_000 + commandCounter } as Command;
    return execute(state, command).outcome.rejection?.code ?? 'accepted';
  });
}

function stocked(): LedgerState {
  const state = initialState();
  run(state, [{ type: 'adjust_stock', tenant: 'acme', sku: 'tee-m', location: 'main', set: 10 }, { type: 'adjust_stock', tenant: 'acme', sku: 'mug', location: 'main', set: 4 }]);
  return state;
}

describe('verifyShopifyHmac', () => {
  const body = Buffer.from('{"id":1,"line_items":[]}');

  it('accepts the base64 HMAC-SHA256 of the raw body keyed with the app secret', () => {
    expect(verifyShopifyHmac(body, hmacOf(body), secret)).toBe(true);
  });

  it('rejects a forged signature, another secret, or a body changed after signing', () => {
    expect(verifyShopifyHmac(body, hmacOf(body, 'other-secret'), secret)).toBe(false);
    expect(verifyShopifyHmac(Buffer.from('{"id":2,"line_items":[]}'), hmacOf(body), secret)).toBe(false);
    const flipped = Buffer.from(hmacOf(body), 'base64');
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(verifyShopifyHmac(body, flipped.toString('base64'), secret)).toBe(false);
  });

  it('rejects a missing header, an empty secret, and signatures of the wrong length without throwing', () => {
    expect(verifyShopifyHmac(body, undefined, secret)).toBe(false);
    expect(verifyShopifyHmac(body, '', secret)).toBe(false);
    expect(verifyShopifyHmac(body, hmacOf(body, ''), '')).toBe(false);
    expect(verifyShopifyHmac(body, hmacOf(body).slice(0, 20), secret)).toBe(false);
    expect(verifyShopifyHmac(body, `${hmacOf(body)}AAAA`, secret)).toBe(false);
    expect(verifyShopifyHmac(body, createHmac('sha256', secret).update(body).digest('hex'), secret)).toBe(false);
    expect(verifyShopifyHmac(body, 'x'.repeat(10_000), secret)).toBe(false);
  });
});

describe('orders/create', () => {
  it('records the order as a sale of its SKU lines, keyed by the order', () => {
    const commands = commandsOf('orders/create', order([
      { sku: 'tee-m', quantity: 2 }, { sku: 'mug', quantity: 1 }, { sku: 'tee-m', quantity: 1 },
    ]));
    expect(commands).toEqual([{
      type: 'record_sale', tenant: 'acme', source: 'shopify', reservationId: 'shopify:5012345678901234567', channel: 'shop', orderRef: '#1001',
      lines: [{ sku: 'tee-m', quantity: 3 }, { sku: 'mug', quantity: 1 }], idempotencyKey: 'shopify-order:shopify:5012345678901234567',
    }]);
  });

  it('skips and reports lines without a usable SKU or quantity', () => {
    const mapping = shopifyWebhookToCommands('orders/create', order([
      { sku: 'mug', quantity: 1 }, { sku: null, quantity: 1 }, { sku: '', quantity: 2 }, { title: 'no sku field', quantity: 1 },
      { sku: 'has space', quantity: 1 }, { sku: 'card', quantity: 1, gift_card: true }, { sku: 'tee-m', quantity: 0 }, 'not a line',
    ]), context);
    expect(mapping.kind).toBe('commands');
    if (mapping.kind !== 'commands') return;
    expect(mapping.commands).toHaveLength(1);
    expect(mapping.commands[0]).toMatchObject({ lines: [{ sku: 'mug', quantity: 1 }] });
    expect(mapping.skipped.map((line) => [line.index, line.sku])).toEqual([[1, null], [2, ''], [3, null], [4, 'has space'], [5, 'card'], [6, 'tee-m'], [7, null]]);
    expect(mapping.skipped.every((line) => line.reason.length > 0)).toBe(true);
  });

  it('makes no command when no line has a SKU', () => {
    expect(shopifyWebhookToCommands('orders/create', order([{ sku: null, quantity: 1 }]), context)).toMatchObject({ kind: 'commands', commands: [] });
  });

  it('splits an order of more SKUs than a cart holds into several sales', () => {
    const lines = Array.from({ length: limits.cartLinesMax + 5 }, (_, index) => ({ sku: `sku-${index}`, quantity: 1 }));
    const commands = commandsOf('orders/create', order(lines, '77'));
    expect(commands.map((command) => [command.type === 'record_sale' && command.reservationId, command.idempotencyKey])).toEqual([
      ['shopify:77', 'shopify-order:shopify:77'], ['shopify:77:2', 'shopify-order:shopify:77:2'],
    ]);
    expect(commands.map((command) => (command.type === 'record_sale' ? command.lines.length : 0))).toEqual([limits.cartLinesMax, 5]);
  });

  it('refuses payloads that cannot be an order, and bad event ids', () => {
    expect(shopifyWebhookToCommands('orders/create', { line_items: [] }, context)).toMatchObject({ kind: 'invalid' });
    expect(shopifyWebhookToCommands('orders/create', { id: 1 }, context)).toMatchObject({ kind: 'invalid' });
    expect(shopifyWebhookToCommands('orders/create', [1, 2], context)).toMatchObject({ kind: 'invalid' });
    expect(shopifyWebhookToCommands('orders/create', order([]), { ...context, eventId: 'has space' })).toMatchObject({ kind: 'invalid' });
  });

  it('leaves topics it does not handle alone', () => {
    expect(shopifyWebhookToCommands('products/update', 'anything', context)).toEqual({ kind: 'ignored', reason: 'topic not handled by Stockline' });
  });

  it('sets aside an order edit that adds or removes units, naming the order and the units, and ignores one that changes none', () => {
    const edit = (lineItems: unknown): unknown => ({ order_edit: { id: 1, order_id: 450789469, line_items: lineItems } });
    const setAside = shopifyWebhookToCommands('orders/edited', edit({ additions: [{ id: 1, delta: 2 }, { id: 2, delta: 1 }], removals: [{ id: 3, delta: 1 }] }), context);
    expect(setAside).toMatchObject({ kind: 'setAside', reason: expect.stringMatching(/^order 450789469 was edited in Shopify \(3 units added, 1 removed\).*POST \/v1\/tenants\/acme\/orders/) });
    expect(shopifyWebhookToCommands('orders/edited', edit({ additions: [], removals: [{ id: 3, delta: 4 }] }), context)).toMatchObject({ kind: 'setAside' });
    expect(shopifyWebhookToCommands('orders/edited', edit({ additions: [], removals: [] }), context)).toEqual({ kind: 'ignored', reason: 'the order edit changes no quantity' });
    expect(shopifyWebhookToCommands('orders/edited', { order_edit: { order_id: 1 } }, context)).toMatchObject({ kind: 'invalid' });
  });

  it('changes the ledger once, however often the webhook is delivered', () => {
    const state = stocked();
    const commands = commandsOf('orders/create', order([{ sku: 'tee-m', quantity: 3 }]));
    expect(run(state, commands)).toEqual(['accepted']);
    expect(run(state, commandsOf('orders/create', order([{ sku: 'tee-m', quantity: 3 }])))).toEqual(['DUPLICATE']);
    // Another event about the same order (a second subscription, a replay) is the same sale.
    expect(run(state, commandsOf('orders/create', order([{ sku: 'tee-m', quantity: 3 }]), { ...context, eventId: 'evt-2' }))).toEqual(['DUPLICATE']);
    expect(stockAt(state.tenants.get('acme')?.skus.get('tee-m'), 'main')).toMatchObject({ onHand: 10, committed: 3 });
  });
});

describe('orders/cancelled', () => {
  it('cancels the sale the order was recorded as, giving the units back', () => {
    const state = stocked();
    const placed = order([{ sku: 'tee-m', quantity: 3 }]);
    run(state, commandsOf('orders/create', placed));
    const cancel = commandsOf('orders/cancelled', { ...placed, cancelled_at: '2026-05-01T10:00:00Z' }, { ...context, eventId: 'evt-9' });
    expect(cancel).toEqual([{ type: 'release', tenant: 'acme', source: 'shopify', reservationId: 'shopify:5012345678901234567', reason: 'cancelled', idempotencyKey: 'shopify:evt-9' }]);
    expect(run(state, cancel)).toEqual(['accepted']);
    expect(run(state, cancel)).toEqual(['DUPLICATE']);
    expect(stockAt(state.tenants.get('acme')?.skus.get('tee-m'), 'main')).toMatchObject({ onHand: 10, committed: 0 });
  });

  it('cancels every part of an order that was split', () => {
    const lines = Array.from({ length: limits.cartLinesMax + 1 }, (_, index) => ({ sku: `sku-${index}`, quantity: 1 }));
    expect(commandsOf('orders/cancelled', { ...order(lines, '77'), cancelled_at: '2026-05-01T10:00:00Z' }).map((command) => command.type === 'release' && command.reservationId)).toEqual(['shopify:77', 'shopify:77:2']);
  });
});

describe('a cancellation delivered before its order', () => {
  /** The ledger as a command bus, on `state`; `before` runs ahead of a command the test picks (a delivery landing in between). */
  function busOn(state: LedgerState, before?: { when: (input: CommandInput) => boolean; run: () => void }): CommandBus {
    const submit = async (input: CommandInput): Promise<Submitted> => {
      if (before?.when(input) === true) before.run();
      commandCounter += 1;
      return { outcome: execute(state, { ...input, id: `cmd-${commandCounter}`, timeMs: 1_700_000_000_000 + commandCounter } as Command).outcome };
    };
    return { submit, submitMany: async (inputs) => Promise.all(inputs.map(submit)) };
  }

  async function deliver(bus: CommandBus, topic: string, payload: unknown, eventId: string): Promise<string[]> {
    const mapping = shopifyWebhookToCommands(topic, payload, { ...context, eventId });
    if (mapping.kind !== 'commands') throw new Error('expected commands');
    return settleShopifyCommands(bus, mapping, await bus.submitMany(mapping.commands));
  }

  const placed = order([{ sku: 'tee-m', quantity: 3 }]);
  const cancelled = { ...placed, cancelled_at: '2026-05-01T10:00:00Z' };

  it('keeps the order from being recorded when it arrives, however often either is delivered', async () => {
    const state = stocked();
    const bus = busOn(state);
    expect(await deliver(bus, 'orders/cancelled', cancelled, 'evt-cancel')).toEqual([cancelledBeforeSale]);
    expect(await deliver(bus, 'orders/cancelled', cancelled, 'evt-cancel')).toEqual([cancelledBeforeSale]);
    expect(await deliver(bus, 'orders/create', placed, 'evt-create')).toEqual([cancelledBeforeSale]);
    expect(await deliver(bus, 'orders/create', placed, 'evt-create')).toEqual([cancelledBeforeSale]);
    expect(stockAt(state.tenants.get('acme')?.skus.get('tee-m'), 'main')).toMatchObject({ onHand: 10, committed: 0, reserved: 0 });
    expect(state.tenants.get('acme')?.reservations.has('shopify:5012345678901234567')).toBe(false);
  });

  it('releases the order when it landed between the cancellation\'s two steps', async () => {
    const state = stocked();
    const bus = busOn(state, {
      when: (input) => input.type === 'release' && input.idempotencyKey?.startsWith('shopify-order:') === true,
      run: () => { run(state, commandsOf('orders/create', placed, { ...context, eventId: 'evt-create' })); },
    });
    expect(await deliver(bus, 'orders/cancelled', cancelled, 'evt-cancel')).toEqual(['accepted']);
    expect(stockAt(state.tenants.get('acme')?.skus.get('tee-m'), 'main')).toMatchObject({ onHand: 10, committed: 0 });
    expect(state.tenants.get('acme')?.reservations.get('shopify:5012345678901234567')?.status).toBe('cancelled');
    // Delivered again, it changes nothing more.
    expect(await deliver(busOn(state), 'orders/cancelled', cancelled, 'evt-cancel')).toEqual(['DUPLICATE']);
  });

  it('leaves the usual order (created, then cancelled) to the plain release', async () => {
    const state = stocked();
    const bus = busOn(state);
    expect(await deliver(bus, 'orders/create', placed, 'evt-create')).toEqual(['accepted']);
    expect(await deliver(bus, 'orders/cancelled', cancelled, 'evt-cancel')).toEqual(['accepted']);
    expect(stockAt(state.tenants.get('acme')?.skus.get('tee-m'), 'main')).toMatchObject({ onHand: 10, committed: 0 });
  });
});

describe('refunds/create', () => {
  function refund(lines: unknown[]): Record<string, unknown> {
    return { id: 990, admin_graphql_api_id: 'gid://shopify/Refund/990', order_id: 77, refund_line_items: lines };
  }
  const returned = (sku: string | null, quantity: number, restockType = 'return'): Record<string, unknown> =>
    ({ id: 1, quantity, restock_type: restockType, location_id: 5, line_item: { sku, quantity } });

  it('puts returned units back on hand at the restock location', () => {
    const commands = commandsOf('refunds/create', refund([returned('tee-m', 1), returned('mug', 2), returned('tee-m', 1)]), { ...context, restockLocation: 'main' });
    expect(commands).toEqual([
      { type: 'adjust_stock', tenant: 'acme', source: 'shopify', sku: 'tee-m', location: 'main', delta: 2, reason: 'returned (Shopify refund 990)', idempotencyKey: 'shopify:refund:990:0' },
      { type: 'adjust_stock', tenant: 'acme', source: 'shopify', sku: 'mug', location: 'main', delta: 2, reason: 'returned (Shopify refund 990)', idempotencyKey: 'shopify:refund:990:1' },
    ]);
    const state = stocked();
    expect(run(state, commands)).toEqual(['accepted', 'accepted']);
    expect(run(state, commands)).toEqual(['DUPLICATE', 'DUPLICATE']);
    expect(stockAt(state.tenants.get('acme')?.skus.get('tee-m'), 'main').onHand).toBe(12);
  });

  it('skips cancellations, lines not restocked, lines without SKU, and returns when no restock location is set', () => {
    const payload = refund([returned('tee-m', 1, 'cancel'), returned('mug', 1, 'no_restock'), returned('mug', 1, 'legacy_restock'), returned(null, 1), returned('tee-m', 1)]);
    const withLocation = shopifyWebhookToCommands('refunds/create', payload, { ...context, restockLocation: 'main' });
    expect(withLocation).toMatchObject({ kind: 'commands', commands: [{ sku: 'tee-m', delta: 1 }] });
    if (withLocation.kind === 'commands') expect(withLocation.skipped.map((line) => line.index)).toEqual([0, 1, 2, 3]);
    const without = shopifyWebhookToCommands('refunds/create', payload, context);
    expect(without).toMatchObject({ kind: 'commands', commands: [] });
    if (without.kind === 'commands') expect(without.skipped[4]?.reason).toMatch(/restockLocation/);
  });

  it('refuses a refund without id or lines', () => {
    expect(shopifyWebhookToCommands('refunds/create', { refund_line_items: [] }, context)).toMatchObject({ kind: 'invalid' });
    expect(shopifyWebhookToCommands('refunds/create', { id: 3 }, context)).toMatchObject({ kind: 'invalid' });
  });
});
