import { describe, expect, it } from 'vitest';
import { HeapWatch } from '../../src/app/heap.js';
import { Metrics } from '../../src/app/metrics.js';
import { execute, initialState } from '../../src/core/index.js';
import type { LedgerState, Outcome } from '../../src/core/index.js';

const accepted: Outcome = { events: [] };
const refused: Outcome = { events: [], rejection: { code: 'INSUFFICIENT_STOCK', message: 'no', lines: [] } } as unknown as Outcome;
const duplicate: Outcome = { events: [], rejection: { code: 'DUPLICATE', message: 'again' } } as unknown as Outcome;

async function sample(metrics: Metrics, name: string): Promise<string[]> {
  return (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

/** A ledger with two tenants, acme and globex, each holding 5 units of SKU A at location wh. */
function stockedTenants(nowMs: number): LedgerState {
  const state = initialState();
  for (const tenant of ['acme', 'globex']) execute(state, { type: 'adjust_stock', id: `${tenant}-a`, tenant, timeMs: nowMs, sku: 'A', location: 'wh', set: 5 });
  return state;
}

describe('metrics', () => {
  it('reports lag and outbox depth only for configured (tenant, channel) pairs: a removed channel does not page', async () => {
    const changedAtMs = Date.UTC(2026, 11, 7, 9);
    let nowMs = changedAtMs + 2_000;
    const metrics = new Metrics(() => nowMs, { processMetrics: false });
    metrics.watchChannels({
      oldestUnsynced: () => [
        { tenant: 'acme', channel: 'old-portal', changedAtMs: changedAtMs - 60_000 },
        { tenant: 'acme', channel: 'shop', changedAtMs },
        { tenant: 'globex', channel: 'shop', changedAtMs: changedAtMs - 90_000 },
      ],
      depth: () => [
        { tenant: 'acme', channel: 'old-portal', count: 7 }, { tenant: 'acme', channel: 'shop', count: 2 },
        { tenant: 'globex', channel: 'shop', count: 5 }, { tenant: 'globex', channel: 'b2b', count: 1 },
      ],
    }, [{ tenant: 'acme', channel: 'shop' }, { tenant: 'globex', channel: 'b2b' }]);
    nowMs += 1_000;
    expect(await sample(metrics, 'stockline_reconciliation_lag_seconds')).toEqual([
      'stockline_reconciliation_lag_seconds{tenant="acme",channel="shop"} 3',
      'stockline_reconciliation_lag_seconds{tenant="globex",channel="b2b"} 0',
    ]);
    expect(await sample(metrics, 'stockline_outbox_depth')).toEqual([
      'stockline_outbox_depth{channel="shop"} 2',
      'stockline_outbox_depth{channel="b2b"} 1',
    ]);
  });

  it('counts commands by type and outcome, and times reservations by outcome', async () => {
    const metrics = new Metrics(Date.now, { processMetrics: false });
    for (let index = 0; index < 3; index += 1) metrics.commandDecided({ type: 'reserve' }, accepted, 2);
    metrics.commandDecided({ type: 'reserve' }, refused, 30);
    metrics.commandDecided({ type: 'commit' }, duplicate, 1);
    metrics.commandDecided({ type: 'commit' }, accepted, 1);
    expect(await sample(metrics, 'stockline_commands_total')).toEqual([
      'stockline_commands_total{type="reserve",outcome="accepted"} 3',
      'stockline_commands_total{type="reserve",outcome="rejected"} 1',
      'stockline_commands_total{type="commit",outcome="duplicate"} 1',
      'stockline_commands_total{type="commit",outcome="accepted"} 1',
    ]);
    expect(await sample(metrics, 'stockline_reservation_latency_seconds_count')).toEqual([
      'stockline_reservation_latency_seconds_count{outcome="accepted"} 3',
      'stockline_reservation_latency_seconds_count{outcome="rejected"} 1',
    ]);
    expect(await sample(metrics, 'stockline_reservation_latency_seconds_sum')).toEqual([
      'stockline_reservation_latency_seconds_sum{outcome="accepted"} 0.006',
      'stockline_reservation_latency_seconds_sum{outcome="rejected"} 0.03',
    ]);
  });

  it('counts appended events by type', async () => {
    const metrics = new Metrics(Date.now, { processMetrics: false });
    const event = (type: string) => ({ position: 1, event: { type, data: {} } }) as never;
    metrics.batchCommitted({ events: [event('order_reserved'), event('order_reserved'), event('stock_adjusted')], touched: new Map() });
    expect(await sample(metrics, 'stockline_events_total')).toEqual([
      'stockline_events_total{type="order_reserved"} 2',
      'stockline_events_total{type="stock_adjusted"} 1',
    ]);
  });

  it('labels oversells by channel within a bound, with the recount and overflow series there from the start', async () => {
    const metrics = new Metrics(Date.now, { processMetrics: false });
    metrics.watchChannels({ oldestUnsynced: () => [], depth: () => [] }, [{ tenant: 'acme', channel: 'shop' }]);
    expect(await sample(metrics, 'stockline_oversell_incidents_total')).toEqual([
      'stockline_oversell_incidents_total{channel="shop"} 0',
      'stockline_oversell_incidents_total{channel="external"} 0',
      'stockline_oversell_incidents_total{channel="other"} 0',
    ]);
    const oversell = (channel?: string) => ({ position: 1, event: { type: 'conflict_detected', data: { kind: 'oversell', sku: 'A', location: 'wh', shortfall: 1, ...(channel === undefined ? {} : { channel }) } } }) as never;
    // An order names its channel freely: 150 names, of which the first 100 get a series and the rest share one.
    const named = Array.from({ length: 150 }, (_, index) => oversell(`marketplace-${index}`));
    metrics.batchCommitted({ events: [oversell('shop'), oversell(), ...named, oversell('marketplace-0')], touched: new Map() });
    const lines = await sample(metrics, 'stockline_oversell_incidents_total');
    expect(lines).toHaveLength(3 + 100);
    expect(lines).toEqual(expect.arrayContaining([
      'stockline_oversell_incidents_total{channel="shop"} 1',
      'stockline_oversell_incidents_total{channel="external"} 1',
      'stockline_oversell_incidents_total{channel="other"} 50',
      'stockline_oversell_incidents_total{channel="marketplace-0"} 2',
      'stockline_oversell_incidents_total{channel="marketplace-99"} 1',
    ]));
  });

  it('reports Kafka consumer lag per topic as one reading: a topic no longer read drops out', async () => {
    const metrics = new Metrics(Date.now, { processMetrics: false });
    metrics.kafkaLagged(new Map([['stockline.commands', 12], ['stockline.events', 3]]));
    expect(await sample(metrics, 'stockline_kafka_consumer_lag_records')).toEqual([
      'stockline_kafka_consumer_lag_records{topic="stockline.commands"} 12',
      'stockline_kafka_consumer_lag_records{topic="stockline.events"} 3',
    ]);
    metrics.kafkaLagged(new Map([['stockline.events', 0]]));
    expect(await sample(metrics, 'stockline_kafka_consumer_lag_records')).toEqual(['stockline_kafka_consumer_lag_records{topic="stockline.events"} 0']);
  });

  it('reports at each scrape whether each change-data-capture source streams', async () => {
    const metrics = new Metrics(Date.now, { processMetrics: false });
    let streaming = false;
    metrics.watchSourceUp('pg:warehouse', () => streaming);
    metrics.watchSourceUp('debezium:shop', () => true);
    expect(await sample(metrics, 'stockline_cdc_source_up')).toEqual([
      'stockline_cdc_source_up{source="pg:warehouse"} 0',
      'stockline_cdc_source_up{source="debezium:shop"} 1',
    ]);
    streaming = true;
    expect(await sample(metrics, 'stockline_cdc_source_up')).toContain('stockline_cdc_source_up{source="pg:warehouse"} 1');
  });

  it('reports whether the engine takes commands at each scrape (no engine watched: not ready)', async () => {
    const metrics = new Metrics(Date.now, { processMetrics: false });
    expect(await sample(metrics, 'stockline_engine_ready')).toEqual(['stockline_engine_ready 0']);
    let ready = true;
    metrics.watchEngine(() => ready);
    expect(await sample(metrics, 'stockline_engine_ready')).toEqual(['stockline_engine_ready 1']);
    ready = false;
    expect(await sample(metrics, 'stockline_engine_ready')).toEqual(['stockline_engine_ready 0']);
  });

  it('reports per tenant how long the hold longest past its expiry has waited, and nothing for a tenant with none due', async () => {
    let nowMs = Date.UTC(2026, 11, 7, 9);
    const metrics = new Metrics(() => nowMs, { processMetrics: false });
    const state = stockedTenants(nowMs);
    execute(state, { type: 'reserve', id: 'r1', tenant: 'acme', timeMs: nowMs, reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000 });
    execute(state, { type: 'reserve', id: 'r2', tenant: 'acme', timeMs: nowMs, reservationId: 'r2', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 90_000 });
    execute(state, { type: 'reserve', id: 'r3', tenant: 'globex', timeMs: nowMs, reservationId: 'r3', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 3_600_000 });
    metrics.watchExpiry(() => state.tenants);
    expect(await sample(metrics, 'stockline_expiry_lag_seconds')).toEqual([]);
    nowMs += 100_000;
    expect(await sample(metrics, 'stockline_expiry_lag_seconds')).toEqual(['stockline_expiry_lag_seconds{tenant="acme"} 40']);
    execute(state, { type: 'release', id: 'x', tenant: 'acme', timeMs: nowMs, reservationId: 'r1', reason: 'released' });
    expect(await sample(metrics, 'stockline_expiry_lag_seconds')).toEqual(['stockline_expiry_lag_seconds{tenant="acme"} 10']);
    execute(state, { type: 'expire_due', id: 'y', tenant: 'acme', timeMs: nowMs, nowMs });
    expect(await sample(metrics, 'stockline_expiry_lag_seconds')).toEqual([]);
  });

  it('reports the idempotency records each tenant with any keeps, and the bound', async () => {
    const nowMs = Date.UTC(2026, 11, 7, 9);
    const metrics = new Metrics(() => nowMs, { processMetrics: false });
    const state = stockedTenants(nowMs);
    for (const key of ['k1', 'k2']) execute(state, { type: 'adjust_stock', id: key, tenant: 'acme', timeMs: nowMs, sku: 'A', location: 'wh', delta: 1, idempotencyKey: key });
    metrics.watchState(() => state.tenants, 1_000);
    expect(await sample(metrics, 'stockline_idempotency_records')).toEqual(['stockline_idempotency_records{tenant="acme"} 2']);
    expect(await sample(metrics, 'stockline_idempotency_records_max')).toEqual(['stockline_idempotency_records_max 1000']);
  });

  it('reports what the last full collection left live, and whether the heap is nearly full', async () => {
    const metrics = new Metrics(() => 0, { processMetrics: false });
    let live = 100;
    const heap = new HeapWatch({ limitBytes: 1_000, liveBytes: () => live });
    metrics.watchHeap(heap);
    // Before the first full collection: what the old generation holds now.
    const [now] = await sample(metrics, 'stockline_heap_old_generation_live_bytes');
    expect(Number(now?.split(' ')[1])).toBeGreaterThan(1_000_000);
    expect(await sample(metrics, 'stockline_heap_full')).toEqual(['stockline_heap_full 0']);
    live = 950;
    heap.collected();
    expect(await sample(metrics, 'stockline_heap_old_generation_live_bytes')).toEqual(['stockline_heap_old_generation_live_bytes 950']);
    expect(await sample(metrics, 'stockline_heap_full')).toEqual(['stockline_heap_full 1']);
  });

  it('reports the reservations each tenant with any keeps, held, committed and finished', async () => {
    const nowMs = Date.UTC(2026, 11, 7, 9);
    const metrics = new Metrics(() => nowMs, { processMetrics: false });
    const state = stockedTenants(nowMs);
    metrics.watchState(() => state.tenants, 1_000);
    expect(await sample(metrics, 'stockline_reservations')).toEqual([]);
    const reserve = (id: string): void => {
      execute(state, { type: 'reserve', id, tenant: 'acme', timeMs: nowMs, reservationId: id, channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000 });
    };
    for (const id of ['r1', 'r2', 'r3']) reserve(id);
    execute(state, { type: 'commit', id: 'c2', tenant: 'acme', timeMs: nowMs, reservationId: 'r2' });
    execute(state, { type: 'release', id: 'x3', tenant: 'acme', timeMs: nowMs, reservationId: 'r3', reason: 'released' });
    expect(await sample(metrics, 'stockline_reservations')).toEqual(['stockline_reservations{tenant="acme"} 3']);
    // A finished reservation is counted until it is forgotten, 25 hours after it finished.
    execute(state, { type: 'adjust_stock', id: 'later', tenant: 'acme', timeMs: nowMs + 25 * 3_600_000, sku: 'A', location: 'wh', delta: 1 });
    expect(await sample(metrics, 'stockline_reservations')).toEqual(['stockline_reservations{tenant="acme"} 2']);
  });
});
