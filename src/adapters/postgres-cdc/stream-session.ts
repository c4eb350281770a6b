// One streaming replication connection: decode, group by transaction, submit in commit order, then acknowledge.

import type { Pgoutput } from 'pg-logical-replication';
import type { CommandBus, DeadLetterSink } from '../../app/ports.js';
import type { ColumnMapping } from './config.js';
import { applyChanges } from './apply.js';
import type { ApplyCounts } from './apply.js';
import { CdcError } from './errors.js';
import { cdcLimits } from './limits.js';
import { lsnSeq, parseLsn } from './lsn.js';
import type { ReplicationConnection, StreamMessage } from './replication-connection.js';
import type { Row, RowChange } from './row-mapping.js';
import { mappedColumns, mappedKeyColumns } from './setup.js';
import type { TableName } from './setup.js';
import { TableWatch } from './table-watch.js';
import { TransactionChanges } from './transaction.js';
import type { DeadLetterDraft } from './transaction.js';

/** PostgreSQL's OID of character(n), whose text in the stream keeps the padding that a cast to text drops. */
const bpcharOid = 1042;

/**
 * A row as the snapshot reads it (`::text`): character(n) values without their trailing blanks, so
 * that `'WH1 '` in the stream and `'WH1'` in the snapshot are the same location. A column of a domain
 * over character(n) comes with the domain's OID: setup found those (`paddedColumns`).
 */
function rowOf(relation: Pgoutput.MessageRelation, tuple: Row, paddedColumns: readonly string[]): Row {
  const isPadded = (column: Pgoutput.RelationColumn): boolean => column.typeOid === bpcharOid || paddedColumns.includes(column.name);
  const padded = relation.columns.filter((column) => isPadded(column) && typeof tuple[column.name] === 'string');
  if (padded.length === 0) return tuple;
  const row: Record<string, unknown> = { ...tuple };
  for (const column of padded) row[column.name] = (row[column.name] as string).replace(/ +$/, '');
  return row;
}

export interface SessionContext {
  slot: string;
  publication: string;
  table: TableName;
  /** The table's OID at setup: a relation of that name with another OID is another table. */
  tableOid: number;
  /** Mapped columns of type character(n), also through a domain, found at setup. */
  paddedColumns: readonly string[];
  /** Where the table watch reads the catalogue. */
  connectionString: string;
  mapping: ColumnMapping;
  /** The ledger source: `pg:<slot>`. */
  source: string;
  bus: CommandBus;
  deadLetters: DeadLetterSink;
  nowMs: () => number;
}

export interface BatchApplied {
  counts: ApplyCounts;
  deadLetters: number;
  /** The position acknowledged to the slot. */
  lsn: bigint;
  /** From the oldest commit in the batch to now. */
  lagMs: number;
}

export interface SessionHooks {
  applied(batch: BatchApplied): void;
  /** Caught up with the server and acknowledged its position. */
  idle(lsn: bigint): void;
  /** The stream ended without being asked to; the session is over. */
  failed(error: CdcError): void;
}

interface ReadyTransaction {
  changes: RowChange[];
  deadLetters: DeadLetterDraft[];
  endLsn: bigint;
  commitTimeMs: number;
}

export class StreamSession {
  private open: { changes: TransactionChanges; commitTimeMs: number } | undefined;
  private ready: ReadyTransaction[] = [];
  private readyChanges = 0;
  private applying: Promise<void> | undefined;
  private confirmed = 0n;
  private over = false;
  private paused = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly watch: TableWatch;
  /** Relations of the table whose columns were checked against the mapping (each schema change comes with a new one). */
  private readonly columnsChecked = new WeakSet<Pgoutput.MessageRelation>();

  constructor(private readonly connection: ReplicationConnection, private readonly context: SessionContext, private readonly hooks: SessionHooks) {
    this.watch = new TableWatch(context.connectionString, context.publication, context.table, context.tableOid, (error) => this.fail(error));
  }

  /** Resolves once the server streams; rejects (and `failed` is not called) when it refused to start. */
  async start(): Promise<void> {
    await this.connection.startStreaming(this.context.slot, this.context.publication, cdcLimits.connectTimeoutMs, (message) => this.receive(message), (error) => this.fail(error));
    this.watch.start();
    this.timer = setInterval(() => this.connection.sendStatus(this.confirmed, this.context.nowMs()), cdcLimits.statusIntervalMs);
    this.timer.unref();
  }

