// Gathers the row changes of one replicated transaction, keeping the newest per (tenant, SKU, location).

import type { ColumnMapping } from './config.js';
import { imageChange, jsonSafe, keyString, mapImage, mapKey, removalChange } from './row-mapping.js';
import type { Mapped, Row, RowChange, RowImage, RowKey } from './row-mapping.js';

/** `identity`: the replica identity's columns (every column with FULL), which tell one row from another. */
export type ReplicatedChange =
  | { op: 'insert'; row: Row; identity?: readonly string[] }
  /**
   * `old` is the old image (REPLICA IDENTITY FULL), the old key (when the key changed) or null.
   * `identityCoversKey`: the replica identity is FULL or its key holds every mapped tenant, SKU and
   * location column, so a row that moved always comes with its old place.
   */
  | { op: 'update'; row: Row; old: Row | null; identityCoversKey: boolean; identity?: readonly string[] }
  | { op: 'delete'; old: Row | null; identity?: readonly string[] }
  | { op: 'truncate' };

export interface DeadLetterDraft {
  reason: string;
  payload: unknown;
}

const identityHint = 'the tenant, SKU and location columns must be in the replica identity: make them the primary key or run ALTER TABLE ... REPLICA IDENTITY FULL (on a partitioned table, on every partition as well: each logs old rows by its own identity)';

function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  if (typeof a === 'object' && typeof b === 'object') return JSON.stringify(a) === JSON.stringify(b);
  return Object.is(a, b);
}

/**
 * Whether two images are of the same row: equal in every identity column (every column when none are
 * named) that both carry. A key-only old image carries no other column, and an unchanged TOASTed value
 * is not sent at all, so a value missing on either side says nothing.
 */
