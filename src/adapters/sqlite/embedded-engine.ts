// The embedded engine: one SQLite file holds the log, idempotency records and offsets; commands are decided in
// memory on the event loop and written, with group commit, by a writer thread; a snapshot of the state is written
// beside the file on another thread.

import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { execute, housekeepingDue, idempotencyRecordsMaxFor, initialState, limits, moreDueAfterTick, parseTime, tenantOf, trialState } from '../../core/index.js';
import type { Command, IdempotencyRecord, InventoryEvent, LedgerState, Outcome, Rejection, TenantState } from '../../core/index.js';
import { AppError, noteTouched } from '../../app/engine.js';
import type { CommittedBatch, Engine, EventPage, LoggedEvent } from '../../app/engine.js';
import { syncFolderOf } from '../../app/durable-file.js';
import { oldGenerationLimitBytes } from '../../app/heap.js';
import type { CommandInput, DeadLetter, SourceOffsets, Submitted } from '../../app/ports.js';
import { importEvents } from '../../app/import-events.js';
import type { ImportResult } from '../../app/import-events.js';
import { migrate } from './schema.js';
import { eventRow, idempotencyRow, writesAnything } from './batch-sql.js';
import type { BatchRows, ProjectedWrite } from './batch-sql.js';
import { InPlaceLogWriter, ThreadLogWriter } from './log-writer.js';
import type { LogWriter, WriterReport } from './log-writer.js';
import { loadState, removeInterruptedWrites, snapshotPathOf, writeSnapshot } from './snapshot-file.js';
import { snapshotInWorker } from './snapshot-thread.js';

export interface EmbeddedEngineOptions {
  /** A file path, or ':memory:' for tests. */
  path: string;
  clock?: () => number;
  /** Commands decided together and committed with one fsync, at most. */
  batchCommandsMax?: number;
  /**
   * Commands decided but not yet durable, at most: beyond it the next commands wait in the queue (and past its
   * limit are refused with OVERLOADED), so a disk that stalls slows callers down instead of filling memory.
   */
  awaitingCommandsMax?: number;
  /**
   * Write a snapshot once this many durable events have passed since the last one (on another thread, from the
   * log), and on close.
   */
  snapshotEveryEvents?: number;
  /** How often held reservations are checked for expiry; 0 turns the ticker off. */
  expiryIntervalMs?: number;
  /**
   * Idempotency records a tenant keeps, at most (the oldest are forgotten first, before their day is over).
   * Default: what a quarter of the heap's old generation holds (idempotencyRecordsMaxFor).
   */
  idempotencyRecordsMax?: number;
  /** Rows added to each batch's write transaction, after its events (e.g. the channel outbox). */
  projections?: Projection[];
  /**
   * How a batch becomes durable before it is answered. `background` (default): the writer thread commits the
   * batches that reached it together (synchronous=NORMAL), then fdatasyncs the WAL; they are answered when that
   * returns, while the event loop decides the next ones. `none`: answered once committed, without the
   * fdatasync, for measuring the ceiling only (a process crash loses nothing, a power cut may).
   */
  durability?: 'background' | 'none';
  /** Told of every decided command once it is durable, with the time from submit to durable. */
  onDecided?: (command: Command, outcome: Outcome, latencyMs: number) => void;
  onDeadLetter?: (letter: DeadLetter) => void;
  /** Told when a snapshot written in the background fails; the next is tried an interval later. */
  onSnapshotFailed?: (error: Error) => void;
  /** Told at start when the snapshot file is there but not started from (damaged, another format, past the log), and why. */
  onSnapshotPassedOver?: (reason: string) => void;
  /**
   * Whether close writes a snapshot of memory (default: always). Building it takes about one and a half times
   * as much heap again as the state; a process whose heap is too full for that stops with "JavaScript heap out
   * of memory" instead of closing, while without it the next start replays more of the log.
   */
  snapshotOnClose?: () => boolean;
  /**
   * The event loop's busy share (0 to 1) over the last second: a due snapshot waits while it is above
   * `snapshotBusyLoad`. Default: measured every second with `performance.eventLoopUtilization`.
   */
  eventLoopLoad?: () => number;
  /**
   * Told when a batch could not be written (`retryable`: its commands were refused and memory rebuilt) and, once,
   * when the engine stops taking commands for good (not `retryable`: its log could not be made durable).
   */
  onStorageFailed?: (error: AppError, commands: number) => void;
  /**
   * Told when a subscriber threw on a batch; the others are still told, and the engine goes on. Default: a
   * line on stderr.
   */
  onSubscriberFailed?: (error: unknown) => void;
}

/**
 * Computes the rows a batch adds to its transaction from the batch and the state after it. It runs on the event
 * loop when the batch is decided; its rows are written with the batch's events.
 */
