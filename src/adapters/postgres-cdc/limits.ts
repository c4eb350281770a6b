// Every bound of the change-data-capture sources (PostgreSQL and Debezium), in one place.

export const cdcLimits = {
  /** Commands per `submitMany`; a bigger transaction is submitted in several calls and acknowledged after the last. */
  submitBatchCommandsMax: 1_000,
  /** Rows fetched per round trip while reading the initial snapshot. */
  snapshotFetchRows: 1_000,
  /** Row changes waiting to be applied before the replication socket is paused... */
  queuedChangesHighWater: 20_000,
  /** ...and how few there must be before it is resumed. */
  queuedChangesLowWater: 5_000,
  /** A standby status update is sent at least this often, well inside PostgreSQL's wal_sender_timeout (60 s by default). */
  statusIntervalMs: 10_000,
  connectTimeoutMs: 10_000,
  /** How often, while streaming, the catalogue is read to see that the table is still the one set up, and published. */
  tableCheckIntervalMs: 2_000,
  reconnectDelayMsBase: 250,
  reconnectDelayMsMax: 30_000,
  /** Failed attempts in a row (without progress in between) before the source gives up and reports `failed`. */
  reconnectAttemptsMax: 40,
  /**
   * An idle stream counts as progress (the attempts start again) once it has stayed up this long: the server
   * answers a new stream with a keepalive before it decodes anything, and one it then refuses (a publication
   * dropped) would otherwise reconnect at the first delay for ever.
   */
  idleStreamUpMsMin: 10_000,
  /** How long `stop()` waits for the batch being submitted before closing the connection anyway. */
  stopTimeoutMs: 10_000,
  /** Longest string kept per value in a dead letter's payload. */
  deadLetterValueCharsMax: 1_024,
  /** Longest line of an NDJSON change-event file. */
  debeziumEventBytesMax: 1_048_576,
  /** Biggest change-event file read as one JSON array (NDJSON is streamed and has no such bound). */
  debeziumArrayFileBytesMax: 256 * 1_048_576,
  /** Change events parsed before they are submitted together. */
  debeziumBatchEvents: 500,
  /** Events of one transaction reduced together (a longer one is reduced in parts of this many). */
  debeziumTransactionEventsMax: 10_000,
  /**
   * How long a Debezium topic partition's open transaction waits for its next event before it is applied as
   * complete. Debezium sends a transaction's events one after another, so a pause this long ends it.
   */
  debeziumTransactionQuietMs: 250,
} as const;
