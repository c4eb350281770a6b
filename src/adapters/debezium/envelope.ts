// Debezium PostgreSQL change events (with or without the JSON converter's schema wrapper) -> ledger row changes.

import type { DebeziumSourceConfig } from '../postgres-cdc/config.js';
import { cdcLimits } from '../postgres-cdc/limits.js';
import { imageChange, jsonSafe, keyString, mapImage, mapKey, removalChange } from '../postgres-cdc/row-mapping.js';
import type { Row, RowChange, RowImage, RowKey } from '../postgres-cdc/row-mapping.js';
import { RowPlaces, sameRow } from '../postgres-cdc/transaction.js';

/** What one event did to its row: left a place (`before`), arrived at one (`after`), or both; `seq` is its source.lsn. */
export interface RowEffect {
  txId: string | null;
  seq: string;
  left?: { key: RowKey; row: Row };
  arrived?: { image: RowImage; row: Row; previous: Row | null };
}

export type EnvelopeResult =
  /**
   * `changes` are the event's own; `effect` lets a reader reduce the events of one transaction together
   * (see reduceEffects); `dead` is a row the event also carried that could not be mapped.
   */
  | { kind: 'changes'; changes: RowChange[]; effect: RowEffect; dead?: { reason: string; payload: unknown } }
  /** Nothing to do: a tombstone, another table's event, a logical decoding message. */
  | { kind: 'skip'; reason: string }
  | { kind: 'dead'; reason: string; payload: unknown };

/** The ledger source of a Debezium source: sequences compare per (SKU, location, source). */
export function debeziumSourceId(config: DebeziumSourceConfig): string {
  return `debezium:${config.name}`;
}

type Json = Record<string, unknown>;

const decimalSeq = /^(0|[1-9][0-9]{0,19})$/;
const seqMax = 2n ** 64n - 1n;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `{schema, payload}` from the JSON converter with schemas on, or the payload itself. */
function unwrap(value: unknown): unknown {
  if (isObject(value) && 'payload' in value && !('op' in value)) return value.payload;
  return value;
}

/** source.lsn as the ledger's decimal sequence; JSON numbers beyond 2^53 have lost digits and are refused. */
function sequenceOf(lsn: unknown): string | undefined {
  if (typeof lsn === 'number') return Number.isSafeInteger(lsn) && lsn >= 0 ? String(lsn) : undefined;
  if (typeof lsn === 'string' && decimalSeq.test(lsn) && BigInt(lsn) <= seqMax) return lsn;
  return undefined;
}

function sameTable(source: Json, wanted: string): boolean {
  const dot = wanted.indexOf('.');
  const schema = dot < 0 ? 'public' : wanted.slice(0, dot);
  const table = dot < 0 ? wanted : wanted.slice(dot + 1);
  return source.schema === schema && source.table === table;
}

function deadPayload(payload: Json): unknown {
  const source = isObject(payload.source) ? payload.source : {};
  return { op: payload.op ?? null, lsn: source.lsn ?? null, before: isObject(payload.before) ? jsonSafe(payload.before) : null, after: isObject(payload.after) ? jsonSafe(payload.after) : null };
}

function dead(reason: string, payload: Json): EnvelopeResult {
  return { kind: 'dead', reason, payload: deadPayload(payload) };
}

/** Maps one event. Every change carries sourceSeq = source.lsn, so a redelivered or older event is refused as stale. */
export function parseDebeziumEvent(value: unknown, config: DebeziumSourceConfig): EnvelopeResult {
  const payload = unwrap(value);
  if (payload === null || payload === undefined) return { kind: 'skip', reason: 'tombstone' };
  if (!isObject(payload)) return { kind: 'dead', reason: 'not a Debezium change event (not an object)', payload: { value: String(payload).slice(0, 256) } };
  const op = payload.op;
  if (op === 'm') return { kind: 'skip', reason: 'logical decoding message' };
  if (op === 't') return dead('TRUNCATE is not applied to the ledger: the stock of the truncated rows is unchanged', payload);
  if (op !== 'c' && op !== 'u' && op !== 'd' && op !== 'r') return dead(`op ${JSON.stringify(op)} is not one of c, u, d, r`, payload);
  if (!isObject(payload.source)) return dead('source is missing', payload);
  if (config.table !== undefined && !sameTable(payload.source, config.table)) return { kind: 'skip', reason: 'another table' };
  const seq = sequenceOf(payload.source.lsn);
  if (seq === undefined) return dead(`source.lsn ${JSON.stringify(payload.source.lsn)} is not an unsigned 64-bit integer (give it as a string beyond 2^53)`, payload);
  return op === 'd' ? mapDelete(payload, config, seq) : mapUpsert(payload, config, seq);
}

