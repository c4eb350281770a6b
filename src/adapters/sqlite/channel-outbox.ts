// The durable desired state per (tenant, channel, SKU): what each channel should show, and what it acknowledged.

import type Database from 'better-sqlite3';
import type { ChannelKey, DesiredChange, DesiredRow, DesiredStore, InDoubtPush } from '../../app/channel-sync.js';
import type { ProjectedWrite } from './batch-sql.js';

export type { ChannelKey, DesiredChange, DesiredRow };

export interface ChannelLag {
  tenant: string;
  channel: string;
  changedAtMs: number;
}

export interface ChannelDepth {
  tenant: string;
  channel: string;
  /** Rows waiting to be pushed (due now or later). */
  count: number;
  /** Of those, rows whose last push failed for good. */
  failed: number;
}

export interface RowFilter {
  tenant?: string;
  channel?: string;
}

/** Limits of this table; errors longer than this are cut, so a chatty channel cannot grow the database. */
export const outboxLimits = {
  lastErrorLengthMax: 512,
  dueBatchMax: 10_000,
  pageSizeMax: 10_000,
} as const;

interface RawRow {
  tenant: string;
  channel: string;
  sku: string;
  quantity: number;
  version: number;
  changed_at_ms: number | null;
  cause_position: number;
  pushed_quantity: number | null;
  pushed_version: number | null;
  acked_quantity: number | null;
  acked_version: number | null;
  acked_at_ms: number | null;
  attempts: number;
  next_attempt_ms: number | null;
  last_error: string | null;
  failed_at_ms: number | null;
  in_doubt_version: number | null;
  in_doubt_quantity: number | null;
  in_doubt_previous_quantity: number | null;
}

const columns = `tenant, channel, sku, quantity, version, changed_at_ms, cause_position, pushed_quantity,
  pushed_version, acked_quantity, acked_version, acked_at_ms, attempts, next_attempt_ms, last_error, failed_at_ms,
  in_doubt_version, in_doubt_quantity, in_doubt_previous_quantity`;

/**
 * The push in doubt (see InDoubtPush): set while a push of a compare-and-set channel may still be applied,
 * cleared by the channel's definite answer. Columns added after the table first shipped; `migrate` adds them to
 * older files, where every row starts with none.
 */
const inDoubtColumns = ['in_doubt_version', 'in_doubt_quantity', 'in_doubt_previous_quantity'] as const;

const schema = `
CREATE TABLE IF NOT EXISTS channel_desired (
  tenant TEXT NOT NULL,
  channel TEXT NOT NULL,
  sku TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  version INTEGER NOT NULL,
  changed_at_ms INTEGER,
  -- Time of the first change made after pushed_version: becomes changed_at_ms when that push is acknowledged.
  superseded_at_ms INTEGER,
  cause_position INTEGER NOT NULL,
  pushed_quantity INTEGER,
  pushed_version INTEGER,
  acked_quantity INTEGER,
  acked_version INTEGER,
  acked_at_ms INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER,
  last_error TEXT,
  failed_at_ms INTEGER,
  in_doubt_version INTEGER,
  in_doubt_quantity INTEGER,
  in_doubt_previous_quantity INTEGER,
  PRIMARY KEY (tenant, channel, sku)
) WITHOUT ROWID;
-- Partial indexes: only rows with work to do are in them, so they stay small however large the catalogue.
CREATE INDEX IF NOT EXISTS channel_desired_due ON channel_desired (next_attempt_ms) WHERE next_attempt_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS channel_desired_channel_due ON channel_desired (channel, next_attempt_ms)
  WHERE next_attempt_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS channel_desired_unsynced ON channel_desired (tenant, channel, changed_at_ms)
  WHERE changed_at_ms IS NOT NULL;
`;

/** Only the key's own fields: rows are often passed as keys, and their other fields must not bind. */
function keyOf(key: ChannelKey): ChannelKey {
  return { tenant: key.tenant, channel: key.channel, sku: key.sku };
}

function toRow(raw: RawRow): DesiredRow {
  return {
    tenant: raw.tenant, channel: raw.channel, sku: raw.sku, quantity: raw.quantity, version: raw.version,
    changedAtMs: raw.changed_at_ms, causePosition: raw.cause_position,
    pushedQuantity: raw.pushed_quantity, pushedVersion: raw.pushed_version,
    ackedQuantity: raw.acked_quantity, ackedVersion: raw.acked_version, ackedAtMs: raw.acked_at_ms,
    attempts: raw.attempts, nextAttemptMs: raw.next_attempt_ms, lastError: raw.last_error, failedAtMs: raw.failed_at_ms,
    inDoubt: raw.in_doubt_version === null || raw.in_doubt_quantity === null
      ? null
      : { version: raw.in_doubt_version, quantity: raw.in_doubt_quantity, previousQuantity: raw.in_doubt_previous_quantity },
  };
}