  /** Stops taking messages, lets the batch in flight finish (bounded), acknowledges it, and closes. */
  async close(timeoutMs: number): Promise<void> {
    this.over = true;
    await this.settled(timeoutMs);
    this.connection.sendStatus(this.confirmed, this.context.nowMs());
    await this.shutdown();
  }

  /** Resolves when no submission of this session is in flight any more, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    if (this.applying === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); });
    await Promise.race([this.applying, deadline]);
    clearTimeout(timer);
  }

  private receive(message: StreamMessage): void {
    if (this.over) return;
    try {
      if (message.kind === 'keepalive') this.keepalive(message.walEnd, message.replyRequested);
      else this.data(message.message);
    } catch (error) {
      this.fail(error instanceof CdcError ? error : new CdcError('PG_PROTOCOL', `cannot handle replication message: ${(error as Error).message}`, true, { cause: error }));
    }
  }

  /**
   * Our table is known by its OID: a relation of another OID is another table of the publication (or
   * the table this one replaced, whose changes the snapshot taken since supersedes). Our table under
   * another name was renamed: its changes are no longer the configured table's, so the session fails
   * before the transaction is acknowledged.
   */
  private isOurs(relation: Pgoutput.MessageRelation): boolean {
    if (relation.relationOid >>> 0 !== this.context.tableOid) return false;
    const { schema, table } = this.context.table;
    if (relation.schema === schema && relation.name === table) {
      if (!this.columnsChecked.has(relation)) this.checkColumns(relation);
      return true;
    }
    throw new CdcError('PG_TABLE_CHANGED', `table ${schema}.${table} was renamed to ${relation.schema}.${relation.name}, so its changes are no longer the configured table's; nothing after this point is acknowledged. Point the source at the table it should follow; a start then takes a new snapshot of it`, true);
  }

  /**
   * A mapped column renamed or dropped while streaming: every row would be a dead letter, acknowledged and so
   * lost, where a start refuses the table (PG_COLUMN_MISSING). The session stops before the transaction is
   * acknowledged; its changes carry the column's new name, so they are read once the mapping names it.
   */
  private checkColumns(relation: Pgoutput.MessageRelation): void {
    const present = new Set(relation.columns.map((column) => column.name));
    const missing = mappedColumns(this.context.mapping).filter((column) => !present.has(column));
    if (missing.length > 0) {
      const { schema, table } = this.context.table;
      throw new CdcError('PG_COLUMN_MISSING', `table ${schema}.${table} has no column ${missing.join(', ')} any more (renamed or dropped while streaming), so its changes `
        + 'cannot be read; nothing after this point is acknowledged. Name the column as it is now under columns: and start again: the changes since are read with it', false);
    }
    this.columnsChecked.add(relation);
  }

  /**
   * Whether this UPDATE would show a move: checked at setup, but the table may have changed since. With
   * FULL every UPDATE carries its old row, unless the row lives in a partition whose own identity is not
   * FULL (the relation is the published root's): then a move cannot be seen, and applying only the new
   * place would add stock there without taking it from the old one.
   */
  private identityCoversKey(relation: Pgoutput.MessageRelation, old: Row | null): boolean {
    if (relation.replicaIdentity === 'full') return old !== null;
    if (relation.replicaIdentity === 'nothing') return false;
    return mappedKeyColumns(this.context.mapping).every((column) => relation.keyColumns.includes(column));
  }

  private data(message: Pgoutput.Message): void {
    const open = this.open;
    switch (message.tag) {
      case 'begin':
        this.open = { changes: new TransactionChanges(this.context.mapping), commitTimeMs: Number((message.commitTime as unknown as bigint) / 1000n) };
        return;
      case 'insert':
        if (this.isOurs(message.relation)) open?.changes.add({ op: 'insert', row: rowOf(message.relation, message.new, this.context.paddedColumns), identity: message.relation.keyColumns });
        return;
      case 'update':
        if (this.isOurs(message.relation)) {
          const old = message.old ?? message.key;
          open?.changes.add({
            op: 'update', row: rowOf(message.relation, message.new, this.context.paddedColumns), old: old === null ? null : rowOf(message.relation, old, this.context.paddedColumns),
            identityCoversKey: this.identityCoversKey(message.relation, message.old), identity: message.relation.keyColumns,
          });
        }
        return;
      case 'delete': {
        const old = message.old ?? message.key;
        if (this.isOurs(message.relation)) open?.changes.add({ op: 'delete', old: old === null ? null : rowOf(message.relation, old, this.context.paddedColumns), identity: message.relation.keyColumns });
        return;
      }
      case 'truncate':
        if (message.relations.some((relation) => relation !== undefined && this.isOurs(relation))) open?.changes.add({ op: 'truncate' });
        return;
      case 'commit':
        this.commit(message);
        return;
      default:
        return;
    }
  }

