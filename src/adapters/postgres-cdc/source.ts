// Reads stock changes from the merchant's PostgreSQL table by logical replication and submits them to the bus.

import pg from 'pg';
import type { CommandBus, DeadLetterSink, SourceOffsets } from '../../app/ports.js';
import { applyChanges, addCounts, emptyCounts } from './apply.js';
import type { ApplyCounts } from './apply.js';
import type { PostgresSourceConfig } from './config.js';
import { CdcError, asCdcError } from './errors.js';
import { cdcLimits } from './limits.js';
import { lsnSeq } from './lsn.js';
import { checkServer, parseOffset } from './offset.js';
import type { SnapshotOffset } from './offset.js';
import { ReplicationConnection } from './replication-connection.js';
import type { ServerIdentity, SlotCreated } from './replication-connection.js';
import { imageChange, jsonSafe, mapImage } from './row-mapping.js';
import type { Row, RowChange } from './row-mapping.js';
import { prepareDatabase, tableNameOf } from './setup.js';
import { readSnapshot } from './snapshot.js';
import { StreamSession } from './stream-session.js';
import type { BatchApplied } from './stream-session.js';

/** What the source logs through; pino's loggers fit. */
export interface CdcLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface PostgresCdcSourceOptions {
  config: PostgresSourceConfig;
  bus: CommandBus;
  deadLetters: DeadLetterSink;
  offsets: SourceOffsets;
  log?: CdcLogger;
  /** Called with the source (`pg:<slot>`) and the time from a change's commit to its being durable. */
  onLag?: (source: string, lagMs: number) => void;
  nowMs?: () => number;
  random?: () => number;
}

export type SourceState = 'idle' | 'starting' | 'streaming' | 'reconnecting' | 'failed' | 'stopped';

export interface PostgresCdcStatus {
  source: string;
  state: SourceState;
  connected: boolean;
  snapshotDone: boolean;
  /** Last position acknowledged to the slot, as the decimal sequence the ledger compares; null before any. */
  lastLsn: string | null;
  /** From the last applied change's commit in PostgreSQL to its being durable; 0 when caught up and idle. */
  lagMs: number | null;
  deadLetters: number;
  applied: number;
  stale: number;
  rejected: number;
  reconnects: number;
  lastError: { code: string; message: string } | null;
}

/** The server and table a snapshot is read from, recorded with it. */
interface SnapshotOrigin {
  server: ServerIdentity;
  tableOid: number;
}

