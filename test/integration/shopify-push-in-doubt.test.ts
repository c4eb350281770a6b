// Shopify pushes whose answer is in doubt (a timeout, a request still running): the push worker, the SQLite outbox and
// the Shopify connector against the fake Admin API on loopback, with real time.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChannelConnector, ChannelPush, PushResult } from '../../src/adapters/channels/connector.js';
import { ShopifyConnector } from '../../src/adapters/channels/shopify/connector.js';
import { ChannelOutbox } from '../../src/adapters/sqlite/channel-outbox.js';
import { ChannelSync } from '../../src/app/channel-sync.js';
import type { PushOutcome } from '../../src/app/channel-sync.js';
import type { CommandBus, CommandInput, Submitted } from '../../src/app/ports.js';
import { startFakeShopify } from '../fakes/fake-shopify.js';
import type { FakeShopify, FakeShopifyRequest } from '../fakes/fake-shopify.js';

const accessToken = 'shpat_in_doubt_0123456789';
/** The connector gives up on an answer after this long; the fake answers the slow push after `slowMs`. */
const timeoutMs = 300;
const slowMs = 1_500;

class RecordingBus implements CommandBus {
  readonly commands: CommandInput[] = [];
  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }
  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    this.commands.push(...commands);
    return commands.map(() => ({ outcome: { events: [] } }));
  }
}

interface Worker {
  db: Database.Database;
  outbox: ChannelOutbox;
  sync: ChannelSync;
  connector: ChannelConnector;
  bus: RecordingBus;
  outcomes: PushOutcome[];
  /** Every `defer` the worker wrote: a channel-wide pause. */
  deferred: number[];
  set(sku: string, quantity: number): void;
  stop(): Promise<void>;
}

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fakeShopify(items: Array<{ sku: string; available: number }>): Promise<FakeShopify> {
  const fake = await startFakeShopify({ accessToken, items });
  cleanups.push(() => fake.stop());
  return fake;
}

function shopifyConnector(fake: FakeShopify, skus: string[], answerWithinMs = timeoutMs): ShopifyConnector {
  const inventoryItems = Object.fromEntries(skus.map((sku) => [sku, fake.idOf(sku) as string]));
  return new ShopifyConnector({
    channel: 'shop', tenant: 'acme', shop: 'acme.myshopify.com', accessToken, locationId: fake.locationId, baseUrl: fake.url, timeoutMs: answerWithinMs, inventoryItems,
  });
}

