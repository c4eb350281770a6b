// Bounded time windows for the charts: events counted per second, and sampled values per series; pure.

export const chartWindowMs = 5 * 60_000;

/**
 * Counts events in fixed buckets over a sliding window (a ring of `windowMs / bucketMs` buckets), so
 * memory stays the same whatever the event rate.
 */
export function createRateWindow({ windowMs = chartWindowMs, bucketMs = 1000 } = {}) {
  if (!(bucketMs > 0) || !(windowMs >= bucketMs)) throw new RangeError('windowMs must be at least bucketMs, and bucketMs positive');
  const bucketCount = Math.ceil(windowMs / bucketMs);
  const bucketIds = new Array(bucketCount).fill(-1);
  const counts = new Array(bucketCount).fill(0);
  let newestBucketId = -1;

  const slotOf = (bucketId) => bucketId % bucketCount;
  const countIn = (bucketId) => (bucketIds[slotOf(bucketId)] === bucketId ? counts[slotOf(bucketId)] : 0);

  return {
    bucketMs,
    /** Counts `count` events at `timeMs`; events older than the window are ignored. */
    add(timeMs, count = 1) {
      const bucketId = Math.floor(timeMs / bucketMs);
      if (bucketId < 0 || bucketId <= newestBucketId - bucketCount) return;
      const slot = slotOf(bucketId);
      if (bucketIds[slot] !== bucketId) {
        bucketIds[slot] = bucketId;
        counts[slot] = 0;
      }
      counts[slot] += count;
      newestBucketId = Math.max(newestBucketId, bucketId);
    },
    /**
     * Events per second for each complete bucket of the window that ends at `nowMs`, oldest first.
     * The bucket `nowMs` falls in is still filling, so it is left out.
     * @returns {Array<{ timeMs: number, perSecond: number }>}
     */
    series(nowMs) {
      const lastId = Math.floor(nowMs / bucketMs) - 1;
      const points = [];
      for (let bucketId = lastId - bucketCount + 1; bucketId <= lastId; bucketId += 1) {
        points.push({ timeMs: (bucketId + 1) * bucketMs, perSecond: (countIn(bucketId) * 1000) / bucketMs });
      }
      return points;
    },
    /** Mean events per second over the `spanMs` before the current bucket. */
    ratePerSecond(nowMs, spanMs) {
      const buckets = Math.max(1, Math.min(bucketCount, Math.round(spanMs / bucketMs)));
      const lastId = Math.floor(nowMs / bucketMs) - 1;
      let total = 0;
      for (let bucketId = lastId - buckets + 1; bucketId <= lastId; bucketId += 1) total += countIn(bucketId);
      return (total * 1000) / (buckets * bucketMs);
    },
  };
}

/**
 * Sampled values per named series (e.g. lag per channel), kept for `windowMs` and at most
 * `pointsMax` points per series, and at most `seriesMax` series.
 */
export function createSeriesHistory({ windowMs = chartWindowMs, pointsMax = 600, seriesMax = 24 } = {}) {
  const series = new Map();
  const trim = (points, nowMs) => {
    let drop = 0;
    while (drop < points.length && (points[drop].timeMs < nowMs - windowMs || points.length - drop > pointsMax)) drop += 1;
    if (drop > 0) points.splice(0, drop);
  };
  return {
    push(name, timeMs, value) {
      let points = series.get(name);
      if (points === undefined) {
        if (series.size >= seriesMax) return;
        points = [];
        series.set(name, points);
      }
      points.push({ timeMs, value });
      trim(points, timeMs);
    },
    /** Every series with its points inside the window ending at `nowMs`, oldest first; empty series are dropped. */
    snapshot(nowMs) {
      const result = new Map();
      for (const [name, points] of series) {
        trim(points, nowMs);
        if (points.length === 0) series.delete(name);
        else result.set(name, points.slice());
      }
      return result;
    },
    clear() {
      series.clear();
    },
  };
}
