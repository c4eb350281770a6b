// A small hand-written SVG line chart: pure geometry helpers, and one function that draws into an <svg>.
/* global document */

const svgNamespace = 'http://www.w3.org/2000/svg';
export const seriesColorsCount = 6;
const margin = { left: 44, right: 12, top: 10, bottom: 22 };

/** The smallest "round" number (1, 2, 2.5 or 5 times a power of ten) at or above `value`; 1 for nothing. */
export function niceCeiling(value) {
  if (!(value > 0) || !Number.isFinite(value)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    const candidate = step * power;
    if (candidate >= value * (1 - 1e-9)) return Number(candidate.toPrecision(12));
  }
  return 10 * power;
}

/**
 * The `d` attribute of a polyline through `points` inside the plot box. Points outside the time range
 * are left out; a gap longer than `gapMs` between two points starts a new segment instead of a line.
 */
export function linePath(points, { xStartMs, xEndMs, yMax, left, top, width, height, gapMs = Number.POSITIVE_INFINITY }) {
  const spanMs = Math.max(1, xEndMs - xStartMs);
  const x = (timeMs) => left + ((timeMs - xStartMs) / spanMs) * width;
  const y = (value) => top + height - (Math.min(Math.max(value, 0), yMax) / yMax) * height;
  let d = '';
  let previousMs;
  for (const point of points) {
    if (point.timeMs < xStartMs || point.timeMs > xEndMs || !Number.isFinite(point.value)) {
      previousMs = undefined;
      continue;
    }
    const command = previousMs === undefined || point.timeMs - previousMs > gapMs ? 'M' : 'L';
    d += `${d === '' ? '' : ' '}${command}${round(x(point.timeMs))},${round(y(point.value))}`;
    previousMs = point.timeMs;
  }
  return d;
}

function round(value) {
  return Math.round(value * 10) / 10;
}

/** The largest finite value across every series' points, or 0. */
export function maxValue(series) {
  let max = 0;
  for (const { points } of series) for (const point of points) if (Number.isFinite(point.value) && point.value > max) max = point.value;
  return max;
}

function element(name, attributes, text) {
  const node = document.createElementNS(svgNamespace, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Draws `series` ([{ name, colorIndex, points: [{ timeMs, value }] }]) into `svg`, sized to the element's
 * box so that text is never stretched. `threshold` ({ value, label }) draws a dashed line when in range.
 */
export function renderLineChart(svg, { series, xStartMs, xEndMs, yMaxFloor = 1, threshold, formatY = String, gapMs, emptyText = 'Waiting for data' }) {
  const box = svg.getBoundingClientRect();
  const widthPx = Math.max(160, Math.round(box.width) || 480);
  const heightPx = Math.max(80, Math.round(box.height) || 140);
  svg.setAttribute('viewBox', `0 0 ${widthPx} ${heightPx}`);
  const plot = { left: margin.left, top: margin.top, width: widthPx - margin.left - margin.right, height: heightPx - margin.top - margin.bottom };
  const yMax = niceCeiling(Math.max(yMaxFloor, maxValue(series) * 1.1));
  const nodes = [...axisNodes(plot, yMax, formatY, xEndMs - xStartMs)];
  if (threshold !== undefined && threshold.value <= yMax) nodes.push(...thresholdNodes(plot, yMax, threshold));
  let drawn = 0;
  for (const one of series) {
    const d = linePath(one.points, { xStartMs, xEndMs, yMax, ...plot, gapMs });
    if (d === '') continue;
    drawn += 1;
    nodes.push(element('path', { d, class: `line series-${one.colorIndex % seriesColorsCount}` }));
  }
  if (drawn === 0) {
    nodes.push(element('text', { x: plot.left + plot.width / 2, y: plot.top + plot.height / 2, class: 'chart-empty', 'text-anchor': 'middle' }, emptyText));
  }
  svg.replaceChildren(...nodes);
}

/** How long ago, for a time axis: `−5 min`, `−90 s`, `now`. */
export function formatAgo(ms) {
  if (ms <= 0) return 'now';
  const seconds = Math.round(ms / 1000);
  if (seconds < 120 && seconds % 60 !== 0) return `−${seconds} s`;
  const minutes = seconds / 60;
  return `−${Number.isInteger(minutes) ? minutes : minutes.toFixed(1)} min`;
}

function axisNodes(plot, yMax, formatY, spanMs) {
  const nodes = [];
  for (const fraction of [0, 0.5, 1]) {
    const y = round(plot.top + plot.height - fraction * plot.height);
    nodes.push(element('line', { x1: plot.left, x2: plot.left + plot.width, y1: y, y2: y, class: fraction === 0 ? 'axis' : 'grid' }));
    nodes.push(element('text', { x: plot.left - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, formatY(yMax * fraction)));
  }
  const labels = [[formatAgo(spanMs), 0, 'start'], [formatAgo(spanMs / 2), 0.5, 'middle'], ['now', 1, 'end']];
  for (const [label, fraction, anchor] of labels) {
    nodes.push(element('text', { x: round(plot.left + fraction * plot.width), y: plot.top + plot.height + 16, class: 'tick', 'text-anchor': anchor }, label));
  }
  return nodes;
}

function thresholdNodes(plot, yMax, threshold) {
  const y = round(plot.top + plot.height - (threshold.value / yMax) * plot.height);
  return [
    element('line', { x1: plot.left, x2: plot.left + plot.width, y1: y, y2: y, class: 'threshold' }),
    element('text', { x: plot.left + plot.width - 4, y: y - 4, class: 'threshold-label', 'text-anchor': 'end' }, threshold.label),
  ];
}
