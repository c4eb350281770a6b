// The channel outbox on a real SQLite file: coalescing, the oldest unacknowledged change, stale acks, restarts.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChannelOutbox } from '../../src/adapters/sqlite/channel-outbox.js';
import type { ChannelConnector, ChannelPush, PushResult } from '../../src/adapters/channels/connector.js';
import { ChannelSync } from '../../src/app/channel-sync.js';
import type { SyncTimer } from '../../src/app/channel-sync.js';
import { reconcile } from '../../src/app/reconcile.js';
import type { CommandBus, CommandInput, Submitted } from '../../src/app/ports.js';

const key = { tenant: 'acme', channel: 'shop', sku: 'sku-1' };
const t0 = 1_700_000_000_000;

let directory: string;
let file: string;
const databases: Database.Database[] = [];

function openOutbox(): ChannelOutbox {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  databases.push(db);
  const outbox = new ChannelOutbox(db);
  outbox.migrate();
  return outbox;
}

function change(quantity: number, changedAtMs: number, position: number, sku = key.sku): Parameters<ChannelOutbox['upsertDesired']>[0][number] {
  return { ...key, sku, quantity, changedAtMs, position };
}

/** A channel that answers ok, unless a push is held by the test; holds never resolve on their own. */
class RecordingChannel implements ChannelConnector {
  readonly channel = 'shop';
  readonly maxConcurrency = 8;
  readonly ratePerSecond = Number.POSITIVE_INFINITY;
  readonly pushes: ChannelPush[] = [];
  hold = false;
  push(push: ChannelPush): Promise<PushResult> {
    this.pushes.push(push);
    return this.hold ? new Promise(() => undefined) : Promise.resolve({ kind: 'ok' });
  }
  async read(): Promise<Map<string, number>> { return new Map(); }
  async close(): Promise<void> {}
}

/**
 * A compare-and-set channel whose first push is held: `landAndTimeOut` applies it and answers retry, as a
 * timeout after the channel applied the change does. Reads snapshot the level, then wait for `answerReads`.
 */
class LandsThenTimesOut implements ChannelConnector {
  readonly channel = 'shop';
  readonly maxConcurrency = 8;
  readonly ratePerSecond = Number.POSITIVE_INFINITY;
  readonly pushes: ChannelPush[] = [];
  private held: (() => void) | undefined;
  private readonly reads: Array<() => void> = [];
  constructor(public shown: number) {}
  push(push: ChannelPush): Promise<PushResult> {
    this.pushes.push(push);
    if (this.pushes.length === 1) {
      return new Promise((resolve) => {
        this.held = () => { this.shown = push.quantity; resolve({ kind: 'retry', reason: 'no answer within 5000 ms' }); };
      });
    }
    if (push.previousQuantity !== this.shown) return Promise.resolve({ kind: 'mismatch', actual: this.shown });
    this.shown = push.quantity;
    return Promise.resolve({ kind: 'ok' });
  }
  read(_tenant: string, skus: string[]): Promise<Map<string, number>> {
    const snapshot = this.shown;
    return new Promise((resolve) => { this.reads.push(() => resolve(new Map(skus.map((sku) => [sku, snapshot])))); });
  }
  readsWaiting(): number { return this.reads.length; }
  answerReads(): void { for (const answer of this.reads.splice(0)) answer(); }
  landAndTimeOut(): void { this.held?.(); }
  async close(): Promise<void> {}
}

const bus: CommandBus = {
  submit: async (_command: CommandInput): Promise<Submitted> => ({ outcome: { events: [] } }),
  submitMany: async (commands: CommandInput[]): Promise<Submitted[]> => commands.map(() => ({ outcome: { events: [] } })),
};

/** Timers that never fire: these tests drive the worker by kicks alone. */
const stillTimer: SyncTimer = { set: () => 0, clear: () => undefined };

async function settle(): Promise<void> {
  for (let turn = 0; turn < 30; turn += 1) await new Promise((resolve) => setImmediate(resolve));
}

function worker(outbox: ChannelOutbox, connector: ChannelConnector, nowMs: number): ChannelSync {
  return new ChannelSync({ outbox, connectors: new Map([['shop', connector]]), bus, clock: { nowMs: () => nowMs }, random: () => 0.5, timer: stillTimer });
}

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'stockline-outbox-'));
  file = join(directory, 'stockline.db');
});

afterEach(() => {
  for (const db of databases.splice(0)) if (db.open) db.close();
  rmSync(directory, { recursive: true, force: true });
});