/** A push worker over an outbox in `file` (a fresh process's view of it) or in memory. */
function worker(connector: ChannelConnector, file = ':memory:'): Worker {
  const db = new Database(file);
  const outbox = new ChannelOutbox(db);
  outbox.migrate();
  const deferred: number[] = [];
  const defer = outbox.defer.bind(outbox);
  outbox.defer = (tenant, channel, untilMs) => {
    deferred.push(untilMs);
    return defer(tenant, channel, untilMs);
  };
  const bus = new RecordingBus();
  const outcomes: PushOutcome[] = [];
  const sync = new ChannelSync({
    outbox, connectors: new Map([[connector.channel, connector]]), bus, clock: { nowMs: Date.now }, random: () => 0.5,
    metrics: { pushed: (_channel, outcome) => outcomes.push(outcome) },
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await sync.stop();
    await connector.close();
    db.close();
  };
  cleanups.push(stop);
  let position = 0;
  const set = (sku: string, quantity: number): void => {
    position += 1;
    outbox.upsertDesired([{ tenant: 'acme', channel: connector.channel, sku, quantity, changedAtMs: Date.now(), position }]);
    sync.kick();
  };
  sync.start();
  return { db, outbox, sync, connector, bus, outcomes, deferred, set, stop };
}

/** Polls until `check` holds; bounded, so a broken worker fails the test instead of hanging it. */
async function until(what: string, check: () => boolean, waitMsMax = 10_000): Promise<void> {
  for (let waited = 0; !check(); waited += 20) {
    if (waited > waitMsMax) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const settled = (target: Worker, sku: string) => (): boolean => target.outbox.get('acme', 'shop', sku)?.nextAttemptMs === null;
const timedOut = (target: Worker, sku: string) => (): boolean => (target.outbox.get('acme', 'shop', sku)?.lastError ?? '').includes('no answer within');

function setsOf(fake: FakeShopify, itemId: string, from = 0): FakeShopifyRequest[] {
  return fake.requests.slice(from).filter((request) => request.operation === 'inventorySetQuantities'
    && (request.variables as { input: { quantities: Array<{ inventoryItemId: string }> } }).input.quantities[0]?.inventoryItemId === itemId);
}

function asked(request: FakeShopifyRequest): string {
  const [entry] = (request.variables as { input: { quantities: Array<{ quantity: number; changeFromQuantity: number }> } }).input.quantities;
  return `${entry?.quantity}<-${entry?.changeFromQuantity}`;
}

/** The slow push reached the fake and was applied (its late `ok`, not a replay). */
function landed(fake: FakeShopify, itemId: string, quantity: number): boolean {
  return setsOf(fake, itemId).some((request) => request.outcome === 'ok' && asked(request).startsWith(`${quantity}<-`));
}

describe('a Shopify push whose answer is in doubt', () => {
  it('is sent again exactly until Shopify answers it, and only then is the newer quantity pushed', async () => {
    const fake = await fakeShopify([{ sku: 'ABA-1', available: 10 }, { sku: 'OTHER-1', available: 5 }]);
    const item = fake.idOf('ABA-1') as string;
    const target = worker(shopifyConnector(fake, ['ABA-1', 'OTHER-1']));
    target.set('ABA-1', 10);
    target.set('OTHER-1', 5);
    await until('both SKUs settled', () => settled(target, 'ABA-1')() && settled(target, 'OTHER-1')());

    // 10 -> 8 outlives the connector's timeout; Shopify applies it later anyway.
    fake.setLatencyMs(slowMs);
    target.set('ABA-1', 8);
    await until('the push of 8 to time out', timedOut(target, 'ABA-1'));
    fake.setLatencyMs(0);
    target.set('ABA-1', 10);
    target.set('OTHER-1', 4);
    await until('OTHER-1 settled', settled(target, 'OTHER-1'));
    // The channel's other SKUs go on; the row stays unsettled (and counted in the lag) while its push is in doubt.
    expect(landed(fake, item, 8)).toBe(false);
    expect(target.outbox.get('acme', 'shop', 'ABA-1')).toMatchObject({
      quantity: 10, inDoubt: { quantity: 8, previousQuantity: 10 }, changedAtMs: expect.any(Number), nextAttemptMs: expect.any(Number),
    });

    await until('the slow push to land', () => landed(fake, item, 8));
    await until('ABA-1 settled', settled(target, 'ABA-1'));
    expect(fake.levels.get(item)).toBe(10);
    const sets = setsOf(fake, item);
    const eights = sets.filter((request) => asked(request) === '8<-10');
    expect(new Set(eights.map((request) => request.idempotencyKey)).size).toBe(1);
    expect(eights.map((request) => request.outcome)).toEqual(expect.arrayContaining(['userError', 'ok', 'replayed']));
    // Nothing was compared against 10 again while the push of 8 could still land: the newer push compares against 8.
    expect(sets.map(asked).slice(1).filter((text) => text !== '8<-10')).toEqual(['10<-8']);
    expect(target.outbox.get('acme', 'shop', 'ABA-1')).toMatchObject({ inDoubt: null, ackedQuantity: 10, changedAtMs: null });
    expect(target.deferred, 'an answer in doubt must not pause the channel').toEqual([]);
    expect(target.outcomes.filter((outcome) => outcome === 'failed')).toEqual([]);
    expect(target.outcomes.filter((outcome) => outcome === 'retry').length).toBeGreaterThanOrEqual(2);
    const acknowledged = target.bus.commands.filter((command) => command.type === 'record_sync' && command.sku === 'ABA-1');
    expect(acknowledged.map((command) => (command as { quantity: number }).quantity)).toEqual([10, 8, 10]);
  });

  it('is still sent first, under its key, after a restart', async () => {
    const fake = await fakeShopify([{ sku: 'ABA-2', available: 10 }]);
    const item = fake.idOf('ABA-2') as string;
    const directory = mkdtempSync(join(tmpdir(), 'stockline-in-doubt-'));
    cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
    const file = join(directory, 'outbox.db');
    const before = worker(shopifyConnector(fake, ['ABA-2']), file);
    before.set('ABA-2', 10);
    await until('ABA-2 settled', settled(before, 'ABA-2'));
    fake.setLatencyMs(slowMs);
    before.set('ABA-2', 8);
    await until('the push of 8 to time out', timedOut(before, 'ABA-2'));
    await before.stop();
    fake.setLatencyMs(0);

    // A new process on the same file: nothing of the first one's memory, and the ledger wants 10 again.
    const mark = fake.requests.length;
    const after = worker(shopifyConnector(fake, ['ABA-2']), file);
    after.set('ABA-2', 10);
    await until('the slow push to land', () => landed(fake, item, 8));
    await until('ABA-2 settled', settled(after, 'ABA-2'));
    const sets = setsOf(fake, item, mark);
    const firstKey = setsOf(fake, item).find((request) => asked(request) === '8<-10')?.idempotencyKey;
    expect(sets[0]).toMatchObject({ idempotencyKey: firstKey });
    expect(asked(sets[0] as FakeShopifyRequest)).toBe('8<-10');
    expect(sets.map(asked).filter((text) => text !== '8<-10')).toEqual(['10<-8']);
    expect(fake.levels.get(item)).toBe(10);
  });
});

describe('a Shopify push out when the process dies', () => {
  it('is in doubt in the file from before it was sent: after the restart it goes first, under its key, and Shopify ends at the ledger\'s', async () => {
    const fake = await fakeShopify([{ sku: 'ABA-3', available: 10 }]);
    const item = fake.idOf('ABA-3') as string;
    const directory = mkdtempSync(join(tmpdir(), 'stockline-in-doubt-'));
    cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
    const file = join(directory, 'outbox.db');
    // The connector waits long enough that the push is still unanswered when the process dies.
    const before = worker(shopifyConnector(fake, ['ABA-3'], 10_000), file);
    before.set('ABA-3', 10);
    await until('ABA-3 settled', settled(before, 'ABA-3'));
    fake.setLatencyMs(slowMs);
    before.set('ABA-3', 12);
    await until('the push of 12 to be out', () => before.sync.stats().inFlight === 1);
    // The crash: the first process does nothing more, and nothing more of it reaches the file.
    const stopping = before.sync.stop();
    before.db.close();
    fake.setLatencyMs(0);

    // The new process; the ledger is back at 10 (the change of 12 was undone meanwhile).
    const mark = fake.requests.length;
    const after = worker(shopifyConnector(fake, ['ABA-3']), file);
    after.set('ABA-3', 10);
    await until('the push of 12 to land', () => landed(fake, item, 12));
    await until('ABA-3 settled', settled(after, 'ABA-3'));
    await stopping;
    const firstKey = setsOf(fake, item).find((request) => asked(request) === '12<-10')?.idempotencyKey;
    expect(setsOf(fake, item, mark)[0]).toMatchObject({ idempotencyKey: firstKey });
    expect(fake.levels.get(item)).toBe(10);
  });
});

/** Answers in doubt once, then applies; records what it was asked. */
class DoubtfulChannel implements ChannelConnector {
  readonly maxConcurrency = 1;
  readonly ratePerSecond = 1_000;
  readonly pushes: ChannelPush[] = [];
  constructor(readonly channel: string, readonly versionOrdered: boolean) {}
  async push(push: ChannelPush): Promise<PushResult> {
    this.pushes.push(push);
    return this.pushes.length === 1 ? { kind: 'retry', reason: 'no answer within 300 ms', applied: 'unknown' } : { kind: 'ok' };
  }
  async read(): Promise<Map<string, number>> {
    return new Map();
  }
  async close(): Promise<void> {}
}

describe('the push worker', () => {
  it('sends a push in doubt again before the newer quantity to a compare-and-set channel, never to a version-ordered one', async () => {
    const sent: Record<string, Array<[number, number | null, number]>> = {};
    for (const versionOrdered of [false, true]) {
      const channel = new DoubtfulChannel('shop', versionOrdered);
      const target = worker(channel);
      target.set('SKU-1', 5);
      await until('the first answer', () => target.outbox.get('acme', 'shop', 'SKU-1')?.attempts === 1);
      target.set('SKU-1', 7);
      await until('SKU-1 settled', settled(target, 'SKU-1'));
      sent[String(versionOrdered)] = channel.pushes.map((push) => [push.quantity, push.previousQuantity, push.version]);
      if (!versionOrdered) expect(new Set(channel.pushes.slice(0, 2).map((push) => push.idempotencyKey)).size).toBe(1);
    }
    expect(sent).toEqual({ false: [[5, null, 1], [5, null, 1], [7, 5, 2]], true: [[5, null, 1], [7, null, 2]] });
  });

  it('keeps an outbox file of an earlier release working, with no push in doubt', () => {
    const db = new Database(':memory:');
    cleanups.push(() => { db.close(); });
    // The table as releases before pushes in doubt created it.
    db.exec(`CREATE TABLE channel_desired (
      tenant TEXT NOT NULL, channel TEXT NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL, version INTEGER NOT NULL,
      changed_at_ms INTEGER, superseded_at_ms INTEGER, cause_position INTEGER NOT NULL, pushed_quantity INTEGER, pushed_version INTEGER,
      acked_quantity INTEGER, acked_version INTEGER, acked_at_ms INTEGER, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER,
      last_error TEXT, failed_at_ms INTEGER, PRIMARY KEY (tenant, channel, sku)) WITHOUT ROWID`);
    db.prepare(`INSERT INTO channel_desired (tenant, channel, sku, quantity, version, changed_at_ms, cause_position, pushed_quantity, pushed_version, next_attempt_ms)
      VALUES ('acme', 'shop', 'OLD-1', 4, 3, 1000, 9, 4, 3, 1000)`).run();
    const outbox = new ChannelOutbox(db);
    outbox.migrate();
    outbox.migrate();
    expect(outbox.get('acme', 'shop', 'OLD-1')).toMatchObject({ quantity: 4, version: 3, pushedVersion: 3, inDoubt: null });
    const key = { tenant: 'acme', channel: 'shop', sku: 'OLD-1' };
    outbox.markRetry(key, 2000, 'no answer within 300 ms', { version: 3, quantity: 4, previousQuantity: null });
    expect(outbox.get('acme', 'shop', 'OLD-1')).toMatchObject({ inDoubt: { version: 3, quantity: 4, previousQuantity: null } });
    outbox.markRetry(key, 3000, 'Shopify answered 429 Too Many Requests');
    expect(outbox.get('acme', 'shop', 'OLD-1')?.inDoubt).toEqual({ version: 3, quantity: 4, previousQuantity: null });
    outbox.markAcked(key, 3, 4, 4000);
    expect(outbox.get('acme', 'shop', 'OLD-1')).toMatchObject({ inDoubt: null, nextAttemptMs: null });
  });
});
