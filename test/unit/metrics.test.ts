import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/app/metrics.js';
import type { Outcome } from '../../src/core/index.js';

const accepted: Outcome = { events: [] };
const refused: Outcome = { events: [], rejection: { code: 'INSUFFICIENT_STOCK', message: 'no', lines: [] } } as unknown as Outcome;
const duplicate: Outcome = { events: [], rejection: { code: 'DUPLICATE', message: 'again' } } as unknown as Outcome;

async function sample(metrics: Metrics, name: string): Promise<string[]> {
  return (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

describe('metrics', () => {
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

  it('reports whether the engine takes commands at each scrape (no engine watched: not ready)', async () => {
    const metrics = new Metrics(Date.now, { processMetrics: false });
    expect(await sample(metrics, 'stockline_engine_ready')).toEqual(['stockline_engine_ready 0']);
    let ready = true;
    metrics.watchEngine(() => ready);
    expect(await sample(metrics, 'stockline_engine_ready')).toEqual(['stockline_engine_ready 1']);
    ready = false;
    expect(await sample(metrics, 'stockline_engine_ready')).toEqual(['stockline_engine_ready 0']);
  });
});
