// Gathers the row changes of one replicated transaction, keeping the newest per (tenant, SKU, location).

import type { ColumnMapping } from './config.js';
import { imageChange, jsonSafe, keyString, mapImage, mapKey, removalChange } from './row-mapping.js';
import type { Row, RowChange, RowImage, RowKey } from './row-mapping.js';

export type ReplicatedChange =
  | { op: 'insert'; row: Row }
  /**
   * `old` is the old image (REPLICA IDENTITY FULL), the old key (when the key changed) or null.
   * `identityCoversKey`: the replica identity is FULL or its key holds every mapped tenant, SKU and
   * location column, so a row that moved always comes with its old place.
   */
  | { op: 'update'; row: Row; old: Row | null; identityCoversKey: boolean }
  | { op: 'delete'; old: Row | null }
  | { op: 'truncate' };

export interface DeadLetterDraft {
  reason: string;
  payload: unknown;
}

type Pending = { kind: 'image'; image: RowImage } | { kind: 'removal'; key: RowKey };

const identityHint = 'the tenant, SKU and location columns must be in the replica identity: make them the primary key or run ALTER TABLE ... REPLICA IDENTITY FULL';

/**
 * Every change of a transaction gets the same sequence (the transaction's commit end LSN), so only the
 * last image of a row can be submitted: an earlier one with the same sequence would be refused as stale.
 */
export class TransactionChanges {
  private readonly pending = new Map<string, Pending>();
  private readonly letters: Array<{ reason: string; op: string; row: Row | null }> = [];

  constructor(private readonly mapping: ColumnMapping) {}

  add(change: ReplicatedChange): void {
    switch (change.op) {
      case 'insert': return this.addImage(change.op, change.row);
      case 'update': return this.addUpdate(change.row, change.old, change.identityCoversKey);
      case 'delete': return this.addDelete(change.old);
      case 'truncate': return this.letter('TRUNCATE is not applied to the ledger: the stock of the truncated rows is unchanged', 'truncate', null);
    }
  }

  /** The transaction's ledger changes in commit order, and the rows that could not become any. */
  finish(source: string, seq: string): { changes: RowChange[]; deadLetters: DeadLetterDraft[] } {
    const changes = [...this.pending.values()].map((entry) =>
      entry.kind === 'image' ? imageChange(entry.image, source, seq) : removalChange(entry.key, source, seq));
    const deadLetters = this.letters.map((letter) => ({ reason: letter.reason, payload: { lsn: seq, op: letter.op, row: jsonSafe(letter.row) } }));
    return { changes, deadLetters };
  }

  /** Re-inserting moves the key to the end, so the order of changes is the order of their last writes. */
  private put(key: RowKey, entry: Pending): void {
    const id = keyString(key);
    this.pending.delete(id);
    this.pending.set(id, entry);
  }

  private addImage(op: string, row: Row): void {
    const image = mapImage(row, this.mapping);
    if (!image.ok) return this.letter(image.reason, op, row);
    this.put(image.value, { kind: 'image', image: image.value });
  }

  /**
   * A row whose tenant, SKU or location changed leaves its old place empty. When the replica identity
   * cannot show a move (it was changed after setup checked it), the update is a dead letter: applying
   * only its new place could leave the old one holding stock that is gone.
   */
  private addUpdate(row: Row, old: Row | null, identityCoversKey: boolean): void {
    if (!identityCoversKey) return this.letter(`UPDATE whose move to another tenant, SKU or location cannot be checked: ${identityHint}`, 'update', row);
    if (old !== null) {
      const before = mapKey(old, this.mapping);
      const after = mapKey(row, this.mapping);
      if (before.ok && after.ok && keyString(before.value) !== keyString(after.value)) {
        this.put(before.value, { kind: 'removal', key: before.value });
      }
    }
    this.addImage('update', row);
  }

  private addDelete(old: Row | null): void {
    if (old === null) return this.letter(`DELETE without an old row image: ${identityHint}`, 'delete', null);
    const key = mapKey(old, this.mapping);
    if (!key.ok) return this.letter(`${key.reason}; ${identityHint}`, 'delete', old);
    this.put(key.value, { kind: 'removal', key: key.value });
  }

  private letter(reason: string, op: string, row: Row | null): void {
    this.letters.push({ reason, op, row });
  }
}
