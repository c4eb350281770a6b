// Properties of the pure ledger over thousands of generated command sequences: stock, replay, tenancy, retries, purity.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { channelAvailableRaw, channelPolicyOf, sellingLocations } from '../../src/core/availability.js';
import type { CartLine, Command } from '../../src/core/commands.js';
import { decide } from '../../src/core/decide.js';
import type { AllocatedLine, InventoryEvent } from '../../src/core/events.js';
import { evolve, replay } from '../../src/core/evolve.js';
import { validateEvent } from '../../src/app/event-validation.js';
import { execute, fingerprintOf } from '../../src/core/ledger.js';
import { limits } from '../../src/core/limits.js';
import type { Outcome, RejectionCode } from '../../src/core/rejections.js';
import { fromSnapshot, toSnapshot } from '../../src/core/snapshot.js';
import { trialState } from '../../src/core/trial.js';
import type { StateSnapshot } from '../../src/core/snapshot.js';
import { absentTenant, availableOf, initialState } from '../../src/core/state.js';
import type { ChannelPolicy, FinishedEntry, LedgerState, TenantState } from '../../src/core/state.js';
import { t0Ms } from '../support/ledger-dsl.js';

const tenants = ['t0', 't1', 't2'] as const;
const skus = ['s0', 's1', 's2', 's3'] as const;
const locations = ['l0', 'l1', 'l2'] as const;
const channels = ['c0', 'c1', 'c2'] as const;
/** The only channel whose generated policies may allow backorders. */
const backorderChannel = 'c2';
const reservationIds = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9'] as const;
/** Drawn at random, so a key now and then comes back with another request: on purpose. */
const idempotencyKeys = Array.from({ length: 24 }, (_, index) => `k${index}`);
const sources = ['pg:a', 'pg:b'] as const;

const numRuns = Number(process.env.LEDGER_PROPERTY_RUNS ?? 300);
const sequenceLengthMax = 60;

// ---------------------------------------------------------------------------------------------
// Generators

type Body = Omit<Command, 'id' | 'tenant' | 'timeMs' | 'idempotencyKey'>;

interface FreshStep {
  kind: 'fresh';
  advanceMs: number;
  tenant: string;
  idempotencyKey: string | undefined;
  body: Body;
}

/** Sends again an earlier command of the sequence, same key and same request: a client retry. */
interface ResendStep {
  kind: 'resend';
  advanceMs: number;
  back: number;
}

type Step = FreshStep | ResendStep;

/** Most commands go to t0 so that its story gets long; the others still interleave. */
const tenantArb = fc.oneof({ arbitrary: fc.constant(tenants[0]), weight: 6 }, { arbitrary: fc.constant(tenants[1]), weight: 3 }, { arbitrary: fc.constant(tenants[2]), weight: 2 });
const skuArb = fc.constantFrom(...skus);
/** Deletes and restores also name a SKU no command ever stocks. */
const lifecycleSkuArb = fc.constantFrom(...skus, 'never-stocked');
const locationArb = fc.constantFrom(...locations);
const channelArb = fc.constantFrom(...channels);
const reservationIdArb = fc.constantFrom(...reservationIds);
const sourceArb = fc.option(fc.constantFrom(...sources), { nil: undefined, freq: 3 });
/** Small sequences collide often (stale conflicts); now and then a 20-digit one beyond 2^53. */
const sourceSeqArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 30 }).map(String), weight: 4 },
  { arbitrary: fc.bigInt({ min: 10n ** 19n, max: 10n ** 19n + 20n }).map(String), weight: 1 },
);

const lineArb: fc.Arbitrary<CartLine> = fc.tuple(skuArb, fc.integer({ min: 1, max: 6 }), fc.option(locationArb, { nil: undefined, freq: 3 }))
  .map(([sku, quantity, location]) => (location === undefined ? { sku, quantity } : { sku, quantity, location }));
const linesArb = fc.oneof({ arbitrary: fc.array(lineArb, { minLength: 1, maxLength: 1 }), weight: 3 }, { arbitrary: fc.array(lineArb, { minLength: 2, maxLength: 3 }), weight: 1 });

function withOptional<T extends object>(body: T, key: string, value: unknown): T {
  return value === undefined ? body : { ...body, [key]: value };
}

const adjustArb: fc.Arbitrary<Body> = fc.oneof(
  fc.tuple(skuArb, locationArb, fc.integer({ min: -12, max: 30 }), fc.option(fc.constant('count'), { nil: undefined }))
    .map(([sku, location, delta, reason]) => withOptional({ type: 'adjust_stock' as const, sku, location, delta }, 'reason', reason)),
  fc.tuple(skuArb, locationArb, fc.integer({ min: 0, max: 50 }), fc.option(sourceSeqArb, { nil: undefined, freq: 3 }), sourceArb)
    .map(([sku, location, set, sourceSeq, source]) => withOptional(withOptional({ type: 'adjust_stock' as const, sku, location, set }, 'sourceSeq', sourceSeq), 'source', source)),
);

/** Whole seconds, like the half-second steps of the clock, so that expiries often fall exactly on a tick. */
const ttlMsArb = fc.integer({ min: 1, max: 120 }).map((seconds) => seconds * 1_000);
const advanceMsArb = fc.integer({ min: 0, max: 10 }).map((halves) => halves * 500);
/** Half the steps one to 24 hours apart: a sequence spans days, beyond the retention of finished reservations. */
const longAdvanceMsArb = fc.oneof(advanceMsArb, fc.integer({ min: 1, max: 24 }).map((hours) => hours * 3_600_000));