export function sameRow(a: Row, b: Row, identity?: readonly string[]): boolean {
  const columns = identity ?? [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return columns.every((column) => {
    const left = a[column];
    const right = b[column];
    return left === undefined || left === null || right === undefined || right === null || sameValue(left, right);
  });
}

interface Occupant {
  row: Row;
  image: RowImage;
}

interface Place<Tag> {
  key: RowKey;
  /** The rows at this place now, oldest arrival first; none: the place is empty. */
  occupants: Occupant[];
  /** Of the last change that altered the place. */
  tag: Tag;
}

/**
 * Where the rows of one transaction end up, per (tenant, SKU, location). Inside a transaction a place
 * can change hands (two rows swap locations under a deferred UNIQUE constraint, or new counts are
 * inserted before the old rows are deleted), so "row R left K" empties K only of R: another row that
 * arrived at K stays. A place no changed row holds at the end is empty.
 */
export class RowPlaces<Tag> {
  private readonly places = new Map<string, Place<Tag>>();

  constructor(private readonly same: (a: Row, b: Row) => boolean) {}

  /**
   * `row` is now at `image`'s place; `previous` is the same row's image before, when it was already there.
   * An image whose soft-delete state is unchanged (undefined) keeps the state that row was given earlier
   * in this transaction: only a place's last image is submitted, so that earlier flag would be lost.
   */
  arrive(image: RowImage, row: Row, previous: Row | null, tag: Tag): void {
    const place = this.touch(image, tag);
    if (previous !== null) {
      const earlier = place.occupants.find((occupant) => this.same(occupant.row, previous));
      place.occupants = place.occupants.filter((occupant) => !this.same(occupant.row, previous));
      if (image.deleted === undefined && earlier?.image.deleted !== undefined) image = { ...image, deleted: earlier.image.deleted };
    }
    place.occupants.push({ row, image });
  }

  /** The row whose image was `old` is no longer at `key`; returns its image there when this transaction put it there. */
  leave(key: RowKey, old: Row, tag: Tag): RowImage | undefined {
    const place = this.places.get(keyString(key));
    if (place === undefined) {
      this.touch(key, tag);
      return undefined;
    }
    const departed = place.occupants.find((occupant) => this.same(occupant.row, old));
    const staying = place.occupants.filter((occupant) => !this.same(occupant.row, old));
    if (staying.length === place.occupants.length && staying.length > 0) return undefined;
    this.touch(key, tag).occupants = staying;
    return departed?.image;
  }

  /** Each place once, in the order of their last changes: its last arrival's image, or undefined when empty. */
  results(): Array<{ key: RowKey; image: RowImage | undefined; tag: Tag }> {
    return [...this.places.values()].map((place) => ({ key: place.key, image: place.occupants[place.occupants.length - 1]?.image, tag: place.tag }));
  }

  get size(): number {
    return this.places.size;
  }

  /** Re-inserting moves the place to the end, so the order of places is the order of their last changes. */
  private touch(key: RowKey, tag: Tag): Place<Tag> {
    const id = keyString(key);
    const place = this.places.get(id) ?? { key: { tenant: key.tenant, sku: key.sku, location: key.location }, occupants: [], tag };
    place.tag = tag;
    this.places.delete(id);
    this.places.set(id, place);
    return place;
  }
}

/** Turns the places of a transaction into ledger changes, all with the same sequence. */
export function placeChanges(places: Array<{ key: RowKey; image: RowImage | undefined }>, source: string, seq: string): RowChange[] {
  return places.map((place) => place.image === undefined ? removalChange(place.key, source, seq) : imageChange(place.image, source, seq));
}

/**
 * Every change of a transaction gets the same sequence (the transaction's commit end LSN), so only the
 * last image of a place can be submitted: an earlier one with the same sequence would be refused as stale.
 */
export class TransactionChanges {
  private readonly places = new RowPlaces<null>((a, b) => sameRow(a, b, this.identity));
  /** The identity columns of the change being added (a transaction may alter the replica identity part way). */
  private identity: readonly string[] | undefined;
  private readonly letters: Array<{ reason: string; op: string; row: Row | null }> = [];

  constructor(private readonly mapping: ColumnMapping) {}

  add(change: ReplicatedChange): void {
    if (change.op !== 'truncate') this.identity = change.identity;
    switch (change.op) {
      case 'insert': return this.addImage('insert', change.row, null);
      case 'update': return this.addUpdate(change.row, change.old, change.identityCoversKey);
      case 'delete': return this.addDelete(change.old);
      case 'truncate': return this.letter('TRUNCATE is not applied to the ledger: the stock of the truncated rows is unchanged', 'truncate', null);
    }
  }

  /** The transaction's ledger changes in commit order, and the rows that could not become any. */
  finish(source: string, seq: string): { changes: RowChange[]; deadLetters: DeadLetterDraft[] } {
    const changes = placeChanges(this.places.results(), source, seq);
    const deadLetters = this.letters.map((letter) => ({ reason: letter.reason, payload: { lsn: seq, op: letter.op, row: jsonSafe(letter.row) } }));
    return { changes, deadLetters };
  }

  /** `deletedBefore`: the row's soft-delete state before a move, for a new image that leaves it unchanged. */
  private addImage(op: string, row: Row, previous: Row | null, deletedBefore?: boolean): void {
    const image = mapImage(row, this.mapping, op === 'update');
    if (!image.ok) return this.letter(image.reason, op, row);
    const value = image.value.deleted === undefined && deletedBefore !== undefined ? { ...image.value, deleted: deletedBefore } : image.value;
    this.places.arrive(value, row, previous, null);
  }

  /**
   * A row whose tenant, SKU or location changed leaves its old place empty, even when its new place
   * cannot be mapped (that row is a dead letter: the stock is no longer where it was). When the replica
   * identity cannot show a move (it was changed after setup checked it), the update is a dead letter:
   * applying only its new place could leave the old one holding stock that is gone.
   */
  private addUpdate(row: Row, old: Row | null, identityCoversKey: boolean): void {
    if (!identityCoversKey) return this.letter(`UPDATE whose move to another tenant, SKU or location cannot be checked: ${identityHint}`, 'update', row);
    const before = old === null ? undefined : mapKey(old, this.mapping);
    const after = mapKey(row, this.mapping);
    const moved = before?.ok === true && (!after.ok || keyString(before.value) !== keyString(after.value));
    const departed = moved && old !== null && before?.ok === true ? this.places.leave(before.value, old, null) : undefined;
    // Without an old image the key did not change, so the row's own identity finds it at its place.
    this.addImage('update', row, moved ? null : old ?? row, moved ? this.deletedBeforeMove(departed, before, after) : undefined);
  }

  /**
   * A moved row whose soft-delete value was not sent (unchanged TOAST) keeps its state: the one this
   * transaction gave it, or else, when it lands on another SKU, deleted. A value PostgreSQL stores out
   * of line is a long non-NULL value, which marks the row deleted; the new SKU must learn it, while the
   * same SKU at another location already knows.
   */
  private deletedBeforeMove(departed: RowImage | undefined, before: Mapped<RowKey> | undefined, after: Mapped<RowKey>): boolean | undefined {
    if (this.mapping.deletedAt === undefined) return undefined;
    if (departed?.deleted !== undefined) return departed.deleted;
    const otherSku = before?.ok === true && after.ok && (before.value.tenant !== after.value.tenant || before.value.sku !== after.value.sku);
    return otherSku ? true : undefined;
  }

  private addDelete(old: Row | null): void {
    if (old === null) return this.letter(`DELETE without an old row image: ${identityHint}`, 'delete', null);
    const key = mapKey(old, this.mapping);
    if (!key.ok) return this.letter(`${key.reason}; ${identityHint}`, 'delete', old);
    this.places.leave(key.value, old, null);
  }

  private letter(reason: string, op: string, row: Row | null): void {
    this.letters.push({ reason, op, row });
  }
}
