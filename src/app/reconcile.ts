// Reconciliation: reads what each channel shows, compares it with the desired quantity, and repairs drift.

import type { ChannelConnector } from '../adapters/channels/connector.js';
import { keyText } from './channel-sync.js';
import type { ChannelKey, DesiredRow } from './channel-sync.js';

/** What reconciliation needs from the desired-state store (the SQLite channel outbox implements it). */
export interface ReconcileStore {
  page(filter: { tenant?: string; channel?: string }, after: ChannelKey | undefined, limit: number): DesiredRow[];
  count(filter: { tenant?: string; channel?: string }): number;
  /** `row` as it was paged, before the channel was read: a push sent or answered since makes the read too old to settle on. */
  setAcknowledged(row: DesiredRow, quantity: number | null, nowMs: number): void;
}

export interface Drift extends ChannelKey {
  desired: number;
  /** What the channel shows; null when it does not list the SKU at all. */
  shown: number | null;
  /** A change was still on its way to the channel when it was read: the drift may close on its own. */
  pending: boolean;
}

/** A batch whose SKUs could not be read: they were not checked. */
export interface ReadFailure {
  tenant: string;
  channel: string;
  skus: number;
  reason: string;
}

export interface ReconcileReport {
  checked: number;
  drift: Drift[];
  repaired: number;
  /** Drifted rows `defer` left for a later run. */
  deferred: number;
  /** Channels with rows but no connector, and reads that failed after their retries. */
  unchecked: ReadFailure[];
}

export interface ReconcileProgress {
  checked: number;
  total: number;
  drift: number;
}

export interface ReconcileOptions {
  outbox: ReconcileStore;
  connectors: ReadonlyMap<string, ChannelConnector>;
  tenant?: string;
  channel?: string;
  repair: boolean;
  /** With `repair`: a drift to leave as it is this time (true), for a later run to repair if it is still there. */
  defer?: (drift: Drift) => boolean;
  onProgress?: (progress: ReconcileProgress) => void;
  /** The push worker, kicked after each repaired batch so repairs go out at once. */
  sync?: { kick(): void };
  clock?: { nowMs(): number };
  /** Waits between read attempts (default: a timer). */
  sleep?: (ms: number) => Promise<void>;
}

export const reconcileLimits = {
  /** SKUs per `connector.read`: channel APIs page around this size. */
  readBatchSkus: 100,
  readAttemptsMax: 3,
  /** The wait before another read when the channel names none: this, then twice it. */
  readRetryMs: 500,
  /** The longest wait between reads, whatever the channel asks (Retry-After). */
  readRetryMsMax: 10_000,
  /** Drift entries kept in the report; beyond it only the count grows, so a broken channel cannot exhaust memory. */
  driftReportedMax: 100_000,
} as const;

interface Group {
  tenant: string;
  channel: string;
  rows: DesiredRow[];
}

/** Splits a page, ordered by tenant and channel, into runs that one `read` call can serve. */
function groupsOf(rows: DesiredRow[]): Group[] {
  const groups: Group[] = [];
  for (const row of rows) {
    const last = groups.at(-1);
    if (last !== undefined && last.tenant === row.tenant && last.channel === row.channel) last.rows.push(row);
    else groups.push({ tenant: row.tenant, channel: row.channel, rows: [row] });
  }
  return groups;
}

async function readShown(connector: ChannelConnector, group: Group, sleep: (ms: number) => Promise<void>): Promise<Map<string, number> | Error> {
  let lastError: Error = new Error('not read');
  for (let attempt = 1; attempt <= reconcileLimits.readAttemptsMax; attempt += 1) {
    if (attempt > 1) {
      // A throttled channel says when to come back (Retry-After); asked again at once, it answers the same.
      const asked = (lastError as { retryAfterMs?: unknown }).retryAfterMs;
      const waitMs = typeof asked === 'number' ? asked : reconcileLimits.readRetryMs * 2 ** (attempt - 2);
      await sleep(Math.min(waitMs, reconcileLimits.readRetryMsMax));
    }
    try {
      return await connector.read(group.tenant, group.rows.map((row) => row.sku));
    } catch (error) {
      lastError = error instanceof Error ? error : new Error(String(error));
      // A channel that cannot read (or refuses this tenant) will answer the same again.
      if ((error as { retryable?: unknown }).retryable === false) break;
    }
  }
  return lastError;
}

