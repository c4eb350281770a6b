// The dashboard's chart geometry and labels: round axis maxima, polylines with gaps, time and rate wording.

import { describe, expect, it } from 'vitest';
import { formatAgo, linePath, maxValue, niceCeiling } from '../../web/chart.js';
import { chartStartMs, formatRate, formatSeconds } from '../../web/panels.js';

describe('niceCeiling', () => {
  it('rounds up to 1, 2, 2.5 or 5 times a power of ten', () => {
    expect([0.3, 1, 1.1, 2.2, 4, 7, 12, 0.042, 2500].map(niceCeiling)).toEqual([0.5, 1, 2, 2.5, 5, 10, 20, 0.05, 2500]);
  });

  it('gives 1 for nothing, zero, negatives and infinity', () => {
    expect([0, -3, Number.NaN, Number.POSITIVE_INFINITY].map(niceCeiling)).toEqual([1, 1, 1, 1]);
  });
});

describe('linePath', () => {
  const box = { left: 0, top: 0, width: 100, height: 50, xStartMs: 0, xEndMs: 10_000, yMax: 10 };

  it('maps time to x and value to y, with y growing downwards', () => {
    expect(linePath([{ timeMs: 0, value: 0 }, { timeMs: 5_000, value: 5 }, { timeMs: 10_000, value: 10 }], box)).toBe('M0,50 L50,25 L100,0');
  });

  it('clamps values to the axis and leaves out points outside the time range', () => {
    expect(linePath([{ timeMs: -1, value: 1 }, { timeMs: 0, value: 20 }, { timeMs: 10_000, value: -4 }], box)).toBe('M0,0 L100,50');
  });

  it('starts a new segment across a gap or a missing value', () => {
    const points = [{ timeMs: 0, value: 1 }, { timeMs: 1_000, value: 1 }, { timeMs: 8_000, value: 1 }, { timeMs: 9_000, value: Number.NaN }, { timeMs: 10_000, value: 1 }];
    expect(linePath(points, { ...box, gapMs: 2_000 })).toBe('M0,45 L10,45 M80,45 M100,45');
  });

  it('is empty without points', () => {
    expect(linePath([], box)).toBe('');
  });
});

describe('labels', () => {
  it('finds the largest finite value over every series', () => {
    expect(maxValue([{ points: [{ timeMs: 0, value: 2 }] }, { points: [{ timeMs: 0, value: Number.POSITIVE_INFINITY }, { timeMs: 1, value: 3 }] }])).toBe(3);
  });

  it('words how long ago a point of the time axis is', () => {
    expect([0, 30_000, 60_000, 90_000, 150_000, 300_000].map(formatAgo)).toEqual(['now', '−30 s', '−1 min', '−90 s', '−2.5 min', '−5 min']);
  });

  it('words seconds and rates briefly', () => {
    expect([0.0123, 0.5, 1.25, 59.96, 61].map(formatSeconds)).toEqual(['12 ms', '500 ms', '1.3 s', '60.0 s', '1 min 1 s']);
    expect(formatSeconds(Number.NaN)).toBe('–');
    expect([0, 0.25, 3, 12.4].map(formatRate)).toEqual(['0/s', '0.3/s', '3.0/s', '12/s']);
  });

  it('starts the time axis at least a minute back and at most five', () => {
    const nowMs = 1_000_000_000;
    expect(chartStartMs(nowMs, nowMs - 5_000)).toBe(nowMs - 60_000);
    expect(chartStartMs(nowMs, nowMs - 120_000)).toBe(nowMs - 120_000);
    expect(chartStartMs(nowMs, nowMs - 3_600_000)).toBe(nowMs - 300_000);
  });
});