function reserveArbOf(idArb: fc.Arbitrary<string>): fc.Arbitrary<Body> {
  return fc.tuple(idArb, channelArb, linesArb, ttlMsArb, fc.option(fc.constant('order-1'), { nil: undefined }))
    .map(([reservationId, channel, lines, ttlMs, orderRef]) => withOptional({ type: 'reserve' as const, reservationId, channel, lines, ttlMs }, 'orderRef', orderRef));
}
const reserveArb = reserveArbOf(reservationIdArb);

const saleArb: fc.Arbitrary<Body> = fc.tuple(reservationIdArb, channelArb, linesArb, fc.option(fc.constant('mp-1'), { nil: undefined }))
  .map(([reservationId, channel, lines, orderRef]) => withOptional({ type: 'record_sale' as const, reservationId, channel, lines }, 'orderRef', orderRef));

const policyArb: fc.Arbitrary<Body> = fc.tuple(
  channelArb,
  fc.option(fc.shuffledSubarray([...locations], { minLength: 1 }), { nil: null }),
  fc.integer({ min: 0, max: 5 }),
  fc.option(fc.integer({ min: 0, max: 20 }), { nil: null }),
  fc.boolean(),
).map(([channel, policyLocations, bufferUnits, maxUnits, backorder]) => ({
  type: 'set_channel_policy' as const, channel, locations: policyLocations, bufferUnits, maxUnits, backorder: channel === backorderChannel && backorder,
}));

function commitArbOf(idArb: fc.Arbitrary<string>): fc.Arbitrary<Body> {
  return fc.tuple(idArb, fc.option(fc.constant('order-2'), { nil: undefined }))
    .map(([reservationId, orderRef]) => withOptional({ type: 'commit' as const, reservationId }, 'orderRef', orderRef));
}
function releaseArbOf(idArb: fc.Arbitrary<string>): fc.Arbitrary<Body> {
  // `expired` is an import's expiry of one hold; the API offers only the other two.
  return fc.tuple(idArb, fc.constantFrom('released' as const, 'cancelled' as const, 'expired' as const)).map(([reservationId, reason]) => ({ type: 'release' as const, reservationId, reason }));
}
const commitArb = commitArbOf(reservationIdArb);
const releaseArb = releaseArbOf(reservationIdArb);
/** A wider pool of ids for the holds profile, so that many holds can be alive at once. */
const holdIdArb = fc.integer({ min: 0, max: 29 }).map((index) => `h${index}`);
const fulfilArb: fc.Arbitrary<Body> = reservationIdArb.map((reservationId) => ({ type: 'fulfil' as const, reservationId }));
const tickArb: fc.Arbitrary<Body> = fc.constant({ type: 'expire_due' as const, nowMs: 0 });
const syncArb: fc.Arbitrary<Body> = fc.tuple(channelArb, skuArb, fc.nat(50), fc.nat(5_000))
  .map(([channel, sku, quantity, latencyMs]) => ({ type: 'record_sync' as const, channel, sku, quantity, latencyMs }));

/** Every kind of command, in a mix that reaches every outcome. */
const mixedBodyArb: fc.Arbitrary<Body> = fc.oneof(
  { arbitrary: adjustArb, weight: 8 },
  { arbitrary: reserveArb, weight: 10 },
  { arbitrary: saleArb, weight: 2 },
  { arbitrary: commitArb, weight: 4 },
  { arbitrary: releaseArb, weight: 3 },
  { arbitrary: fulfilArb, weight: 2 },
  { arbitrary: tickArb, weight: 3 },
  { arbitrary: lifecycleSkuArb.map((sku) => ({ type: 'delete_sku' as const, sku })), weight: 1 },
  { arbitrary: lifecycleSkuArb.map((sku) => ({ type: 'restore_sku' as const, sku })), weight: 1 },
  { arbitrary: policyArb, weight: 2 },
  { arbitrary: syncArb, weight: 1 },
);

/** Mostly holds and ticks, so that many holds are alive at once and the expiry index gets deep. */
const holdsBodyArb: fc.Arbitrary<Body> = fc.oneof(
  { arbitrary: reserveArbOf(holdIdArb), weight: 12 },
  { arbitrary: tickArb, weight: 4 },
  { arbitrary: adjustArb, weight: 3 },
  { arbitrary: commitArbOf(holdIdArb), weight: 1 },
  { arbitrary: releaseArbOf(holdIdArb), weight: 1 },
);

function stepArbOf(bodyArb: fc.Arbitrary<Body>, tenantsArb: fc.Arbitrary<string>, advanceArb: fc.Arbitrary<number> = advanceMsArb): fc.Arbitrary<Step> {
  return fc.oneof(
    {
      arbitrary: fc.record({
        kind: fc.constant('fresh' as const),
        advanceMs: advanceArb,
        tenant: tenantsArb,
        idempotencyKey: fc.option(fc.constantFrom(...idempotencyKeys), { nil: undefined, freq: 3 }),
        body: bodyArb,
      }),
      weight: 12,
    },
    { arbitrary: fc.record({ kind: fc.constant('resend' as const), advanceMs: advanceArb, back: fc.integer({ min: 1, max: 10 }) }), weight: 1 },
  );
}

/** Opening receipts of every SKU of every tenant at one location each, so that most holds find stock; then the mix. */
const openingArb: fc.Arbitrary<Step[]> = fc.array(fc.tuple(locationArb, fc.integer({ min: 0, max: 30 })), { minLength: tenants.length * skus.length, maxLength: tenants.length * skus.length })
  .map((receipts) => receipts.map(([location, delta], index): Step => ({
    kind: 'fresh', advanceMs: 0, tenant: tenants[index % tenants.length] as string, idempotencyKey: undefined,
    body: { type: 'adjust_stock', sku: skus[Math.floor(index / tenants.length)] as string, location, delta } as Body,
  })));
