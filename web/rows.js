// The SKU rows the table shows: a bounded store merged by version, what changed, and filter + sort; pure.

export const rowsStoredMax = 5000;
export const channelsMax = 32;
export const ledgerColumns = ['available', 'reserved', 'committed', 'onHand'];

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/** A row as the API or the stream sends it, reduced to known fields; undefined if it has no SKU. */
export function normalizeRow(raw) {
  if (raw === null || typeof raw !== 'object' || typeof raw.sku !== 'string' || raw.sku === '') return undefined;
  const channels = {};
  if (raw.channels !== null && typeof raw.channels === 'object') {
    for (const [channel, units] of Object.entries(raw.channels)) {
      if (typeof units === 'number' && Number.isFinite(units)) channels[channel] = units;
    }
  }
  return {
    sku: raw.sku,
    onHand: finiteOr(raw.onHand, 0),
    committed: finiteOr(raw.committed, 0),
    reserved: finiteOr(raw.reserved, 0),
    available: finiteOr(raw.available, 0),
    deleted: raw.deleted === true,
    version: finiteOr(raw.version, 0),
    channels,
  };
}

function finiteOr(value, fallback) {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

/** The value a column shows for a row; `channel:<id>` columns are that channel's available-to-sell. */
export function cellValue(row, column) {
  if (column === 'sku') return row.sku;
  if (column.startsWith('channel:')) return row.channels[column.slice('channel:'.length)];
  return row[column];
}

/**
 * The cells whose shown value differs between two versions of a row, with the direction of numeric
 * changes (`up`, `down`), or `changed` for anything else.
 * @returns {Array<{ column: string, direction: 'up' | 'down' | 'changed' }>}
 */
export function diffRow(previous, next) {
  const columns = [...ledgerColumns, 'deleted'];
  const channels = new Set([...Object.keys(previous.channels), ...Object.keys(next.channels)]);
  for (const channel of channels) columns.push(`channel:${channel}`);
  const changes = [];
  for (const column of columns) {
    const before = cellValue(previous, column);
    const after = cellValue(next, column);
    if (before === after) continue;
    const numeric = typeof before === 'number' && typeof after === 'number';
    changes.push({ column, direction: numeric ? (after > before ? 'up' : 'down') : 'changed' });
  }
  return changes;
}

/**
 * Rows by SKU. A row is replaced only by one at least as new (its version never goes back), so a
 * list read and the stream can race without an old value winning. Past `rowsMax` new SKUs are not kept.
 */
export function createSkuStore({ rowsMax = rowsStoredMax } = {}) {
  const rows = new Map();
  const channels = new Set();
  const noteChannels = (row) => {
    for (const channel of Object.keys(row.channels)) if (channels.size < channelsMax) channels.add(channel);
  };
  return {
    /**
     * Merges a row.
     * @returns {{ status: 'added' | 'changed' | 'same' | 'stale' | 'full' | 'invalid', changes: Array<{ column: string, direction: string }> }}
     */
    upsert(raw) {
      const row = normalizeRow(raw);
      if (row === undefined) return { status: 'invalid', changes: [] };
      const previous = rows.get(row.sku);
      if (previous === undefined) {
        if (rows.size >= rowsMax) return { status: 'full', changes: [] };
        rows.set(row.sku, row);
        noteChannels(row);
        return { status: 'added', changes: [] };
      }
      if (row.version < previous.version) return { status: 'stale', changes: [] };
      rows.set(row.sku, row);
      noteChannels(row);
      const changes = diffRow(previous, row);
      return { status: changes.length === 0 ? 'same' : 'changed', changes };
    },
    addChannel(channel) {
      if (channels.size < channelsMax) channels.add(channel);
    },
    get: (sku) => rows.get(sku),
    get size() {
      return rows.size;
    },
    get full() {
      return rows.size >= rowsMax;
    },
    values: () => rows.values(),
    /** Drops the rows whose SKU `keep` refuses. */
    retain(keep) {
      for (const sku of rows.keys()) if (!keep(sku)) rows.delete(sku);
    },
    channels: () => [...channels].sort(collator.compare),
    clear() {
      rows.clear();
      channels.clear();
    },
  };
}

const skuCharacters = /^[A-Za-z0-9._:/-]+$/;

/**
 * The prefixes to ask the server for, for SKUs beyond those loaded: the server matches the beginning of a SKU
 * in its exact case, so the text is asked as typed, in upper case and in lower case (SKUs are most often
 * written in one case). None for text no SKU can start with (a space, say): the server would refuse it.
 */
export function prefixSearches(filterText) {
  const text = filterText.trim();
  if (!skuCharacters.test(text)) return [];
  return [...new Set([text, text.toUpperCase(), text.toLowerCase()])];
}

/** True if the row's SKU contains the filter text, ignoring case and surrounding spaces. */
export function matchesFilter(row, filterText) {
  const needle = filterText.trim().toLowerCase();
  return needle === '' || row.sku.toLowerCase().includes(needle);
}

/** Orders rows by a column (SKUs in natural order, e.g. 2 before 10); ties by SKU. */
export function compareRows(a, b, column, direction) {
  const sign = direction === 'descending' ? -1 : 1;
  if (column !== 'sku') {
    const left = cellValue(a, column) ?? Number.NEGATIVE_INFINITY;
    const right = cellValue(b, column) ?? Number.NEGATIVE_INFINITY;
    if (left !== right) return left < right ? -sign : sign;
  }
  return sign * collator.compare(a.sku, b.sku);
}

/**
 * The rows to show: filtered, sorted, and cut to `limit`; `matched` is how many passed the filter.
 * @returns {{ rows: Array<object>, matched: number }}
 */
export function visibleRows(rows, { filterText = '', sortColumn = 'sku', sortDirection = 'ascending', limit = 50 } = {}) {
  const matching = [];
  for (const row of rows) if (matchesFilter(row, filterText)) matching.push(row);
  matching.sort((a, b) => compareRows(a, b, sortColumn, sortDirection));
  return { rows: matching.slice(0, limit), matched: matching.length };
}
