// The dashboard: asks for a key and a tenant, then shows stock, lag, reservations and conflicts live.
/* global AbortController, document, window, sessionStorage, history, location, requestAnimationFrame, setInterval, clearInterval, setTimeout, clearTimeout, ResizeObserver */

import { ApiError, createApi, keyTenantOf } from './api.js';
import { createFeed, describeConflict, feedEntriesMax } from './feed.js';
import { lagSecondsByChannel, parsePrometheusText } from './metrics.js';
import { prependFeedItem, renderLag, renderRates } from './panels.js';
import { createRateWindow, createSeriesHistory } from './rate.js';
import { createSkuStore, prefixSearches, visibleRows } from './rows.js';
import { openStream } from './stream.js';
import { createSkuTable } from './table.js';

const keyStorageName = 'stockline.apiKey';
const tenantStorageName = 'stockline.tenant';
/** Rows shown at first and added by each "Show more". */
const rowsPageSize = 50;
/** SKUs read at start; beyond it the filter also asks the server by prefix. */
const skusLoadedMax = 5000;
const skusStoredMax = 10_000;
const metricsPollMs = 2000;
const chartRedrawMs = 1000;
const filterSearchDelayMs = 250;

const $ = (id) => document.getElementById(id);
const ui = {
  gate: $('gate'), keyForm: $('key-form'), keyInput: $('key-input'), tenantInput: $('tenant-input'), gateError: $('gate-error'),
  connectButton: $('connect'), dashboard: $('dashboard'), tenantForm: $('tenant-form'), tenantSwitch: $('tenant-switch'),
  tenantLabel: $('tenant-label'), tenantName: $('tenant-name'), tenantOptions: $('tenant-options'), signOut: $('sign-out'),
  connection: $('connection'), connectionText: $('connection-text'), filter: $('filter'), summary: $('stock-summary'),
  shownCount: $('shown-count'), showMore: $('show-more'), tableEmpty: $('table-empty'), lagChart: $('lag-chart'),
  lagLegend: $('lag-legend'), notice: $('notice'), rateChart: $('rate-chart'), rateLegend: $('rate-legend'), feed: $('conflict-feed'), feedCount: $('feed-count'),
};

const view = { filterText: '', sortColumn: 'sku', sortDirection: 'ascending', limit: rowsPageSize };
const connectionTexts = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', denied: 'Key refused', closed: 'Not connected' };
let session;

const table = createSkuTable({ groupRow: $('sku-groups'), headRow: $('sku-head'), body: $('sku-body'), onSort: sortBy });

function sortBy(column) {
  const same = view.sortColumn === column;
  view.sortColumn = column;
  view.sortDirection = same && view.sortDirection === 'ascending' ? 'descending' : same || column === 'sku' ? 'ascending' : 'descending';
  scheduleRender();
}

function setConnection(state) {
  ui.connection.dataset.state = state;
  ui.connectionText.textContent = connectionTexts[state] ?? state;
}

/** Shows the key prompt in place of the dashboard, without moving focus. */
function showGateOnly() {
  stopSession();
  ui.dashboard.hidden = true;
  ui.gate.hidden = false;
  ui.signOut.hidden = true;
  ui.tenantForm.hidden = true;
  ui.tenantLabel.hidden = true;
  setConnection('closed');
}

function showGate(message) {
  showGateOnly();
  ui.gateError.textContent = message ?? '';
  (ui.keyInput.value === '' ? ui.keyInput : ui.connectButton).focus();
}

/** Why a connection attempt failed, in words, which field to fix, and the key's own tenant when a 403 names it. */
function explainFailure(error, tenant, keyTenant) {
  if (error instanceof ApiError && error.status === 401) return { message: 'The server did not accept this key.', field: ui.keyInput };
  if (error instanceof ApiError && error.status === 403) {
    const own = keyTenant ?? keyTenantOf(error.problem);
    const hint = typeof own === 'string' ? ` It belongs to tenant “${own}”.` : ' Check the tenant id.';
    return { message: `This key may not read tenant “${tenant}”.${hint}`, field: ui.tenantInput, ownTenant: own };
  }
  // The server names the path's pattern; say what a tenant id may hold instead.
  if (error instanceof ApiError && error.status === 400 && error.problem?.errors?.some((item) => item?.in === 'path' && item?.pointer === '/tenant')) {
    return { message: `“${tenant}” is not a tenant id: one is lower-case letters, digits, _ and -, starting with a letter or a digit.`, field: ui.tenantInput };
  }
  if (error instanceof ApiError) return { message: error.message, field: ui.keyInput };
  return { message: 'Cannot reach the Stockline server. Is it running?', field: ui.connectButton };
}

