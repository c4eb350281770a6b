// Reconciliation on a real SQLite file: drift injected into a channel is found, reported, and repaired.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChannelOutbox } from '../../src/adapters/sqlite/channel-outbox.js';
import type { ChannelConnector, ChannelPush, PushResult } from '../../src/adapters/channels/connector.js';
import { ChannelError } from '../../src/adapters/channels/errors.js';
import { ShopifyConnector } from '../../src/adapters/channels/shopify/connector.js';
import { startFakeShopify } from '../../src/adapters/channels/shopify/fake-server.js';
import type { FakeShopify } from '../../src/adapters/channels/shopify/fake-server.js';
import { ChannelSync } from '../../src/app/channel-sync.js';
import type { SyncTimer } from '../../src/app/channel-sync.js';
import { reconcile, reconcileLimits } from '../../src/app/reconcile.js';
import type { ReconcileReport } from '../../src/app/reconcile.js';
import type { CommandBus, CommandInput, Submitted } from '../../src/app/ports.js';
import { reconcileCommand } from '../../src/cli/reconcile.js';

const t0 = 1_700_000_000_000;
const clock = { nowMs: () => t0 };
/** These tests drive the worker by kicks; its timers never need to fire. */
const stillTimer: SyncTimer = { set: () => 0, clear: () => undefined };

/** A compare-and-set channel whose shown quantities a test can change behind Stockline's back. */
class FakeChannel implements ChannelConnector {
  readonly maxConcurrency = 8;
  readonly ratePerSecond = Number.POSITIVE_INFINITY;
  readonly shown = new Map<string, number>();
  readonly readSizes: number[] = [];
  readFailures = 0;
  constructor(readonly channel: string) {}
  async push(push: ChannelPush): Promise<PushResult> {
    const key = `${push.tenant}/${push.sku}`;
    const current = this.shown.get(key);
    if (push.previousQuantity !== null && current !== undefined && current !== push.previousQuantity) return { kind: 'mismatch', actual: current };
    this.shown.set(key, push.quantity);
    return { kind: 'ok' };
  }
  async read(tenant: string, skus: string[]): Promise<Map<string, number>> {
    this.readSizes.push(skus.length);
    if (this.readFailures > 0) {
      this.readFailures -= 1;
      throw new Error('HTTP 502 from the channel');
    }
    const found = new Map<string, number>();
    for (const sku of skus) {
      const quantity = this.shown.get(`${tenant}/${sku}`);
      if (quantity !== undefined) found.set(sku, quantity);
    }
    return found;
  }
  async close(): Promise<void> {}
}

const bus: CommandBus = {
  submit: async (_command: CommandInput): Promise<Submitted> => ({ outcome: { events: [] } }),
  submitMany: async (commands: CommandInput[]): Promise<Submitted[]> => commands.map(() => ({ outcome: { events: [] } })),
};

