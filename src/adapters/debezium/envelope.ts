// Debezium PostgreSQL change events (with or without the JSON converter's schema wrapper) -> ledger row changes.

import type { DebeziumSourceConfig } from '../postgres-cdc/config.js';
import { imageChange, jsonSafe, keyString, mapImage, mapKey, removalChange } from '../postgres-cdc/row-mapping.js';
import type { Row, RowChange } from '../postgres-cdc/row-mapping.js';

export type EnvelopeResult =
  | { kind: 'changes'; changes: RowChange[] }
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

function dead(reason: string, payload: Json): EnvelopeResult {
  const source = isObject(payload.source) ? payload.source : {};
  return {
    kind: 'dead', reason,
    payload: { op: payload.op ?? null, lsn: source.lsn ?? null, before: isObject(payload.before) ? jsonSafe(payload.before) : null, after: isObject(payload.after) ? jsonSafe(payload.after) : null },
  };
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

function mapUpsert(payload: Json, config: DebeziumSourceConfig, seq: string): EnvelopeResult {
  if (!isObject(payload.after)) return dead(`op ${String(payload.op)} without an after image`, payload);
  const image = mapImage(payload.after as Row, config.columns);
  if (!image.ok) return dead(image.reason, payload);
  const source = debeziumSourceId(config);
  const changes: RowChange[] = [];
  // With REPLICA IDENTITY FULL the before image shows a row that moved: its old place holds nothing now.
  // Without `before` (the default identity) a move cannot be seen from the event: only the new place is
  // set. A key over the mapped columns is safe (Debezium sends a change of it as `d` then `c`); with any
  // other key the source table needs REPLICA IDENTITY FULL, and that is not knowable here.
  if (isObject(payload.before)) {
    const before = mapKey(payload.before as Row, config.columns);
    if (before.ok && keyString(before.value) !== keyString(image.value)) changes.push(removalChange(before.value, source, seq));
  }
  changes.push(imageChange(image.value, source, seq));
  return { kind: 'changes', changes };
}

function mapDelete(payload: Json, config: DebeziumSourceConfig, seq: string): EnvelopeResult {
  const hint = 'the tenant, SKU and location columns must be in the replica identity (primary key, or REPLICA IDENTITY FULL)';
  if (!isObject(payload.before)) return dead(`delete without a before image: ${hint}`, payload);
  const key = mapKey(payload.before as Row, config.columns);
  if (!key.ok) return dead(`${key.reason}; ${hint}`, payload);
  return { kind: 'changes', changes: [removalChange(key.value, debeziumSourceId(config), seq)] };
}
