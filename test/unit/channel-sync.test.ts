// The push worker against a manual clock and connector doubles: limits, retries, mismatches, isolation, records.

import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelOutbox } from '../../src/adapters/sqlite/channel-outbox.js';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import type { ChannelConnector, ChannelPush, PushResult } from '../../src/adapters/channels/connector.js';
import { backoffMs, ChannelSync, desiredOfState, desiredProjection, desiredVersion, idempotencyKeyOf, syncLimits } from '../../src/app/channel-sync.js';
import type { PushOutcome } from '../../src/app/channel-sync.js';
import { allSkus } from '../../src/app/engine.js';
import { Metrics } from '../../src/app/metrics.js';
import { RepeatedShortfalls } from '../../src/app/reconcile.js';
import type { CommandBus, CommandInput, Submitted } from '../../src/app/ports.js';
import { channelPolicyOf, emptyTenant, evolve, execute, fromSnapshot, initialState, toSnapshot } from '../../src/core/index.js';
import type { Command, InventoryEvent } from '../../src/core/index.js';
import { clockStartMs, ManualClock } from '../support/channel-sync.js';

interface Call { push: ChannelPush; startedAtMs: number }

/** A channel that applies a push when its compare-and-set holds, unless told to answer otherwise. */
class FakeChannel implements ChannelConnector {
  readonly shown = new Map<string, number>();
  readonly calls: Call[] = [];
  readonly answers: Array<PushResult | 'hang'> = [];
  latencyMs = 0;
  inFlight = 0;
  inFlightMax = 0;
  constructor(readonly channel: string, private readonly clock: ManualClock, readonly maxConcurrency = 4, readonly ratePerSecond = 1000) {}

  push(push: ChannelPush): Promise<PushResult> {
    this.calls.push({ push, startedAtMs: this.clock.now });
    this.inFlight += 1;
    this.inFlightMax = Math.max(this.inFlightMax, this.inFlight);
    const answer = this.answers.shift();
    if (answer === 'hang') return new Promise(() => undefined);
    return new Promise((resolve) => {
      const finish = (): void => {
        this.inFlight -= 1;
        resolve(answer ?? this.apply(push));
      };
      if (this.latencyMs > 0) this.clock.set(finish, this.latencyMs);
      else finish();
    });
  }

  private apply(push: ChannelPush): PushResult {
    const key = `${push.tenant}/${push.sku}`;
    const current = this.shown.get(key);
    if (push.previousQuantity !== null && current !== undefined && current !== push.previousQuantity) return { kind: 'mismatch', actual: current };
    this.shown.set(key, push.quantity);
    return { kind: 'ok' };
  }