async function settle(): Promise<void> {
  for (let turn = 0; turn < 30; turn += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** Polls a condition on real time, up to a bound; for the HTTP test only. */
async function eventually(condition: () => boolean, boundMs = 10_000): Promise<void> {
  for (let waitedMs = 0; !condition(); waitedMs += 20) {
    if (waitedMs >= boundMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let directory: string;
let db: Database.Database;
let outbox: ChannelOutbox;
const cleanups: Array<() => Promise<void>> = [];

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'stockline-reconcile-'));
  db = new Database(join(directory, 'stockline.db'));
  db.pragma('journal_mode = WAL');
  outbox = new ChannelOutbox(db);
  outbox.migrate();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  db.close();
  rmSync(directory, { recursive: true, force: true });
});

function desire(tenant: string, channel: string, count: number, quantityOf: (index: number) => number): void {
  outbox.upsertDesired(Array.from({ length: count }, (_, index) => ({
    tenant, channel, sku: `sku-${String(index).padStart(4, '0')}`, quantity: quantityOf(index), changedAtMs: t0, position: index + 1,
  })));
}

/** Pushes everything due to the channels, so they start in step with the desired state. */
async function inStep(connectors: Map<string, ChannelConnector>): Promise<ChannelSync> {
  const sync = new ChannelSync({ outbox, connectors, bus, clock, random: () => 0.5, timer: stillTimer });
  cleanups.push(() => sync.stop());
  sync.start();
  for (let round = 0; round < 50 && outbox.depth().length > 0; round += 1) {
    sync.kick();
    await settle();
  }
  expect(outbox.depth()).toEqual([]);
  return sync;
}

describe('reconcile', () => {
  it('finds injected drift, changes nothing without repair, and repairs it with repair', async () => {
    const shop = new FakeChannel('shop');
    const connectors = new Map<string, ChannelConnector>([['shop', shop]]);
    desire('acme', 'shop', 250, (index) => index % 7);
    desire('beta', 'shop', 3, () => 4);
    const sync = await inStep(connectors);

    shop.shown.set('acme/sku-0003', 40);
    shop.shown.set('acme/sku-0200', 0);
    shop.shown.delete('acme/sku-0100');
    shop.shown.set('beta/sku-0001', 9);

    const found = await reconcile({ outbox, connectors, repair: false, clock });
    expect(found.checked).toBe(253);
    expect(found.repaired).toBe(0);
    expect(found.unchecked).toEqual([]);
    expect(found.drift).toEqual([
      { tenant: 'acme', channel: 'shop', sku: 'sku-0003', desired: 3, shown: 40, pending: false },
      { tenant: 'acme', channel: 'shop', sku: 'sku-0100', desired: 2, shown: null, pending: false },
      { tenant: 'acme', channel: 'shop', sku: 'sku-0200', desired: 4, shown: 0, pending: false },
      { tenant: 'beta', channel: 'shop', sku: 'sku-0001', desired: 4, shown: 9, pending: false },
    ]);
    expect(Math.max(...shop.readSizes)).toBeLessThanOrEqual(reconcileLimits.readBatchSkus);
    expect(outbox.depth()).toEqual([]);

    const onlyBeta = await reconcile({ outbox, connectors, tenant: 'beta', repair: false, clock });
    expect(onlyBeta.checked).toBe(3);
    expect(onlyBeta.drift.map((drift) => drift.sku)).toEqual(['sku-0001']);

    const repaired = await reconcile({ outbox, connectors, repair: true, clock, sync });
    expect(repaired.repaired).toBe(4);
    expect(outbox.get('acme', 'shop', 'sku-0003')).toMatchObject({ ackedQuantity: 40, nextAttemptMs: t0 });
    await settle();
    expect(shop.shown.get('acme/sku-0003')).toBe(3);
    expect(shop.shown.get('acme/sku-0100')).toBe(2);
    expect(shop.shown.get('acme/sku-0200')).toBe(4);
    expect(shop.shown.get('beta/sku-0001')).toBe(4);
    expect(outbox.depth()).toEqual([]);
    expect((await reconcile({ outbox, connectors, repair: false, clock })).drift).toEqual([]);
  });

  it('reports what it could not check: a channel without a connector, a read that keeps failing', async () => {
    const shop = new FakeChannel('shop');
    desire('acme', 'shop', 5, () => 1);
    desire('acme', 'gone', 2, () => 1);
    await inStep(new Map([['shop', shop], ['gone', new FakeChannel('gone')]]));
    shop.readFailures = reconcileLimits.readAttemptsMax;
    const waits: number[] = [];
    const sleep = async (ms: number): Promise<void> => { waits.push(ms); };
    const report = await reconcile({ outbox, connectors: new Map([['shop', shop]]), repair: false, clock, sleep });
    expect(report.checked).toBe(0);
    // Between reads, a backoff: the channel named no wait.
    expect(waits).toEqual([reconcileLimits.readRetryMs, 2 * reconcileLimits.readRetryMs]);
    expect(report.unchecked).toEqual([
      { tenant: 'acme', channel: 'gone', skus: 2, reason: 'the configuration names no channel of this id: reconcile with the configuration the server runs with (--config or STOCKLINE_CONFIG)' },
      { tenant: 'acme', channel: 'shop', skus: 5, reason: 'HTTP 502 from the channel' },
    ]);
    shop.readFailures = reconcileLimits.readAttemptsMax - 1;
    expect((await reconcile({ outbox, connectors: new Map([['shop', shop]]), channel: 'shop', repair: false, clock, sleep })).checked).toBe(5);

    // A throttled channel is asked again when it said to (Retry-After), within the longest wait.
    const throttled = new FakeChannel('shop');
    const asked = [2_000, 60_000];
    throttled.read = async () => {
      const retryAfterMs = asked.shift();
      if (retryAfterMs !== undefined) throw new ChannelError('CHANNEL_UNAVAILABLE', 'Shopify answered 429 Too Many Requests', { retryable: true, retryAfterMs });
      return new Map();
    };
    waits.length = 0;
    expect((await reconcile({ outbox, connectors: new Map([['shop', throttled]]), channel: 'shop', repair: false, clock, sleep })).unchecked).toEqual([]);
    expect(waits).toEqual([2_000, reconcileLimits.readRetryMsMax]);

    // A channel that cannot read at all is asked once, not once per attempt.
    const webhook = new FakeChannel('shop');
    let reads = 0;
    webhook.read = async () => {
      reads += 1;
      throw new ChannelError('CHANNEL_READ_UNSUPPORTED', 'a signed webhook cannot report what it shows');
    };
    const unreadable = await reconcile({ outbox, connectors: new Map([['shop', webhook]]), channel: 'shop', repair: false, clock });
    expect(reads).toBe(1);
    expect(unreadable.unchecked).toEqual([
      { tenant: 'acme', channel: 'shop', skus: 5, reason: 'CHANNEL_READ_UNSUPPORTED: a signed webhook cannot report what it shows' },
    ]);
  });
});

describe('stockline reconcile', () => {
  function io(): { stdout: (text: string) => void; stderr: (text: string) => void; out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    return { stdout: (text) => out.push(text), stderr: (text) => err.push(text), out, err };
  }

  it('exits 1 on drift, 0 once repaired, and prints a table or JSON', async () => {
    const shop = new FakeChannel('shop');
    const connectors = new Map<string, ChannelConnector>([['shop', shop]]);
    desire('acme', 'shop', 1_200, () => 5);
    const sync = await inStep(connectors);
    shop.shown.set('acme/sku-0042', 1);

    const table = io();
    expect(await reconcileCommand(['--tenant', 'acme'], table, { outbox, connectors, clock })).toBe(1);
    expect(table.out.join('')).toMatch(/TENANT\s+CHANNEL\s+SKU\s+DESIRED\s+SHOWN\s+STATE\nacme\s+shop\s+sku-0042\s+5\s+1\s+drift\n/);
    expect(table.out.join('')).toContain('checked 1200 SKUs, 1 drifted, 0 repaired');
    // Large catalogue: progress goes to stderr, one line per tenth.
    expect(table.err).toHaveLength(10);
    expect(table.err.at(-1)).toBe('checked 1200 of 1200 SKUs, 1 drifted\n');

    const json = io();
    expect(await reconcileCommand(['--json', '--repair', '--channel', 'shop'], json, { outbox, connectors, sync, clock })).toBe(0);
    const report = JSON.parse(json.out.join('')) as ReconcileReport;
    expect(report).toMatchObject({ checked: 1_200, repaired: 1, drift: [{ sku: 'sku-0042', desired: 5, shown: 1 }] });
    await settle();
    expect(shop.shown.get('acme/sku-0042')).toBe(5);

    const clean = io();
    expect(await reconcileCommand([], clean, { outbox, connectors, clock })).toBe(0);
    expect(clean.out.join('')).toBe('checked 1200 SKUs, 0 drifted, 0 repaired\n');
  });

  it('exits 2 on bad usage and 3 when some SKUs could not be read', async () => {
    const connectors = new Map<string, ChannelConnector>();
    for (const args of [['--tenant'], ['--bogus'], ['extra'], ['--tenant', 'Not A Tenant'], ['--channel', '../x']]) {
      const streams = io();
      expect(await reconcileCommand(args, streams, { outbox, connectors, clock })).toBe(2);
      expect(streams.err.join('')).toContain('usage: stockline reconcile');
    }
    desire('acme', 'shop', 2, () => 1);
    const streams = io();
    expect(await reconcileCommand([], streams, { outbox, connectors, clock })).toBe(3);
    expect(streams.out.join('')).toContain('unchecked: 2 SKUs of acme on shop: the configuration names no channel of this id: reconcile with the configuration the server runs with (--config or STOCKLINE_CONFIG)');
  });
});

describe('reconcile against the fake Shopify', () => {
  it('finds a quantity changed in the Shopify admin and pushes the desired one back', async () => {
    const shopify: FakeShopify = await startFakeShopify({ accessToken: 'test-token' });
    cleanups.push(() => shopify.stop());
    for (const sku of ['red', 'green', 'blue']) shopify.addItem(sku, 0);
    const connector = new ShopifyConnector({
      channel: 'shopify', tenant: 'acme', shop: 'acme.myshopify.com', accessToken: 'test-token',
      locationId: shopify.locationId, baseUrl: shopify.url, ratePerSecond: 100,
    });
    cleanups.push(() => connector.close());
    const connectors = new Map<string, ChannelConnector>([['shopify', connector]]);
    outbox.upsertDesired(['red', 'green', 'blue'].map((sku, index) => ({ tenant: 'acme', channel: 'shopify', sku, quantity: 10 + index, changedAtMs: Date.now(), position: index + 1 })));
    const sync = new ChannelSync({ outbox, connectors, bus, clock: { nowMs: () => Date.now() }, random: Math.random });
    cleanups.push(() => sync.stop());
    sync.start();
    await eventually(() => outbox.depth().length === 0);
    const levelOf = (sku: string): number | undefined => shopify.levels.get(shopify.idOf(sku) as string);
    expect(['red', 'green', 'blue'].map(levelOf)).toEqual([10, 11, 12]);

    shopify.setLevel(shopify.idOf('green') as string, 3);
    const found = await reconcile({ outbox, connectors, repair: false });
    expect(found.drift).toEqual([{ tenant: 'acme', channel: 'shopify', sku: 'green', desired: 11, shown: 3, pending: false }]);

    const repaired = await reconcile({ outbox, connectors, repair: true, sync });
    expect(repaired.repaired).toBe(1);
    await eventually(() => levelOf('green') === 11 && outbox.depth().length === 0);
    expect((await reconcile({ outbox, connectors, repair: false })).drift).toEqual([]);
  });
});
