// The ledger's entry point for engines: idempotency, then decide, then evolve.

import type { Command } from './commands.js';
import { decide, dueReservations } from './decide.js';
import { dropStaleExpiries, evolve, tenantOf } from './evolve.js';
import { limits } from './limits.js';
import type { Outcome } from './rejections.js';
import type { IdempotencyRecord, LedgerState, TenantState } from './state.js';

export interface Execution {
  outcome: Outcome;
  /** The record to persist beside the events when the command carried an idempotency key. */
  remembered?: { key: string; record: IdempotencyRecord };
  /** Idempotency keys forgotten by this command (expire_due prunes records past their retention). */
  forgotten?: string[];
  /** Finished reservations its events made the tenant forget, their retention over (a changelog deletes them). */
  forgottenReservations?: string[];
}

/**
 * A stable text of what a command asks for, without its id and key: retries must match it. Its time is part of
 * it only when it came with the request (an imported event's): a time the engine stamps differs between a
 * request and its retry. It is kept in the command's idempotency record for a day, so it is kept flat (see
 * `flattened`): as built, piece by piece, it holds five times its length and more than half of the record.
 */
export function fingerprintOf(command: Command, timeRequested = false): string {
  const { id: _id, timeMs, idempotencyKey: _key, ...request } = command;
  return flattened(canonicalJson(timeRequested ? { ...request, timeMs } : request));
}

/**
 * The same text, stored flat. V8 keeps a string joined from pieces (`+`, a template, randomUUID's) as a
 * tree of those pieces until something reads its characters; reading one turns it flat in place. A tree
 * costs a header per piece, and hashes and compares several times slower: a string kept for long (an id,
 * a fingerprint) is flattened once, when it is made.
 */
export function flattened(text: string): string {
  text.charCodeAt(0);
  return text;
}

/**
 * JSON with object keys sorted and undefined members left out. Loops rather than entries/filter/sort/map:
 * every command with an Idempotency-Key pays for it. The text is stored in idempotency records, so it
 * never changes shape.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) {
    let text = '[';
    for (let index = 0; index < value.length; index += 1) {
      if (index > 0) text += ',';
      text += canonicalJson(value[index]) ?? '';
    }
    return `${text}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let text = '{';
  for (const key of keys) {
    const item = record[key];
    if (item === undefined) continue;
    if (text.length > 1) text += ',';
    text += `${JSON.stringify(key)}:${canonicalJson(item)}`;
  }
  return `${text}}`;
}

/**
 * Decides a command and applies its events to the state. A retry under a known idempotency key
 * returns DUPLICATE with the first outcome and changes nothing. A tenant keeps `recordsMax` records at
 * most (an engine sets it from its heap: `idempotencyRecordsMaxFor`); past it the oldest is forgotten.
 * `recordedAtMs` is the engine's clock as it decides: a record is kept for its retention from then, or from
 * the command's time when that is later. An imported event keeps its own, earlier time; a record timed by it
 * would be forgotten at the next tick, and a retry of the import applied again.
 */
export function execute(
  state: LedgerState, command: Command, recordsMax: number = limits.idempotencyRecordsMax, recordedAtMs = command.timeMs, timeRequested = false,
): Execution {
  const key = command.idempotencyKey;
  const existing = state.tenants.get(command.tenant);
  let fingerprint = '';
  if (key !== undefined) {
    fingerprint = fingerprintOf(command, timeRequested);
    const record = existing?.idempotency.get(key);
    if (record !== undefined) {
      if (record.fingerprint !== fingerprint) {
        return { outcome: { events: [], rejection: { code: 'IDEMPOTENCY_KEY_REUSED', idempotencyKey: key, message: `idempotency key ${key} was used for a different request` } } };
      }
      return { outcome: { events: [], rejection: { code: 'DUPLICATE', first: record.outcome, message: `already handled under idempotency key ${key}` } } };
    }
  }
  let forgotten: string[] | undefined;
  if (command.type === 'expire_due' && existing !== undefined) {
    dropStaleExpiries(existing);
    forgotten = forgetExpiredKeys(existing.idempotency, command.nowMs - limits.idempotencyRetentionMs, limits.idempotencyForgetsPerTickMax);
  }
  const outcome = decide(existing, command);
  const forgottenReservations: string[] = [];
  for (const event of outcome.events) evolve(state, event, forgottenReservations);
  const execution: Execution = { outcome };
  if (forgotten !== undefined && forgotten.length > 0) execution.forgotten = forgotten;
  if (forgottenReservations.length > 0) execution.forgottenReservations = forgottenReservations;
  if (key !== undefined) {
    const record: IdempotencyRecord = { fingerprint, outcome, timeMs: recordedAtMs > command.timeMs ? recordedAtMs : command.timeMs };
    const early = remember(tenantOf(state, command.tenant).idempotency, key, record, recordsMax);
    if (early.length > 0) (execution.forgotten ??= []).push(...early);
    execution.remembered = { key, record };
  }
  return execution;
}

/**
 * What one idempotency record holds in memory, with room to spare: about 700 bytes as made, 850 once read
 * back from a file or a changelog (bench/memory.ts); the key and outcome are the caller's and may be longer.
 */
export const idempotencyRecordBytes = 1024;

/** The share of the heap's old generation a tenant's idempotency records may fill. */
export const idempotencyHeapShare = 0.25;