let noticeTimer;
function showNotice(message) {
  ui.notice.textContent = message;
  ui.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { ui.notice.hidden = true; }, 8000);
}

/** An admin opens another tenant; if that fails, the current one stays on screen. */
async function switchTenant(tenant) {
  const current = session;
  if (current === undefined || tenant === current.tenant) return;
  try {
    const channels = await current.api.channels(tenant);
    if (session !== current) return;
    sessionStorage.setItem(tenantStorageName, tenant);
    rememberTenantInUrl(tenant);
    startSession({ api: current.api, tenant, channels, picker: true });
  } catch (error) {
    ui.tenantSwitch.value = current.tenant;
    showNotice(explainFailure(error, tenant, undefined).message);
  }
}

/** Works out the tenant and whether the key is an admin key, checks access, then starts watching. */
async function connect(key, typedTenant) {
  ui.gateError.textContent = '';
  ui.connectButton.disabled = true;
  ui.connectButton.textContent = 'Connecting…';
  const api = createApi({ key });
  let identity;
  let tenant = typedTenant;
  try {
    identity = await api.identify();
    const tenants = identity.admin ? await api.tenants() : undefined;
    fillTenantOptions(tenants ?? []);
    tenant = typedTenant || identity.tenant || (tenants?.length === 1 ? tenants[0] : '');
    if (tenant === '') {
      ui.gateError.textContent = identity.admin ? 'This is an admin key: choose the tenant to watch.' : 'Enter the tenant this key belongs to.';
      showGateOnly();
      ui.tenantInput.focus();
      return;
    }
    const channels = await api.channels(tenant);
    sessionStorage.setItem(keyStorageName, key);
    sessionStorage.setItem(tenantStorageName, tenant);
    rememberTenantInUrl(tenant);
    startSession({ api, tenant, channels, picker: identity.admin || identity.tenant === undefined });
  } catch (error) {
    const { message, field, ownTenant } = explainFailure(error, tenant, identity?.tenant);
    if (error instanceof ApiError && error.status === 401) sessionStorage.removeItem(keyStorageName);
    if (typeof ownTenant === 'string') ui.tenantInput.value = ownTenant;
    showGateOnly();
    ui.gateError.textContent = message;
    field.focus();
  } finally {
    ui.connectButton.disabled = false;
    ui.connectButton.textContent = 'Connect';
  }
}

function fillTenantOptions(tenants) {
  ui.tenantOptions.replaceChildren(...tenants.slice(0, 500).map((id) => Object.assign(document.createElement('option'), { value: id })));
}

function rememberTenantInUrl(tenant) {
  const url = new URL(location.href);
  url.searchParams.set('tenant', tenant);
  history.replaceState(null, '', url);
}

function channelIdsOf(body) {
  const list = Array.isArray(body) ? body : body?.items ?? body?.channels ?? [];
  return Array.isArray(list) ? list.map((item) => (typeof item === 'string' ? item : item?.channel ?? item?.id)).filter((id) => typeof id === 'string') : [];
}

function startSession({ api, tenant, channels, picker }) {
  stopSession();
  const store = createSkuStore({ rowsMax: skusStoredMax });
  for (const channel of channelIdsOf(channels)) store.addChannel(channel);
  session = {
    api, tenant, store, abort: new AbortController(), flashes: new Map(), truncated: false, loading: true,
    feed: createFeed(), holds: createRateWindow(), commits: createRateWindow(), lag: createSeriesHistory(),
    lagColors: new Map(), metricsUnavailable: false, timers: [], stream: undefined, openedAtMs: Date.now(),
  };
  showDashboard(tenant, picker);
  session.stream = openStream({
    url: api.streamUrl(tenant),
    onEvent: onStreamEvent,
    onStatus: onStreamStatus,
    onReopen: () => readAgain(session),
    checkAccess: () => api.channels(tenant).then(() => 'ok', (error) => (error instanceof ApiError && [401, 403].includes(error.status) ? 'denied' : 'ok')),
  });
  loadSkus(session);
  session.timers.push(setInterval(() => pollMetrics(session), metricsPollMs), setInterval(drawCharts, chartRedrawMs));
  pollMetrics(session);
  drawCharts();
}