  async read(tenant: string, skus: string[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    for (const sku of skus) {
      const quantity = this.shown.get(`${tenant}/${sku}`);
      if (quantity !== undefined) found.set(sku, quantity);
    }
    return found;
  }

  async close(): Promise<void> {}
}

class RecordingBus implements CommandBus {
  readonly commands: CommandInput[] = [];
  failuresLeft = 0;
  async submit(command: CommandInput): Promise<Submitted> {
    return (await this.submitMany([command]))[0] as Submitted;
  }
  async submitMany(commands: CommandInput[]): Promise<Submitted[]> {
    if (this.failuresLeft > 0) {
      this.failuresLeft -= 1;
      throw new Error('log unavailable');
    }
    this.commands.push(...commands);
    return commands.map(() => ({ outcome: { events: [] } }));
  }
}

interface Harness {
  clock: ManualClock;
  outbox: ChannelOutbox;
  bus: RecordingBus;
  sync: ChannelSync;
  pushed: Array<{ channel: string; outcome: PushOutcome; latencyMs?: number }>;
  warnings: string[];
  errors: string[];
  set(sku: string, quantity: number, tenant?: string, channel?: string): void;
}

const open: Array<{ db: Database.Database; sync: ChannelSync }> = [];

afterEach(async () => {
  for (const { db, sync } of open.splice(0)) {
    // Pushes that hang forever would hold stop() to its bound; the clock is manual, so stop does not wait for them.
    void sync.stop();
    db.close();
  }
});

function harness(channels: (clock: ManualClock) => FakeChannel[], random: () => number = () => 0.5, owns?: (tenant: string) => boolean): Harness {
  const clock = new ManualClock();
  const db = new Database(':memory:');
  const outbox = new ChannelOutbox(db);
  outbox.migrate();
  const bus = new RecordingBus();
  const pushed: Harness['pushed'] = [];
  const warnings: string[] = [];
  const errors: string[] = [];
  const connectors = new Map(channels(clock).map((connector) => [connector.channel, connector as ChannelConnector]));
  let sync: ChannelSync;
  try {
    sync = new ChannelSync({
      outbox, connectors, bus, clock, random, timer: clock, ...(owns === undefined ? {} : { owns }),
      log: { warn: (_fields, message) => warnings.push(message), error: (_fields, message) => errors.push(message) },
      metrics: { pushed: (channel, outcome, latencyMs) => pushed.push(latencyMs === undefined ? { channel, outcome } : { channel, outcome, latencyMs }) },
    });
  } catch (error) {
    db.close();
    throw error;
  }
  open.push({ db, sync });
  let position = 0;
  const set = (sku: string, quantity: number, tenant = 'acme', channel = 'shop'): void => {
    position += 1;
    outbox.upsertDesired([{ tenant, channel, sku, quantity, changedAtMs: clock.now, position }]);
    sync.kick();
  };
  return { clock, outbox, bus, sync, pushed, warnings, errors, set };
}

describe('ChannelSync', () => {
  it('pushes a change, settles the row, and records the propagation latency through the bus', async () => {
    const h = harness((clock) => [Object.assign(new FakeChannel('shop', clock), { latencyMs: 30 })]);
    h.set('sku-1', 12);
    await h.clock.advance(20);
    h.sync.start();
    await h.clock.advance(30);
    expect(h.outbox.get('acme', 'shop', 'sku-1')).toMatchObject({ nextAttemptMs: null, changedAtMs: null, ackedQuantity: 12, ackedVersion: 1 });
    expect(h.bus.commands).toEqual([{ type: 'record_sync', tenant: 'acme', channel: 'shop', sku: 'sku-1', quantity: 12, latencyMs: 50, source: 'sync' }]);
    expect(h.pushed).toEqual([{ channel: 'shop', outcome: 'ok', latencyMs: 50 }]);
  });

  it('keeps at most one push in flight per SKU and sends only the newest value after it returns', async () => {
    const channel = (clock: ManualClock): FakeChannel => Object.assign(new FakeChannel('shop', clock), { latencyMs: 100 });
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = channel(clock)]);
    h.sync.start();
    h.set('sku-1', 1);
    await h.clock.advance(10);
    h.set('sku-1', 2);
    h.set('sku-1', 3);
    await h.clock.advance(10);
    expect(fake.calls).toHaveLength(1);
    await h.clock.advance(300);
    expect(fake.calls.map((call) => [call.push.quantity, call.push.previousQuantity, call.push.version])).toEqual([[1, null, 1], [3, 1, 3]]);
    expect(fake.shown.get('acme/sku-1')).toBe(3);
    expect(h.outbox.get('acme', 'shop', 'sku-1')?.nextAttemptMs).toBeNull();
  });

