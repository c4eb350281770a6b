// Specs for the clock-free RFC 3339 functions and the sequence comparison.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareSequence, formatTime, parseTime } from '../../../src/core/time.js';

/** 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the range four-digit years cover. */
const firstMs = -62_167_219_200_000;
const lastMs = 253_402_300_799_999;

function offsetText(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

describe('formatTime', () => {
  it('agrees with Date#toISOString over years 0000 to 9999', () => {
    fc.assert(fc.property(fc.integer({ min: firstMs, max: lastMs }), (ms) => formatTime(ms) === new Date(ms).toISOString()), { numRuns: 10_000 });
  });

  it('gets leap days and century years right', () => {
    expect(formatTime(Date.UTC(2024, 1, 29, 23, 59, 59, 999))).toBe('2024-02-29T23:59:59.999Z');
    expect(formatTime(Date.UTC(2000, 1, 29))).toBe('2000-02-29T00:00:00.000Z');
    expect(formatTime(Date.UTC(1900, 1, 28) + 86_400_000)).toBe('1900-03-01T00:00:00.000Z');
    expect(formatTime(Date.UTC(2100, 1, 28) + 86_400_000)).toBe('2100-03-01T00:00:00.000Z');
    expect(formatTime(Date.UTC(2023, 11, 31, 23, 59, 59, 999) + 1)).toBe('2024-01-01T00:00:00.000Z');
    expect(formatTime(0)).toBe('1970-01-01T00:00:00.000Z');
    expect(formatTime(-1)).toBe('1969-12-31T23:59:59.999Z');
  });

  it('walks every day of a whole 400-year cycle (1900 to 2300) in step with Date', () => {
    for (let ms = Date.UTC(1900, 0, 1); ms < Date.UTC(2300, 0, 1); ms += 86_400_000) {
      const text = formatTime(ms);
      if (text !== new Date(ms).toISOString()) expect(text).toBe(new Date(ms).toISOString());
      if (parseTime(text) !== ms) expect(parseTime(text)).toBe(ms);
    }
  });
});

describe('parseTime', () => {
  it('round-trips formatTime over years 0000 to 9999', () => {
    fc.assert(fc.property(fc.integer({ min: firstMs, max: lastMs }), (ms) => parseTime(formatTime(ms)) === ms), { numRuns: 10_000 });
  });

  it('reads the same instant written with any offset', () => {
    fc.assert(fc.property(fc.integer({ min: firstMs + 86_400_000, max: lastMs - 86_400_000 }), fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }), (ms, offsetMinutes) => {
      const local = formatTime(ms + offsetMinutes * 60_000).replace('Z', offsetText(offsetMinutes));
      return parseTime(local) === ms && Date.parse(local) === ms;
    }), { numRuns: 5_000 });
  });

  it('agrees with Date.parse on offsets, fractions and lower case', () => {
    for (const text of [
      '2025-01-01T02:00:00+02:00', '2024-12-31T18:30:00-05:30', '2025-01-01t00:00:00z', '2025-01-01T00:00:00-00:00',
      '2024-02-29T12:00:00.5Z', '2024-02-29T12:00:00.123456789Z', '2024-02-29T12:00:00Z', '1999-12-31T23:59:59.999+14:00',
    ]) expect(parseTime(text), text).toBe(Date.parse(text));
  });

  it('truncates fractions below a millisecond', () => {
    expect(parseTime('2025-01-01T00:00:00.0019Z')).toBe(Date.UTC(2025, 0, 1, 0, 0, 0, 1));
  });

  it('reads a leap second as the last second of its minute', () => {
    expect(parseTime('2016-12-31T23:59:60Z')).toBe(Date.UTC(2016, 11, 31, 23, 59, 59));
  });

  it('answers NaN for what is not RFC 3339', () => {
    for (const text of ['', '2025-01-01', '2025-01-01T00:00:00', '2025-13-01T00:00:00Z', '2025-00-10T00:00:00Z', '2025-01-00T00:00:00Z',
      '2025-01-32T00:00:00Z', '2025-01-01T24:00:00Z', '2025-01-01T00:60:00Z', '2025-01-01T00:00:61Z', '2025-01-01 00:00:00Z',
      '25-01-01T00:00:00Z', '2025-01-01T00:00:00.Z', '2025-01-01T00:00:00+0200', 'x2025-01-01T00:00:00Z']) {
      expect(parseTime(text), text).toBeNaN();
    }
  });
});

describe('compareSequence', () => {
  const sequence = fc.bigInt({ min: 0n, max: 10n ** 20n - 1n });

  it('orders decimal sequences of up to 20 digits as numbers', () => {
    fc.assert(fc.property(sequence, sequence, (a, b) => Math.sign(compareSequence(String(a), String(b))) === (a < b ? -1 : a > b ? 1 : 0)), { numRuns: 10_000 });
    fc.assert(fc.property(sequence, (a) => compareSequence(String(a), String(a)) === 0 && compareSequence(String(a + 1n), String(a)) > 0), { numRuns: 2_000 });
  });

  it('tells apart neighbours beyond 2^53', () => {
    expect(compareSequence('18446744073709551616', '18446744073709551615')).toBeGreaterThan(0);
    expect(compareSequence('99999999999999999999', '99999999999999999998')).toBeGreaterThan(0);
    expect(compareSequence('9007199254740993', '9007199254740992')).toBeGreaterThan(0);
    expect(compareSequence('10000000000000000000', '9999999999999999999')).toBeGreaterThan(0);
    expect(compareSequence('0', '0')).toBe(0);
    expect(compareSequence('12345678901234567890', '12345678901234567890')).toBe(0);
  });
});
