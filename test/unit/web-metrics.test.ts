// The dashboard's Prometheus text parser: what /metrics serves, odd but valid lines, and lines to skip.

import { describe, expect, it } from 'vitest';
import { lagSecondsByChannel, parsePrometheusText, parseSampleLine, parseValue } from '../../web/metrics.js';

const exposition = [
  '# HELP stockline_reconciliation_lag_seconds Age of the oldest change not yet on every channel.',
  '# TYPE stockline_reconciliation_lag_seconds gauge',
  'stockline_reconciliation_lag_seconds{tenant="acme",channel="web"} 0.25',
  'stockline_reconciliation_lag_seconds{tenant="acme",channel="shopify"} 7',
  'stockline_reconciliation_lag_seconds{tenant="globex",channel="web"} 3',
  '# TYPE stockline_commands_total counter',
  'stockline_commands_total{type="reserve",outcome="accepted"} 1027',
  'stockline_reservation_latency_seconds_bucket{le="+Inf",outcome="accepted"} 12',
  'stockline_process_start_time_seconds 1.7e9',
  '',
].join('\n');

describe('parsePrometheusText', () => {
  it('reads every sample with its labels and skips comments and blank lines', () => {
    const samples = parsePrometheusText(exposition);
    expect(samples).toHaveLength(6);
    expect(samples[0]).toEqual({ name: 'stockline_reconciliation_lag_seconds', labels: { tenant: 'acme', channel: 'web' }, value: 0.25 });
    expect(samples[3]).toEqual({ name: 'stockline_commands_total', labels: { type: 'reserve', outcome: 'accepted' }, value: 1027 });
    expect(samples[4]?.labels).toEqual({ le: '+Inf', outcome: 'accepted' });
    expect(samples[5]).toEqual({ name: 'stockline_process_start_time_seconds', labels: {}, value: 1.7e9 });
  });

  it('unescapes label values and keeps commas, braces and spaces inside them', () => {
    const sample = parseSampleLine('m{path="a\\\\b",quote="say \\"hi\\"",text="x, {y} z",nl="1\\n2"} 1');
    expect(sample?.labels).toEqual({ path: 'a\\b', quote: 'say "hi"', text: 'x, {y} z', nl: '1\n2' });
  });

  it('accepts a trailing comma, spaces around labels, a timestamp and CRLF line ends', () => {
    expect(parsePrometheusText('m{ a = "1" , } 2 1700000000000\r\n')).toEqual([{ name: 'm', labels: { a: '1' }, value: 2, timestampMs: 1700000000000 }]);
  });

  it('reads NaN and the infinities as the format spells them', () => {
    expect(parseValue('NaN')).toBeNaN();
    expect(parseValue('+Inf')).toBe(Number.POSITIVE_INFINITY);
    expect(parseValue('-Inf')).toBe(Number.NEGATIVE_INFINITY);
    expect(parseValue('-1.5e-3')).toBe(-0.0015);
    expect(parseValue('twelve')).toBeUndefined();
    expect(parseValue('')).toBeUndefined();
  });

  it('skips malformed lines and keeps the others', () => {
    const text = ['good 1', 'broken{a="1" 2', 'no_value', '9starts_with_digit 1', 'm{a=1} 1', 'too many fields 1 2', 'also_good{b="2"} 3'].join('\n');
    expect(parsePrometheusText(text).map((sample) => sample.name)).toEqual(['good', 'also_good']);
  });

  it('refuses a body larger than its bound instead of parsing it', () => {
    expect(() => parsePrometheusText('x'.repeat(8_000_001))).toThrow(RangeError);
  });
});

describe('lagSecondsByChannel', () => {
  it("keeps one tenant's channels and the worst value when a channel repeats", () => {
    const samples = parsePrometheusText(`${exposition}stockline_reconciliation_lag_seconds{tenant="acme",channel="web",node="b"} 1.5\n`);
    expect(lagSecondsByChannel(samples, 'acme')).toEqual(new Map([['web', 1.5], ['shopify', 7]]));
    expect(lagSecondsByChannel(samples, 'globex')).toEqual(new Map([['web', 3]]));
    expect(lagSecondsByChannel(samples, 'nobody').size).toBe(0);
  });

  it('ignores NaN lag', () => {
    expect(lagSecondsByChannel(parsePrometheusText('stockline_reconciliation_lag_seconds{tenant="a",channel="w"} NaN'), 'a').size).toBe(0);
  });
});
