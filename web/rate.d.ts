// Types of rate.js, for the unit tests and editors; the browser loads the .js file only.

export const chartWindowMs: number;

export interface RateWindow {
  readonly bucketMs: number;
  add(timeMs: number, count?: number): void;
  series(nowMs: number): Array<{ timeMs: number; perSecond: number }>;
  ratePerSecond(nowMs: number, spanMs: number): number;
}

export function createRateWindow(options?: { windowMs?: number; bucketMs?: number }): RateWindow;

export interface SeriesHistory {
  push(name: string, timeMs: number, value: number): void;
  snapshot(nowMs: number): Map<string, Array<{ timeMs: number; value: number }>>;
  clear(): void;
}

export function createSeriesHistory(options?: { windowMs?: number; pointsMax?: number; seriesMax?: number }): SeriesHistory;