  /**
   * The sequence of every change in the transaction is its commit's end LSN: unique per transaction,
   * rising in commit order, and above the slot's consistent point for every transaction the snapshot
   * did not see (their commit records start at or after it), so the snapshot and the stream agree.
   */
  private commit(message: Pgoutput.MessageCommit): void {
    const open = this.open;
    this.open = undefined;
    if (open === undefined || message.commitEndLsn === null) throw new Error('COMMIT without BEGIN');
    const endLsn = parseLsn(message.commitEndLsn);
    const { changes, deadLetters } = open.changes.finish(this.context.source, lsnSeq(endLsn));
    this.ready.push({ changes, deadLetters, endLsn, commitTimeMs: open.commitTimeMs });
    this.readyChanges += changes.length;
    if (!this.paused && this.readyChanges > cdcLimits.queuedChangesHighWater) {
      this.paused = true;
      this.connection.pause();
    }
    this.kick();
  }

  /** Nothing received is waiting: the server's position can be acknowledged, so an idle slot holds no WAL. */
  private keepalive(walEnd: bigint, replyRequested: boolean): void {
    const caughtUp = this.open === undefined && this.ready.length === 0 && this.applying === undefined;
    if (caughtUp && walEnd > this.confirmed) {
      this.confirmed = walEnd;
      this.connection.sendStatus(this.confirmed, this.context.nowMs());
      this.hooks.idle(walEnd);
      return;
    }
    if (caughtUp) this.hooks.idle(this.confirmed);
    if (replyRequested) this.connection.sendStatus(this.confirmed, this.context.nowMs());
  }

  private kick(): void {
    if (this.applying !== undefined) return;
    this.applying = this.drain().finally(() => { this.applying = undefined; });
  }

  private takeBatch(): ReadyTransaction[] {
    const batch: ReadyTransaction[] = [];
    let size = 0;
    while (this.ready.length > 0 && (batch.length === 0 || size + (this.ready[0] as ReadyTransaction).changes.length <= cdcLimits.submitBatchCommandsMax)) {
      const next = this.ready.shift() as ReadyTransaction;
      size += next.changes.length;
      batch.push(next);
    }
    this.readyChanges -= size;
    return batch;
  }

  private async drain(): Promise<void> {
    while (!this.over && this.ready.length > 0) {
      const batch = this.takeBatch();
      let counts: ApplyCounts;
      try {
        counts = await applyChanges(this.context.bus, batch.flatMap((transaction) => transaction.changes));
      } catch (error) {
        this.fail(new CdcError('BUS_FAILED', `submitting changes of ${this.context.source}: ${(error as Error).message}`, true, { cause: error }));
        return;
      }
      this.acknowledge(batch, counts);
      if (this.paused && this.readyChanges < cdcLimits.queuedChangesLowWater) {
        this.paused = false;
        this.connection.resume();
      }
    }
  }

  /** Only now, with the batch durable, may the slot move past it: a crash before this re-delivers it. */
  private acknowledge(batch: ReadyTransaction[], counts: ApplyCounts): void {
    const nowMs = this.context.nowMs();
    const letters = batch.flatMap((transaction) => transaction.deadLetters);
    for (const letter of letters) this.context.deadLetters.deadLetter({ source: this.context.source, reason: letter.reason, payload: letter.payload, timeMs: nowMs });
    const last = batch[batch.length - 1] as ReadyTransaction;
    this.confirmed = last.endLsn;
    this.connection.sendStatus(this.confirmed, nowMs);
    const oldestMs = Math.min(...batch.map((transaction) => transaction.commitTimeMs));
    this.hooks.applied({ counts, deadLetters: letters.length, lsn: this.confirmed, lagMs: Math.max(0, nowMs - oldestMs) });
  }

  private fail(error: CdcError): void {
    if (this.over) return;
    this.over = true;
    void this.shutdown();
    this.hooks.failed(error);
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.watch.stop();
    this.ready = [];
    this.readyChanges = 0;
    await this.connection.close();
  }
}