const openingLength = tenants.length * skus.length;

function sequenceArb(stepArb: fc.Arbitrary<Step>): fc.Arbitrary<Step[]> {
  return fc.tuple(openingArb, fc.array(stepArb, { minLength: 1, maxLength: sequenceLengthMax - openingLength, size: 'max' })).map(([opening, mix]) => [...opening, ...mix]);
}

/** Three in four sequences mix everything over three tenants; one in four piles holds onto one tenant. */
const stepsArb: fc.Arbitrary<Step[]> = fc.oneof(
  { arbitrary: sequenceArb(stepArbOf(mixedBodyArb, tenantArb)), weight: 3 },
  { arbitrary: sequenceArb(stepArbOf(holdsBodyArb, fc.oneof({ arbitrary: fc.constant(tenants[0]), weight: 8 }, { arbitrary: fc.constantFrom(tenants[1], tenants[2]), weight: 1 }))), weight: 1 },
);

/** Reservations from start to finish on the few shared ids, so that ids come back once forgotten. */
const lifecycleBodyArb: fc.Arbitrary<Body> = fc.oneof(
  { arbitrary: reserveArb, weight: 6 },
  { arbitrary: commitArb, weight: 3 },
  { arbitrary: releaseArb, weight: 3 },
  { arbitrary: fulfilArb, weight: 2 },
  { arbitrary: saleArb, weight: 1 },
  { arbitrary: tickArb, weight: 2 },
  { arbitrary: adjustArb, weight: 3 },
);

/**
 * Sequences whose clock runs for days: finished reservations are forgotten on the way and their ids taken
 * again, and idempotency records are forgotten by the ticks (so the idempotency property does not use them).
 */
const longStepsArb: fc.Arbitrary<Step[]> = fc.oneof(
  sequenceArb(stepArbOf(mixedBodyArb, tenantArb, longAdvanceMsArb)),
  sequenceArb(stepArbOf(lifecycleBodyArb, fc.oneof({ arbitrary: fc.constant(tenants[0]), weight: 8 }, { arbitrary: fc.constantFrom(tenants[1], tenants[2]), weight: 1 }), longAdvanceMsArb)),
);
/** Both clocks: for the properties that hold however long the ledger runs. */
const anyStepsArb: fc.Arbitrary<Step[]> = fc.oneof(stepsArb, longStepsArb);

/** Stamps ids and advancing times on the steps; expire_due ticks at the time they are sent. */
function materialise(steps: readonly Step[]): Command[] {
  const commands: Command[] = [];
  let timeMs = t0Ms;
  steps.forEach((step, index) => {
    timeMs += step.advanceMs;
    const id = `cmd-${index}`;
    if (step.kind === 'resend') {
      const earlier = commands[commands.length - Math.min(step.back, commands.length)];
      if (earlier !== undefined) commands.push({ ...earlier, id, timeMs });
      return;
    }
    const body = step.body.type === 'expire_due' ? { ...step.body, nowMs: timeMs } : step.body;
    const command = { ...body, id, tenant: step.tenant, timeMs } as Command;
    if (step.idempotencyKey !== undefined) command.idempotencyKey = step.idempotencyKey;
    commands.push(command);
  });
  return commands;
}

// ---------------------------------------------------------------------------------------------
// Observations

function deepCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** The whole state, idempotency records included, as one JSON text per tenant: cheap to compare. */
function tenantTexts(state: LedgerState): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, tenant] of Object.entries(toSnapshot(state, { withIdempotency: true }).tenants)) out.set(name, JSON.stringify(tenant));
  return out;
}

/** Fails with a readable diff when two texts of the state differ. */
function expectSameText(actual: Map<string, string>, expected: Map<string, string>, message: string): void {
  const same = actual.size === expected.size && [...actual].every(([name, text]) => expected.get(name) === text);
  if (!same) expect(Object.fromEntries([...actual].map(([name, text]) => [name, JSON.parse(text) as unknown])), message).toEqual(Object.fromEntries([...expected].map(([name, text]) => [name, JSON.parse(text) as unknown])));
}

function without(texts: Map<string, string>, tenant: string): Map<string, string> {
  const out = new Map(texts);
  out.delete(tenant);
  return out;
}

function tenantState(state: LedgerState, tenant: string): TenantState {
  return state.tenants.get(tenant) ?? absentTenant;
}

/**
 * `before` without the finished reservations `after` no longer has. A refusal that records an event
 * (STALE_SEQUENCE) moves the tenant's clock like any event, and may forget reservations past their retention.
 */
function lessForgotten(before: StateSnapshot, after: StateSnapshot): StateSnapshot {
  const out = deepCopy(before);
  for (const [name, tenant] of Object.entries(out.tenants)) {
    for (const [id, reservation] of Object.entries(tenant.reservations)) {
      if (reservation.finishedAtMs !== undefined && after.tenants[name]?.reservations[id] === undefined) delete tenant.reservations[id];
    }
  }
  return out;
}