describe('ChannelOutbox', () => {
  it('coalesces three changes into one due row with the newest quantity, and the worker pushes only that', async () => {
    const outbox = openOutbox();
    outbox.upsertDesired([change(5, t0, 1), change(7, t0 + 10, 2)]);
    outbox.upsertDesired([change(9, t0 + 20, 3)]);
    const due = outbox.due(t0 + 30, 10);
    expect(due).toHaveLength(1);
    expect(due[0]).toMatchObject({ quantity: 9, version: 3, changedAtMs: t0, causePosition: 3 });

    const channel = new RecordingChannel();
    const sync = worker(outbox, channel, t0 + 30);
    sync.start();
    await settle();
    await sync.stop();
    expect(channel.pushes.map((push) => [push.quantity, push.version])).toEqual([[9, 3]]);
    expect(outbox.get(key.tenant, key.channel, key.sku)).toMatchObject({ nextAttemptMs: null, changedAtMs: null, ackedQuantity: 9 });
  });

  it('treats an unchanged quantity as a no-op', () => {
    const outbox = openOutbox();
    expect(outbox.upsertDesired([change(5, t0, 1)])).toBe(1);
    outbox.markAcked(key, 1, 5, t0 + 5);
    expect(outbox.upsertDesired([change(5, t0 + 10, 2)])).toBe(0);
    expect(outbox.get(key.tenant, key.channel, key.sku)).toMatchObject({ version: 1, causePosition: 1, nextAttemptMs: null, changedAtMs: null });
    expect(outbox.due(t0 + 100, 10)).toEqual([]);
  });

  it('keeps the time of the oldest unacknowledged change, and moves it to the first newer change on an old ack', () => {
    const outbox = openOutbox();
    outbox.upsertDesired([change(5, t0, 1)]);
    outbox.markPushed(key, 1, 5);
    outbox.upsertDesired([change(6, t0 + 100, 2)]);
    outbox.upsertDesired([change(7, t0 + 200, 3)]);
    expect(outbox.get(key.tenant, key.channel, key.sku)?.changedAtMs).toBe(t0);
    expect(outbox.oldestUnsynced()).toEqual([{ tenant: 'acme', channel: 'shop', changedAtMs: t0 }]);

    // Version 1 acknowledged: what the channel still lacks dates from the change at +100.
    expect(outbox.markAcked(key, 1, 5, t0 + 250)).toBe(false);
    expect(outbox.get(key.tenant, key.channel, key.sku)).toMatchObject({
      quantity: 7, version: 3, ackedQuantity: 5, ackedVersion: 1, changedAtMs: t0 + 100, nextAttemptMs: t0 + 250,
    });
    expect(outbox.due(t0 + 250, 10).map((row) => row.quantity)).toEqual([7]);

    expect(outbox.markAcked(key, 3, 7, t0 + 300)).toBe(true);
    expect(outbox.oldestUnsynced()).toEqual([]);
    expect(outbox.due(t0 + 1_000, 10)).toEqual([]);
  });

  it('reports the lag per tenant and channel, and the depth per channel', () => {
    const outbox = openOutbox();
    outbox.upsertDesired([
      change(1, t0 + 5, 1, 'a'), change(2, t0 + 1, 2, 'b'),
      { tenant: 'beta', channel: 'b2b', sku: 'a', quantity: 1, changedAtMs: t0 + 9, position: 3 },
    ]);
    outbox.markFailed({ ...key, sku: 'a' }, t0 + 60_000, 'HTTP 404', t0 + 10);
    expect(outbox.oldestUnsynced()).toEqual([
      { tenant: 'acme', channel: 'shop', changedAtMs: t0 + 1 }, { tenant: 'beta', channel: 'b2b', changedAtMs: t0 + 9 },
    ]);
    expect(outbox.depth()).toEqual([{ tenant: 'acme', channel: 'shop', count: 2, failed: 1 }, { tenant: 'beta', channel: 'b2b', count: 1, failed: 0 }]);
    expect(outbox.due(t0 + 100, 10).map((row) => row.sku)).toEqual(['b', 'a']);
    expect(outbox.due(t0 + 100, 10, 'b2b').map((row) => row.tenant)).toEqual(['beta']);
    expect(outbox.nextDueAfter(t0 + 100)).toBe(t0 + 60_000);
  });

  it('schedules retries and mismatches, and settles a row when reconciliation finds the desired quantity', () => {
    const outbox = openOutbox();
    outbox.upsertDesired([change(5, t0, 1)]);
    outbox.markRetry(key, t0 + 400, 'HTTP 503');
    expect(outbox.due(t0 + 399, 10)).toEqual([]);
    expect(outbox.get(key.tenant, key.channel, key.sku)).toMatchObject({ attempts: 1, lastError: 'HTTP 503', nextAttemptMs: t0 + 400 });
    outbox.markMismatch(key, 3, t0 + 500, 'shows 3');
    expect(outbox.get(key.tenant, key.channel, key.sku)).toMatchObject({ attempts: 2, ackedQuantity: 3, nextAttemptMs: t0 + 500 });
    outbox.setAcknowledged(key, 4, t0 + 600);
    expect(outbox.get(key.tenant, key.channel, key.sku)).toMatchObject({ ackedQuantity: 4, nextAttemptMs: t0 + 600, changedAtMs: t0 });
    outbox.setAcknowledged(key, 5, t0 + 700);
    // The drift found at t0 + 600 gave the row a new version (receivers keep only higher versions).
    expect(outbox.get(key.tenant, key.channel, key.sku)).toMatchObject({
      ackedQuantity: 5, ackedVersion: 2, attempts: 0, lastError: null, nextAttemptMs: null, changedAtMs: null,
    });
    // A retry leaves the channel's state unknown (a timed-out push may have landed): the row is due again.
    outbox.markRetry(key, t0 + 800, 'HTTP 503');
    expect(outbox.get(key.tenant, key.channel, key.sku)?.nextAttemptMs).toBe(t0 + 800);
  });

  it('does not settle on a read that a push of ours may have overtaken', () => {
    const outbox = openOutbox();
    const row = (): ReturnType<ChannelOutbox['get']> => outbox.get(key.tenant, key.channel, key.sku);
    outbox.upsertDesired([change(5, t0, 1)]);
    outbox.markPushed(key, 1, 5);
    outbox.markAcked(key, 1, 5, t0 + 1);

    // 5 -> 3 is being pushed; reconciliation pages the row and reads 5; desired goes back to 5.
    outbox.upsertDesired([change(3, t0 + 10, 2)]);
    outbox.markPushed(key, 2, 3);
    const readWhilePushing = row()!;
    outbox.upsertDesired([change(5, t0 + 20, 3)]);
    outbox.setAcknowledged(readWhilePushing, 5, t0 + 30);
    expect(row()).toMatchObject({ version: 3, nextAttemptMs: t0 + 20, changedAtMs: t0 + 10 });
    // The push of 3 landed, but its answer timed out: 5 goes out again.
    outbox.markRetry(key, t0 + 80, 'no answer within 5000 ms');
    expect(outbox.due(t0 + 80, 10).map((due) => [due.quantity, due.version])).toEqual([[5, 3]]);
    outbox.markPushed(key, 3, 5);
    expect(outbox.markAcked(key, 3, 5, t0 + 90)).toBe(true);

    // Read before a push that was then answered: the answer is newer than the read.
    outbox.upsertDesired([change(2, t0 + 100, 4)]);
    const readBeforePush = row()!;
    outbox.markPushed(key, 4, 2);
    expect(outbox.markAcked(key, 4, 2, t0 + 110)).toBe(true);
    outbox.upsertDesired([change(5, t0 + 120, 5)]);
    outbox.setAcknowledged(readBeforePush, 5, t0 + 130);
    expect(row()).toMatchObject({ version: 5, nextAttemptMs: t0 + 120, changedAtMs: t0 + 120 });

    // A read with no push sent or unanswered since the row was paged settles it.
    outbox.markPushed(key, 5, 5);
    outbox.markRetry(key, t0 + 140, 'HTTP 503');
    outbox.markPushed(key, 5, 5);
    expect(outbox.markAcked(key, 5, 5, t0 + 150)).toBe(true);
    outbox.upsertDesired([change(4, t0 + 160, 6)]);
    const readQuiet = row()!;
    outbox.setAcknowledged(readQuiet, 4, t0 + 170);
    expect(row()).toMatchObject({ version: 6, ackedVersion: 6, ackedQuantity: 4, nextAttemptMs: null, changedAtMs: null });
  });

  it('pushes again when reconciliation settled nothing while a push was out, and that push then timed out', async () => {
    const outbox = openOutbox();
    outbox.upsertDesired([change(5, t0, 1)]);
    outbox.markPushed(key, 1, 5);
    outbox.markAcked(key, 1, 5, t0);
    const channel = new LandsThenTimesOut(5);
    let nowMs = t0 + 10;
    const connectors = new Map([['shop', channel as ChannelConnector]]);
    const sync = new ChannelSync({ outbox, connectors, bus, clock: { nowMs: () => nowMs }, random: () => 0.5, timer: stillTimer });
    sync.start();
    outbox.upsertDesired([change(3, nowMs, 2)]);
    sync.kick();
    await settle();
    expect(channel.pushes.map((push) => push.quantity)).toEqual([3]);

    const checking = reconcile({ outbox, connectors, repair: true, clock: { nowMs: () => nowMs } });
    await settle();
    expect(channel.readsWaiting()).toBe(1);
    outbox.upsertDesired([change(5, nowMs, 3)]);
    channel.answerReads();
    expect((await checking).drift).toHaveLength(1);
    channel.landAndTimeOut();
    await settle();
    nowMs += 1_000;
    sync.kick();
    await settle();
    await sync.stop();
    expect(channel.shown).toBe(5);
    expect(outbox.get(key.tenant, key.channel, key.sku)).toMatchObject({ quantity: 5, ackedQuantity: 5, nextAttemptMs: null, changedAtMs: null });
  });

  it('changes nothing when the engine\'s transaction rolls back', () => {
    const outbox = openOutbox();
    const db = databases[0] as Database.Database;
    expect(() => db.transaction(() => {
      outbox.upsertDesired([change(5, t0, 1)]);
      throw new Error('the events could not be written');
    })()).toThrow('the events could not be written');
    expect(outbox.get(key.tenant, key.channel, key.sku)).toBeUndefined();
    expect(() => outbox.upsertDesired([change(-1, t0, 1)])).toThrow('non-negative integer');
    expect(() => outbox.upsertDesired([change(1.5, t0, 1)])).toThrow('non-negative integer');
  });

  it('pages in key order across tenants and channels without holding a cursor', () => {
    const outbox = openOutbox();
    const rows = [];
    for (const tenant of ['acme', 'beta']) {
      for (const channel of ['b2b', 'shop']) {
        for (let index = 0; index < 5; index += 1) rows.push({ tenant, channel, sku: `sku-${index}`, quantity: index, changedAtMs: t0, position: 1 });
      }
    }
    outbox.upsertDesired(rows);
    const collect = (filter: { tenant?: string; channel?: string }): string[] => {
      const seen: string[] = [];
      let after;
      for (;;) {
        const page = outbox.page(filter, after, 3);
        if (page.length === 0) return seen;
        seen.push(...page.map((row) => `${row.tenant}/${row.channel}/${row.sku}`));
        after = page.at(-1);
      }
    };
    expect(collect({})).toHaveLength(20);
    expect(collect({})).toEqual([...collect({})].sort());
    expect(collect({ tenant: 'beta' })).toEqual(rows.filter((row) => row.tenant === 'beta').map((row) => `beta/${row.channel}/${row.sku}`));
    expect(collect({ channel: 'shop' })).toHaveLength(10);
    expect(collect({ tenant: 'acme', channel: 'shop' })).toEqual(['acme/shop/sku-0', 'acme/shop/sku-1', 'acme/shop/sku-2', 'acme/shop/sku-3', 'acme/shop/sku-4']);
    expect(outbox.count({})).toBe(20);
    expect(outbox.count({ tenant: 'acme', channel: 'b2b' })).toBe(5);
    expect(outbox.list('beta', 'b2b').map((row) => row.sku)).toEqual(['sku-0', 'sku-1', 'sku-2', 'sku-3', 'sku-4']);
  });

  it('resumes after a restart: a push sent but never acknowledged is due again and goes out', async () => {
    const before = openOutbox();
    before.upsertDesired([change(5, t0, 1), change(8, t0, 2, 'sku-2')]);
    const held = new RecordingChannel();
    held.hold = true;
    const first = worker(before, held, t0);
    first.start();
    await settle();
    expect(held.pushes).toHaveLength(2);
    // The process dies: nothing acknowledged, the worker never stopped cleanly.
    (databases[0] as Database.Database).close();

    const after = openOutbox();
    expect(after.due(t0 + 1, 10).map((row) => [row.sku, row.quantity, row.pushedVersion])).toEqual([['sku-1', 5, 1], ['sku-2', 8, 1]]);
    const channel = new RecordingChannel();
    const second = worker(after, channel, t0 + 1);
    second.start();
    await settle();
    await second.stop();
    expect(channel.pushes.map((push) => push.sku).sort()).toEqual(['sku-1', 'sku-2']);
    expect(after.due(t0 + 1_000, 10)).toEqual([]);
    expect(after.get(key.tenant, key.channel, key.sku)?.ackedQuantity).toBe(5);
  });
});