export async function reconcile(options: ReconcileOptions): Promise<ReconcileReport> {
  const filter = { tenant: options.tenant, channel: options.channel };
  const report: ReconcileReport = { checked: 0, drift: [], repaired: 0, deferred: 0, unchecked: [] };
  const total = options.outbox.count(filter);
  let driftCount = 0;
  let after: ChannelKey | undefined;
  for (;;) {
    const page = options.outbox.page(filter, after, reconcileLimits.readBatchSkus);
    const last = page.at(-1);
    if (last === undefined) break;
    after = { tenant: last.tenant, channel: last.channel, sku: last.sku };
    for (const group of groupsOf(page)) driftCount += await checkGroup(options, group, report);
    options.onProgress?.({ checked: report.checked, total, drift: driftCount });
    if (page.length < reconcileLimits.readBatchSkus) break;
  }
  return report;
}

/** Reads one group, records its drift and repairs it when asked; returns how many rows drifted. */
async function checkGroup(options: ReconcileOptions, group: Group, report: ReconcileReport): Promise<number> {
  const connector = options.connectors.get(group.channel);
  if (connector === undefined) {
    report.unchecked.push({ tenant: group.tenant, channel: group.channel, skus: group.rows.length, reason: 'the configuration names no channel of this id: reconcile with the configuration the server runs with (--config or STOCKLINE_CONFIG)' });
    return 0;
  }
  const shown = await readShown(connector, group, options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))));
  if (shown instanceof Error) {
    const code = (shown as { code?: unknown }).code;
    const reason = typeof code === 'string' ? `${code}: ${shown.message}` : shown.message;
    report.unchecked.push({ tenant: group.tenant, channel: group.channel, skus: group.rows.length, reason });
    return 0;
  }
  report.checked += group.rows.length;
  // The store compares with the desired quantity as it is when written, so a change made since this
  // page was read is kept and pushed, not undone.
  const nowMs = options.clock?.nowMs() ?? Date.now();
  let drifted = 0;
  for (const row of group.rows) {
    const quantity = shown.get(row.sku) ?? null;
    if (quantity === row.quantity) continue;
    drifted += 1;
    const drift: Drift = { tenant: row.tenant, channel: row.channel, sku: row.sku, desired: row.quantity, shown: quantity, pending: row.nextAttemptMs !== null };
    if (report.drift.length < reconcileLimits.driftReportedMax) report.drift.push(drift);
    if (options.repair && options.defer?.(drift) === true) {
      report.deferred += 1;
    } else if (options.repair) {
      options.outbox.setAcknowledged(row, quantity, nowMs);
      report.repaired += 1;
    }
  }
  if (options.repair && drifted > 0) options.sync?.kick();
  return drifted;
}

/**
 * Which drifts a timed reconciliation leaves for the next run: a channel that takes orders itself (compare-and-set,
 * Shopify) showing less than it should is most often a sale whose webhook is still on its way, and raising the
 * level would offer the sold units again. It is repaired when the next run finds the same shortfall. A level
 * above what it should be, or one the channel does not show at all, is repaired at once.
 */
export class RepeatedShortfalls {
  private previous = new Map<string, string>();
  private current = new Map<string, string>();

  constructor(private readonly takesOrders: (channel: string) => boolean) {}

  startRun(): void {
    this.current = new Map();
  }

  endRun(): void {
    this.previous = this.current;
  }

  defer(drift: Drift): boolean {
    if (drift.shown === null || drift.shown >= drift.desired || drift.pending || !this.takesOrders(drift.channel)) return false;
    const key = keyText(drift);
    const seen = `${drift.desired}:${drift.shown}`;
    if (this.current.size < reconcileLimits.driftReportedMax) this.current.set(key, seen);
    return this.previous.get(key) !== seen;
  }
}