export type Projection = (batch: CommittedBatch, state: LedgerState) => ProjectedWrite[];

interface Pending {
  input: CommandInput;
  submittedAtMs: number;
  resolve: (submitted: Submitted) => void;
  reject: (error: Error) => void;
  /** Set on the first command of an all-or-nothing group: how many commands follow it in the group. */
  groupSize?: number;
  /** The engine stamped the time on the input (it came without one): taken off again if the command fails. */
  stampedTime: boolean;
  /**
   * The command came with its own time (an import's, through an all-or-nothing group), which its idempotency
   * record then compares. Set when it is submitted: a single command never has one, even if its input object
   * was submitted before and still carries the time stamped then.
   */
  timeRequested?: boolean;
}

interface Decided {
  pending: Pending;
  command: Command;
  submitted: Submitted;
}

/** A decided batch waiting for the writer: answered once every write up to `seq` is reported done. */
interface Awaiting {
  seq: number;
  decided: Decided[];
  batch: CommittedBatch;
}

export interface AtomicResult {
  /** True when every command was accepted and applied; false when none was. */
  applied: boolean;
  results: Submitted[];
}

/** The outcome of a group member that was fine on its own but not applied because another member was rejected. */
const notApplied: Rejection = { code: 'NOT_APPLIED', message: 'not applied: another command of the same all-or-nothing batch was rejected' };

