// The side panels in the DOM: the lag and reservation charts with their legends, and the incident feed.
/* global document */

import { renderLineChart, seriesColorsCount } from './chart.js';
import { chartWindowMs } from './rate.js';

export const lagAlertSeconds = 5;
/** A chart opened a moment ago spans at least this, growing to the full window as the page stays open. */
export const chartSpanMsMin = 60_000;
const rateSpanMs = 10_000;

function element(name, className, text) {
  const node = document.createElement(name);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Seconds for people: milliseconds below one second, one decimal below a minute. */
export function formatSeconds(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${(Math.round(seconds * 10) / 10).toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function formatRate(perSecond) {
  if (perSecond === 0) return '0/s';
  return perSecond < 10 ? `${perSecond.toFixed(1)}/s` : `${Math.round(perSecond)}/s`;
}

function legendItem(colorIndex, name, value, alert = false) {
  const item = element('li', alert ? 'alert' : '');
  const swatch = element('span', `swatch series-${colorIndex % seriesColorsCount}`);
  swatch.setAttribute('aria-hidden', 'true');
  item.append(swatch, element('span', 'legend-name', name), element('strong', 'legend-value', value));
  return item;
}

/** Where the time axis starts: the page's opening (at least a minute back), at most the full window back. */
export function chartStartMs(nowMs, openedAtMs) {
  const spanMs = Math.min(chartWindowMs, Math.max(chartSpanMsMin, nowMs - openedAtMs));
  return nowMs - spanMs;
}

/** The lag chart: one line per channel, the 5 s alert threshold, and the newest value per channel. */
export function renderLag({ svg, legend, history, colorOf, nowMs, openedAtMs, unavailable }) {
  const series = [...history.snapshot(nowMs)].map(([channel, points]) => ({ name: channel, colorIndex: colorOf(channel), points }));
  renderLineChart(svg, {
    series, xStartMs: chartStartMs(nowMs, openedAtMs), xEndMs: nowMs, yMaxFloor: 1, gapMs: 7_000,
    threshold: { value: lagAlertSeconds, label: `alert ${lagAlertSeconds} s` },
    formatY: (value) => (value === 0 ? '0' : formatSeconds(value)),
    emptyText: unavailable ? 'Metrics unavailable' : 'Waiting for /metrics',
  });
  const items = series.map(({ name, colorIndex, points }) => {
    const newest = points[points.length - 1]?.value ?? Number.NaN;
    return legendItem(colorIndex, name, formatSeconds(newest), newest > lagAlertSeconds);
  });
  if (items.length === 0) items.push(element('li', 'muted', unavailable ? 'Could not read /metrics.' : 'No channel reported yet.'));
  legend.replaceChildren(...items);
  const summary = series.map(({ name, points }) => `${name} ${formatSeconds(points[points.length - 1]?.value ?? Number.NaN)}`).join(', ');
  svg.setAttribute('aria-label', `Reconciliation lag over the last minutes${summary === '' ? '' : `; now ${summary}`}`);
}

/** The reservations chart: holds and commits per second, and their mean over the last 10 s. */
export function renderRates({ svg, legend, holds, commits, nowMs, openedAtMs }) {
  const toPoints = (window) => window.series(nowMs).map(({ timeMs, perSecond }) => ({ timeMs, value: perSecond }));
  const series = [
    { name: 'Held', colorIndex: 0, points: toPoints(holds) },
    { name: 'Committed', colorIndex: 1, points: toPoints(commits) },
  ];
  renderLineChart(svg, {
    series, xStartMs: chartStartMs(nowMs, openedAtMs), xEndMs: nowMs, yMaxFloor: 1, gapMs: 1_500,
    formatY: (value) => (Number.isInteger(value) ? String(value) : value.toFixed(1)),
  });
  const holdsRate = holds.ratePerSecond(nowMs, rateSpanMs);
  const commitsRate = commits.ratePerSecond(nowMs, rateSpanMs);
  legend.replaceChildren(
    legendItem(0, 'Held', formatRate(holdsRate)),
    legendItem(1, 'Committed', formatRate(commitsRate)),
  );
  svg.setAttribute('aria-label', `Reservations per second over the last minutes; now ${formatRate(holdsRate)} held, ${formatRate(commitsRate)} committed`);
}

const clockFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** A feed entry as a list item. */
export function feedItem(entry) {
  const item = element('li', `feed-item kind-${entry.kind}`);
  const head = element('div', 'feed-head');
  const time = element('time', 'feed-time', clockFormat.format(entry.timeMs));
  time.dateTime = new Date(entry.timeMs).toISOString();
  const where = element('span', 'feed-where');
  where.append(element('span', 'sku', entry.sku));
  if (entry.location !== '') where.append(element('span', 'muted', ` at ${entry.location}`));
  head.append(element('span', 'badge', entry.title), where, time);
  item.append(head, element('p', 'feed-detail', entry.detail));
  return item;
}

/** Puts a new entry on top of the list and drops the oldest items past `entriesMax`. */
export function prependFeedItem(list, entry, entriesMax) {
  list.prepend(feedItem(entry));
  while (list.children.length > entriesMax) list.lastElementChild.remove();
}