  it('respects the channel rate limit and still pushes everything', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock, 100, 10)]);
    for (let index = 0; index < 50; index += 1) h.set(`sku-${index}`, index + 1);
    h.sync.start();
    await h.clock.advance(10_000);
    expect(fake.calls).toHaveLength(50);
    // A bucket of one second at 10 per second: by time t at most 10 + 10 * t pushes have started.
    fake.calls.forEach((call, index) => {
      const allowed = 10 + Math.floor(((call.startedAtMs - clockStartMs) * 10) / 1000);
      expect(index + 1).toBeLessThanOrEqual(allowed);
    });
  });

  it('respects the channel concurrency limit', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = Object.assign(new FakeChannel('shop', clock, 3), { latencyMs: 100 })]);
    for (let index = 0; index < 20; index += 1) h.set(`sku-${index}`, index + 1);
    h.sync.start();
    await h.clock.advance(2_000);
    expect(fake.calls).toHaveLength(20);
    expect(fake.inFlightMax).toBe(3);
  });

  it('retries with exponential backoff and full jitter, then resets the attempts', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock)], () => 0.5);
    fake.answers.push(...Array.from({ length: 5 }, () => ({ kind: 'retry', reason: 'HTTP 503' }) as const));
    h.set('sku-1', 4);
    h.sync.start();
    await h.clock.advance(1);
    expect(h.outbox.get('acme', 'shop', 'sku-1')).toMatchObject({ attempts: 1, lastError: 'HTTP 503' });
    await h.clock.advance(60_000);
    const gapsMs = fake.calls.slice(1).map((call, index) => call.startedAtMs - (fake.calls[index] as Call).startedAtMs);
    expect(gapsMs).toEqual([50, 100, 200, 400, 800]);
    expect(fake.shown.get('acme/sku-1')).toBe(4);
    expect(h.outbox.get('acme', 'shop', 'sku-1')).toMatchObject({ attempts: 0, lastError: null, nextAttemptMs: null });
    expect(h.pushed.filter((entry) => entry.outcome === 'retry')).toHaveLength(5);
  });

  it('bounds every backoff by the cap, with any random value', () => {
    for (const attempts of [1, 2, 10, 20, 1_000, 1e9]) {
      for (const random of [0, 0.25, 0.999999]) {
        const delayMs = backoffMs(attempts, () => random);
        expect(delayMs).toBeGreaterThanOrEqual(0);
        expect(delayMs).toBeLessThan(Math.min(syncLimits.backoffCapMs, syncLimits.backoffBaseMs * 2 ** (attempts - 1)));
      }
    }
  });

  it('honours retryAfterMs for the whole tenant on that channel, not for other tenants', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock, 1)]);
    fake.answers.push({ kind: 'retry', reason: 'HTTP 429', retryAfterMs: 5_000 });
    h.set('sku-1', 1);
    h.sync.start();
    await h.clock.advance(1);
    h.set('sku-2', 2);
    h.set('sku-9', 9, 'other');
    await h.clock.advance(4_990);
    expect(fake.calls.map((call) => `${call.push.tenant}/${call.push.sku}`)).toEqual(['acme/sku-1', 'other/sku-9']);
    await h.clock.advance(100);
    expect(fake.calls.slice(2).map((call) => call.push.sku).sort()).toEqual(['sku-1', 'sku-2']);
    expect(Math.min(...fake.calls.slice(2).map((call) => call.startedAtMs))).toBeGreaterThanOrEqual(clockStartMs + 5_000);
    expect([...fake.shown]).toEqual(expect.arrayContaining([['acme/sku-1', 1], ['acme/sku-2', 2], ['other/sku-9', 9]]));
  });

  it('resolves a compare-and-set mismatch by pushing again against what the channel shows', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock)]);
    h.sync.start();
    h.set('sku-1', 5);
    await h.clock.advance(1);
    fake.shown.set('acme/sku-1', 7); // someone edited the quantity in the channel's admin
    h.set('sku-1', 4);
    await h.clock.advance(1);
    expect(fake.calls.map((call) => [call.push.quantity, call.push.previousQuantity])).toEqual([[5, null], [4, 5], [4, 7]]);
    expect(fake.calls[1]?.push.idempotencyKey).not.toBe(fake.calls[2]?.push.idempotencyKey);
    expect(fake.shown.get('acme/sku-1')).toBe(4);
    expect(h.outbox.get('acme', 'shop', 'sku-1')).toMatchObject({ nextAttemptMs: null, ackedQuantity: 4 });
    expect(h.pushed.map((entry) => entry.outcome)).toEqual(['ok', 'retry', 'ok']);
  });

  it('takes a mismatch that already shows the desired quantity as an acknowledgement', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock)]);
    fake.answers.push({ kind: 'mismatch', actual: 6 });
    h.set('sku-1', 6);
    h.sync.start();
    await h.clock.advance(1);
    expect(fake.calls).toHaveLength(1);
    expect(h.outbox.get('acme', 'shop', 'sku-1')).toMatchObject({ nextAttemptMs: null, ackedQuantity: 6 });
    expect(h.bus.commands).toHaveLength(1);
  });

  it('keeps retrying a channel that is selling within a short ceiling, never an outage-length backoff', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock)], () => 0.999);
    fake.answers.push(...Array.from({ length: 10 }, (_, index) => ({ kind: 'mismatch', actual: 100 + index }) as const));
    h.set('sku-1', 1);
    h.sync.start();
    await h.clock.advance(1);
    const before = fake.calls.length;
    await h.clock.advance(syncLimits.mismatchBackoffCapMs + 1);
    expect(fake.calls.length).toBeGreaterThan(before);
  });

  it('backs off after repeated mismatches instead of spinning', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock)], () => 0.5);
    fake.answers.push(...Array.from({ length: 10 }, (_, index) => ({ kind: 'mismatch', actual: 100 + index }) as const));
    h.set('sku-1', 1);
    h.sync.start();
    await h.clock.advance(1);
    expect(fake.calls).toHaveLength(syncLimits.mismatchImmediateRetriesMax + 1);
    await h.clock.advance(60_000);
    expect(fake.calls).toHaveLength(11);
    expect(h.outbox.get('acme', 'shop', 'sku-1')).toMatchObject({ nextAttemptMs: null, ackedQuantity: 1 });
  });

  it('keeps a hanging channel from blocking another channel', async () => {
    let broken!: FakeChannel;
    let healthy!: FakeChannel;
    const h = harness((clock) => [broken = new FakeChannel('broken', clock, 2), healthy = new FakeChannel('healthy', clock, 2)]);
    broken.answers.push('hang', 'hang', 'hang', 'hang');
    for (let index = 0; index < 5; index += 1) {
      h.set(`sku-${index}`, index + 1, 'acme', 'broken');
      h.set(`sku-${index}`, index + 1, 'acme', 'healthy');
    }
    h.sync.start();
    await h.clock.advance(5_000);
    expect(broken.calls).toHaveLength(2);
    expect(healthy.calls).toHaveLength(5);
    expect(h.outbox.depth()).toEqual([{ tenant: 'acme', channel: 'broken', count: 5, failed: 0 }]);
  });

  it('keeps a failed push due after a long pause, flags it, and counts it', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock)]);
    fake.answers.push({ kind: 'failed', reason: 'HTTP 404 unknown inventory item' });
    h.set('sku-1', 3);
    h.sync.start();
    await h.clock.advance(1);
    expect(h.outbox.get('acme', 'shop', 'sku-1')).toMatchObject({
      failedAtMs: clockStartMs, nextAttemptMs: clockStartMs + syncLimits.failedRetryDelayMs, lastError: 'HTTP 404 unknown inventory item',
    });
    expect(h.outbox.depth()).toEqual([{ tenant: 'acme', channel: 'shop', count: 1, failed: 1 }]);
    expect(h.pushed).toEqual([{ channel: 'shop', outcome: 'failed' }]);
    expect(h.warnings).toContain('channel push failed; it will be tried again later');
    await h.clock.advance(syncLimits.failedRetryDelayMs);
    expect(fake.calls).toHaveLength(2);
    expect(h.outbox.depth()).toEqual([]);
  });

  it('refuses connectors with impossible limits', () => {
    const make = (maxConcurrency: number, ratePerSecond: number): ChannelSync => harness((clock) => [new FakeChannel('shop', clock, maxConcurrency, ratePerSecond)]).sync;
    expect(() => make(0, 10)).toThrow(expect.objectContaining({ code: 'CHANNEL_CONFIG_INVALID', retryable: false }));
    expect(() => make(2, 0)).toThrow(expect.objectContaining({ code: 'CHANNEL_CONFIG_INVALID' }));
  });

  it('treats a connector that throws as a retry', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock)]);
    fake.push = () => Promise.reject(new Error('socket hang up'));
    h.set('sku-1', 3);
    h.sync.start();
    await h.clock.advance(1);
    expect(h.outbox.get('acme', 'shop', 'sku-1')).toMatchObject({ attempts: 1, lastError: 'connector threw: socket hang up' });
  });

  it('keeps sync records when the bus fails, and sends them once it recovers', async () => {
    const h = harness((clock) => [new FakeChannel('shop', clock)]);
    h.bus.failuresLeft = 2;
    h.set('sku-1', 3);
    h.set('sku-2', 4);
    h.sync.start();
    await h.clock.advance(5_000);
    expect(h.bus.commands.map((command) => (command as { sku: string }).sku).sort()).toEqual(['sku-1', 'sku-2']);
    expect(h.sync.stats()).toMatchObject({ recordErrors: 2, recordsQueued: 0 });
    expect(h.errors).toContain('sync records could not be written; retrying');
  });

  it('stop waits for pushes in flight and writes their answers down', async () => {
    const h = harness((clock) => [Object.assign(new FakeChannel('shop', clock), { latencyMs: 100 })]);
    h.set('sku-1', 3);
    h.sync.start();
    await h.clock.advance(1);
    let stopped = false;
    const stopping = h.sync.stop().then(() => { stopped = true; });
    await h.clock.advance(50);
    expect(stopped).toBe(false);
    await h.clock.advance(50);
    await stopping;
    expect(h.outbox.get('acme', 'shop', 'sku-1')?.nextAttemptMs).toBeNull();
  });

  it('stop gives up on a push that never answers after its bound', async () => {
    let fake!: FakeChannel;
    const h = harness((clock) => [fake = new FakeChannel('shop', clock)]);
    fake.answers.push('hang');
    h.set('sku-1', 3);
    h.sync.start();
    await h.clock.advance(1);
    let stopped = false;
    const stopping = h.sync.stop().then(() => { stopped = true; });
    await h.clock.advance(syncLimits.stopWaitMsMax - 2);
    expect(stopped).toBe(false);
    await h.clock.advance(2);
    await stopping;
    expect(h.outbox.get('acme', 'shop', 'sku-1')?.nextAttemptMs).toBe(clockStartMs);
  });

  it('derives one idempotency key per distinct push', () => {
    const push = { tenant: 'acme', channel: 'shop', sku: 'a', quantity: 3, previousQuantity: 1, version: 2 };
    expect(idempotencyKeyOf(push)).toBe(idempotencyKeyOf({ ...push }));
    expect(idempotencyKeyOf(push)).not.toBe(idempotencyKeyOf({ ...push, previousQuantity: 2 }));
    expect(idempotencyKeyOf(push)).not.toBe(idempotencyKeyOf({ ...push, version: 3 }));
    expect(idempotencyKeyOf(push)).toMatch(/^sl-[A-Za-z0-9_-]{32}$/);
  });
});