function reportSubscriberFailure(error: unknown): void {
  process.stderr.write(`stockline: a subscriber failed on a committed batch: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
}

/** A batch refused because it was not written: it was not applied, so it may be sent again. */
function unwritten(cause: string): AppError {
  return new AppError('STORAGE_FAILED', `the batch could not be made durable: ${cause}`, true, 503);
}

const defaults = { batchCommandsMax: 4096, awaitingCommandsMax: 50_000, snapshotEveryEvents: 200_000, expiryIntervalMs: 1000 };

/**
 * A due snapshot waits while the event loop is busier than this, for at most one more interval of events: in a
 * sale its thread would take CPU from the requests (8-16 % fewer reservations a second, and a higher p99, while
 * one of 200,000 holds is written), and it can as well be written a moment later.
 */
export const snapshotBusyLoad = 0.5;
const snapshotRecheckMs = 1000;
export const queueCommandsMax = 100_000;

export class EmbeddedEngine implements Engine {
  readonly kind = 'embedded' as const;
  readonly db: Db;
  private memory: LedgerState = initialState();
  private nextPosition = 1;
  private snapshotPosition = 0;
  /** The last position known durable: what a snapshot may cover. */
  private durablePosition = 0;
  /** The snapshot being written on another thread; and below which position none is tried after a failure. */
  private snapshotting: Promise<void> | undefined;
  private snapshotWorker: { terminate(): Promise<number> } | undefined;
  private snapshotRetryFrom = 0;
  private readonly snapshotInterval: number;
  /** Set while a due snapshot waits for a quieter moment. */
  private snapshotRecheck: NodeJS.Timeout | undefined;
  private readonly eventLoopLoad: () => number;
  private stopLoadMeter: (() => void) | undefined;
  private tableSnapshots = false;
  private lastTimeMs = 0;
  private queue: Pending[] = [];
  private flushScheduled = false;
  private closed = false;
  private isReady = false;
  private expiryTimer: NodeJS.Timeout | undefined;
  private expiringTenants = new Set<string>();
  /**
   * Per tenant, the place in the file of its next idempotency record. Records are kept in memory in the order
   * they were made and forgotten from the oldest, so memory holds the last `size` places: those before are
   * forgotten.
   */
  private nextRecordPlace = new Map<string, number>();
  private readonly listeners = new Set<(batch: CommittedBatch) => void>();
  private readonly projections: Projection[];
  private readonly clock: () => number;
  private readonly lock: DataLock | undefined;
  private readonly writer: LogWriter;
  /** The last batch handed to the writer, and the last it reported written: both count up from 0. */
  private handedSeq = 0;
  private writtenSeq = 0;
  /** Decided batches not yet answered, in order. */
  private awaiting: Awaiting[] = [];
  private awaitingCommands = 0;
  private readonly awaitingCommandsMax: number;
  /** Set when memory holds a batch that will not be written: no command is decided until it is rebuilt. */
  private rebuildPending = false;
  /** Told of every writer report: close waits on them. */
  private reportWaiters: Array<() => void> = [];
  private failure: AppError | undefined;
  private readonly statements: Record<'page' | 'deadLetter' | 'getOffset' | 'setOffset', Statement>;
  /** Idempotency records a tenant keeps, at most. */
  private readonly recordsMax: number;

  constructor(private readonly options: EmbeddedEngineOptions) {
    this.clock = options.clock ?? Date.now;
    this.recordsMax = options.idempotencyRecordsMax ?? idempotencyRecordsMaxFor(oldGenerationLimitBytes());
    this.snapshotInterval = options.snapshotEveryEvents ?? defaults.snapshotEveryEvents;
    this.awaitingCommandsMax = options.awaitingCommandsMax ?? defaults.awaitingCommandsMax;
    if (options.eventLoopLoad !== undefined || options.path === ':memory:') {
      this.eventLoopLoad = options.eventLoopLoad ?? (() => 0);
    } else {
      const meter = eventLoopLoadMeter();
      this.eventLoopLoad = meter.load;
      this.stopLoadMeter = meter.stop;
    }
    this.projections = [...(options.projections ?? [])];
    this.lock = options.path === ':memory:' ? undefined : DataLock.acquire(options.path);
    try {
      this.db = new Database(options.path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      migrate(this.db);
      this.statements = {
        page: this.db.prepare('SELECT position, json FROM events WHERE tenant = ? AND position > ? ORDER BY position LIMIT ?'),
        deadLetter: this.db.prepare('INSERT INTO dead_letters (source, reason, payload, time_ms) VALUES (?, ?, ?, ?)'),
        getOffset: this.db.prepare('SELECT value FROM source_offsets WHERE source = ?'),
        setOffset: this.db.prepare('INSERT OR REPLACE INTO source_offsets (source, value) VALUES (?, ?)'),
      };
      if (options.path !== ':memory:') removeInterruptedWrites(options.path);
      this.restore();
      const onReport = (report: WriterReport): void => this.written(report);
      if (options.path === ':memory:') {
        this.writer = new InPlaceLogWriter(this.db, onReport);
      } else {
        // The writer thread checkpoints the WAL as it commits; this connection's own few writes leave that to it.
        this.db.pragma('wal_autocheckpoint = 0');
        this.writer = new ThreadLogWriter({ path: options.path, sync: (options.durability ?? 'background') === 'background' }, onReport);
      }
    } catch (error) {
      // A start that failed leaves the folder free, for a retry in this process as much as for another.
      this.lock?.release();
      throw error;
    }
    this.isReady = true;
    const intervalMs = options.expiryIntervalMs ?? defaults.expiryIntervalMs;
    if (intervalMs > 0) {
      this.expiryTimer = setInterval(() => this.expireDue(), intervalMs);
      this.expiryTimer.unref();
    }
  }

  /**
   * Rebuilds the in-memory state: the newest snapshot, then the log after it, then idempotency records. A
   * snapshot of another format (written by an older or newer Stockline), or a damaged one, is passed over: the
   * whole log is replayed instead, which gives exactly the state this version derives from it.
   */
  private restore(): void {
    const loaded = loadState(this.db, this.options.path);
    if (loaded.passedOver !== undefined) this.options.onSnapshotPassedOver?.(loaded.passedOver);
    if (loaded.snapshotAheadOfLog) {
      rmSync(snapshotPathOf(this.options.path), { force: true });
      // Gone for good before new events take the positions it claims: back after a power cut, it would pass for them.
      syncFolderOf(this.options.path);
    }
    this.memory = loaded.state;
    this.noEarlierThanLog();
    this.snapshotPosition = loaded.snapshotPosition;
    this.tableSnapshots = loaded.tableSnapshots;
    this.nextPosition = loaded.position + 1;
    this.durablePosition = loaded.position;
    this.nextRecordPlace = new Map();
    this.forgetRecordsOverMax();
    const keys = this.db.prepare('SELECT tenant, seq, key, json FROM idempotency ORDER BY tenant, seq').raw(true);
    for (const [tenant, seq, key, json] of keys.iterate() as Iterable<[string, number, string, string]>) {
      tenantOf(this.memory, tenant).idempotency.set(key, JSON.parse(json) as IdempotencyRecord);
      this.nextRecordPlace.set(tenant, seq + 1);
    }
  }

  /**
   * The ledger's time does not go back across a restart either: a clock stepped back (NTP, a machine booted with a
   * wrong clock) would keep holds past their expiry and date a commit before its hold. The newest event's time
   * less `timeAheadMsMax` is the floor, since an import may date its events that far ahead of the clock; the
   * running engine never dates its own events before it.
   */
  private noEarlierThanLog(): void {
    const json = this.db.prepare('SELECT json FROM events ORDER BY position DESC LIMIT 1').pluck().get() as string | undefined;
    if (json === undefined) return;
    const timeMs = parseTime((JSON.parse(json) as InventoryEvent).time);
    if (Number.isFinite(timeMs)) this.lastTimeMs = Math.max(this.lastTimeMs, timeMs - limits.timeAheadMsMax);
  }

  /**
   * Deletes each tenant's oldest records beyond `recordsMax`, before they are read: the file was written by a
   * process with a larger heap (or before the bound). A tenant's records hold consecutive places, the oldest
   * being forgotten first, so the newest are those above its last place less the bound.
   */
  private forgetRecordsOverMax(): void {
    // From one tenant's first place to the next tenant's: a few index lookups a tenant, not a scan of all.
    const firstAfter = this.db.prepare('SELECT tenant, seq FROM idempotency WHERE tenant > ? ORDER BY tenant, seq LIMIT 1').raw(true);
    const lastOf = this.db.prepare('SELECT max(seq) FROM idempotency WHERE tenant = ?').pluck();
    const forget = this.db.prepare('DELETE FROM idempotency WHERE tenant = ? AND seq <= ?');
    for (let row = firstAfter.get('') as [string, number] | undefined; row !== undefined; row = firstAfter.get(row[0]) as [string, number] | undefined) {
      const [tenant, first] = row;
      const last = lastOf.get(tenant) as number;
      if (last - first + 1 > this.recordsMax) forget.run(tenant, last - this.recordsMax);
    }
  }

  /** Adds rows to every batch's write transaction (e.g. the channel outbox); set up before taking commands. */
  addProjection(projection: Projection): void {
    this.projections.push(projection);
  }

  /** Runs work in one transaction with nothing else interleaved (e.g. seeding the outbox at start). */
  transaction(work: () => void): void {
    this.db.transaction(work)();
  }

  ready(): boolean {
    return this.isReady && !this.closed && this.failure === undefined;
  }

  state(): LedgerState {
    return this.memory;
  }

  tenant(tenant: string): TenantState | undefined {
    return this.memory.tenants.get(tenant);
  }

  position(): number {
    return this.nextPosition - 1;
  }

  committedPosition(): number {
    return this.durablePosition;
  }

  submit(input: CommandInput): Promise<Submitted> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new AppError('ENGINE_CLOSED', 'the engine is shutting down', true, 503));
    if (this.queue.length >= queueCommandsMax) return Promise.reject(new AppError('OVERLOADED', 'too many commands waiting; retry shortly', true, 503));
    return new Promise((resolve, reject) => {
      this.queue.push({ input, submittedAtMs: performance.now(), resolve, reject, stampedTime: false });
      this.scheduleFlush();
    });
  }

  /** Admitted whole or not at all: a full queue refuses the batch before any of it is queued, so none is applied. */
  submitMany(inputs: CommandInput[]): Promise<Submitted[]> {
    if (this.failure === undefined && !this.closed && this.queue.length + inputs.length > queueCommandsMax) {
      return Promise.reject(new AppError('OVERLOADED', 'too many commands waiting; retry shortly', true, 503));
    }
    return Promise.all(inputs.map((input) => this.submit(input)));
  }

  /**
   * All or nothing: the commands are decided in order on a copy of their tenants first; if any is
   * rejected, nothing is applied and the outcomes say which. Otherwise all are applied in one batch.
   */
  submitAtomic(inputs: CommandInput[]): Promise<AtomicResult> {
    if (this.closed) return Promise.reject(new AppError('ENGINE_CLOSED', 'the engine is shutting down', true, 503));
    if (inputs.length === 0) return Promise.resolve({ applied: true, results: [] });
    const submittedAtMs = performance.now();
    const results = new Array<Submitted>(inputs.length);
    return new Promise((resolve, reject) => {
      let remaining = inputs.length;
      let applied = true;
      inputs.forEach((input, index) => {
        const pending: Pending = {
          input, submittedAtMs, reject, stampedTime: false, timeRequested: input.timeMs !== undefined,
          resolve: (submitted) => {
            results[index] = submitted;
            if (submitted.outcome.rejection !== undefined) applied = false;
            remaining -= 1;
            if (remaining === 0) resolve({ applied, results });
          },
        };
        if (index === 0) pending.groupSize = inputs.length;
        this.queue.push(pending);
      });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate runs after the poll phase: every request read in this turn joins one batch and one fsync.
    setImmediate(() => this.flush());
  }

  private nowMs(): number {
    const now = this.clock();
    this.lastTimeMs = now > this.lastTimeMs ? now : this.lastTimeMs;
    return this.lastTimeMs;
  }

  /** Decides a batch in order against memory and hands it to the writer; it is answered once written. */
  private flush(): void {
    this.flushScheduled = false;
    // Decided once memory is rebuilt (see rebuild).
    if (this.rebuildPending) return;
    if (this.failure !== undefined) {
      for (const pending of this.queue.splice(0)) pending.reject(this.failure);
      return;
    }
    // Decided once the writer catches up (see written).
    if (this.writerBehind()) return;
    let take = Math.min(this.queue.length, this.options.batchCommandsMax ?? defaults.batchCommandsMax);
    // A group is never split across batches, so it commits in one transaction.
    for (let index = 0; index < this.queue.length; index += 1) {
      const size = this.queue[index]?.groupSize ?? 1;
      if (index < take && index + size > take) take = index + size;
      index += size - 1;
    }
    const batch = this.queue.splice(0, take);
    if (this.queue.length > 0) this.scheduleFlush();
    if (batch.length === 0) return;
    const decided: Decided[] = [];
    const logged: LoggedEvent[] = [];
    // Each with its place, and where its command's events start in `logged`: the record's outcome holds them.
    const remembered: Array<[tenant: string, seq: number, key: string, record: IdempotencyRecord, firstEvent: number]> = [];
    const forgotten: Array<[tenant: string, upToSeq: number]> = [];
    const touched = new Map<string, Set<string>>();
    const firstPosition = this.nextPosition;
    for (let index = 0; index < batch.length; index += 1) {
      const pending = batch[index] as Pending;
      // A group of one is tried first too: refused, it must leave nothing behind, an idempotency record included.
      if (pending.groupSize !== undefined) {
        const group = batch.slice(index, index + pending.groupSize);
        const refusal = this.tryGroup(group);
        if (refusal !== undefined) {
          group.forEach((member, offset) => decided.push({ pending: member, command: refusal.commands[offset] as Command, submitted: { outcome: refusal.outcomes[offset] as Outcome } }));
          index += group.length - 1;
          continue;
        }
      }
      const command = this.stamp(pending);
      // A command that came with its time (an import) is recorded at the engine's: its retention runs from now.
      const execution = execute(this.memory, command, this.recordsMax, pending.stampedTime ? command.timeMs : this.nowMs(), pending.timeRequested === true);
      const { outcome } = execution;
      const firstEvent = logged.length;
      for (const event of outcome.events) {
        logged.push({ position: this.nextPosition, event });
        this.nextPosition += 1;
        noteTouched(touched, event);
      }
      if (execution.remembered !== undefined || (execution.forgotten?.length ?? 0) > 0) {
        const records = tenantOf(this.memory, command.tenant).idempotency;
        let next = this.nextRecordPlace.get(command.tenant) ?? 1;
        if (execution.remembered !== undefined) {
          remembered.push([command.tenant, next, execution.remembered.key, execution.remembered.record, firstEvent]);
          next += 1;
          this.nextRecordPlace.set(command.tenant, next);
        }
        // What memory no longer holds is forgotten: a record forgotten early to make room was the oldest.
        if ((execution.forgotten?.length ?? 0) > 0) forgotten.push([command.tenant, next - records.size - 1]);
      }
      const submitted: Submitted = outcome.events.length > 0 ? { outcome, position: this.nextPosition - 1 } : { outcome };
      decided.push({ pending, command, submitted });
    }
    const committed: CommittedBatch = { events: logged, touched };
    let writes = false;
    try {
      // Inside the try: an event that cannot be written as JSON is a batch that cannot be written.
      const events = logged.map(eventRow);
      const rows: BatchRows = {
        events, forgotten, projected: [],
        remembered: remembered.map(([tenant, seq, key, record, firstEvent]) => (
          idempotencyRow(tenant, seq, key, record, events.slice(firstEvent, firstEvent + record.outcome.events.length).map((row) => row[3])))),
      };
      for (const projection of this.projections) rows.projected.push(...projection(committed, this.memory));
      writes = writesAnything(rows);
      if (writes) this.writer.write(this.handedSeq + 1, rows);
    } catch (error) {
      // Memory holds a batch that cannot be written: refuse it and rebuild memory from the file.
      this.refuse(decided, unwritten((error as Error).message));
      this.nextPosition = firstPosition;
      this.rebuildPending = true;
      if (this.writtenSeq === this.handedSeq) this.rebuild();
      return;
    }
    // Any answer that rests on something not yet written waits for it: its own rows, or earlier batches still
    // with the writer (a DUPLICATE repeats their outcome).
    if (writes) {
      this.handedSeq += 1;
    } else if (this.writtenSeq === this.handedSeq) {
      this.answer(decided, committed);
      return;
    }
    this.awaiting.push({ seq: this.handedSeq, decided, batch: committed });
    this.awaitingCommands += decided.length;
  }

  /** Whether as many commands as allowed wait for the writer: then no more are decided. */
  private writerBehind(): boolean {
    return this.awaitingCommands >= this.awaitingCommandsMax;
  }

  /** A report from the writer: answers what it covers, or refuses everything not yet written. */
  private written(report: WriterReport): void {
    if ('upTo' in report) {
      this.writtenSeq = report.upTo;
      let answered = 0;
      while (answered < this.awaiting.length && (this.awaiting[answered] as Awaiting).seq <= report.upTo) answered += 1;
      for (const { decided, batch } of this.awaiting.splice(0, answered)) {
        this.awaitingCommands -= decided.length;
        this.answer(decided, batch);
      }
      if (this.rebuildPending && this.writtenSeq === this.handedSeq) this.rebuild();
      else if (this.queue.length > 0) this.scheduleFlush();
    } else {
      // Everything not yet answered was decided on a state that included the failed batches.
      const refused = this.awaiting.splice(0).flatMap(({ decided }) => decided);
      this.awaitingCommands = 0;
      this.writtenSeq = this.handedSeq;
      if (report.stage === 'write') {
        this.refuse(refused, unwritten(report.message));
        this.writer.restart();
        this.rebuild();
      } else {
        // After a failed fsync the page cache may have dropped the data: nothing written since is trustworthy.
        // Memory is not rebuilt: the engine takes no more commands. What the writer held may be in the file
        // (committed, then not synced; or committed by a thread that stopped before it reported): its outcome
        // is known only after a restart. What waited in the queue was never decided.
        this.failure = new AppError('STORAGE_FAILED', `the log could not be made durable: ${report.message}`, false, 503);
        this.rebuildPending = false;
        for (const pending of this.queue.splice(0)) pending.reject(this.failure);
        this.refuse(refused, new AppError('STORAGE_UNCERTAIN', `the change was written but could not be made durable: ${report.message}; after a restart, send it again with the same Idempotency-Key to learn whether it was applied`, false, 503));
      }
    }
    for (const wake of this.reportWaiters.splice(0)) wake();
  }

  /** Rebuilds memory from the file once the writer holds nothing more, then decides what queued meanwhile. */
  private rebuild(): void {
    this.rebuildPending = false;
    this.restore();
    if (this.queue.length > 0) this.scheduleFlush();
  }

  /** Answers a durable batch, then tells subscribers. */
  private answer(decided: Decided[], batch: CommittedBatch): void {
    const durableAtMs = performance.now();
    for (const { pending, command, submitted } of decided) {
      pending.resolve(submitted);
      this.options.onDecided?.(command, submitted.outcome, durableAtMs - pending.submittedAtMs);
    }
    if (batch.events.length > 0) {
      this.durablePosition = (batch.events[batch.events.length - 1] as LoggedEvent).position;
      for (const listener of this.listeners) {
        try {
          listener(batch);
        } catch (error) {
          // The batch is durable and answered: one subscriber's bug must not keep it from the others or stop the engine.
          (this.options.onSubscriberFailed ?? reportSubscriberFailure)(error);
        }
      }
    }
    this.considerSnapshot();
  }

  /**
   * Starts a snapshot on another thread once an interval of durable events has passed since the last. It is
   * built from the log on disk, not from memory: serialising the state on the event loop would hold every
   * request for 4-6 ms per 1,000 held reservations. While the event loop is busy it waits, rechecking every
   * second, until it is quieter or a second interval has passed.
   */
  private considerSnapshot(): void {
    if (this.closed || this.snapshotting !== undefined || this.options.path === ':memory:') return;
    const due = Math.max(this.snapshotPosition + this.snapshotInterval, this.snapshotRetryFrom);
    if (this.durablePosition < due) return;
    if (this.durablePosition < due + this.snapshotInterval && this.eventLoopLoad() > snapshotBusyLoad) {
      this.snapshotRecheck ??= setTimeout(() => {
        this.snapshotRecheck = undefined;
        this.considerSnapshot();
      }, snapshotRecheckMs).unref();
      return;
    }
    const position = this.durablePosition;
    const { done, worker } = snapshotInWorker({ databasePath: this.options.path, position });
    this.snapshotWorker = worker;
    this.snapshotting = done.then(
      (written) => this.snapshotWritten(written),
      (error: Error) => {
        this.snapshotRetryFrom = position + this.snapshotInterval;
        // Stopped by close, which writes its own: not a failure.
        if (!this.closed) this.options.onSnapshotFailed?.(error);
      },
    ).finally(() => {
      this.snapshotting = undefined;
      this.snapshotWorker = undefined;
    });
  }

  private snapshotWritten(position: number): void {
    this.snapshotPosition = Math.max(this.snapshotPosition, position);
    // Snapshots kept in the table by earlier versions are superseded by the file.
    if (this.tableSnapshots) {
      this.db.prepare('DELETE FROM snapshots').run();
      this.tableSnapshots = false;
    }
  }

  /**
   * Stamps the command's id and, unless it carries one, its time, on the input itself: the bus owns what is
   * submitted to it (CommandBus), and a copy of every command was a visible share of a reservation's cost.
   */
  private stamp(pending: Pending): Command {
    const command = pending.input as Command;
    command.id = `e${this.nextPosition}`;
    if (pending.input.timeMs === undefined) {
      command.timeMs = this.nowMs();
      pending.stampedTime = true;
    }
    return command;
  }

  /** Refuses decided commands that will not be written, and tells of it. */
  private refuse(decided: readonly Decided[], failure: AppError): void {
    for (const { pending } of decided) this.fail(pending, failure);
    this.options.onStorageFailed?.(failure, decided.length);
  }

  /** Refuses a command that could not be made durable, handing it back as it was sent, so it can be sent again. */
  private fail(pending: Pending, failure: AppError): void {
    const input = pending.input as Partial<Command>;
    delete input.id;
    if (pending.stampedTime) delete input.timeMs;
    pending.reject(failure);
  }

  importEvents(_tenant: string, events: InventoryEvent[], idempotencyKey?: string): Promise<ImportResult> {
    return importEvents(this, events, idempotencyKey);
  }

  /**
   * Decides a group on a copy of its tenants; returns the outcomes when any member is rejected. The copy shares
   * what the group cannot change (trialState), so trying an import costs what the import touches, not the size
   * of the tenant.
   */
  private tryGroup(group: Pending[]): { commands: Command[]; outcomes: Outcome[] } | undefined {
    // One instant for the group, stamped on its members before the trial: decided for real at another, a hold
    // could fall due in between, and a member the trial accepted be refused after those before it were applied.
    const nowMs = this.nowMs();
    for (const pending of group) {
      if (pending.input.timeMs !== undefined) continue;
      pending.input.timeMs = nowMs;
      pending.stampedTime = true;
    }
    const commands = group.map(({ input }) => ({ ...input, id: 'trial' }) as Command);
    const scratch = trialState(this.memory, commands);
    const outcomes = commands.map((command, index) => execute(scratch, command, this.recordsMax, nowMs, (group[index] as Pending).timeRequested === true).outcome);
    if (outcomes.every((outcome) => outcome.rejection === undefined)) return undefined;
    return { commands, outcomes: outcomes.map((outcome) => (outcome.rejection === undefined ? { events: [], rejection: notApplied } : outcome)) };
  }

  /** Writes the snapshot from memory, on this thread, as of the newest event: at close, when all is durable. */
  private snapshotNow(): void {
    const position = this.nextPosition - 1;
    // After a failed sync, memory may hold changes the file does not.
    if (this.options.path === ':memory:' || position <= this.snapshotPosition || this.failure !== undefined) return;
    writeSnapshot(this.options.path, this.memory, position, this.clock());
    this.snapshotWritten(position);
  }

  /** The position of the last snapshot written (0: none), and the one being written, if any. */
  snapshotStatus(): { position: number; writing: Promise<void> | undefined } {
    return { position: this.snapshotPosition, writing: this.snapshotting };
  }

  /**
   * Sends each tenant with something due an expire_due, one at a time per tenant. A tick that released as
   * many holds, or forgot as many idempotency records, as one may can leave more due (a backlog after an
   * outage, or holds falling due faster than a tick a second releases): the next is sent as soon as it is
   * answered, in turn with other commands.
   */
  private expireDue(): void {
    if (this.closed) return;
    const nowMs = this.nowMs();
    for (const [name, tenant] of this.memory.tenants) {
      if (this.expiringTenants.has(name) || !housekeepingDue(tenant, nowMs)) continue;
      this.expiringTenants.add(name);
      this.submit({ type: 'expire_due', tenant: name, nowMs, source: 'expiry' })
        .then(({ outcome }) => moreDueAfterTick(this.memory.tenants.get(name), nowMs, outcome.events.length), () => false)
        .then((more) => {
          this.expiringTenants.delete(name);
          if (more) this.expireDue();
        });
    }
  }

  async eventsAfter(tenant: string, after: number, limit: number): Promise<EventPage> {
    const rows = this.statements.page.raw(true).all(tenant, after, limit) as Array<[number, string]>;
    const events = rows.map(([position, json]) => ({ position, event: JSON.parse(json) as InventoryEvent }));
    return { events, next: events.length > 0 ? (events[events.length - 1] as LoggedEvent).position : after };
  }

  subscribe(listener: (batch: CommittedBatch) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  deadLetter(letter: DeadLetter): void {
    this.statements.deadLetter.run(letter.source, letter.reason, JSON.stringify(letter.payload) ?? 'null', letter.timeMs);
    this.options.onDeadLetter?.(letter);
  }

  offsets(): SourceOffsets {
    return {
      get: (source) => (this.statements.getOffset.get(source) as { value: string } | undefined)?.value,
      set: (source, value) => { this.statements.setOffset.run(source, value); },
    };
  }

  /** Stops taking commands, commits what is queued, writes a snapshot and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.expiryTimer !== undefined) clearInterval(this.expiryTimer);
    if (this.snapshotRecheck !== undefined) clearTimeout(this.snapshotRecheck);
    this.stopLoadMeter?.();
    while (this.queue.length > 0 || this.writtenSeq < this.handedSeq || this.rebuildPending) {
      // After a failure nothing waits for the writer any more, so flush refuses what is queued.
      if (this.queue.length > 0 && !this.rebuildPending && !this.writerBehind()) this.flush();
      else await new Promise<void>((wake) => this.reportWaiters.push(wake));
    }
    await this.writer.close();
    // The snapshot written below, from memory, is newer than the one in progress: stop that one rather than wait.
    if (this.snapshotting !== undefined) {
      await this.snapshotWorker?.terminate();
      await this.snapshotting;
      removeInterruptedWrites(this.options.path);
    }
    if (this.options.snapshotOnClose?.() ?? true) {
      try {
        this.snapshotNow();
      } catch (error) {
        // The log is whole without it: the next start replays more of it.
        this.options.onSnapshotFailed?.(error as Error);
      }
    }
    this.db.close();
    this.lock?.release();
  }
}

/** The event loop's busy share over the last whole second, sampled by a timer that does not keep the process alive. */
function eventLoopLoadMeter(): { load: () => number; stop: () => void } {
  let mark = performance.eventLoopUtilization();
  let load = 0;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    load = performance.eventLoopUtilization(now, mark).utilization;
    mark = now;
  }, 1000);
  timer.unref();
  return { load: () => load, stop: () => clearInterval(timer) };
}

/** How long a start tries for the folder's lock before it is refused: far longer than a contender takes to give up. */
const dataLockWaitMs = 500;

/**
 * One writer per file: a second engine on the same file would decide against a stale state. The lock is SQLite's
 * own lock on a side database (`<file>.lock.sqlite`), taken exclusively and held until close: the operating
 * system drops it when the process ends however it ends, so neither a crash nor a reused pid keeps a folder
 * locked, and two processes starting together cannot both take it. That file is never deleted: a process that
 * had it open would then lock a file nobody else sees. `<file>.lock` only tells people which process holds the
 * lock (it is the pid file older versions locked with, so they too see the folder is taken).
 */
class DataLock {
  private constructor(private readonly connection: Db, private readonly ownerFile: string) {}

  static acquire(path: string): DataLock {
    const ownerFile = `${path}.lock`;
    const deadline = Date.now() + dataLockWaitMs;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      const connection = DataLock.tryLock(`${path}.lock.sqlite`);
      if (connection !== undefined) {
        writeOwner(ownerFile);
        return new DataLock(connection, ownerFile);
      }
      if (Date.now() >= deadline) {
        const owner = readOwner(ownerFile);
        const by = owner === undefined ? 'another process' : `process ${owner}`;
        throw new AppError('DATA_LOCKED', `the data folder ${dirname(path)} is in use by ${by} (it holds ${path}); stop it first, or send changes to its API`, false);
      }
      // Processes starting together can all be refused at once (each holds the shared lock the others wait on):
      // each tries again after a pause of its own, and one of them gets it. A lock that is held stays held.
      Atomics.wait(pause, 0, 0, 5 + Math.random() * 20);
    }
  }

  /** The connection that holds the lock, or undefined when another holds it (or is taking it right now). */
  private static tryLock(lockFile: string): Db | undefined {
    const connection = new Database(lockFile, { timeout: 0 });
    try {
      connection.pragma('locking_mode = EXCLUSIVE');
      connection.pragma('journal_mode = MEMORY');
      // In EXCLUSIVE locking mode the lock a write takes is kept after its commit, until the connection closes.
      connection.exec('BEGIN EXCLUSIVE');
      connection.pragma('user_version = 1');
      connection.exec('COMMIT');
      return connection;
    } catch (error) {
      connection.close();
      if ((error as { code?: string }).code !== 'SQLITE_BUSY') throw error;
      return undefined;
    }
  }

  /** Releases this lock; the owner file goes first, while no other engine can have written it. */
  release(): void {
    if (!this.connection.open) return;
    if (readOwner(this.ownerFile) === process.pid) rmSync(this.ownerFile, { force: true });
    this.connection.close();
  }
}

function readOwner(ownerFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(ownerFile, 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Written whole (a reader never sees it empty), and never fatal: the lock does not depend on it. */
function writeOwner(ownerFile: string): void {
  const temporary = `${ownerFile}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, `${process.pid}\n`);
    renameSync(temporary, ownerFile);
  } catch {
    rmSync(temporary, { force: true });
  }
}