/** Parameters of the statements that set, clear (null) or keep (undefined) the push in doubt. */
function inDoubtParams(inDoubt: InDoubtPush | null | undefined): Record<string, number | null> {
  return {
    keepInDoubt: inDoubt === undefined ? 1 : 0,
    inDoubtVersion: inDoubt?.version ?? null,
    inDoubtQuantity: inDoubt?.quantity ?? null,
    inDoubtPreviousQuantity: inDoubt?.previousQuantity ?? null,
  };
}

function assertQuantity(quantity: number): void {
  if (!Number.isSafeInteger(quantity) || quantity < 0) throw new Error(`desired quantity must be a non-negative integer, got ${quantity}`);
}

function clip(error: string): string {
  return error.length > outboxLimits.lastErrorLengthMax ? error.slice(0, outboxLimits.lastErrorLengthMax) : error;
}

type Statement = Database.Statement;

const keyMatch = 'tenant = :tenant AND channel = :channel AND sku = :sku';

// An acknowledgement or a refused compare-and-set answers the push in doubt for good (it is always that push that
// was sent while one is in doubt); a retry or a failure sets, clears or keeps it as the worker says.
const clearInDoubt = 'in_doubt_version = NULL, in_doubt_quantity = NULL, in_doubt_previous_quantity = NULL';

const setInDoubt = `in_doubt_version = CASE WHEN :keepInDoubt = 1 THEN in_doubt_version ELSE :inDoubtVersion END,
    in_doubt_quantity = CASE WHEN :keepInDoubt = 1 THEN in_doubt_quantity ELSE :inDoubtQuantity END,
    in_doubt_previous_quantity = CASE WHEN :keepInDoubt = 1 THEN in_doubt_previous_quantity ELSE :inDoubtPreviousQuantity END`;