/**
 * The records a tenant keeps, at most, where the heap's old generation (where long-lived objects are kept)
 * may grow to `oldGenerationBytes`: a quarter of it, between 10,000 and `limits.idempotencyRecordsMax`.
 * Records are kept for `idempotencyRetentionMs`; a tenant that makes more keyed commands than this within
 * that time forgets the oldest first, so a retry of one of those is a new command. Without the bound, a day
 * of keyed commands fills the heap and the process stops, and stops again on restart, when it reads them
 * back: 5 million records hold some 4 GB, a default heap on a large machine.
 */
export function idempotencyRecordsMaxFor(oldGenerationBytes: number): number {
  const fits = Math.floor((oldGenerationBytes * idempotencyHeapShare) / idempotencyRecordBytes);
  return Math.min(limits.idempotencyRecordsMax, Math.max(10_000, fits));
}

/** An iterator over a records map's keys, kept between calls, and the oldest record it last read. */
interface OldestCursor {
  keys: Iterator<string>;
  /** The map's size when the iterator was started. */
  startedAtSize: number;
  key?: string;
  record?: IdempotencyRecord;
}

const cursors = new WeakMap<Map<string, IdempotencyRecord>, OldestCursor>();

/**
 * The oldest record kept, and its key. Records are kept in the order they were made and forgotten oldest
 * first, and a Map keeps the place of a deleted entry until it is next rehashed: a new iterator would step
 * over every record forgotten since, which at a tenant's bound is every keyed command (9 µs a command with
 * 32,768 records, 276 µs with a million: bench/records-at-bound.ts). So each map's iterator is kept, and
 * goes on from the record it last read once that one is forgotten; a finished iterator stays finished, so
 * one is started again then. An iterator also keeps every table the map has outgrown since it started (28 MB
 * more for a map grown to a million), so while the oldest stays, one is started again each time the map
 * has grown by a quarter. The cursor changes no answer, only what finding it costs.
 */
function oldest(records: Map<string, IdempotencyRecord>): [string, IdempotencyRecord] | undefined {
  let cursor = cursors.get(records);
  if (cursor?.key !== undefined && records.get(cursor.key) === cursor.record) {
    if (records.size >= 1.25 * cursor.startedAtSize) {
      // The oldest is still the first entry: a new iterator passes it (and any places forgotten before it) once.
      cursor.keys = records.keys();
      cursor.keys.next();
      cursor.startedAtSize = records.size;
    }
    return [cursor.key, cursor.record as IdempotencyRecord];
  }
  if (cursor === undefined) {
    cursor = { keys: records.keys(), startedAtSize: records.size };
    cursors.set(records, cursor);
  }
  let step = cursor.keys.next();
  if (step.done === true) {
    cursor.keys = records.keys();
    cursor.startedAtSize = records.size;
    step = cursor.keys.next();
  }
  if (step.done === true) {
    cursors.delete(records);
    return undefined;
  }
  cursor.key = step.value;
  cursor.record = records.get(step.value);
  return [cursor.key, cursor.record as IdempotencyRecord];
}

/**
 * Keeps a new record (its key is not among them); when `recordsMax` are kept already, forgets the oldest
 * first, and returns the keys forgotten. Two at most: a tenant kept above its bound (restored from a
 * Kafka changelog by a node with a smaller heap than the one that made its records) comes down to it, a
 * record a command, without one command forgetting many.
 */
export function remember(records: Map<string, IdempotencyRecord>, key: string, record: IdempotencyRecord, recordsMax: number): string[] {
  const forgotten: string[] = [];
  while (records.size >= recordsMax && forgotten.length < 2) {
    const first = oldest(records);
    if (first === undefined) break;
    records.delete(first[0]);
    forgotten.push(first[0]);
  }
  records.set(key, record);
  return forgotten;
}

/**
 * Whether an expire_due command would do anything for this tenant at `nowMs`: a hold is due, or the oldest
 * idempotency record is past its retention. The engines' tickers send one only then; without the second
 * case, a tenant whose holds are all committed or released in time would keep every record for ever.
 */
export function housekeepingDue(tenant: TenantState, nowMs: number): boolean {
  const next = tenant.expiries[0];
  return (next !== undefined && next.expiresAtMs <= nowMs) || idempotencyDue(tenant, nowMs);
}

/**
 * How long, at `nowMs`, the held reservation longest past its expiry has waited to be released: 0 when none
 * is due. Above a second or two, expiry ticks are not keeping up and stock sits in abandoned carts.
 */
export function expiryLagMs(tenant: TenantState, nowMs: number): number {
  const oldest = dueReservations(tenant, nowMs, 1)[0];
  return oldest === undefined ? 0 : nowMs - oldest.expiresAtMs;
}

/** Whether the tenant's oldest idempotency record is past its retention at `nowMs`. */
export function idempotencyDue(tenant: TenantState, nowMs: number): boolean {
  const first = oldest(tenant.idempotency);
  return first !== undefined && first[1].timeMs < nowMs - limits.idempotencyRetentionMs;
}

/**
 * Whether a tick at `nowMs` that left `tenant` so, having released `released` holds, left work for another at
 * once: it released as many as one may, or forgot as many records as one may and older ones are left.
 */
export function moreDueAfterTick(tenant: TenantState | undefined, nowMs: number, released: number): boolean {
  return released >= limits.expirationsPerTickMax || (tenant !== undefined && idempotencyDue(tenant, nowMs));
}

function forgetExpiredKeys(records: Map<string, IdempotencyRecord>, cutoffMs: number, max: number): string[] {
  const forgotten: string[] = [];
  while (forgotten.length < max) {
    const first = oldest(records);
    if (first === undefined || first[1].timeMs >= cutoffMs) break;
    records.delete(first[0]);
    forgotten.push(first[0]);
  }
  return forgotten;
}
