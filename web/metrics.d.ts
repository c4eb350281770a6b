// Types of metrics.js, for the unit tests and editors; the browser loads the .js file only.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export const lagMetricName: string;
export const metricsTextCharsMax: number;
export function parsePrometheusText(text: string): Sample[];
export function parseSampleLine(line: string): Sample | undefined;
export function parseValue(field: string): number | undefined;
export function lagSecondsByChannel(samples: Sample[], tenant: string): Map<string, number>;