/** Every statement of the outbox, prepared once per connection. */
const sql = {
  upsert: `
    INSERT INTO channel_desired (tenant, channel, sku, quantity, version, changed_at_ms, cause_position, next_attempt_ms)
    VALUES (:tenant, :channel, :sku, :quantity, MAX(1, COALESCE(:version, 0)), :changedAtMs, :position, :changedAtMs)
    ON CONFLICT (tenant, channel, sku) DO UPDATE SET
      quantity = excluded.quantity,
      -- The version the change has on every node; never lower than the row's own (older rows counted their changes).
      version = MAX(version + 1, COALESCE(:version, 0)),
      -- The lag is measured from the oldest change the channel has not seen; a newer one must not hide it.
      changed_at_ms = COALESCE(changed_at_ms, excluded.changed_at_ms),
      superseded_at_ms = COALESCE(superseded_at_ms, CASE WHEN pushed_version = version THEN excluded.changed_at_ms END),
      cause_position = excluded.cause_position,
      next_attempt_ms = excluded.changed_at_ms,
      -- The channel's own sales took its level down: the compare base follows, and the row is pushed again.
      acked_quantity = CASE WHEN :sold > 0 AND acked_quantity IS NOT NULL THEN acked_quantity - :sold ELSE acked_quantity END
    WHERE quantity <> excluded.quantity OR :sold > 0`,
  due: `SELECT ${columns} FROM channel_desired
    WHERE next_attempt_ms IS NOT NULL AND next_attempt_ms <= :nowMs ORDER BY next_attempt_ms LIMIT :limit`,
  dueChannel: `SELECT ${columns} FROM channel_desired
    WHERE channel = :channel AND next_attempt_ms IS NOT NULL AND next_attempt_ms <= :nowMs
    ORDER BY next_attempt_ms LIMIT :limit`,
  nextDue: `SELECT MIN(next_attempt_ms) AS next FROM channel_desired
    WHERE next_attempt_ms IS NOT NULL AND next_attempt_ms > :afterMs`,
  pushed: `UPDATE channel_desired SET pushed_version = :version, pushed_quantity = :quantity,
    superseded_at_ms = CASE WHEN version = :version THEN NULL ELSE superseded_at_ms END, ${setInDoubt} WHERE ${keyMatch}`,
  acked: `UPDATE channel_desired SET
      acked_quantity = :quantity, acked_version = :version, acked_at_ms = :ackedAtMs,
      attempts = 0, last_error = NULL, failed_at_ms = NULL,
      changed_at_ms = CASE WHEN version = :version THEN NULL
        ELSE COALESCE(CASE WHEN pushed_version = :version THEN superseded_at_ms END, changed_at_ms, :ackedAtMs) END,
      superseded_at_ms = NULL,
      next_attempt_ms = CASE WHEN version = :version THEN NULL ELSE :ackedAtMs END,
      ${clearInDoubt}
    WHERE ${keyMatch}`,
  // No guard on a row being due: the answer may come after the push landed (a timeout), so whatever the row
  // says now, the channel's state is unknown until a push is acknowledged.
  retry: `UPDATE channel_desired SET attempts = attempts + 1, next_attempt_ms = :nextAttemptMs,
    last_error = :error, ${setInDoubt} WHERE ${keyMatch}`,
  // A refused push changed nothing on the channel: a row settled meanwhile stays settled.
  failed: `UPDATE channel_desired SET attempts = attempts + 1, next_attempt_ms = :nextAttemptMs,
    last_error = :error, failed_at_ms = :failedAtMs, ${setInDoubt} WHERE ${keyMatch} AND next_attempt_ms IS NOT NULL`,
  // The channel does not show what was pushed: push again, whatever the row says now.
  mismatch: `UPDATE channel_desired SET acked_quantity = :actual, attempts = attempts + 1,
    next_attempt_ms = :nextAttemptMs, last_error = :error, ${clearInDoubt} WHERE ${keyMatch}`,
  // Settles only a row whose pushes are all answered and none was sent or answered since it was read
  // (:readKnown = 0: the caller did not say): otherwise the channel may have been read before a push of
  // ours landed, and the row stays as it is (due while a push is unanswered) so that push decides.
  acknowledgeInStep: `UPDATE channel_desired SET
      acked_quantity = :quantity, acked_version = version, acked_at_ms = :nowMs,
      changed_at_ms = NULL, superseded_at_ms = NULL, attempts = 0, last_error = NULL, failed_at_ms = NULL,
      next_attempt_ms = NULL
    WHERE ${keyMatch} AND quantity IS :quantity AND in_doubt_version IS NULL
      AND COALESCE(pushed_version, 0) <= COALESCE(acked_version, 0)
      AND (:readKnown = 0 OR (pushed_version IS :readPushedVersion AND acked_version IS :readAckedVersion))`,
  acknowledgeDrift: `UPDATE channel_desired SET
      version = version + 1, acked_quantity = :quantity, changed_at_ms = COALESCE(changed_at_ms, :nowMs),
      next_attempt_ms = :nowMs
    WHERE ${keyMatch} AND quantity IS NOT :quantity`,
  defer: `UPDATE channel_desired SET next_attempt_ms = :untilMs
    WHERE tenant = :tenant AND channel = :channel AND next_attempt_ms IS NOT NULL AND next_attempt_ms < :untilMs`,
  oldest: `SELECT tenant, channel, MIN(changed_at_ms) AS changedAtMs FROM channel_desired
    WHERE changed_at_ms IS NOT NULL GROUP BY tenant, channel ORDER BY tenant, channel`,
  depth: `SELECT tenant, channel, COUNT(*) AS count, COUNT(failed_at_ms) AS failed FROM channel_desired
    WHERE next_attempt_ms IS NOT NULL GROUP BY tenant, channel ORDER BY tenant, channel`,
  get: `SELECT ${columns} FROM channel_desired WHERE ${keyMatch}`,
  pageTenantChannel: `SELECT ${columns} FROM channel_desired
    WHERE tenant = :filterTenant AND channel = :filterChannel AND sku > :sku ORDER BY sku LIMIT :limit`,
  pageTenant: `SELECT ${columns} FROM channel_desired
    WHERE tenant = :filterTenant AND (channel, sku) > (:channel, :sku) ORDER BY channel, sku LIMIT :limit`,
  pageChannel: `SELECT ${columns} FROM channel_desired
    WHERE (tenant, channel, sku) > (:tenant, :channel, :sku) AND channel = :filterChannel
    ORDER BY tenant, channel, sku LIMIT :limit`,
  pageAll: `SELECT ${columns} FROM channel_desired
    WHERE (tenant, channel, sku) > (:tenant, :channel, :sku) ORDER BY tenant, channel, sku LIMIT :limit`,
  count: `SELECT COUNT(*) AS count FROM channel_desired
    WHERE (:tenant IS NULL OR tenant = :tenant) AND (:channel IS NULL OR channel = :channel)`,
} as const;