function showDashboard(tenant, picker) {
  ui.gate.hidden = true;
  ui.dashboard.hidden = false;
  ui.signOut.hidden = false;
  ui.tenantForm.hidden = !picker;
  ui.tenantLabel.hidden = picker;
  ui.tenantSwitch.value = tenant;
  ui.tenantName.textContent = tenant;
  ui.feed.replaceChildren();
  ui.feedCount.textContent = 'None since this page opened';
  document.title = `${tenant} · Stockline`;
  table.reset();
  view.limit = rowsPageSize;
  scheduleRender();
}

function stopSession() {
  if (session === undefined) return;
  session.abort.abort();
  session.stream?.close();
  for (const timer of session.timers) clearInterval(timer);
  session = undefined;
}

function onStreamStatus(state) {
  if (state === 'denied') {
    sessionStorage.removeItem(keyStorageName);
    showGate('The server no longer accepts this key for this tenant. Enter a key again.');
    return;
  }
  setConnection(state);
}

function onStreamEvent(type, data) {
  if (session === undefined) return;
  if (type === 'availability') {
    const { status, changes } = session.store.upsert(data);
    if (typeof data?.sku === 'string') session.rereading?.add(data.sku);
    if (status === 'changed' && data?.sku !== undefined) session.flashes.set(data.sku, changes);
    if (status === 'added' || status === 'changed') scheduleRender();
  } else if (type === 'reservation') {
    countReservation(data);
  } else if (type === 'conflict') {
    addConflict(data);
  } else if (type === 'refresh') {
    readAgain(session);
  }
}

function countReservation(event) {
  // Counted at arrival: the browser's clock draws the chart, and the server's may differ.
  const nowMs = Date.now();
  if (event?.type === 'order_reserved') session.holds.add(nowMs);
  else if (event?.type === 'order_committed') session.commits.add(nowMs);
}

function addConflict(event) {
  const entry = describeConflict(event, Date.now());
  if (entry === undefined || !session.feed.add(entry)) return;
  prependFeedItem(ui.feed, entry, feedEntriesMax);
  const count = session.feed.entries().length;
  ui.feedCount.textContent = `${count === feedEntriesMax ? `Newest ${count}` : count} since this page opened`;
}

/**
 * Reads again every row the table holds, after a change too large to send SKU by SKU or a stream that could not
 * resume: the first pages, then the current filter's search beyond them. Rows read neither way (found by an earlier
 * search, or sent by the stream) are dropped rather than left with values from before; the filter finds them again.
 * One at a time: asked again meanwhile, it runs once more when done.
 */
async function readAgain(current) {
  if (current.rereading !== undefined) {
    current.readAgainAfter = true;
    return;
  }
  do {
    current.readAgainAfter = false;
    const read = new Set();
    current.rereading = read;
    await loadSkus(current);
    const complete = current.loadError === undefined;
    if (complete && current.truncated) for (const prefix of prefixSearches(view.filterText)) await loadSkus(current, prefix);
    current.rereading = undefined;
    if (current.abort.signal.aborted) return;
    if (complete && current.searchError === undefined) current.store.retain((sku) => read.has(sku));
    scheduleRender();
  } while (current.readAgainAfter);
}

/** Reads SKUs page by page up to `skusLoadedMax` (or those starting with `prefix`), merging by version. */
async function loadSkus(current, prefix) {
  let after;
  let loaded = 0;
  try {
    do {
      const page = await current.api.skuPage(current.tenant, { after, prefix, signal: current.abort.signal });
      for (const row of page.items) {
        current.store.upsert(row);
        current.rereading?.add(row.sku);
      }
      loaded += page.items.length;
      after = page.next;
      scheduleRender();
    } while (after !== undefined && loaded < skusLoadedMax);
    if (prefix === undefined) current.truncated = after !== undefined;
    if (prefix === undefined) current.loadError = undefined;
    else current.searchError = undefined;
  } catch (error) {
    if (current.abort.signal.aborted) return;
    const reason = error instanceof ApiError ? error.message : 'the server did not answer';
    // A failed search of the SKUs beyond those loaded says so where its results would be, not over the summary.
    if (prefix === undefined) current.loadError = `Could not read SKUs: ${reason}`;
    else current.searchError = `Could not search the SKUs beyond the first ${skusLoadedMax.toLocaleString('en-US')}: ${reason}`;
  } finally {
    current.loading = false;
    scheduleRender();
  }
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderTable();
  });
}