describe('ChannelSync on a node that owns some tenants (Kafka)', () => {
  it('pushes only the channels of tenants it owns, and another tenant\'s once it takes that tenant over', async () => {
    let shop!: FakeChannel;
    let market!: FakeChannel;
    const owned = new Set(['acme']);
    const h = harness((clock) => [shop = new FakeChannel('shop', clock), market = new FakeChannel('market', clock)], undefined, (tenant) => owned.has(tenant));
    h.set('sku-1', 1);
    h.set('sku-9', 9, 'other', 'market');
    h.sync.start();
    await h.clock.advance(1);
    await h.clock.advance(5 * syncLimits.notOwnedRecheckMs);
    expect(shop.calls.map((call) => `${call.push.tenant}/${call.push.sku}`)).toEqual(['acme/sku-1']);
    expect(market.calls).toEqual([]);
    // Untouched: still due, as it was written, for the node that takes the tenant over.
    expect(h.outbox.get('other', 'market', 'sku-9')).toMatchObject({ pushedVersion: null, nextAttemptMs: clockStartMs, attempts: 0 });
    owned.add('other');
    h.sync.kick();
    await h.clock.advance(1);
    expect(market.calls.map((call) => `${call.push.tenant}/${call.push.sku}`)).toEqual(['other/sku-9']);
    expect(h.outbox.get('other', 'market', 'sku-9')).toMatchObject({ nextAttemptMs: null, ackedQuantity: 9 });
  });

  it('looks at another node\'s channel again within a second, even when no kick tells it of the takeover', async () => {
    let market!: FakeChannel;
    let owned = false;
    const h = harness((clock) => [market = new FakeChannel('market', clock)], undefined, () => owned);
    h.set('sku-1', 4, 'other', 'market');
    h.sync.start();
    await h.clock.advance(1);
    owned = true;
    await h.clock.advance(syncLimits.notOwnedRecheckMs);
    expect(market.calls.map((call) => call.push.quantity)).toEqual([4]);
  });

  it('settles a push against what the previous owner left on the channel, through compare-and-set', async () => {
    let fake!: FakeChannel;
    let owner = 'a';
    const a = harness((clock) => [fake = new FakeChannel('shop', clock)], undefined, () => owner === 'a');
    const b = harness(() => [fake], undefined, () => owner === 'b');
    const setBoth = (quantity: number): void => { a.set('sku-1', quantity); b.set('sku-1', quantity); };
    const advanceBoth = async (ms: number): Promise<void> => { await a.clock.advance(ms); await b.clock.advance(ms); };
    a.sync.start();
    b.sync.start();
    setBoth(5);
    await advanceBoth(1);
    owner = 'b';
    setBoth(3);
    await advanceBoth(syncLimits.notOwnedRecheckMs);
    expect(fake.shown.get('acme/sku-1')).toBe(3);
    // Back to a, whose last acknowledged quantity (5) is no longer what the channel shows (3).
    owner = 'a';
    setBoth(8);
    await advanceBoth(syncLimits.notOwnedRecheckMs);
    const pushes = fake.calls.map((call) => [call.push.quantity, call.push.previousQuantity]);
    expect(pushes).toEqual([[5, null], [3, null], [8, 5], [8, 3]]);
    expect(fake.shown.get('acme/sku-1')).toBe(8);
    expect(a.outbox.get('acme', 'shop', 'sku-1')).toMatchObject({ nextAttemptMs: null, ackedQuantity: 8 });
    expect(a.pushed.map((entry) => entry.outcome)).toEqual(['ok', 'retry', 'ok']);
    expect(b.pushed.map((entry) => entry.outcome)).toEqual(['ok']);
  });
});