type StatementName = keyof typeof sql;

function upsertParams(row: DesiredChange): ProjectedWrite['params'] {
  assertQuantity(row.quantity);
  return {
    tenant: row.tenant, channel: row.channel, sku: row.sku, quantity: row.quantity, changedAtMs: row.changedAtMs, position: row.position,
    version: row.version ?? null, sold: row.soldOnChannel ?? 0,
  };
}

export class ChannelOutbox implements DesiredStore {
  private readonly db: Database.Database;
  private statements: Record<StatementName, Statement> | undefined;

  constructor(db: Database.Database) {
    this.db = db;
  }

  /** Creates the table and indexes, and adds columns a file from an older release lacks; safe to run on every start. */
  migrate(): void {
    this.db.transaction(() => {
      this.db.exec(schema);
      const present = new Set((this.db.prepare('PRAGMA table_info(channel_desired)').all() as Array<{ name: string }>).map((column) => column.name));
      for (const column of inDoubtColumns) {
        if (!present.has(column)) this.db.exec(`ALTER TABLE channel_desired ADD COLUMN ${column} INTEGER`);
      }
    })();
    this.statements = undefined;
  }

  /**
   * Records new desired quantities. An unchanged quantity is a no-op (only the newest value is ever pushed),
   * unless the channel sold units of the SKU itself. Returns how many rows changed.
   */
  upsertDesired(rows: readonly DesiredChange[]): number {
    const upsert = this.statement('upsert');
    let changed = 0;
    for (const row of rows) changed += upsert.run(upsertParams(row)).changes;
    return changed;
  }

  /** The same changes as rows for the embedded engine's batch transaction, which its writer thread commits. */
  static upsertWrites(rows: readonly DesiredChange[]): ProjectedWrite[] {
    return rows.map((row) => ({ sql: sql.upsert, params: upsertParams(row) }));
  }

  /** Runs `work` in one transaction (a savepoint inside an open one). */
  batch(work: () => void): void {
    this.db.transaction(work)();
  }

  /** Rows whose push is due at `nowMs`, the longest waiting first. */
  due(nowMs: number, limit: number, channel?: string): DesiredRow[] {
    const size = Math.max(0, Math.min(limit, outboxLimits.dueBatchMax));
    const raws = channel === undefined
      ? this.statement('due').all({ nowMs, limit: size })
      : this.statement('dueChannel').all({ nowMs, limit: size, channel });
    return (raws as RawRow[]).map(toRow);
  }

  /** The earliest push time after `afterMs`, or null: when the sync worker's fallback timer should fire. */
  nextDueAfter(afterMs: number): number | null {
    const found = this.statement('nextDue').get({ afterMs }) as { next: number | null } | undefined;
    return found?.next ?? null;
  }

  /**
   * Notes which version is being pushed, so a change made meanwhile can be told apart from the pushed one.
   * `inDoubt`: the push, kept as in doubt from now until it is answered; undefined leaves the row's as it is.
   */
  markPushed(key: ChannelKey, version: number, quantity: number, inDoubt?: InDoubtPush | null): void {
    this.statement('pushed').run({ ...keyOf(key), version, quantity, ...inDoubtParams(inDoubt) });
  }

  /**
   * The channel acknowledged `version`. The row is settled only if that is still the newest version;
   * otherwise the newer value stays due at once. Only one push per row is in flight, so the latest
   * acknowledgement is the latest fact about the channel. Returns true when the row is settled.
   */
  markAcked(key: ChannelKey, version: number, quantity: number, ackedAtMs: number): boolean {
    this.statement('acked').run({ ...keyOf(key), version, quantity, ackedAtMs });
    const row = this.get(key.tenant, key.channel, key.sku);
    return row !== undefined && row.nextAttemptMs === null;
  }

  /**
   * The push can succeed later: try again at `nextAttemptMs`. `inDoubt` is the push to send again from now on
   * (null: none; undefined: the row's stays as it is).
   */
  markRetry(key: ChannelKey, nextAttemptMs: number, error: string, inDoubt?: InDoubtPush | null): void {
    this.statement('retry').run({ ...keyOf(key), nextAttemptMs, error: clip(error), ...inDoubtParams(inDoubt) });
  }