function renderTable() {
  if (session === undefined) return;
  const { store } = session;
  const { rows, matched } = visibleRows(store.values(), view);
  table.render({ rows, channels: store.channels(), sortColumn: view.sortColumn, sortDirection: view.sortDirection, flashes: session.flashes });
  session.flashes.clear();
  const skus = `${store.size.toLocaleString('en-US')} ${store.size === 1 ? 'SKU' : 'SKUs'}`;
  const channels = store.channels().length;
  ui.summary.textContent = session.loadError ?? (session.loading && store.size === 0 ? 'Loading…'
    : `${skus} · ${channels} ${channels === 1 ? 'channel' : 'channels'}${session.truncated ? ` · first ${skusLoadedMax.toLocaleString('en-US')} loaded, the filter searches the rest` : ''}`);
  ui.shownCount.textContent = matched === 0 ? '' : `Showing ${rows.length.toLocaleString('en-US')} of ${matched.toLocaleString('en-US')}`;
  ui.showMore.hidden = rows.length >= matched;
  ui.showMore.textContent = `Show ${Math.min(rowsPageSize, matched - rows.length)} more`;
  ui.tableEmpty.hidden = rows.length > 0 || session.loading;
  ui.tableEmpty.textContent = store.size === 0 ? 'No SKUs yet. Stock appears here as soon as it is received.'
    : session.searchError ?? `No SKU contains “${view.filterText.trim()}”${session.truncated ? ' among those loaded, or starts with it beyond them' : ''}.`;
}

async function pollMetrics(current) {
  if (current.metricsInFlight || document.hidden) return;
  current.metricsInFlight = true;
  try {
    const text = await current.api.metricsText({ signal: current.abort.signal });
    const nowMs = Date.now();
    for (const [channel, seconds] of lagSecondsByChannel(parsePrometheusText(text), current.tenant)) {
      if (!current.lagColors.has(channel)) current.lagColors.set(channel, current.lagColors.size);
      current.lag.push(channel, nowMs, seconds);
    }
    current.metricsUnavailable = false;
  } catch {
    current.metricsUnavailable = !current.abort.signal.aborted;
  } finally {
    current.metricsInFlight = false;
  }
  if (current === session) drawLag();
}

function drawLag() {
  renderLag({
    svg: ui.lagChart, legend: ui.lagLegend, history: session.lag, nowMs: Date.now(), openedAtMs: session.openedAtMs,
    colorOf: (channel) => session.lagColors.get(channel) ?? 0, unavailable: session.metricsUnavailable,
  });
}

function drawCharts() {
  if (session === undefined || ui.dashboard.hidden) return;
  drawLag();
  renderRates({ svg: ui.rateChart, legend: ui.rateLegend, holds: session.holds, commits: session.commits, nowMs: Date.now(), openedAtMs: session.openedAtMs });
}

let filterTimer;
function onFilterInput() {
  view.filterText = ui.filter.value;
  view.limit = rowsPageSize;
  scheduleRender();
  clearTimeout(filterTimer);
  const current = session;
  if (current === undefined || !current.truncated) return;
  current.searchError = undefined;
  const prefixes = prefixSearches(view.filterText);
  if (prefixes.length > 0) {
    filterTimer = setTimeout(async () => {
      for (const prefix of prefixes) await loadSkus(current, prefix);
    }, filterSearchDelayMs);
  }
}

function bindEvents() {
  ui.keyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const key = ui.keyInput.value.trim();
    if (key === '') {
      ui.gateError.textContent = 'Enter an API key.';
      ui.keyInput.focus();
      return;
    }
    connect(key, ui.tenantInput.value.trim());
  });
  ui.tenantForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const tenant = ui.tenantSwitch.value.trim();
    if (tenant !== '') switchTenant(tenant);
  });
  ui.signOut.addEventListener('click', () => {
    sessionStorage.removeItem(keyStorageName);
    ui.keyInput.value = '';
    showGate();
  });
  ui.filter.addEventListener('input', onFilterInput);
  ui.showMore.addEventListener('click', () => {
    view.limit += rowsPageSize;
    scheduleRender();
  });
  document.addEventListener('keydown', (event) => {
    const typing = event.target instanceof window.HTMLInputElement || event.target instanceof window.HTMLTextAreaElement;
    if (event.key === '/' && !typing && !ui.dashboard.hidden) {
      event.preventDefault();
      ui.filter.focus();
    }
  });
  new ResizeObserver(() => drawCharts()).observe(ui.lagChart);
}

function start() {
  bindEvents();
  const urlTenant = new URL(location.href).searchParams.get('tenant') ?? '';
  ui.tenantInput.value = urlTenant || sessionStorage.getItem(tenantStorageName) || '';
  const key = sessionStorage.getItem(keyStorageName);
  if (key !== null && key !== '') {
    ui.keyInput.value = key;
    connect(key, ui.tenantInput.value.trim());
  } else {
    showGate();
  }
}

start();
