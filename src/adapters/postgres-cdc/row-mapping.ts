// Turns a row image of the merchant's stock table into ledger changes through the configured column mapping.

import type { CommandInput } from '../../app/ports.js';
import { limits, namePattern, skuPattern, tenantIdPattern } from '../../core/index.js';
import type { ColumnMapping } from './config.js';
import { cdcLimits } from './limits.js';

/** Column name -> value, as decoded from the stream (typed) or read from the snapshot (text). */
export type Row = Readonly<Record<string, unknown>>;

export interface RowKey {
  tenant: string;
  sku: string;
  location: string;
}

export interface RowImage extends RowKey {
  onHand: number;
  /** Whether the soft-delete column is set; undefined when no soft-delete column is mapped. */
  deleted?: boolean;
}

export type Mapped<T> = { ok: true; value: T } | { ok: false; reason: string };

/** One row's effect: its stock, then (with a soft-delete column) the SKU's deleted flag. */
export interface RowChange {
  key: RowKey;
  set: CommandInput;
  flag?: CommandInput;
}

const skuShape = new RegExp(skuPattern);
const tenantShape = new RegExp(tenantIdPattern);
const locationShape = new RegExp(namePattern);
const integerText = /^(-?)(\d{1,20})(?:\.0+)?$/;

function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value instanceof Date) return value.toISOString();
  return undefined;
}

function named(row: Row, what: string, column: string, shape: RegExp): Mapped<string> {
  const raw = row[column];
  if (raw === undefined) return { ok: false, reason: `${what} (column ${column}) is missing from the row image` };
  if (raw === null) return { ok: false, reason: `${what} (column ${column}) is NULL` };
  const text = textOf(raw);
  if (text === undefined) return { ok: false, reason: `${what} (column ${column}) is not text` };
  if (!shape.test(text)) return { ok: false, reason: `${what} (column ${column}) ${JSON.stringify(text.slice(0, 160))} does not match ${shape.source}` };
  return { ok: true, value: text };
}

function quantityOf(row: Row, column: string): Mapped<number> {
  const raw = row[column];
  const what = `onHand (column ${column})`;
  if (raw === undefined) return { ok: false, reason: `${what} is missing from the row image` };
  if (raw === null) return { ok: false, reason: `${what} is NULL` };
  const text = textOf(raw) ?? '';
  const match = integerText.exec(text.trim());
  const value = match === null ? Number.NaN : Number(`${match[1] as string}${match[2] as string}`);
  if (!Number.isSafeInteger(value)) return { ok: false, reason: `${what} ${JSON.stringify(text.slice(0, 40))} is not a whole number` };
  if (value < 0 || value > limits.quantityMax) return { ok: false, reason: `${what} is ${value}: it must be within 0..${limits.quantityMax}` };
  return { ok: true, value };
}

/** The tenant, SKU and location of a row; a constant from the mapping stands in for a missing column. */
export function mapKey(row: Row, mapping: ColumnMapping): Mapped<RowKey> {
  const tenant = mapping.tenantConstant !== undefined
    ? { ok: true as const, value: mapping.tenantConstant }
    : named(row, 'tenant', mapping.tenant as string, tenantShape);
  if (!tenant.ok) return tenant;
  const sku = named(row, 'sku', mapping.sku, skuShape);
  if (!sku.ok) return sku;
  const location = mapping.locationConstant !== undefined
    ? { ok: true as const, value: mapping.locationConstant }
    : named(row, 'location', mapping.location as string, locationShape);
  if (!location.ok) return location;
  return { ok: true, value: { tenant: tenant.value, sku: sku.value, location: location.value } };
}

/**
 * The full meaning of a row image: key, units on hand and, when mapped, the soft-delete state. With
 * `unchangedAllowed` (an UPDATE's new image) a soft-delete value that is missing was not sent because
 * it did not change (an unchanged TOASTed value): `deleted` is then left undefined, so no flag is sent.
 */
export function mapImage(row: Row, mapping: ColumnMapping, unchangedAllowed = false): Mapped<RowImage> {
  const key = mapKey(row, mapping);
  if (!key.ok) return key;
  const onHand = quantityOf(row, mapping.onHand);
  if (!onHand.ok) return onHand;
  const image: RowImage = { ...key.value, onHand: onHand.value };
  if (mapping.deletedAt !== undefined) {
    const raw = row[mapping.deletedAt];
    if (raw === undefined && unchangedAllowed) return { ok: true, value: image };
    if (raw === undefined) return { ok: false, reason: `deletedAt (column ${mapping.deletedAt}) is missing from the row image` };
    // A timestamp (or any value) marks a deleted row, NULL a live one; a boolean column says it outright, typed
    // in the stream and Debezium's events, as text in the snapshot (which reads every mapped column as text).
    image.deleted = raw !== null && raw !== false && raw !== 'false';
  }
  return { ok: true, value: image };
}

export function keyString(key: RowKey): string {
  return `${key.tenant}\u0000${key.sku}\u0000${key.location}`;
}

function setCommand(key: RowKey, onHand: number, source: string, seq: string): CommandInput {
  return { type: 'adjust_stock', tenant: key.tenant, sku: key.sku, location: key.location, set: onHand, source, sourceSeq: seq, reason: 'cdc' };
}

/** A present row: set its units with the sequence, then (soft delete mapped) delete or restore the SKU. */
export function imageChange(image: RowImage, source: string, seq: string): RowChange {
  const change: RowChange = { key: image, set: setCommand(image, image.onHand, source, seq) };
  if (image.deleted !== undefined) {
    change.flag = { type: image.deleted ? 'delete_sku' : 'restore_sku', tenant: image.tenant, sku: image.sku, source };
  }
  return change;
}

/** A row that is gone (hard DELETE, or moved to another key): its location no longer holds the SKU's stock. */
export function removalChange(key: RowKey, source: string, seq: string): RowChange {
  return { key, set: setCommand(key, 0, source, seq) };
}

/** A copy of a row that survives JSON and stays small: dates as text, bytes as base64, long strings cut. */
export function jsonSafe(row: Row | null | undefined): Record<string, unknown> | null {
  if (row === null || row === undefined) return null;
  const out: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(row)) {
    if (value === undefined) continue;
    if (value instanceof Uint8Array) out[column] = Buffer.from(value).toString('base64').slice(0, cdcLimits.deadLetterValueCharsMax);
    else if (typeof value === 'bigint') out[column] = value.toString();
    else if (value instanceof Date) out[column] = Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
    else if (typeof value === 'string') out[column] = value.slice(0, cdcLimits.deadLetterValueCharsMax);
    else if (value === null || typeof value === 'number' || typeof value === 'boolean') out[column] = value;
    else out[column] = String(value).slice(0, cdcLimits.deadLetterValueCharsMax);
  }
  return out;
}