const silentLog: CdcLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export class PostgresCdcSource {
  readonly source: string;
  private readonly options: PostgresCdcSourceOptions;
  private readonly log: CdcLogger;
  private readonly nowMs: () => number;
  private readonly random: () => number;
  private session: StreamSession | undefined;
  private state: SourceState = 'idle';
  private stopping = false;
  private attempts = 0;
  /** When the current stream started: an idle one counts as progress only once it has stayed up a while. */
  private streamingSinceMs = 0;
  private wake: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private connecting: Promise<void> | undefined;
  private readonly counts: ApplyCounts = emptyCounts();
  private deadLetterCount = 0;
  private reconnects = 0;
  private lastLsn: bigint | null = null;
  private lagMs: number | null = null;
  private lastError: CdcError | null = null;

  constructor(options: PostgresCdcSourceOptions) {
    this.options = options;
    this.source = `pg:${options.config.slot}`;
    this.log = options.log ?? silentLog;
    this.nowMs = options.nowMs ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /**
   * Resolves once the source streams (after the initial snapshot, the first time). Retryable failures are
   * retried with backoff; a permanent one (privileges, missing table, wal_level) rejects at once.
   */
  async start(): Promise<void> {
    if (this.state === 'starting' || this.state === 'streaming' || this.state === 'reconnecting') return;
    this.stopping = false;
    this.attempts = 0;
    this.state = 'starting';
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.wake !== undefined) {
      clearTimeout(this.wake.timer);
      this.wake.resolve();
    }
    await this.connecting?.catch(() => undefined);
    const session = this.session;
    this.session = undefined;
    if (session !== undefined) await session.close(cdcLimits.stopTimeoutMs);
    this.state = 'stopped';
  }

  status(): PostgresCdcStatus {
    return {
      source: this.source,
      state: this.state,
      connected: this.state === 'streaming',
      snapshotDone: this.readOffset()?.snapshotDone === true,
      lastLsn: this.lastLsn === null ? null : lsnSeq(this.lastLsn),
      lagMs: this.lagMs,
      deadLetters: this.deadLetterCount,
      applied: this.counts.applied,
      stale: this.counts.stale,
      rejected: this.counts.rejected,
      reconnects: this.reconnects,
      lastError: this.lastError === null ? null : { code: this.lastError.code, message: this.lastError.message },
    };
  }

  /** One connection attempt loop at a time; stop() waits for it to give up. */
  private async connect(): Promise<void> {
    const attempt = this.connectWithRetry();
    this.connecting = attempt;
    try {
      await attempt;
    } finally {
      if (this.connecting === attempt) this.connecting = undefined;
    }
  }

  private async connectWithRetry(): Promise<void> {
    for (;;) {
      if (this.stopping) throw new CdcError('SOURCE_STOPPED', `${this.source} was stopped`, false);
      try {
        await this.openSession();
        // A stream that already failed again has handed over to reconnect(), which owns the state now.
        if (this.session !== undefined) this.state = 'streaming';
        return;
      } catch (thrown) {
        const error = asCdcError(thrown, `starting ${this.source}`);
        this.lastError = error;
        this.attempts += 1;
        if (!error.retryable || this.attempts >= cdcLimits.reconnectAttemptsMax) {
          if (!this.stopping) this.state = 'failed';
          this.log.error({ source: this.source, code: error.code, attempts: this.attempts }, error.message);
          throw error;
        }
        const delayMs = this.backoffMs();
        this.log.warn({ source: this.source, code: error.code, attempt: this.attempts, delayMs }, `${error.message}; retrying`);
        await this.sleep(delayMs);
      }
    }
  }

  /** Exponential, capped, with full jitter on the upper half so many sources do not retry in step. */
  private backoffMs(): number {
    const ceiling = Math.min(cdcLimits.reconnectDelayMsMax, cdcLimits.reconnectDelayMsBase * 2 ** Math.min(this.attempts - 1, 20));
    return Math.round(ceiling / 2 + (ceiling / 2) * this.random());
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.wake = undefined; resolve(); }, delayMs);
      this.wake = { timer, resolve };
    });
  }

  private async openSession(): Promise<void> {
    const { config } = this.options;
    const admin = new pg.Client({ connectionString: config.connectionString, connectionTimeoutMillis: cdcLimits.connectTimeoutMs, application_name: `stockline ${this.source} setup` });
    admin.on('error', () => undefined);
    try {
      await admin.connect();
      const { slotExists, tableOid, paddedColumns } = await prepareDatabase(admin, config);
      const replication = await this.openReplication(config.slot);
      try {
        const origin: SnapshotOrigin = { server: await replication.identifySystem(), tableOid };
        this.checkOffset(origin, slotExists);
        await this.ensureSnapshot(admin, replication, slotExists, origin);
        if (this.stopping) throw new CdcError('SOURCE_STOPPED', `${this.source} was stopped`, false);
        await this.startSession(replication, tableOid, paddedColumns);
      } catch (error) {
        await replication.close();
        throw error;
      }
    } catch (error) {
      throw asCdcError(error, `connecting ${this.source}`);
    } finally {
      await admin.end().catch(() => undefined);
    }
  }

  private openReplication(purpose: string): Promise<ReplicationConnection> {
    const { config } = this.options;
    return ReplicationConnection.open(config.connectionString, config.publication, cdcLimits.connectTimeoutMs, `stockline ${purpose}`);
  }

  /** The source streams only once the server said so: a slot it refuses (invalidated, held elsewhere) is a failed attempt. */
  private async startSession(replication: ReplicationConnection, tableOid: number, paddedColumns: readonly string[]): Promise<void> {
    const { config, bus, deadLetters } = this.options;
    const session = new StreamSession(replication, {
      slot: config.slot, publication: config.publication, table: tableNameOf(config), tableOid, paddedColumns, connectionString: config.connectionString, mapping: config.columns,
      source: this.source, bus, deadLetters, nowMs: this.nowMs,
    }, {
      applied: (batch) => this.onApplied(batch),
      idle: (lsn) => this.onIdle(lsn),
      failed: (error) => this.onSessionFailed(session, error),
    });
    // Set first: a failure right after the server's answer must find the session it belongs to.
    this.session = session;
    this.streamingSinceMs = this.nowMs();
    try {
      await session.start();
    } catch (error) {
      if (this.session === session) this.session = undefined;
      throw error;
    }
    this.log.info({ source: this.source, slot: config.slot, publication: config.publication }, 'streaming');
  }

  /**
   * The slot is created with an exported snapshot, so the rows read and the changes streamed meet
   * exactly at its consistent point. A slot that exists without a finished snapshot (a crash part way)
   * keeps its position, and the snapshot is read again from a temporary slot's newer snapshot: changes
   * in between are streamed from the kept slot, older than that snapshot's sequence where it saw them.
   * So is a table swapped for a copy (another OID): the copy's changes were never published.
   */
  private async ensureSnapshot(admin: pg.Client, replication: ReplicationConnection, slotExists: boolean, origin: SnapshotOrigin): Promise<void> {
    const { config } = this.options;
    const offset = this.readOffset();
    if (!slotExists) {
      if (offset?.snapshotDone === true) this.log.warn({ source: this.source, slot: config.slot }, 'slot is gone: changes since it was dropped are lost; taking a new snapshot');
      // Noted before the slot is made: a slot found later without this note is not this ledger's.
      if (offset === undefined) {
        const made: SnapshotOffset = { snapshotDone: false, consistentPoint: '0', systemId: origin.server.systemId, timeline: origin.server.timeline, tableOid: origin.tableOid };
        this.options.offsets.set(this.source, JSON.stringify(made));
      }
      const created = await replication.createSlot(config.slot, { temporary: false, exportSnapshot: true });
      this.log.info({ source: this.source, slot: config.slot, consistentPoint: lsnSeq(created.consistentPoint) }, 'created replication slot');
      await this.takeSnapshot(admin, created, origin);
      return;
    }
    if (offset === undefined) {
      // Another ledger's slot (a second Stockline with the same configuration), or this folder's ledger replaced:
      // streaming from it would take the changes from the ledger that reads it, which would never see them.
      throw new CdcError('PG_SLOT_MISMATCH', `replication slot ${config.slot} exists, but this ledger did not make it and has read nothing from it: `
        + 'another Stockline reads it (give each ledger a slot of its own), or this data folder was replaced; if no other reads it, drop it '
        + `(SELECT pg_drop_replication_slot('${config.slot.replace(/'/g, "''")}')) and start again, which takes a new snapshot`, false);
    }
    if (offset.snapshotDone && offset.tableOid !== undefined && offset.tableOid !== origin.tableOid) {
      this.log.warn({ source: this.source, slot: config.slot }, 'the table was swapped for another (a new OID) whose changes were not published: reading the snapshot again');
      return this.snapshotAgain(admin, origin);
    }
    if (offset.snapshotDone) return;
    this.log.warn({ source: this.source, slot: config.slot }, 'slot exists but the snapshot did not finish: reading it again');
    await this.snapshotAgain(admin, origin);
  }

  /** From a temporary slot's newer snapshot, while the kept slot keeps its position. */
  private async snapshotAgain(admin: pg.Client, origin: SnapshotOrigin): Promise<void> {
    const { config } = this.options;
    const helper = await this.openReplication(`${config.slot} snapshot`);
    try {
      const created = await helper.createSlot(`${config.slot}_snapshot`, { temporary: true, exportSnapshot: true });
      await this.takeSnapshot(admin, created, origin);
    } finally {
      await helper.close();
    }
  }

  private async takeSnapshot(admin: pg.Client, created: SlotCreated, origin: SnapshotOrigin): Promise<void> {
    const { config } = this.options;
    if (created.snapshotName === null) throw new CdcError('PG_PROTOCOL', `slot ${config.slot} exported no snapshot`, true);
    const seq = lsnSeq(created.consistentPoint);
    const rows = await readSnapshot(admin, created.snapshotName, config, (batch) => this.applySnapshotRows(batch, seq));
    const offset: SnapshotOffset = { snapshotDone: true, consistentPoint: seq, systemId: origin.server.systemId, timeline: origin.server.timeline, tableOid: origin.tableOid };
    this.options.offsets.set(this.source, JSON.stringify(offset));
    this.lastLsn = created.consistentPoint;
    this.log.info({ source: this.source, rows, consistentPoint: seq }, 'snapshot done');
  }

  private async applySnapshotRows(rows: Row[], seq: string): Promise<void> {
    const changes: RowChange[] = [];
    const letters: Array<{ reason: string; payload: unknown }> = [];
    for (const row of rows) {
      const image = mapImage(row, this.options.config.columns);
      if (image.ok) changes.push(imageChange(image.value, this.source, seq));
      else letters.push({ reason: image.reason, payload: { lsn: seq, op: 'snapshot', row: jsonSafe(row) } });
    }
    let counts: ApplyCounts;
    try {
      counts = await applyChanges(this.options.bus, changes);
    } catch (error) {
      throw new CdcError('BUS_FAILED', `submitting the snapshot of ${this.source}: ${(error as Error).message}`, true, { cause: error });
    }
    this.record(counts, letters);
  }

  private record(counts: ApplyCounts, letters: Array<{ reason: string; payload: unknown }>): void {
    const timeMs = this.nowMs();
    for (const letter of letters) this.options.deadLetters.deadLetter({ source: this.source, reason: letter.reason, payload: letter.payload, timeMs });
    this.deadLetterCount += letters.length;
    addCounts(this.counts, { ...counts, rejections: [] });
    for (const rejection of counts.rejections) this.log.warn({ source: this.source, code: rejection.code }, rejection.message);
  }

  private onApplied(batch: BatchApplied): void {
    this.deadLetterCount += batch.deadLetters;
    addCounts(this.counts, { ...batch.counts, rejections: [] });
    for (const rejection of batch.counts.rejections) this.log.warn({ source: this.source, code: rejection.code }, rejection.message);
    this.lastLsn = batch.lsn;
    this.lagMs = batch.lagMs;
    this.attempts = 0;
    this.options.onLag?.(this.source, batch.lagMs);
  }

  private onIdle(lsn: bigint): void {
    this.lastLsn = lsn;
    if (this.nowMs() - this.streamingSinceMs >= cdcLimits.idleStreamUpMsMin) this.attempts = 0;
    if (this.lagMs !== 0) {
      this.lagMs = 0;
      this.options.onLag?.(this.source, 0);
    }
  }

  private onSessionFailed(session: StreamSession, error: CdcError): void {
    if (this.session !== session || this.stopping) return;
    this.session = undefined;
    this.state = 'reconnecting';
    this.lastError = error;
    this.reconnects += 1;
    this.log.warn({ source: this.source, code: error.code }, `${error.message}; reconnecting`);
    void this.reconnect(session);
  }

  /**
   * A batch still in flight goes first, so the redelivered copy of it can only come after it. A stream
   * that ends without progress counts as a failed attempt, so one that fails on every start gives up.
   */
  private async reconnect(previous: StreamSession): Promise<void> {
    await previous.settled(cdcLimits.stopTimeoutMs);
    this.attempts += 1;
    if (this.attempts >= cdcLimits.reconnectAttemptsMax) {
      this.state = 'failed';
      this.log.error({ source: this.source, code: this.lastError?.code, attempts: this.attempts }, `${this.lastError?.message ?? 'the stream failed'}; giving up`);
      return;
    }
    await this.sleep(this.backoffMs());
    try {
      await this.connect();
    } catch {
      // connectWithRetry has logged it and set the state; status() reports it.
    }
  }

  private readOffset(): SnapshotOffset | undefined {
    return parseOffset(this.options.offsets.get(this.source));
  }

  /**
   * Refuses a server whose positions the ledger cannot compare. An offset of an earlier version whose
   * slot is here gets the server (the slot proves it) and the table's OID, so that later changes show.
   */
  private checkOffset(origin: SnapshotOrigin, slotExists: boolean): void {
    const offset = this.readOffset();
    checkServer(offset, origin.server, slotExists, this.source, this.options.config.slot);
    if (!slotExists || offset?.snapshotDone !== true || (offset.systemId !== undefined && offset.tableOid !== undefined)) return;
    const recorded: SnapshotOffset = {
      ...offset, systemId: offset.systemId ?? origin.server.systemId, timeline: offset.timeline ?? origin.server.timeline, tableOid: offset.tableOid ?? origin.tableOid,
    };
    this.options.offsets.set(this.source, JSON.stringify(recorded));
  }
}
