// Reads the Prometheus text exposition format (version 0.0.4) that /metrics serves; pure, no DOM.

export const lagMetricName = 'stockline_reconciliation_lag_seconds';

/** Larger bodies are refused rather than parsed: the dashboard polls every 2 s. */
export const metricsTextCharsMax = 8_000_000;

const namePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const labelNamePattern = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const floatPattern = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const escapes = { '\\': '\\', '"': '"', n: '\n' };

/**
 * Every sample of a text exposition, in order. Comments (HELP, TYPE) are skipped; a malformed line is
 * skipped too, so one odd line never hides the rest.
 * @param {string} text
 * @returns {Array<{ name: string, labels: Record<string, string>, value: number, timestampMs?: number }>}
 */
export function parsePrometheusText(text) {
  if (text.length > metricsTextCharsMax) throw new RangeError(`metrics text is longer than ${metricsTextCharsMax} characters`);
  const samples = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseSampleLine(line);
    if (sample !== undefined) samples.push(sample);
  }
  return samples;
}

/** One `name{labels} value [timestamp]` line, or undefined when it does not parse. */
export function parseSampleLine(line) {
  const name = namePattern.exec(line)?.[0];
  if (name === undefined) return undefined;
  let rest = line.slice(name.length);
  let labels = {};
  if (rest.startsWith('{')) {
    const parsed = parseLabels(rest);
    if (parsed === undefined) return undefined;
    labels = parsed.labels;
    rest = rest.slice(parsed.length);
  }
  const fields = rest.trim().split(/\s+/);
  if (fields.length < 1 || fields.length > 2 || fields[0] === '') return undefined;
  const value = parseValue(fields[0]);
  if (value === undefined) return undefined;
  if (fields.length === 1) return { name, labels, value };
  const timestampMs = Number(fields[1]);
  if (!Number.isInteger(timestampMs)) return undefined;
  return { name, labels, value, timestampMs };
}

/** Parses `{a="1",b="x\"y"}` at the start of `text`; returns the labels and how many characters it used. */
function parseLabels(text) {
  const labels = {};
  let at = 1;
  for (;;) {
    at = skipSpaces(text, at);
    if (text[at] === '}') return { labels, length: at + 1 };
    const labelName = labelNamePattern.exec(text.slice(at))?.[0];
    if (labelName === undefined) return undefined;
    at = skipSpaces(text, at + labelName.length);
    if (text[at] !== '=') return undefined;
    at = skipSpaces(text, at + 1);
    const quoted = readQuoted(text, at);
    if (quoted === undefined) return undefined;
    labels[labelName] = quoted.value;
    at = skipSpaces(text, quoted.end);
    if (text[at] === ',') at += 1;
    else if (text[at] !== '}') return undefined;
  }
}

/** A double-quoted label value starting at `start`, with \\, \" and \n unescaped. */
function readQuoted(text, start) {
  if (text[start] !== '"') return undefined;
  let value = '';
  for (let at = start + 1; at < text.length; at += 1) {
    const char = text[at];
    if (char === '"') return { value, end: at + 1 };
    if (char === '\\') {
      const next = text[at + 1];
      value += escapes[next] ?? `\\${next ?? ''}`;
      at += 1;
    } else {
      value += char;
    }
  }
  return undefined;
}

function skipSpaces(text, at) {
  while (text[at] === ' ' || text[at] === '\t') at += 1;
  return at;
}

/** A sample value: a float, or NaN, +Inf, -Inf as the format spells them. */
export function parseValue(field) {
  if (field === 'NaN') return Number.NaN;
  if (field === '+Inf' || field === 'Inf') return Number.POSITIVE_INFINITY;
  if (field === '-Inf') return Number.NEGATIVE_INFINITY;
  return floatPattern.test(field) ? Number(field) : undefined;
}

/**
 * The reconciliation lag of one tenant, per channel, in seconds. If several series share a channel
 * (several nodes behind one address), the worst one counts.
 * @returns {Map<string, number>}
 */
export function lagSecondsByChannel(samples, tenant) {
  const lag = new Map();
  for (const sample of samples) {
    if (sample.name !== lagMetricName || sample.labels.tenant !== tenant) continue;
    const channel = sample.labels.channel;
    if (channel === undefined || !Number.isFinite(sample.value)) continue;
    lag.set(channel, Math.max(lag.get(channel) ?? 0, sample.value));
  }
  return lag;
}
