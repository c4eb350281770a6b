// Where the embedded engine's decided batches are written: on a thread of their own for a file, in place for an
// in-memory database (tests). Either way, a report says how far the writes went, in the order they were handed in.

import type { Worker } from 'node:worker_threads';
import type { Database } from 'better-sqlite3';
import { batchWriter } from './batch-sql.js';
import type { BatchRows } from './batch-sql.js';
import { startThread } from './thread.js';

export interface WriterJob {
  path: string;
  /** fdatasync the WAL after each commit before reporting it. */
  sync: boolean;
}

export type WriterMessage = { kind: 'write'; epoch: number; seq: number; rows: BatchRows } | { kind: 'close' };

/**
 * `upTo`: every batch up to that sequence number is written (and synced, when asked). `failedFrom`: the batches
 * from that one on are not; `write` failures leave the file as it was before them, `sync` and `thread` failures
 * leave nothing trustworthy after the last report.
 */
export type WriterReport =
  | { epoch: number; upTo: number }
  | { epoch: number; failedFrom: number; stage: 'write' | 'sync' | 'thread'; message: string };

export interface LogWriter {
  /**
   * Hands over a batch; `seq` increases by one with each. The rows are copied before this returns; if they
   * cannot be (they are not plain data), this throws and the batch is not handed over.
   */
  write(seq: number, rows: BatchRows): void;
  /** After a failed write: batches handed over before now that are still waiting are dropped, not written. */
  restart(): void;
  /** Once every report is in: stops the writer. */
  close(): Promise<void>;
}

/** Writes on a thread, which holds its own connection to the file. */
export class ThreadLogWriter implements LogWriter {
  private readonly worker: Worker;
  private epoch = 0;
  private lastSeq = 0;
  private reportedSeq = 0;
  private closing = false;
  private gone = false;
  private readonly exited: Promise<void>;

  constructor(job: WriterJob, private readonly onReport: (report: WriterReport) => void) {
    this.worker = startThread('log-writer-worker', job);
    // Referenced only while a write is out, so an idle engine does not keep the process alive.
    this.worker.unref();
    this.worker.on('message', (report: WriterReport) => {
      if (report.epoch !== this.epoch) return;
      this.reportedSeq = 'upTo' in report ? report.upTo : this.lastSeq;
      if (this.reportedSeq === this.lastSeq) this.worker.unref();
      this.onReport(report);
    });
    this.worker.on('error', (error: Error) => this.lost(`the writer thread failed: ${error.message}`));
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        this.lost(`the writer thread exited with code ${code}`);
        resolve();
      });
    });
  }

  write(seq: number, rows: BatchRows): void {
    const message: WriterMessage = { kind: 'write', epoch: this.epoch, seq, rows };
    this.worker.postMessage(message);
    if (this.reportedSeq === this.lastSeq) this.worker.ref();
    this.lastSeq = seq;
  }

  restart(): void {
    this.epoch += 1;
    this.reportedSeq = this.lastSeq;
    this.worker.unref();
  }

  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      const message: WriterMessage = { kind: 'close' };
      this.worker.postMessage(message);
      this.worker.ref();
    }
    await this.exited;
  }

  private lost(message: string): void {
    if (this.closing || this.gone) return;
    this.gone = true;
    this.onReport({ epoch: this.epoch, failedFrom: this.reportedSeq + 1, stage: 'thread', message });
  }
}

/** Writes on the caller's connection at once (an in-memory database cannot be shared); reports in a microtask. */
export class InPlaceLogWriter implements LogWriter {
  private readonly writeBatches: ReturnType<typeof batchWriter>;
  private epoch = 0;
  private droppedEpoch = -1;

  constructor(db: Database, private readonly onReport: (report: WriterReport) => void) {
    this.writeBatches = batchWriter(db);
  }

  write(seq: number, rows: BatchRows): void {
    const { epoch } = this;
    if (epoch <= this.droppedEpoch) return;
    let report: WriterReport;
    try {
      this.writeBatches([rows]);
      report = { epoch, upTo: seq };
    } catch (error) {
      this.droppedEpoch = epoch;
      report = { epoch, failedFrom: seq, stage: 'write', message: (error as Error).message };
    }
    queueMicrotask(() => { if (report.epoch === this.epoch) this.onReport(report); });
  }

  restart(): void {
    this.epoch += 1;
  }

  async close(): Promise<void> {
    // The connection is the engine's: it closes it.
  }
}
