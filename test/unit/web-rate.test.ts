// The dashboard's time windows: events per second over five minutes, and sampled series, both bounded.

import { describe, expect, it } from 'vitest';
import { chartWindowMs, createRateWindow, createSeriesHistory } from '../../web/rate.js';

const t0Ms = 1_700_000_000_000;

describe('createRateWindow', () => {
  it('counts events per second and leaves out the second still filling', () => {
    const window = createRateWindow({ windowMs: 5_000, bucketMs: 1_000 });
    window.add(t0Ms + 100);
    window.add(t0Ms + 900);
    window.add(t0Ms + 1_500, 3);
    window.add(t0Ms + 2_200);
    const series = window.series(t0Ms + 2_500);
    expect(series).toHaveLength(5);
    expect(series.map((point) => point.perSecond)).toEqual([0, 0, 0, 2, 3]);
    expect(series[4]?.timeMs).toBe(t0Ms + 2_000);
  });

  it('forgets buckets that slid out of the window, even when their slot is not reused', () => {
    const window = createRateWindow({ windowMs: 3_000, bucketMs: 1_000 });
    window.add(t0Ms);
    expect(window.series(t0Ms + 1_000).at(-1)?.perSecond).toBe(1);
    expect(window.series(t0Ms + 10_000).every((point) => point.perSecond === 0)).toBe(true);
  });

  it('reuses a slot for a later bucket instead of adding to the old count', () => {
    const window = createRateWindow({ windowMs: 3_000, bucketMs: 1_000 });
    window.add(t0Ms, 5);
    window.add(t0Ms + 3_000, 1);
    expect(window.series(t0Ms + 4_000).map((point) => point.perSecond)).toEqual([0, 0, 1]);
  });

  it('ignores events older than the window behind the newest one', () => {
    const window = createRateWindow({ windowMs: 3_000, bucketMs: 1_000 });
    window.add(t0Ms + 10_000);
    window.add(t0Ms, 50);
    expect(window.series(t0Ms + 11_000).map((point) => point.perSecond)).toEqual([0, 0, 1]);
  });

  it('gives the mean rate over a span of complete seconds', () => {
    const window = createRateWindow();
    for (let second = 0; second < 10; second += 1) window.add(t0Ms + second * 1_000, second % 2 === 0 ? 4 : 0);
    expect(window.ratePerSecond(t0Ms + 10_000, 10_000)).toBe(2);
    expect(window.ratePerSecond(t0Ms + 10_000, 2_000)).toBe(0 / 2 + 4 / 2);
  });

  it('holds five minutes of one-second buckets by default', () => {
    expect(createRateWindow().series(t0Ms)).toHaveLength(chartWindowMs / 1_000);
  });

  it('refuses a bucket longer than the window', () => {
    expect(() => createRateWindow({ windowMs: 1_000, bucketMs: 2_000 })).toThrow(RangeError);
  });
});

describe('createSeriesHistory', () => {
  it('keeps points inside the window, per series, oldest first', () => {
    const history = createSeriesHistory({ windowMs: 10_000 });
    history.push('web', t0Ms, 1);
    history.push('web', t0Ms + 6_000, 2);
    history.push('shopify', t0Ms + 6_000, 5);
    history.push('web', t0Ms + 12_000, 3);
    expect(history.snapshot(t0Ms + 12_000)).toEqual(new Map([
      ['web', [{ timeMs: t0Ms + 6_000, value: 2 }, { timeMs: t0Ms + 12_000, value: 3 }]],
      ['shopify', [{ timeMs: t0Ms + 6_000, value: 5 }]],
    ]));
  });

  it('drops a series with no point left in the window', () => {
    const history = createSeriesHistory({ windowMs: 10_000 });
    history.push('gone', t0Ms, 1);
    expect(history.snapshot(t0Ms + 20_000).size).toBe(0);
  });

  it('bounds points per series and the number of series', () => {
    const history = createSeriesHistory({ windowMs: 1_000_000, pointsMax: 3, seriesMax: 2 });
    for (let index = 0; index < 10; index += 1) history.push('web', t0Ms + index, index);
    history.push('b2b', t0Ms, 1);
    history.push('third', t0Ms, 1);
    const snapshot = history.snapshot(t0Ms + 10);
    expect(snapshot.get('web')?.map((point) => point.value)).toEqual([7, 8, 9]);
    expect([...snapshot.keys()]).toEqual(['web', 'b2b']);
  });
});
