// Every bound the ledger enforces, in one place: validation schemas and the decider both read these.

export const limits = {
  quantityMax: 1_000_000_000,
  cartLinesMax: 100,
  ttlMsMin: 1_000,
  ttlMsMax: 31 * 24 * 3_600_000,
  ttlMsDefault: 15 * 60_000,
  tenantIdLengthMax: 64,
  skuLengthMax: 128,
  locationIdLengthMax: 64,
  channelIdLengthMax: 64,
  reservationIdLengthMax: 128,
  idempotencyKeyLengthMax: 255,
  orderRefLengthMax: 128,
  reasonLengthMax: 256,
  sourceLengthMax: 128,
  sourceSeqDigitsMax: 20,
  channelLocationsMax: 100,
  // Holds one expiry tick releases, at most; an engine ticks again at once while a tick reaches it. A release
  // costs 4-8 µs to decide and apply with up to half a million holds, so a tick holds the tenant's other
  // commands up some 2-4 ms, and an engine releases tens of thousands a second while other commands go on.
  expirationsPerTickMax: 500,
  idempotencyRetentionMs: 24 * 3_600_000,
  // How far ahead of the deciding clock a command's own time may be (an import dated by another system's
  // clock): later is a time the ledger has not reached, which would hold stock and forget records by it.
  timeAheadMsMax: 5 * 60_000,
  // Idempotency records one tick forgets, at most (then it ticks again at once): after a restart that follows
  // a long stop, or a day after a sale, one tick's deletions (spread over the file's pages by key) stay a
  // short write that the commands behind it do not wait long for.
  idempotencyForgetsPerTickMax: 1_000,
  // Records kept per tenant, at most: past it the oldest is forgotten before its 24 hours, one for each new
  // one. Without it a tenant with 2^24 keyed commands in a day would overflow the Map that holds them (the
  // engine would stop, and stop again on every restart). Engines keep fewer where their heap is smaller
  // (idempotencyRecordsMaxFor: a quarter of it, at about a kilobyte a record).
  idempotencyRecordsMax: 5_000_000,
  // How long a released, expired, fulfilled or cancelled reservation is kept before it is forgotten:
  // one hour beyond idempotencyRetentionMs, so a retried request whose idempotency record is still
  // kept always finds its reservation. A constant of the ledger, not a setting: replay must forget
  // the same reservations whatever the configuration.
  reservationRetentionMs: 25 * 3_600_000,
  // Finished reservations one event makes its tenant forget, at most, the oldest first; the next events forget
  // the rest. A tenant quiet for a day after a busy one would otherwise forget all of them with its first
  // event, holding every command up (about 1.2 µs each: a third of a second for 300,000). Like the
  // retention, a constant of the ledger: replay must forget what the live state did.
  reservationForgetsPerEventMax: 200,
} as const;

/** Lower-case letters, digits, `_` and `-`, starting with a letter or digit. */
export const tenantIdPattern = '^[a-z0-9][a-z0-9_-]{0,63}$';
/** Letters, digits and `._:/-`, starting with a letter or digit. */
export const skuPattern = '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$';
/** Locations and channels share one shape. */
export const namePattern = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
/** Idempotency keys, order references, event ids, sources: printable ASCII without spaces. */
export const tokenPattern = '^[\\x21-\\x7e]+$';
/**
 * Reservation and order ids: a token, but not `.` or `..`. The id is a segment of the reservation's URL, and URL
 * parsers drop those segments (percent-encoded too), so such a hold could never be read, committed or released.
 */
export const reservationIdPattern = '^(?!\\.{1,2}$)[\\x21-\\x7e]+$';
/** A source sequence (e.g. a PostgreSQL LSN) as a decimal unsigned integer of up to 20 digits. */
export const sourceSeqPattern = '^(0|[1-9][0-9]{0,19})$';

export const defaultLocation = 'default';

/** Who sent a command that names no source: a caller of the HTTP API. */
export const defaultSource = 'api';