  /** The push will not succeed by retrying soon: keep the row, try again after a long pause, and flag it. */
  markFailed(key: ChannelKey, nextAttemptMs: number, error: string, failedAtMs: number, inDoubt?: InDoubtPush | null): void {
    this.statement('failed').run({ ...keyOf(key), nextAttemptMs, error: clip(error), failedAtMs, ...inDoubtParams(inDoubt) });
  }

  /** The channel refused a compare-and-set because it shows `actual`: the next push compares against that. */
  markMismatch(key: ChannelKey, actual: number, nextAttemptMs: number, error: string): void {
    this.statement('mismatch').run({ ...keyOf(key), actual, nextAttemptMs, error: clip(error) });
  }

  /**
   * Records what the channel shows (null: it does not know the SKU), found by reconciliation. When that
   * is not the desired quantity the row becomes due at `nowMs`, with the shown quantity as the base of
   * the next compare-and-set. When it is, the row is settled, unless a push of the row is unanswered or
   * was sent or answered since `read` (the row as it was before the channel was read; its push state is
   * compared when given): the read may then predate that push, so the push's own answer decides.
   */
  setAcknowledged(read: ChannelKey & Partial<Pick<DesiredRow, 'pushedVersion' | 'ackedVersion'>>, quantity: number | null, nowMs: number): void {
    const readKnown = read.pushedVersion !== undefined && read.ackedVersion !== undefined ? 1 : 0;
    const params = {
      ...keyOf(read), quantity, nowMs, readKnown, readPushedVersion: read.pushedVersion ?? null, readAckedVersion: read.ackedVersion ?? null,
    };
    this.batch(() => {
      this.statement('acknowledgeInStep').run(params);
      this.statement('acknowledgeDrift').run({ ...keyOf(read), quantity, nowMs });
    });
  }

  /** Moves every push of a tenant on a channel to no earlier than `untilMs` (the channel asked to wait). */
  defer(tenant: string, channel: string, untilMs: number): number {
    return this.statement('defer').run({ tenant, channel, untilMs }).changes;
  }

  /** Per tenant and channel, the oldest change not yet acknowledged: the reconciliation lag is now minus that. */
  oldestUnsynced(): ChannelLag[] {
    return this.statement('oldest').all() as ChannelLag[];
  }

  /** Rows waiting to be pushed, per tenant and channel. */
  depth(): ChannelDepth[] {
    return this.statement('depth').all() as ChannelDepth[];
  }

  get(tenant: string, channel: string, sku: string): DesiredRow | undefined {
    const raw = this.statement('get').get({ tenant, channel, sku }) as RawRow | undefined;
    return raw === undefined ? undefined : toRow(raw);
  }

  /** Every row of a tenant (on one channel when given), ordered by channel and SKU. */
  list(tenant: string, channel?: string): DesiredRow[] {
    const rows: DesiredRow[] = [];
    let after: ChannelKey | undefined;
    for (;;) {
      const page = this.page({ tenant, channel }, after, outboxLimits.pageSizeMax);
      rows.push(...page);
      const last = page.at(-1);
      if (last === undefined || page.length < outboxLimits.pageSizeMax) return rows;
      after = last;
    }
  }

  /**
   * Rows after `after` in (tenant, channel, SKU) order: keyset paging that holds no cursor open, so the
   * engine can keep writing between pages.
   */
  page(filter: RowFilter, after: ChannelKey | undefined, limit: number): DesiredRow[] {
    const size = Math.max(0, Math.min(limit, outboxLimits.pageSizeMax));
    // Ids are never empty, so '' sorts before every real row.
    const params = {
      tenant: after?.tenant ?? '', channel: after?.channel ?? '', sku: after?.sku ?? '', limit: size,
      filterTenant: filter.tenant ?? null, filterChannel: filter.channel ?? null,
    };
    const name = filter.tenant === undefined ? (filter.channel === undefined ? 'pageAll' : 'pageChannel')
      : (filter.channel === undefined ? 'pageTenant' : 'pageTenantChannel');
    return (this.statement(name).all(params) as RawRow[]).map(toRow);
  }

  /** How many rows a filter covers: the total for reconciliation progress. */
  count(filter: RowFilter): number {
    const found = this.statement('count').get({ tenant: filter.tenant ?? null, channel: filter.channel ?? null }) as { count: number };
    return found.count;
  }

  private statement(name: StatementName): Statement {
    this.statements ??= this.prepare();
    return this.statements[name];
  }

  private prepare(): Record<StatementName, Statement> {
    const entries = Object.entries(sql).map(([name, text]) => [name, this.db.prepare(text)]);
    return Object.fromEntries(entries) as Record<StatementName, Statement>;
  }
}
