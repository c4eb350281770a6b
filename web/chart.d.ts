// Types of chart.js, for the unit tests and editors; the browser loads the .js file only.

export interface Point {
  timeMs: number;
  value: number;
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

export const seriesColorsCount: number;
export function niceCeiling(value: number): number;
export function linePath(points: Point[], options: Box & { xStartMs: number; xEndMs: number; yMax: number; gapMs?: number }): string;
export function maxValue(series: Array<{ points: Point[] }>): number;
export function formatAgo(ms: number): string;
export function renderLineChart(svg: unknown, options: {
  series: Array<{ name: string; colorIndex: number; points: Point[] }>;
  xStartMs: number;
  xEndMs: number;
  yMaxFloor?: number;
  threshold?: { value: number; label: string };
  formatY?: (value: number) => string;
  gapMs?: number;
  emptyText?: string;
}): void;
