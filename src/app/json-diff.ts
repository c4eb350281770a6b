// Differences between two JSON values, as JSON pointers with both sides: for readable test and CLI output.

export interface Difference {
  pointer: string;
  expected: unknown;
  actual: unknown;
}

const escape = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function jsonDiff(expected: unknown, actual: unknown, pointer = '', out: Difference[] = [], max = 200): Difference[] {
  if (out.length >= max) return out;
  if (Array.isArray(expected) && Array.isArray(actual)) {
    const length = Math.max(expected.length, actual.length);
    for (let index = 0; index < length; index += 1) jsonDiff(expected[index], actual[index], `${pointer}/${index}`, out, max);
    return out;
  }
  if (isObject(expected) && isObject(actual)) {
    const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
    for (const key of [...keys].sort()) jsonDiff(expected[key], actual[key], `${pointer}/${escape(key)}`, out, max);
    return out;
  }
  if (JSON.stringify(expected) !== JSON.stringify(actual)) out.push({ pointer: pointer || '/', expected, actual });
  return out;
}

export function formatDiff(differences: Difference[]): string {
  return differences.map(({ pointer, expected, actual }) => {
    const show = (value: unknown): string => (value === undefined ? '(absent)' : JSON.stringify(value));
    return `  ${pointer}: expected ${show(expected)}, got ${show(actual)}\n`;
  }).join('');
}
