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
};

/** Wraps anything thrown by PostgreSQL or the network as a CdcError; a CdcError passes through. */
export function asCdcError(error: unknown, doing: string): CdcError {
  if (error instanceof CdcError) return error;
  const state = (error as { code?: unknown }).code;
  const message = `${doing}: ${(error as Error).message ?? String(error)}`;
  if (typeof state === 'string' && state in permanentStates) {
    return new CdcError(permanentStates[state] as CdcErrorCode, message, false, { cause: error });
  }
  if (state === '55000' && /wal_level/i.test(message)) return new CdcError('PG_NOT_LOGICAL', message, false, { cause: error });
  return new CdcError('PG_CONNECTION', message, true, { cause: error });
}
