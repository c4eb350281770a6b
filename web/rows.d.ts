// Types of rows.js, for the unit tests and editors; the browser loads the .js file only.

export interface SkuRow {
  sku: string;
  onHand: number;
  committed: number;
  reserved: number;
  available: number;
  deleted: boolean;
  version: number;
  channels: Record<string, number>;
}

export interface CellChange {
  column: string;
  direction: 'up' | 'down' | 'changed';
}

export type UpsertStatus = 'added' | 'changed' | 'same' | 'stale' | 'full' | 'invalid';

export interface SkuStore {
  upsert(raw: unknown): { status: UpsertStatus; changes: CellChange[] };
  addChannel(channel: string): void;
  get(sku: string): SkuRow | undefined;
  readonly size: number;
  readonly full: boolean;
  values(): IterableIterator<SkuRow>;
  channels(): string[];
  clear(): void;
}

export interface ViewOptions {
  filterText?: string;
  sortColumn?: string;
  sortDirection?: 'ascending' | 'descending';
  limit?: number;
}

export const rowsStoredMax: number;
export const channelsMax: number;
export const ledgerColumns: string[];
export function normalizeRow(raw: unknown): SkuRow | undefined;
export function cellValue(row: SkuRow, column: string): string | number | boolean | undefined;
export function diffRow(previous: SkuRow, next: SkuRow): CellChange[];
export function createSkuStore(options?: { rowsMax?: number }): SkuStore;
export function prefixSearches(filterText: string): string[];
export function matchesFilter(row: SkuRow, filterText: string): boolean;
export function compareRows(a: SkuRow, b: SkuRow, column: string, direction: 'ascending' | 'descending'): number;
export function visibleRows(rows: Iterable<SkuRow>, options?: ViewOptions): { rows: SkuRow[]; matched: number };
