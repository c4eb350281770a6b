// A walsender connection: creates logical slots, streams decoded pgoutput messages, sends standby status updates.

import pg from 'pg';
import { PgoutputPlugin } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import { CdcError, asCdcError } from './errors.js';
import { parseLsn } from './lsn.js';

export type StreamMessage =
  | { kind: 'data'; message: Pgoutput.Message }
  /** The server's keepalive: how far it has sent, and whether it wants an answer now. */
  | { kind: 'keepalive'; walEnd: bigint; replyRequested: boolean };

/** What IDENTIFY_SYSTEM says: which cluster this is (kept by physical replicas, new after initdb), its timeline and WAL position. */
export interface ServerIdentity {
  systemId: string;
  timeline: number;
  walPosition: bigint;
}

export interface SlotCreated {
  consistentPoint: bigint;
  /** Name of the exported snapshot, valid until this connection runs its next command. */
  snapshotName: string | null;
}

/** The parts of pg's connection the replication protocol needs; pg does not type them. */
interface WireConnection {
  on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): unknown;
  /** The server's CopyBothResponse: START_REPLICATION was accepted and the stream begins. */
  once(event: 'replicationStart', listener: () => void): unknown;
  removeAllListeners(event?: string): unknown;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}

/** Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01. */
const postgresEpochUs = 946_684_800_000_000n;
const xLogDataHeaderBytes = 25;

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export class ReplicationConnection {
  private ended = false;
  private readonly decoder: PgoutputPlugin;

  private constructor(private readonly client: pg.Client, publication: string) {
    this.decoder = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication] });
    // Without a listener an error event would crash the process; the streaming query reports it.
    client.on('error', () => { this.ended = true; });
    client.on('end', () => { this.ended = true; });
  }

  static async open(connectionString: string, publication: string, connectTimeoutMs: number, applicationName: string): Promise<ReplicationConnection> {
    // `replication: 'database'` makes this a walsender connection; pg passes it through but does not type it.
    const options = { connectionString, connectionTimeoutMillis: connectTimeoutMs, application_name: applicationName, replication: 'database' };
    const client = new pg.Client(options as pg.ClientConfig);
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw asCdcError(error, 'opening the replication connection');
    }
    return new ReplicationConnection(client, publication);
  }

  async identifySystem(): Promise<ServerIdentity> {
    try {
      const result = await this.client.query<{ systemid: string; timeline: number | string; xlogpos: string }>('IDENTIFY_SYSTEM');
      const row = result.rows[0];
      if (row === undefined) throw new CdcError('PG_PROTOCOL', 'IDENTIFY_SYSTEM returned no row', true);
      return { systemId: String(row.systemid), timeline: Number(row.timeline), walPosition: parseLsn(row.xlogpos) };
    } catch (error) {
      throw asCdcError(error, 'identifying the server');
    }
  }

  async createSlot(slot: string, options: { temporary: boolean; exportSnapshot: boolean }): Promise<SlotCreated> {
    const sql = `CREATE_REPLICATION_SLOT ${quoteIdentifier(slot)}${options.temporary ? ' TEMPORARY' : ''} LOGICAL pgoutput ${options.exportSnapshot ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT'}`;
    try {
      const result = await this.client.query<{ consistent_point: string; snapshot_name: string | null }>(sql);
      const row = result.rows[0];
      if (row === undefined) throw new CdcError('PG_PROTOCOL', `CREATE_REPLICATION_SLOT ${slot} returned no row`, true);
      return { consistentPoint: parseLsn(row.consistent_point), snapshotName: row.snapshot_name };
    } catch (error) {
      throw asCdcError(error, `creating replication slot ${slot}`);
    }
  }

  /**
   * Starts streaming from the slot's confirmed position. Resolves once the server accepted it (its
   * CopyBothResponse); rejects when it refused it (an invalidated slot, one held by another connection)
   * or did not answer within `startTimeoutMs`. `onMessage` gets every message in order; `onEnd` is
   * called once, when a stream that did start stops for any reason (with the error, if it failed).
   */
  startStreaming(slot: string, publication: string, startTimeoutMs: number, onMessage: (message: StreamMessage) => void, onEnd: (error: CdcError) => void): Promise<void> {
    let done = false;
    let started = false;
    let accepted!: () => void;
    let refused!: (error: CdcError) => void;
    const start = new Promise<void>((resolve, reject) => { accepted = resolve; refused = reject; });
    const timer = setTimeout(() => finish(new CdcError('PG_CONNECTION', `the server did not start streaming from slot ${slot} within ${startTimeoutMs} ms`, true)), startTimeoutMs);
    const finish = (error: unknown): void => {
      if (done) return;
      done = true;
      this.ended = true;
      clearTimeout(timer);
      const failure = asCdcError(error, `streaming from slot ${slot}`);
      if (started) {
        onEnd(failure);
        return;
      }
      void this.client.end().catch(() => undefined);
      refused(failure);
    };
    this.wire().once('replicationStart', () => {
      if (done) return;
      started = true;
      clearTimeout(timer);
      accepted();
    });
    this.wire().on('copyData', ({ chunk }) => {
      if (done) return;
      try {
        const message = this.decode(chunk);
        if (message !== undefined) onMessage(message);
      } catch (error) {
        finish(new CdcError('PG_PROTOCOL', `undecodable replication message: ${(error as Error).message}`, true, { cause: error }));
      }
    });
    this.client.on('error', finish);
    this.client.on('end', () => finish(new CdcError('PG_CONNECTION', 'the replication connection closed', true)));
    const publicationList = quoteIdentifier(publication).replace(/'/g, "''");
    const sql = `START_REPLICATION SLOT ${quoteIdentifier(slot)} LOGICAL 0/0 (proto_version '1', publication_names '${publicationList}')`;
    this.client.query(sql).then(
      () => finish(new CdcError('PG_CONNECTION', 'the server ended the replication stream', true)),
      finish,
    );
    return start;
  }

  private decode(chunk: Buffer): StreamMessage | undefined {
    const tag = chunk[0];
    if (tag === 0x77 /* w: XLogData */) return { kind: 'data', message: this.decoder.parse(chunk.subarray(xLogDataHeaderBytes)) };
    if (tag === 0x6b /* k: primary keepalive */) return { kind: 'keepalive', walEnd: chunk.readBigUInt64BE(1), replyRequested: chunk[17] === 1 };
    return undefined;
  }

  /** Tells the server everything up to `flushed` is durable, so the slot may let go of the WAL before it. */
  sendStatus(flushed: bigint, nowMs: number, replyRequested = false): void {
    if (this.ended) return;
    const message = Buffer.alloc(34);
    message.write('r', 0, 'latin1');
    message.writeBigUInt64BE(flushed, 1);
    message.writeBigUInt64BE(flushed, 9);
    message.writeBigUInt64BE(flushed, 17);
    message.writeBigInt64BE(BigInt(nowMs) * 1000n - postgresEpochUs, 25);
    message.writeUInt8(replyRequested ? 1 : 0, 33);
    this.wire().sendCopyFromChunk(message);
  }

  pause(): void {
    this.wire().stream.pause();
  }

  resume(): void {
    this.wire().stream.resume();
  }

  async close(): Promise<void> {
    this.ended = true;
    await this.client.end().catch(() => undefined);
  }

  private wire(): WireConnection {
    return (this.client as unknown as { connection: WireConnection }).connection;
  }
}
