// Operating errors of the change-data-capture sources: a stable code, and whether trying again can help.

import { AppError } from '../../app/engine.js';

export type CdcErrorCode =
  | 'INVALID_SOURCE_CONFIG'
  | 'PG_NOT_LOGICAL'
  | 'PG_PRIVILEGE'
  | 'PG_TABLE_MISSING'
  | 'PG_COLUMN_MISSING'
  | 'PG_NO_REPLICA_IDENTITY'
  | 'PG_SLOT_MISMATCH'
  | 'PG_SLOT_INVALIDATED'
  | 'PG_TABLE_UNLOGGED'
  | 'PG_INVALID_REQUEST'
  | 'PG_SERVER_CHANGED'
  | 'PG_TABLE_CHANGED'
  | 'PG_CONNECTION'
  | 'PG_PROTOCOL'
  | 'INVALID_INPUT'
  | 'BUS_FAILED'
  | 'SOURCE_STOPPED';

export class CdcError extends AppError {
  declare readonly code: CdcErrorCode;

  constructor(code: CdcErrorCode, message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(code, message, retryable);
    this.name = 'CdcError';
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/** PostgreSQL SQLSTATEs after which trying again cannot help without an operator. */
const permanentStates: Record<string, CdcErrorCode> = {
  '42501': 'PG_PRIVILEGE',
  '42P01': 'PG_TABLE_MISSING',
  '42703': 'PG_COLUMN_MISSING',
  '28000': 'PG_PRIVILEGE',
  '28P01': 'PG_PRIVILEGE',
  '3D000': 'PG_CONNECTION',
  // invalid_parameter_value: the server refuses the request itself (an UNLOGGED table in a publication, say).
  '22023': 'PG_INVALID_REQUEST',
};

/** PostgreSQL's own explanation (DETAIL, HINT) belongs in the message: it often names the real cause. */
function serverExplanation(error: unknown): string {
  if (typeof error !== 'object' || error === null) return '';
  const { detail, hint } = error as { detail?: unknown; hint?: unknown };
  const parts = [detail, hint].filter((part): part is string => typeof part === 'string' && part !== '');
  return parts.length === 0 ? '' : ` (${parts.join(' ')})`;
}

/** A slot the server invalidated (it fell behind max_slot_wal_keep_size, ...) can never stream again. */
export function slotInvalidatedError(slot: string, why: string, cause?: unknown): CdcError {
  return new CdcError('PG_SLOT_INVALIDATED', `replication slot ${slot} was invalidated by PostgreSQL (${why}): the WAL it needed is gone, so the changes since it was last read cannot be streamed. Stop Stockline, drop the slot (SELECT pg_drop_replication_slot('${slot.replace(/'/g, "''")}')) and start it: a new slot is created with a fresh snapshot. Raise max_slot_wal_keep_size, or keep the source running, so it does not happen again`, false, { cause });
}

/** Wraps anything thrown by PostgreSQL or the network as a CdcError; a CdcError passes through. */
export function asCdcError(error: unknown, doing: string): CdcError {
  if (error instanceof CdcError) return error;
  const state = (error as { code?: unknown }).code;
  const message = `${doing}: ${(error as Error).message ?? String(error)}${serverExplanation(error)}`;
  if (typeof state === 'string' && state in permanentStates) {
    return new CdcError(permanentStates[state] as CdcErrorCode, message, false, { cause: error });
  }
  if (state === '55000' && /wal_level/i.test(message)) return new CdcError('PG_NOT_LOGICAL', message, false, { cause: error });
  // object_not_in_prerequisite_state is also a standby still in recovery, which may pass: only an invalidated slot is final.
  if (state === '55000' && /invalidated|can no longer get changes/i.test(message)) return new CdcError('PG_SLOT_INVALIDATED', `${message}. Drop the slot (a new one is created with a fresh snapshot at the next start) and raise max_slot_wal_keep_size`, false, { cause: error });
  return new CdcError('PG_CONNECTION', message, true, { cause: error });
}
