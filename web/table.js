// The SKU table in the DOM: sortable headers, rows kept by SKU and reordered in place, changed cells flashed.
/* global document, setTimeout, clearTimeout, CSS */

import { cellValue, ledgerColumns } from './rows.js';

export const flashMs = 1500;
const columnLabels = { sku: 'SKU', available: 'Available', reserved: 'Reserved', committed: 'Committed', onHand: 'On hand' };
const numberFormat = new Intl.NumberFormat('en-US');

/** The columns for a set of channels: SKU, the ledger's quantities, then each channel's available-to-sell. */
export function columnsFor(channels) {
  return ['sku', ...ledgerColumns, ...channels.map((channel) => `channel:${channel}`)];
}

function span(className, text) {
  const node = document.createElement('span');
  node.className = className;
  node.textContent = text;
  return node;
}

function cellClass(column, columns) {
  if (column === 'sku') return 'col-sku';
  if (!column.startsWith('channel:')) return `col-num col-${column}`;
  const first = columns.find((one) => one.startsWith('channel:')) === column;
  return first ? 'col-num col-channel channel-start' : 'col-num col-channel';
}

function labelOf(column) {
  return column.startsWith('channel:') ? column.slice('channel:'.length) : columnLabels[column];
}

/**
 * A table bound to its <thead> row and <tbody>. `onSort(column)` is called when a header is chosen.
 */
export function createSkuTable({ groupRow, headRow, body, onSort }) {
  let columns = [];
  let columnsKey = '';
  const rowsBySku = new Map();
  const flashTimers = new WeakMap();

  headRow.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-column]');
    if (button !== null) onSort(button.dataset.column);
  });

  /** A first header row that names the two groups of columns: the ledger's totals, and the channels. */
  function renderGroups() {
    const channelCount = columns.filter((column) => column.startsWith('channel:')).length;
    const blank = document.createElement('td');
    const ledger = document.createElement('th');
    ledger.scope = 'colgroup';
    ledger.colSpan = columns.length - channelCount - 1;
    ledger.className = 'group-ledger';
    ledger.textContent = 'All locations';
    const cells = [blank, ledger];
    if (channelCount > 0) {
      const channels = document.createElement('th');
      channels.scope = 'colgroup';
      channels.colSpan = channelCount;
      channels.className = 'channel-start';
      channels.textContent = 'Available to sell, by channel';
      cells.push(channels);
    }
    groupRow.replaceChildren(...cells);
  }

  function renderHead(sortColumn, sortDirection) {
    renderGroups();
    const cells = columns.map((column) => {
      const th = document.createElement('th');
      th.scope = 'col';
      th.dataset.column = column;
      th.className = cellClass(column, columns);
      th.setAttribute('aria-sort', column === sortColumn ? sortDirection : 'none');
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.column = column;
      const label = document.createElement('span');
      label.textContent = labelOf(column);
      const icon = span('sort-icon', '');
      icon.setAttribute('aria-hidden', 'true');
      // Numbers align right, so their sort arrow goes before the label and the label lines up with the digits.
      if (column === 'sku') button.append(label, icon);
      else button.append(icon, label);
      button.setAttribute('aria-label', `${labelOf(column)}${column.startsWith('channel:') ? ' available to sell' : ''}, sort`);
      th.append(button);
      return th;
    });
    headRow.replaceChildren(...cells);
  }

  function fillCell(cell, row, column) {
    const value = cellValue(row, column);
    if (column === 'sku') {
      cell.replaceChildren(span('sku', row.sku));
      if (row.deleted) cell.append(span('tag', 'deleted'));
      return;
    }
    cell.textContent = value === undefined ? '–' : numberFormat.format(value);
    cell.dataset.value = value === undefined ? '' : String(value);
    cell.classList.toggle('negative', typeof value === 'number' && value < 0);
    cell.classList.toggle('zero', typeof value === 'number' && value === 0);
  }

  function createRow(row) {
    const tr = document.createElement('tr');
    tr.dataset.sku = row.sku;
    for (const column of columns) {
      const cell = document.createElement(column === 'sku' ? 'th' : 'td');
      if (column === 'sku') cell.scope = 'row';
      cell.dataset.column = column;
      cell.className = cellClass(column, columns);
      fillCell(cell, row, column);
      tr.append(cell);
    }
    return tr;
  }

  function updateRow(tr, row) {
    tr.classList.toggle('deleted', row.deleted);
    columns.forEach((column, index) => fillCell(tr.cells[index], row, column));
  }

  function flash(tr, changes) {
    for (const { column, direction } of changes) {
      const index = columns.indexOf(column === 'deleted' ? 'sku' : column);
      const cell = tr.cells[index];
      if (cell === undefined) continue;
      cell.classList.remove('flash-up', 'flash-down', 'flash-changed');
      void cell.offsetWidth; // restarts the animation when a cell changes twice in a row
      cell.classList.add(`flash-${direction}`);
      clearTimeout(flashTimers.get(cell));
      flashTimers.set(cell, setTimeout(() => cell.classList.remove('flash-up', 'flash-down', 'flash-changed'), flashMs));
    }
  }

  return {
    /** Forgets every row (another tenant is shown). */
    reset() {
      rowsBySku.clear();
      body.replaceChildren();
    },
    /**
     * Shows `rows` in order. `flashes` maps a SKU to the changes to flash on its row.
     */
    render({ rows, channels, sortColumn, sortDirection, flashes }) {
      const nextColumns = columnsFor(channels);
      const key = `${nextColumns.join('\u0000')}\u0001${sortColumn}\u0001${sortDirection}`;
      if (key !== columnsKey) {
        const focusedColumn = document.activeElement?.closest?.('thead button')?.dataset.column;
        columns = nextColumns;
        renderHead(sortColumn, sortDirection);
        if (focusedColumn !== undefined) headRow.querySelector(`button[data-column="${CSS.escape(focusedColumn)}"]`)?.focus();
        if (columnsKey.split('\u0001')[0] !== key.split('\u0001')[0]) rowsBySku.clear();
        columnsKey = key;
      }
      const shown = new Set();
      rows.forEach((row, index) => {
        let tr = rowsBySku.get(row.sku);
        if (tr === undefined) {
          tr = createRow(row);
          rowsBySku.set(row.sku, tr);
        } else {
          updateRow(tr, row);
        }
        tr.classList.toggle('deleted', row.deleted);
        const changes = flashes.get(row.sku);
        if (changes !== undefined) flash(tr, changes);
        if (body.children[index] !== tr) body.insertBefore(tr, body.children[index] ?? null);
        shown.add(row.sku);
      });
      while (body.children.length > rows.length) body.lastElementChild.remove();
      for (const sku of rowsBySku.keys()) if (!shown.has(sku)) rowsBySku.delete(sku);
    },
  };
}
