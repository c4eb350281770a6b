// RFC 3339 formatting and parsing of epoch milliseconds, without a clock: the ledger is handed time.

const msPerDay = 86_400_000;

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/** Days since 1970-01-01 to a civil (proleptic Gregorian) date. */
function civilFromDays(days: number): [number, number, number] {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthPrime = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthPrime + 2) / 5) + 1;
  const month = monthPrime < 10 ? monthPrime + 3 : monthPrime - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  return [year, month, day];
}

function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

// Small memos: a batch of commands shares its millisecond and its holds' expiry, and evolve parses
// what decide just formatted. Four slots, replaced in turn, keep both the command time and the expiry.
const memoSlots = 4;
const formattedMs = new Array<number>(memoSlots).fill(Number.NaN);
const formattedText = new Array<string>(memoSlots).fill('');
let formatNext = 0;
const parsedText = new Array<string>(memoSlots).fill('');
const parsedMs = new Array<number>(memoSlots).fill(Number.NaN);
let parseNext = 0;

/** Formats epoch milliseconds (an integer) as `YYYY-MM-DDTHH:MM:SS.mmmZ`. */
export function formatTime(epochMs: number): string {
  for (let slot = 0; slot < memoSlots; slot += 1) if (formattedMs[slot] === epochMs) return formattedText[slot] as string;
  const text = formatUncached(epochMs);
  formattedMs[formatNext] = epochMs;
  formattedText[formatNext] = text;
  formatNext = (formatNext + 1) % memoSlots;
  return text;
}

function formatUncached(epochMs: number): string {
  const days = Math.floor(epochMs / msPerDay);
  const msOfDay = epochMs - days * msPerDay;
  const [year, month, day] = civilFromDays(days);
  const hours = Math.floor(msOfDay / 3_600_000);
  const minutes = Math.floor((msOfDay % 3_600_000) / 60_000);
  const seconds = Math.floor((msOfDay % 60_000) / 1000);
  const millis = msOfDay % 1000;
  if (year >= 1000 && year <= 9999) {
    const millisText = millis < 10 ? `00${millis}` : millis < 100 ? `0${millis}` : String(millis);
    return `${year}-${twoDigits[month]}-${twoDigits[day]}T${twoDigits[hours]}:${twoDigits[minutes]}:${twoDigits[seconds]}.${millisText}Z`;
  }
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hours, 2)}:${pad(minutes, 2)}:${pad(seconds, 2)}.${pad(millis, 3)}Z`;
}

const twoDigits: readonly string[] = Array.from({ length: 100 }, (_, value) => (value < 10 ? `0${value}` : String(value)));

/** Digits of the canonical form `YYYY-MM-DDTHH:MM:SS.mmmZ` (what formatTime writes), read without a regex. */
function parseCanonical(text: string): number {
  let invalid = false;
  const digits = (from: number, count: number): number => {
    let value = 0;
    for (let index = from; index < from + count; index += 1) {
      const digit = text.charCodeAt(index) - 48;
      if (digit < 0 || digit > 9) invalid = true;
      value = value * 10 + digit;
    }
    return value;
  };
  const year = digits(0, 4);
  const month = digits(5, 2);
  const day = digits(8, 2);
  const hours = digits(11, 2);
  const minutes = digits(14, 2);
  const seconds = digits(17, 2);
  const millis = digits(20, 3);
  if (invalid || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hours > 23 || minutes > 59 || seconds > 59) return Number.NaN;
  return daysFromCivil(year, month, day) * msPerDay + hours * 3_600_000 + minutes * 60_000 + seconds * 1000 + millis;
}

function isCanonical(text: string): boolean {
  return text.length === 24 && text.charCodeAt(4) === 45 && text.charCodeAt(7) === 45 && text.charCodeAt(10) === 84
    && text.charCodeAt(13) === 58 && text.charCodeAt(16) === 58 && text.charCodeAt(19) === 46 && text.charCodeAt(23) === 90;
}

const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Parses an RFC 3339 date-time to epoch milliseconds; NaN when it is not one. */
export function parseTime(text: string): number {
  for (let slot = 0; slot < memoSlots; slot += 1) if (parsedText[slot] === text) return parsedMs[slot] as number;
  const ms = parseUncached(text);
  parsedText[parseNext] = text;
  parsedMs[parseNext] = ms;
  parseNext = (parseNext + 1) % memoSlots;
  return ms;
}

function parseUncached(text: string): number {
  if (isCanonical(text)) return parseCanonical(text);
  const match = rfc3339.exec(text);
  if (match === null) return Number.NaN;
  const [, y, mo, d, h, mi, s, fraction, zone] = match as unknown as string[];
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(Number(y), month) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) return Number.NaN;
  const millis = fraction === undefined ? 0 : Number(fraction.padEnd(3, '0').slice(0, 3));
  let offsetMinutes = 0;
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    if (Number(zone.slice(1, 3)) > 23 || Number(zone.slice(4, 6)) > 59) return Number.NaN;
    offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  const days = daysFromCivil(Number(y), month, day);
  return days * msPerDay + Number(h) * 3_600_000 + Number(mi) * 60_000 + Math.min(Number(s), 59) * 1000 + millis - offsetMinutes * 60_000;
}

/** Compares two decimal sequence numbers of up to 20 digits without losing precision. */
export function compareSequence(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