function txIdOf(source: Json): string | null {
  const txId = source.txId;
  return typeof txId === 'number' || (typeof txId === 'string' && txId !== '') ? String(txId) : null;
}

/**
 * The changes of events of one transaction, together: a place that changed hands inside it (two rows
 * swapping locations, new counts inserted before the old rows are deleted) keeps the row that is there
 * at the end, where event by event "row R left K" would empty K after another row arrived. Each place
 * carries the sequence of the last event that changed it.
 */
export function reduceEffects(effects: RowEffect[], source: string): RowChange[] {
  const places = new RowPlaces<string>((a, b) => sameRow(a, b));
  for (const effect of effects) {
    if (effect.left !== undefined) places.leave(effect.left.key, effect.left.row, effect.seq);
    if (effect.arrived !== undefined) places.arrive(effect.arrived.image, effect.arrived.row, effect.arrived.previous, effect.seq);
  }
  return places.results().map((place) => place.image === undefined ? removalChange(place.key, source, place.tag) : imageChange(place.image, source, place.tag));
}

/**
 * Whether `effect` is the next event of the transaction whose events so far are `open`: the same
 * source.txId and a higher LSN (a transaction's change LSNs rise, so one that does not is a redelivery
 * starting again), while the part reduced together is under debeziumTransactionEventsMax (a longer
 * transaction is reduced in parts of that many).
 */
export function continuesTransaction(open: readonly RowEffect[], effect: RowEffect): boolean {
  const last = open[open.length - 1];
  if (last === undefined || open.length >= cdcLimits.debeziumTransactionEventsMax) return false;
  return effect.txId !== null && effect.txId === last.txId && BigInt(effect.seq) > BigInt(last.seq);
}

/** Whether any later event could still continue `open`: not after an event without txId (its own transaction), nor once the part is full. */
export function transactionMayContinue(open: readonly RowEffect[]): boolean {
  const last = open[open.length - 1];
  return last !== undefined && last.txId !== null && open.length < cdcLimits.debeziumTransactionEventsMax;
}

function changesOf(effect: RowEffect, config: DebeziumSourceConfig, dead?: { reason: string; payload: unknown }): EnvelopeResult {
  const result: EnvelopeResult = { kind: 'changes', changes: reduceEffects([effect], debeziumSourceId(config)), effect };
  if (dead !== undefined) result.dead = dead;
  return result;
}

function mapUpsert(payload: Json, config: DebeziumSourceConfig, seq: string): EnvelopeResult {
  if (!isObject(payload.after)) return dead(`op ${String(payload.op)} without an after image`, payload);
  const after = payload.after as Row;
  const image = mapImage(after, config.columns);
  const effect: RowEffect = { txId: txIdOf(payload.source as Json), seq };
  // With REPLICA IDENTITY FULL the before image shows a row that moved: its old place holds nothing now,
  // even when its new place cannot be mapped. Without `before` (the default identity) a move cannot be
  // seen from the event: only the new place is set. A key over the mapped columns is safe (Debezium sends
  // a change of it as `d` then `c`); with any other key the source table needs REPLICA IDENTITY FULL,
  // and that is not knowable here.
  const before = isObject(payload.before) ? payload.before as Row : null;
  const beforeKey = before === null ? undefined : mapKey(before, config.columns);
  const afterKey = mapKey(after, config.columns);
  const moved = beforeKey?.ok === true && (!afterKey.ok || keyString(beforeKey.value) !== keyString(afterKey.value));
  if (moved && before !== null && beforeKey?.ok === true) effect.left = { key: beforeKey.value, row: before };
  if (!image.ok) {
    if (effect.left === undefined) return dead(image.reason, payload);
    return changesOf(effect, config, { reason: image.reason, payload: deadPayload(payload) });
  }
  effect.arrived = { image: image.value, row: after, previous: moved ? null : before };
  return changesOf(effect, config);
}

function mapDelete(payload: Json, config: DebeziumSourceConfig, seq: string): EnvelopeResult {
  const hint = 'the tenant, SKU and location columns must be in the replica identity (primary key, or REPLICA IDENTITY FULL)';
  if (!isObject(payload.before)) return dead(`delete without a before image: ${hint}`, payload);
  const key = mapKey(payload.before as Row, config.columns);
  if (!key.ok) return dead(`${key.reason}; ${hint}`, payload);
  return changesOf({ txId: txIdOf(payload.source as Json), seq, left: { key: key.value, row: payload.before as Row } }, config);
}
