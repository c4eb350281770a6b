// The source's stored offset (snapshot done, its consistent point, the server it came from) and the check that the server is still that one.

import { CdcError } from './errors.js';
import type { ServerIdentity } from './replication-connection.js';

export interface SnapshotOffset {
  snapshotDone: boolean;
  /** The slot's consistent point, as the decimal sequence the ledger compares. */
  consistentPoint: string;
  /** The server's system identifier and timeline when the snapshot was taken; absent in offsets of earlier versions. */
  systemId?: string;
  timeline?: number;
  /** The table's OID when the snapshot was taken: another one means the table was swapped for a copy. */
  tableOid?: number;
}

export function parseOffset(text: string | undefined): SnapshotOffset | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as SnapshotOffset;
  } catch {
    return undefined;
  }
}

function serverChanged(source: string, slot: string, why: string): CdcError {
  return new CdcError('PG_SERVER_CHANGED', `${source}: ${why}. The ledger holds this source's stock under the old server's positions (LSNs), `
    + `so the new server's changes would be refused as stale. To follow the new server, give the source a new slot name (its ledger source pg:<new slot> `
    + `starts with a fresh snapshot), and drop slot ${slot} where it still exists; see docs/change-data-capture.md, "Moving to another server"`, false);
}

/**
 * Throws PG_SERVER_CHANGED when the positions of this server cannot be compared with the ledger's:
 * another system identifier than the snapshot's, or (an offset of an earlier version, without one,
 * whose slot is gone) a server whose WAL is behind the stored consistent point. A slot that exists
 * proves the server.
 */
export function checkServer(offset: SnapshotOffset | undefined, server: ServerIdentity, slotExists: boolean, source: string, slot: string): void {
  if (offset?.snapshotDone !== true) return;
  if (offset.systemId !== undefined && offset.systemId !== server.systemId) {
    throw serverChanged(source, slot, `the snapshot was taken from PostgreSQL system ${offset.systemId}, and this server is system ${server.systemId} (restored from a dump, or a new cluster)`);
  }
  if (offset.systemId === undefined && !slotExists && server.walPosition < BigInt(offset.consistentPoint)) {
    throw serverChanged(source, slot, `the slot is gone and this server's WAL position (${server.walPosition}) is behind the stored snapshot's (${offset.consistentPoint}): it is another server`);
  }
}