/** Each tenant's index of finished reservations as a sorted list: heaps built in another order hold the same entries. */
function finishedIndexes(state: LedgerState): Record<string, FinishedEntry[]> {
  const out: Record<string, FinishedEntry[]> = {};
  for (const [name, tenant] of state.tenants) {
    if (tenant.finished.length > 0) out[name] = [...tenant.finished].sort((a, b) => a.finishedAtMs - b.finishedAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  return out;
}

function stockKey(sku: string, location: string): string {
  return `${sku}\u0000${location}`;
}

/** Available units per `sku \0 location` of one tenant. */
function availability(tenant: TenantState): Map<string, number> {
  const out = new Map<string, number>();
  for (const [sku, skuState] of tenant.skus) for (const [location, stock] of skuState.locations) out.set(stockKey(sku, location), availableOf(stock));
  return out;
}

/** What one tenant looked like just before a command, for judging the command afterwards. */
interface Before {
  available: Map<string, number>;
  policy: ChannelPolicy | undefined;
  /** Per SKU of the cart: its selling locations and clamp(raw - buffer, 0, +inf), ignoring the maximum. */
  carts: Map<string, { locations: string[]; budget: number }>;
  reservation: { status: string; expiresAtMs: number } | undefined;
  versions: Map<string, number>;
}

function observeBefore(tenant: TenantState, command: Command): Before {
  const before: Before = { available: availability(tenant), policy: undefined, carts: new Map(), reservation: undefined, versions: new Map([...tenant.skus].map(([sku, state]) => [sku, state.version])) };
  if (command.type === 'reserve' || command.type === 'record_sale') {
    const policy = channelPolicyOf(tenant, command.channel);
    before.policy = policy;
    for (const line of command.lines) {
      const skuState = tenant.skus.get(line.sku);
      before.carts.set(line.sku, { locations: [...sellingLocations(policy, skuState)], budget: Math.max(channelAvailableRaw(policy, skuState) - policy.bufferUnits, 0) });
    }
  }
  if ('reservationId' in command) {
    const reservation = tenant.reservations.get(command.reservationId);
    if (reservation !== undefined) before.reservation = { status: reservation.status, expiresAtMs: reservation.expiresAtMs };
  }
  return before;
}

function linesAt(lines: readonly AllocatedLine[], sku: string, location: string): number {
  let total = 0;
  for (const line of lines) if (line.sku === sku && line.location === location) total += line.quantity;
  return total;
}

function oversells(events: readonly InventoryEvent[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const event of events) {
    if (event.type === 'conflict_detected' && event.data.kind === 'oversell') out.set(stockKey(event.data.sku, event.data.location), event.data.shortfall ?? Number.NaN);
  }
  return out;
}

const fail = (message: string): never => {
  throw new Error(message);
};

/**
 * The stock rule, after every command. A location's available may fall below zero, or further below
 * zero, only (a) through a reserve on a channel whose policy allows backorders, or (b) through an
 * adjustment or a recorded sale that emits conflict_detected{kind: oversell} for that SKU and
 * location, whose shortfall is exactly what the command added to what is missing: the part of the fall
 * below zero, min(fall, -available), where a sale's fall is its line. No other command lowers any available.
 * A reserve on a channel without backorder holds, per SKU, at most clamp(raw - buffer, 0, +inf) of
 * the moment before, only at the channel's locations, and never more than a location had.
 */
function checkStockRule(command: Command, outcome: Outcome, before: Before, tenant: TenantState): void {
  const after = availability(tenant);
  const conflicts = oversells(outcome.events);
  const accepted = outcome.rejection === undefined;
  const lines = outcome.events.flatMap((event) => (event.type === 'order_reserved' || (event.type === 'order_committed' && event.data.direct) ? event.data.lines : []));
  for (const [key, availableAfter] of after) {
    const availableBefore = before.available.get(key) ?? 0;
    const [sku, location] = key.split('\u0000') as [string, string];
    if (availableAfter >= availableBefore) continue;
    if (!accepted) fail(`${command.id} ${command.type} was refused yet lowered available at ${key}`);
    if (availableAfter >= 0) {
      if (command.type !== 'adjust_stock' && command.type !== 'reserve' && command.type !== 'record_sale') fail(`${command.id} ${command.type} lowered available at ${key}`);
      continue;
    }
    if (command.type === 'reserve' && before.policy?.backorder === true) continue;
    const shortfall = conflicts.get(key);
    if (shortfall === undefined) fail(`${command.id} ${command.type} took ${key} to ${availableAfter} (from ${availableBefore}) without an oversell incident`);
    const added = Math.min(availableBefore - availableAfter, -availableAfter);
    if (command.type === 'adjust_stock' && shortfall !== added) fail(`${command.id} oversell shortfall ${shortfall} at ${key}, expected ${added}`);
    if (command.type === 'record_sale' && shortfall !== Math.min(linesAt(lines, sku, location), -availableAfter)) fail(`${command.id} sale shortfall ${shortfall} at ${key}`);
    if (command.type !== 'adjust_stock' && command.type !== 'record_sale') fail(`${command.id} ${command.type} emitted an oversell`);
  }
  const seen = new Set<string>();
  for (const line of lines) {
    if (!(line.quantity > 0) || seen.has(stockKey(line.sku, line.location))) fail(`${command.id}: allocated line ${JSON.stringify(line)} is empty or repeated`);
    seen.add(stockKey(line.sku, line.location));
  }
  for (const [key, shortfall] of conflicts) {
    if (!(shortfall > 0) || (after.get(key) ?? 0) >= 0) fail(`${command.id} spurious oversell at ${key}: shortfall ${shortfall}, available ${after.get(key)}`);
  }
  if (command.type === 'reserve' && accepted && before.policy?.backorder !== true) {
    const perSku = new Map<string, number>();
    for (const line of lines) {
      perSku.set(line.sku, (perSku.get(line.sku) ?? 0) + line.quantity);
      const cart = before.carts.get(line.sku);
      if (cart === undefined || !cart.locations.includes(line.location)) fail(`${command.id} held ${line.sku} at ${line.location}, not a location of channel ${command.channel}`);
      if (line.quantity > (before.available.get(stockKey(line.sku, line.location)) ?? 0)) fail(`${command.id} held ${line.quantity} of ${line.sku} at ${line.location}, more than was available there`);
    }
    for (const [sku, quantity] of perSku) {
      const budget = before.carts.get(sku)?.budget ?? 0;
      if (quantity > budget) fail(`${command.id} held ${quantity} of ${sku} on ${command.channel}, beyond the ${budget} available to it`);
    }
  }
}

/**
 * A refused single-line reserve was refused for a true reason and says how much there was. The
 * channel maximum may count or not (the ledger does not apply it to holds today; see the report).
 */
function checkRefusalIsJustified(command: Command, outcome: Outcome, before: Before): void {
  if (command.type !== 'reserve' || outcome.rejection?.code !== 'INSUFFICIENT_STOCK' || command.lines.length !== 1) return;
  const line = command.lines[0] as CartLine;
  const budget = before.carts.get(line.sku)?.budget ?? 0;
  const free = line.location === undefined ? budget : Math.max(Math.min(before.available.get(stockKey(line.sku, line.location)) ?? 0, budget), 0);
  const freeWithinMax = Math.min(free, before.policy?.maxUnits ?? Number.POSITIVE_INFINITY);
  expect(line.quantity, `${command.id} refused though ${freeWithinMax} was free`).toBeGreaterThan(freeWithinMax);
  expect(outcome.rejection.lines).toHaveLength(1);
  expect(outcome.rejection.lines[0]).toMatchObject({ sku: line.sku, requested: line.quantity, ...(line.location === undefined ? {} : { location: line.location }) });
  expect([free, freeWithinMax]).toContain(outcome.rejection.lines[0]?.available);
}

/** reserved and committed per (sku, location) are the sums of the lines of held and committed reservations. */
function checkCounters(state: LedgerState): void {
  for (const [name, tenant] of state.tenants) {
    const reserved = new Map<string, number>();
    const committed = new Map<string, number>();
    for (const reservation of tenant.reservations.values()) {
      const target = reservation.status === 'held' ? reserved : reservation.status === 'committed' ? committed : undefined;
      if (target === undefined) continue;
      for (const line of reservation.lines) target.set(stockKey(line.sku, line.location), (target.get(stockKey(line.sku, line.location)) ?? 0) + line.quantity);
    }
    for (const [sku, skuState] of tenant.skus) {
      for (const [location, stock] of skuState.locations) {
        const key = stockKey(sku, location);
        if (stock.reserved !== (reserved.get(key) ?? 0)) fail(`${name} ${key}: reserved ${stock.reserved}, held lines sum to ${reserved.get(key) ?? 0}`);
        if (stock.committed !== (committed.get(key) ?? 0)) fail(`${name} ${key}: committed ${stock.committed}, committed lines sum to ${committed.get(key) ?? 0}`);
        if (stock.onHand < 0) fail(`${name} ${key}: on hand ${stock.onHand}`);
      }
    }
    for (const key of [...reserved.keys(), ...committed.keys()]) {
      const [sku, location] = key.split('\u0000') as [string, string];
      if (tenant.skus.get(sku)?.locations.get(location) === undefined) fail(`${name} ${key}: lines at a location the ledger does not count`);
    }
  }
}

/** A SKU's version rises with every event that touches it and stays put otherwise. */
function checkVersions(command: Command, outcome: Outcome, before: Before, tenant: TenantState): void {
  const touched = new Set<string>();
  for (const event of outcome.events) {
    if (event.type === 'stock_adjustment' || event.type === 'sku_deleted' || event.type === 'sku_restored') touched.add(event.data.sku);
    if (event.type === 'order_reserved' || event.type === 'order_committed' || event.type === 'reservation_released' || event.type === 'order_fulfilled') for (const line of event.data.lines) touched.add(line.sku);
  }
  for (const [sku, state] of tenant.skus) {
    const previous = before.versions.get(sku) ?? 0;
    if (touched.has(sku) ? state.version <= previous : state.version !== previous) fail(`${command.id}: version of ${sku} went from ${previous} to ${state.version}`);
  }
}

/** Lifecycle facts that hold whatever came before. */
function checkLifecycle(command: Command, outcome: Outcome, before: Before, tenant: TenantState): void {
  const code = outcome.rejection?.code;
  if (code === 'RESERVATION_EXPIRED') {
    // Held past its time, or already released by a tick (which releases only holds past their time).
    expect(['held', 'expired']).toContain(before.reservation?.status);
    expect(command.timeMs).toBeGreaterThanOrEqual(before.reservation?.expiresAtMs ?? Number.POSITIVE_INFINITY);
  }
  if (command.type === 'commit' && code === undefined) expect(command.timeMs).toBeLessThan(before.reservation?.expiresAtMs ?? 0);
  if (command.type === 'release' && command.reason === 'expired' && code === undefined) {
    // One hold, held and due at the command's time: what a tick would have released.
    expect(before.reservation?.status).toBe('held');
    expect(command.timeMs).toBeGreaterThanOrEqual(before.reservation?.expiresAtMs ?? Number.POSITIVE_INFINITY);
    expect(outcome.events.map((event) => event.type === 'reservation_released' && event.data.reservationId === command.reservationId && event.data.from === 'held')).toEqual([true]);
  }
  if (code === 'RESERVATION_NOT_DUE') expect(command.timeMs).toBeLessThan(before.reservation?.expiresAtMs ?? 0);
  if (command.type === 'record_sale' && code !== undefined) expect(['RESERVATION_EXISTS', 'DUPLICATE', 'IDEMPOTENCY_KEY_REUSED']).toContain(code);
  if (command.type === 'expire_due' && code === undefined) {
    for (const reservation of tenant.reservations.values()) {
      if (reservation.status === 'held' && reservation.expiresAtMs <= command.nowMs) fail(`${command.id}: ${reservation.id} still held past its expiry`);
    }
    const due = outcome.events.map((event) => (event.type === 'reservation_released' ? [event.data.reason, event.data.from] : ['?', '?']));
    for (const [reason, from] of due) if (reason !== 'expired' || from !== 'held') fail(`${command.id}: expire_due emitted ${reason}/${from}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The runner

interface Checks {
  stock?: boolean;
  isolation?: boolean;
  idempotency?: boolean;
  purity?: boolean;
}

interface Run {
  state: LedgerState;
  events: InventoryEvent[];
  outcomes: Outcome[];
}

const knownCodes = new Set<RejectionCode>([
  'INSUFFICIENT_STOCK', 'STALE_SEQUENCE', 'SKU_DELETED', 'UNKNOWN_SKU', 'UNKNOWN_RESERVATION', 'RESERVATION_NOT_HELD', 'RESERVATION_NOT_COMMITTED',
  'RESERVATION_EXPIRED', 'RESERVATION_NOT_DUE', 'RESERVATION_EXISTS', 'DUPLICATE', 'IDEMPOTENCY_KEY_REUSED', 'INVALID_QUANTITY', 'UNKNOWN_LOCATION',
]);

/** Executes the commands one by one, checking after each what `checks` asks for. */
function run(commands: readonly Command[], checks: Checks = {}, state: LedgerState = initialState()): Run {
  const events: InventoryEvent[] = [];
  const outcomes: Outcome[] = [];
  const firstOutcomes = new Map<string, { fingerprint: string; outcome: Outcome }>();
  for (const command of commands) {
    const textsBefore = checks.isolation === true || checks.idempotency === true || checks.purity === true ? tenantTexts(state) : undefined;
    const before = checks.stock === true ? observeBefore(tenantState(state, command.tenant), command) : undefined;
    const ledgerBefore = checks.stock === true ? deepCopy(toSnapshot(state)) : undefined;
    if (checks.purity === true) {
      const expiries = JSON.stringify(tenantState(state, command.tenant).expiries);
      decide(state.tenants.get(command.tenant), command);
      expectSameText(tenantTexts(state), textsBefore as Map<string, string>, `decide mutated the state on ${command.id}`);
      expect(JSON.stringify(tenantState(state, command.tenant).expiries), `decide touched the expiry index on ${command.id}`).toBe(expiries);
    }
    const { outcome } = execute(state, command);
    outcomes.push(outcome);
    events.push(...outcome.events);
    if (outcome.rejection !== undefined && !knownCodes.has(outcome.rejection.code)) fail(`${command.id}: unexpected code ${outcome.rejection.code}`);
    if (checks.isolation === true) expectSameText(without(tenantTexts(state), command.tenant), without(textsBefore as Map<string, string>, command.tenant), `${command.id} changed another tenant`);
    if (checks.idempotency === true) checkIdempotency(state, command, outcome, textsBefore as Map<string, string>, firstOutcomes);
    if (before !== undefined) {
      const tenant = tenantState(state, command.tenant);
      checkStockRule(command, outcome, before, tenant);
      checkRefusalIsJustified(command, outcome, before);
      checkLifecycle(command, outcome, before, tenant);
      checkCounters(state);
      checkVersions(command, outcome, before, tenant);
      if (outcome.rejection !== undefined) {
        const after = toSnapshot(state);
        expect(after, `${command.id} was refused but changed the state`).toEqual(lessForgotten(ledgerBefore as StateSnapshot, after));
      }
    }
  }
  return { state, events, outcomes };
}

/**
 * Keys: the first use is decided normally; a later use with the same request answers DUPLICATE with
 * the first outcome, a different request IDEMPOTENCY_KEY_REUSED, and neither changes anything. Every
 * first use is then re-sent at once with a new id, which must change nothing either.
 */
function checkIdempotency(state: LedgerState, command: Command, outcome: Outcome, textsBefore: Map<string, string>, firstOutcomes: Map<string, { fingerprint: string; outcome: Outcome }>): void {
  const key = command.idempotencyKey;
  if (key === undefined) return;
  const slot = `${command.tenant}\u0000${key}`;
  const first = firstOutcomes.get(slot);
  if (first !== undefined) {
    expectSameText(tenantTexts(state), textsBefore, `${command.id}: a reused key changed the state`);
    expect(outcome.events).toEqual([]);
    if (first.fingerprint === fingerprintOf(command)) expect(outcome.rejection).toEqual({ code: 'DUPLICATE', first: first.outcome, message: expect.any(String) as unknown });
    else expect(outcome.rejection).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', idempotencyKey: key });
    return;
  }
  expect(outcome.rejection?.code).not.toBe('DUPLICATE');
  firstOutcomes.set(slot, { fingerprint: fingerprintOf(command), outcome: deepCopy(outcome) });
  const afterFirst = tenantTexts(state);
  const retry = execute(state, { ...command, id: `${command.id}-retry` });
  expect(retry.outcome.rejection?.code).toBe('DUPLICATE');
  if (retry.outcome.rejection?.code === 'DUPLICATE') expect(retry.outcome.rejection.first).toEqual(outcome);
  expect(retry.outcome.events).toEqual([]);
  expectSameText(tenantTexts(state), afterFirst, `${command.id}: the retry changed the state`);
}

// ---------------------------------------------------------------------------------------------
// The properties

describe('ledger properties', () => {
  it('keeps the stock rule after every command: no location below zero except by backorder or a recorded oversell; buffers respected; counters add up', () => {
    fc.assert(fc.property(anyStepsArb, (steps) => {
      run(materialise(steps), { stock: true });
    }), { numRuns });
  });

  it('the last valid write wins: a set with a sequence applies only when newer than every one applied before', () => {
    fc.assert(fc.property(stepsArb, (steps) => {
      const state = initialState();
      const applied = new Map<string, bigint>();
      for (const command of materialise(steps)) {
        const { outcome } = execute(state, command);
        if (command.type !== 'adjust_stock' || command.sourceSeq === undefined || outcome.rejection?.code === 'DUPLICATE' || outcome.rejection?.code === 'IDEMPOTENCY_KEY_REUSED') continue;
        const slot = `${command.tenant}\u0000${command.sku}\u0000${command.location}\u0000${command.source ?? 'api'}`;
        const last = applied.get(slot);
        const incoming = BigInt(command.sourceSeq);
        if (last === undefined || incoming > last) {
          expect(outcome.rejection, `${command.id} refused a newer sequence`).toBeUndefined();
          applied.set(slot, incoming);
        } else {
          expect(outcome.rejection).toMatchObject({ code: 'STALE_SEQUENCE', appliedSeq: String(last), incomingSeq: command.sourceSeq });
          expect(outcome.events).toHaveLength(1);
        }
        expect(tenantState(state, command.tenant).sourceSeqs.get(`${command.sku}\u0000${command.location}\u0000${command.source ?? 'api'}`)).toBe(String(applied.get(slot)));
      }
    }), { numRuns });
  });

  it('replaying the emitted events from initialState() gives the same state, and every event fits the schema', () => {
    fc.assert(fc.property(anyStepsArb, fc.nat(), (steps, cut) => {
      const commands = materialise(steps);
      const { state, events } = run(commands);
      expect(toSnapshot(replay(events))).toEqual(toSnapshot(state));
      for (const event of events) expect(validateEvent(event), `${event.id} ${event.type} breaks the event schema`).toEqual([]);
      const prefix = run(commands.slice(0, cut % (commands.length + 1)));
      expect(toSnapshot(replay(prefix.events))).toEqual(toSnapshot(prefix.state));
    }), { numRuns });
  });

  it('a command for one tenant never changes anything of another', () => {
    fc.assert(fc.property(anyStepsArb, (steps) => {
      run(materialise(steps), { isolation: true });
    }), { numRuns });
  });

  it('re-sending a command under its idempotency key changes nothing and answers DUPLICATE with the first outcome', () => {
    fc.assert(fc.property(stepsArb, (steps) => {
      run(materialise(steps), { idempotency: true });
    }), { numRuns });
  });

  it('decide never mutates its input', () => {
    fc.assert(fc.property(stepsArb, (steps) => {
      run(materialise(steps), { purity: true });
    }), { numRuns });
  });

  it('is deterministic: the same commands give the same events and the same state', () => {
    fc.assert(fc.property(stepsArb, (steps) => {
      const commands = materialise(steps);
      const first = run(commands);
      const second = run(deepCopy(commands));
      expect(JSON.stringify(second.events)).toBe(JSON.stringify(first.events));
      expect(second.outcomes).toEqual(first.outcomes);
      expect(toSnapshot(second.state, { withIdempotency: true })).toEqual(toSnapshot(first.state, { withIdempotency: true }));
    }), { numRuns });
  });

  it('a state restored from its snapshot decides every later command the same way', () => {
    fc.assert(fc.property(anyStepsArb, fc.nat(), (steps, cut) => {
      const commands = materialise(steps);
      const split = cut % (commands.length + 1);
      const original = run(commands.slice(0, split)).state;
      const restored = fromSnapshot(deepCopy(toSnapshot(original, { withIdempotency: true })));
      const rest = commands.slice(split);
      expect(run(rest, {}, restored).outcomes).toEqual(run(rest, {}, original).outcomes);
      expect(toSnapshot(restored, { withIdempotency: true })).toEqual(toSnapshot(original, { withIdempotency: true }));
    }), { numRuns });
  });

  it('a group tried on a trial copy fares as on a whole copy, and the state it was copied from stays as it was', () => {
    fc.assert(fc.property(anyStepsArb, fc.nat(), fc.integer({ min: 1, max: 12 }), (steps, cut, size) => {
      const commands = materialise(steps);
      const at = cut % commands.length;
      const state = initialState();
      for (const command of commands.slice(0, at)) execute(state, command);
      // Expiry ticks included: one releases holds that no command of the group names.
      const group = commands.slice(at, at + size);
      const before = tenantTexts(state);
      const trial = trialState(state, group);
      const whole = fromSnapshot(toSnapshot(state, { withIdempotency: true }));
      expect(JSON.stringify(group.map((command) => execute(trial, command)))).toBe(JSON.stringify(group.map((command) => execute(whole, command))));
      expect(tenantTexts(state)).toEqual(before);
      const wholeAfter = tenantTexts(whole);
      for (const [name, text] of tenantTexts(trial)) expect(text).toBe(wholeAfter.get(name));
    }), { numRuns });
  });

  it('an expiry tick tried on a trial copy releases the due holds there and leaves them held in the state', () => {
    const state = initialState();
    execute(state, { type: 'adjust_stock', id: 'a', tenant: 't0', timeMs: t0Ms, sku: 's0', location: 'l0', set: 5 });
    execute(state, { type: 'reserve', id: 'b', tenant: 't0', timeMs: t0Ms, reservationId: 'r0', channel: 'c0', lines: [{ sku: 's0', quantity: 2 }], ttlMs: 1_000 });
    const tick: Command = { type: 'expire_due', id: 'c', tenant: 't0', timeMs: t0Ms + 1_000, nowMs: t0Ms + 1_000 };
    const trial = trialState(state, [tick]);
    expect(execute(trial, tick).outcome.events.map((event) => event.type)).toEqual(['reservation_released']);
    expect(trial.tenants.get('t0')?.reservations.get('r0')?.status).toBe('expired');
    expect(availableOf(trial.tenants.get('t0')?.skus.get('s0')?.locations.get('l0') ?? { onHand: 0, committed: 0, reserved: 0 })).toBe(5);
    expect(state.tenants.get('t0')?.reservations.get('r0')?.status).toBe('held');
    expect(state.tenants.get('t0')?.skus.get('s0')?.locations.get('l0')?.reserved).toBe(2);
  });

  it('several expiry ticks tried on a trial copy release there the holds a whole copy releases, none in the state', () => {
    const holds = 2 * limits.expirationsPerTickMax + 100;
    const state = initialState();
    execute(state, { type: 'adjust_stock', id: 'a', tenant: 't0', timeMs: t0Ms, sku: 's0', location: 'l0', set: holds });
    for (let index = 0; index < holds; index += 1) {
      execute(state, { type: 'reserve', id: `r${index}`, tenant: 't0', timeMs: t0Ms, reservationId: `r${index}`, channel: 'c0', lines: [{ sku: 's0', quantity: 1 }], ttlMs: 1_000 + index });
    }
    const group: Command[] = [1, 2, 3].map((index) => ({ type: 'expire_due', id: `e${index}`, tenant: 't0', timeMs: t0Ms + 3_600_000, nowMs: t0Ms + 3_600_000 }));
    const before = tenantTexts(state);
    const trial = trialState(state, group);
    const whole = fromSnapshot(toSnapshot(state, { withIdempotency: true }));
    const released = group.map((command) => execute(trial, command).outcome.events.length);
    expect(released).toEqual(group.map((command) => execute(whole, command).outcome.events.length));
    expect(released).toEqual([limits.expirationsPerTickMax, limits.expirationsPerTickMax, 100]);
    expect(tenantTexts(state)).toEqual(before);
    expect(tenantTexts(trial).get('t0')).toBe(tenantTexts(whole).get('t0'));
  });

  it('restoring a snapshot taken after any event, then applying the rest of the log, gives the state of a full replay', () => {
    fc.assert(fc.property(anyStepsArb, fc.nat(), (steps, cut) => {
      const { events } = run(materialise(steps));
      const split = cut % (events.length + 1);
      const restored = fromSnapshot(deepCopy(toSnapshot(replay(events.slice(0, split)))));
      for (const event of events.slice(split)) evolve(restored, event);
      const full = replay(events);
      expect(toSnapshot(restored)).toEqual(toSnapshot(full));
      expect(finishedIndexes(restored)).toEqual(finishedIndexes(full));
    }), { numRuns });
  });

  it('the long sequences forget finished reservations and take their ids again', () => {
    let forgotten = 0;
    let reused = 0;
    for (const steps of fc.sample(longStepsArb, { numRuns: 200, seed: 42 })) {
      const state = initialState();
      const finished = new Set<string>();
      const gone = new Set<string>();
      for (const command of materialise(steps)) {
        for (const event of execute(state, command).outcome.events) {
          if (!('reservationId' in event.data)) continue;
          const slot = `${event.tenant}\u0000${event.data.reservationId}`;
          if ((event.type === 'order_reserved' || event.type === 'order_committed') && gone.delete(slot)) reused += 1;
          if (event.type === 'reservation_released' || event.type === 'order_fulfilled') finished.add(slot);
        }
        for (const slot of finished) {
          const [tenant, id] = slot.split('\u0000') as [string, string];
          if (tenantState(state, tenant).reservations.has(id)) continue;
          finished.delete(slot);
          gone.add(slot);
          forgotten += 1;
        }
      }
    }
    expect(forgotten).toBeGreaterThan(50);
    expect(reused).toBeGreaterThan(5);
  });

  it('the generators reach every outcome the properties are about', () => {
    const codes = new Set<string>();
    const kinds = new Set<string>();
    let backorderedBelowZero = 0;
    let expired = 0;
    for (const steps of fc.sample(stepsArb, { numRuns: 400, seed: 42 })) {
      const commands = materialise(steps);
      const state = initialState();
      for (const command of commands) {
        const backorder = command.type === 'reserve' && channelPolicyOf(tenantState(state, command.tenant), command.channel).backorder;
        const { outcome } = execute(state, command);
        if (outcome.rejection !== undefined) codes.add(outcome.rejection.code);
        for (const event of outcome.events) {
          kinds.add(event.type === 'conflict_detected' ? `conflict:${event.data.kind}` : event.type === 'reservation_released' ? `released:${event.data.reason}:${event.data.from}` : event.type);
          if (event.type === 'reservation_released' && event.data.reason === 'expired') expired += 1;
          if (backorder && event.type === 'order_reserved' && event.data.lines.some((line) => availableOf(tenantState(state, command.tenant).skus.get(line.sku)?.locations.get(line.location) ?? { onHand: 0, committed: 0, reserved: 0 }) < 0)) backorderedBelowZero += 1;
        }
      }
    }
    expect([...knownCodes].filter((code) => !codes.has(code))).toEqual([]);
    expect([...kinds].sort()).toEqual([
      'channel_policy_set', 'conflict:oversell', 'conflict:stale_sequence', 'order_committed', 'order_fulfilled', 'order_reserved',
      'released:cancelled:committed', 'released:cancelled:held', 'released:expired:held', 'released:released:held',
      'sku_deleted', 'sku_restored', 'stock_adjustment', 'sync_complete',
    ]);
    expect(backorderedBelowZero).toBeGreaterThan(0);
    expect(expired).toBeGreaterThan(0);
    expect(limits.expirationsPerTickMax).toBeGreaterThan(sequenceLengthMax);
  });
});