describe('desiredProjection', () => {
  /** An outbox in memory, and a ledger state with one empty tenant, acme, to fill. */
  function outboxAndTenant(): { db: Database.Database; outbox: ChannelOutbox; state: ReturnType<typeof initialState>; tenant: ReturnType<typeof emptyTenant> } {
    const db = new Database(':memory:');
    const outbox = new ChannelOutbox(db);
    outbox.migrate();
    const state = initialState();
    const tenant = emptyTenant();
    state.tenants.set('acme', tenant);
    return { db, outbox, state, tenant };
  }

  it('writes each touched SKU\'s available-to-sell for every channel of the tenant, coalescing unchanged values', () => {
    const { db, outbox, state, tenant } = outboxAndTenant();
    try {
      tenant.skus.set('a', { deleted: false, locations: new Map([['default', { onHand: 10, committed: 2, reserved: 1 }]]) } as never);
      tenant.skus.set('b', { deleted: false, locations: new Map([['default', { onHand: 4, committed: 0, reserved: 0 }]]) } as never);
      tenant.channels.set('b2b', { locations: null, bufferUnits: 2, maxUnits: null, backorder: false });
      const desired = desiredProjection(() => ['shop', 'b2b'], { nowMs: () => Date.UTC(2024, 0, 1, 0, 0, 5) });
      const project = (...args: Parameters<typeof desired>): number => outbox.upsertDesired(desired(...args));
      const event = { id: 'e1', type: 'sku_deleted', tenant: 'acme', time: '2024-01-01T00:00:00.000Z', source: 'api', data: { sku: 'a' } } as const;
      project({ events: [{ position: 7, event }], touched: new Map([['acme', new Set(['a'])]]) }, state);
      expect(outbox.list('acme').map((row) => [row.channel, row.sku, row.quantity, row.causePosition, row.changedAtMs]))
        .toEqual([['b2b', 'a', 5, 7, Date.UTC(2024, 0, 1, 0, 0, 5)], ['shop', 'a', 7, 7, Date.UTC(2024, 0, 1, 0, 0, 5)]]);
      project({ events: [{ position: 8, event }], touched: new Map([['acme', new Set([allSkus])]]) }, state);
      expect(outbox.list('acme').map((row) => [row.channel, row.sku, row.version])).toEqual([
        ['b2b', 'a', 1], ['b2b', 'b', 1], ['shop', 'a', 1], ['shop', 'b', 1],
      ]);
      // A channel added later gets every SKU's row from the whole state; existing rows stay as they are.
      expect(outbox.upsertDesired(desiredOfState(state, () => ['shop', 'b2b', 'market'], Date.UTC(2024, 0, 2), 9))).toBe(2);
      expect(outbox.list('acme', 'market').map((row) => [row.sku, row.quantity])).toEqual([['a', 7], ['b', 4]]);
      // A tenant touched without events (a Kafka replica took it again from the changelog) is as of the batch's position.
      tenant.skus.set('b', { deleted: false, locations: new Map([['default', { onHand: 6, committed: 0, reserved: 0 }]]) } as never);
      project({ events: [], touched: new Map([['acme', new Set([allSkus])]]), position: 10 }, state);
      expect(outbox.list('acme', 'shop').map((row) => [row.sku, row.quantity, row.causePosition])).toEqual([['a', 7, 7], ['b', 6, 10]]);
      expect(project({ events: [], touched: new Map([['acme', new Set([allSkus])]]) }, state)).toBe(0);
    } finally {
      db.close();
    }
  });

  it('pushes a channel\'s row again after the channel sold units itself, its quantity unchanged, against a level that much lower', () => {
    const { db, outbox, state, tenant } = outboxAndTenant();
    try {
      // Held at the shop's cap of 5: a sale on the shop leaves what it should show at 5.
      tenant.skus.set('cap', { deleted: false, version: 3, locations: new Map([['default', { onHand: 50, committed: 1, reserved: 0 }]]) } as never);
      tenant.channels.set('shop', { locations: null, bufferUnits: 0, maxUnits: 5, backorder: false });
      const desired = desiredProjection(() => ['shop', 'web'], { nowMs: () => Date.UTC(2024, 0, 1) });
      const key = { tenant: 'acme', channel: 'shop', sku: 'cap' };
      outbox.upsertDesired(desiredOfState(state, () => ['shop', 'web'], Date.UTC(2024, 0, 1), 1));
      for (const channel of ['shop', 'web']) {
        const row = outbox.get('acme', channel, 'cap') as NonNullable<ReturnType<ChannelOutbox['get']>>;
        outbox.markPushed(row, row.version, row.quantity);
        outbox.markAcked(row, row.version, row.quantity, Date.UTC(2024, 0, 1));
      }
      expect(outbox.get('acme', 'shop', 'cap')).toMatchObject({ quantity: 5, ackedQuantity: 5, nextAttemptMs: null });
      const sale = {
        id: 'e2', type: 'order_committed', tenant: 'acme', time: '2024-01-01T00:00:01.000Z', source: 'shopify',
        data: { reservationId: 'shopify:1', channel: 'shop', direct: true, lines: [{ sku: 'cap', location: 'default', quantity: 1 }] },
      } as InventoryEvent;
      outbox.upsertDesired(desired({ events: [{ position: 2, event: sale }], touched: new Map([['acme', new Set(['cap'])]]) }, state));
      // The shop took the unit off its own level: compared against 4, 5 is pushed back.
      expect(outbox.get(key.tenant, key.channel, key.sku)).toMatchObject({ quantity: 5, ackedQuantity: 4, nextAttemptMs: Date.UTC(2024, 0, 1) });
      // Another channel's row, which sold nothing, stays settled.
      expect(outbox.get('acme', 'web', 'cap')).toMatchObject({ quantity: 49, ackedQuantity: 49, nextAttemptMs: null });
    } finally {
      db.close();
    }
  });

  it('numbers each change alike on every outbox, one that starts late or lost its rows included, and always upward', async () => {
    const engine = new EmbeddedEngine({ path: ':memory:' });
    const dbs = [new Database(':memory:'), new Database(':memory:')];
    try {
      const [early, late] = dbs.map((db) => {
        const outbox = new ChannelOutbox(db);
        outbox.migrate();
        return outbox;
      }) as [ChannelOutbox, ChannelOutbox];
      const channels = (): string[] => ['shop'];
      const project = desiredProjection(channels);
      let following = [early];
      engine.subscribe((batch) => { for (const outbox of following) outbox.upsertDesired(project(batch, engine.state())); });
      const version = (outbox: ChannelOutbox): number | undefined => outbox.get('acme', 'shop', 'TEE')?.version;
      const seen: number[] = [];
      const change = async (input: Record<string, unknown>): Promise<void> => {
        const submitted = await engine.submit({ tenant: 'acme', ...input } as CommandInput);
        expect(submitted.outcome.rejection).toBeUndefined();
        seen.push(version(early) as number);
      };
      await change({ type: 'adjust_stock', sku: 'TEE', location: 'default', delta: 10 });
      await change({ type: 'reserve', reservationId: 'r1', channel: 'web', lines: [{ sku: 'TEE', quantity: 2 }], ttlMs: 60_000 });
      // An outbox that starts now (a new node, or one whose file was lost) takes every row from the state.
      late.upsertDesired(desiredOfState(engine.state(), channels, Date.now(), engine.position()));
      following = [early, late];
      expect(version(late)).toBe(version(early));
      await change({ type: 'set_channel_policy', channel: 'shop', locations: null, bufferUnits: 3, maxUnits: null, backorder: false });
      await change({ type: 'release', reservationId: 'r1', reason: 'released' });
      expect(version(late)).toBe(version(early));
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
      expect(new Set(seen).size).toBe(seen.length);
      // A row that counted its own changes past that number (an outbox from before) still only goes up.
      dbs[1]?.prepare("UPDATE channel_desired SET version = 1000 WHERE sku = 'TEE'").run();
      await change({ type: 'adjust_stock', sku: 'TEE', location: 'default', delta: 1 });
      expect(version(late)).toBe(1001);
    } finally {
      await engine.close();
      for (const db of dbs) db.close();
    }
  });

  it('numbers alike after policies set before events carried their version: replayed, or restored from a copy of the state', () => {
    // A log written before: the policy set three times, events without a version.
    const replayed = initialState();
    const at = (n: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();
    const old = (n: number, data: Record<string, unknown>, type = 'channel_policy_set'): InventoryEvent => ({ id: `old-${n}`, type, tenant: 'acme', time: at(n), source: 'api', data }) as InventoryEvent;
    evolve(replayed, old(0, { sku: 'TEE', location: 'main', mode: 'delta', delta: 9, onHand: 9 }, 'stock_adjustment'));
    for (let n = 1; n <= 3; n += 1) evolve(replayed, old(n, { channel: 'shop', locations: null, bufferUnits: n, maxUnits: null, backorder: false }));
    // Another node's state came from a copy written by that earlier release (the Kafka changelog), which had no version.
    const copy = toSnapshot(replayed);
    for (const tenant of Object.values(copy.tenants)) for (const policy of Object.values(tenant.channels)) delete policy.version;
    const restored = fromSnapshot(copy);
    const versionOn = (state: typeof replayed): number => {
      const tenant = state.tenants.get('acme');
      if (tenant === undefined) throw new Error('no tenant');
      return desiredVersion(channelPolicyOf(tenant, 'shop'), tenant.skus.get('TEE'));
    };
    expect(versionOn(restored)).toBe(versionOn(replayed));
    // The owner decides the next policy; every other node applies its event.
    const decided = execute(restored, { type: 'set_channel_policy', tenant: 'acme', channel: 'shop', locations: null, bufferUnits: 0, maxUnits: null, backorder: false, id: 'c1', timeMs: Date.UTC(2026, 0, 2) } as Command);
    for (const event of decided.outcome.events) evolve(replayed, event);
    expect(versionOn(restored)).toBe(versionOn(replayed));
    expect(versionOn(replayed)).toBe(1 + 1);
    // An event without a version after that (an older node still deciding, during an upgrade) lowers nothing.
    evolve(replayed, old(9, { channel: 'shop', locations: null, bufferUnits: 1, maxUnits: null, backorder: false }));
    expect(versionOn(replayed)).toBe(1 + 1);
  });

  it('dates a change from when it is projected, not from its event\'s time: an import of old events is not 30 days late', async () => {
    const h = harness((clock) => [Object.assign(new FakeChannel('shop', clock), { latencyMs: 40 })]);
    const state = initialState();
    const tenant = emptyTenant();
    tenant.skus.set('TEE', { deleted: false, locations: new Map([['main', { onHand: 17, committed: 0, reserved: 0 }]]) } as never);
    state.tenants.set('acme', tenant);
    const thirtyDaysAgo = new Date(h.clock.now - 30 * 86_400_000).toISOString();
    const event = { id: 'v-1', type: 'stock_adjustment', tenant: 'acme', time: thirtyDaysAgo, source: 'import', data: { sku: 'TEE' } } as never;
    const project = desiredProjection(() => ['shop'], h.clock);
    h.outbox.upsertDesired(project({ events: [{ position: 1, event }], touched: new Map([['acme', new Set(['TEE'])]]) }, state));
    expect(h.outbox.get('acme', 'shop', 'TEE')).toMatchObject({ quantity: 17, changedAtMs: h.clock.now, nextAttemptMs: h.clock.now });
    const metrics = new Metrics(() => h.clock.now, { processMetrics: false });
    metrics.watchChannels(h.outbox, [{ tenant: 'acme', channel: 'shop' }]);
    await h.clock.advance(300);
    expect((await metrics.registry.getSingleMetricAsString('stockline_reconciliation_lag_seconds')).split('\n').at(-1))
      .toBe('stockline_reconciliation_lag_seconds{tenant="acme",channel="shop"} 0.3');
    h.sync.start();
    await h.clock.advance(40);
    expect(h.pushed).toEqual([{ channel: 'shop', outcome: 'ok', latencyMs: 340 }]);
    expect(h.bus.commands).toMatchObject([{ type: 'record_sync', sku: 'TEE', quantity: 17, latencyMs: 340 }]);
  });
});

describe('RepeatedShortfalls', () => {
  const drift = (shown: number | null, desired = 10, pending = false, channel = 'shop') => ({ tenant: 'acme', channel, sku: 'A', desired, shown, pending });

  it('leaves a level below the ledger\'s on a channel that takes orders for one run, and repairs it when the next run finds the same', () => {
    const shortfalls = new RepeatedShortfalls((channel) => channel === 'shop');
    shortfalls.startRun();
    expect(shortfalls.defer(drift(3))).toBe(true);
    shortfalls.endRun();
    shortfalls.startRun();
    expect(shortfalls.defer(drift(3))).toBe(false);
    // Another shortfall (a second sale meanwhile) waits again.
    expect(shortfalls.defer(drift(2))).toBe(true);
    shortfalls.endRun();
  });

  it('repairs at once a level above, a SKU the channel does not show, a push on its way, and a channel that does not take orders', () => {
    const shortfalls = new RepeatedShortfalls((channel) => channel === 'shop');
    shortfalls.startRun();
    expect([drift(15), drift(null), drift(3, 10, true), drift(3, 10, false, 'portal')].map((one) => shortfalls.defer(one))).toEqual([false, false, false, false]);
  });
});
