// How PostgreSQL's errors become CdcErrors: which can be retried, and that the server's explanation is kept.

import { describe, expect, it } from 'vitest';
import { asCdcError } from '../../src/adapters/postgres-cdc/errors.js';

/** The shape pg gives a server error: message, SQLSTATE, and the optional DETAIL and HINT fields. */
function serverError(code: string, message: string, fields: { detail?: string; hint?: string } = {}): Error {
  return Object.assign(new Error(message), { code, ...fields });
}

describe('asCdcError', () => {
  it('does not retry an invalid request (SQLSTATE 22023), and keeps the server DETAIL in the message', () => {
    const error = asCdcError(serverError('22023', 'cannot add relation "stock" to publication', { detail: 'This operation is not supported for unlogged tables.' }), 'creating publication p');
    expect(error).toMatchObject({ code: 'PG_INVALID_REQUEST', retryable: false });
    expect(error.message).toBe('creating publication p: cannot add relation "stock" to publication (This operation is not supported for unlogged tables.)');
  });

  it('keeps DETAIL and HINT on retryable errors too, and adds nothing when there are none', () => {
    expect(asCdcError(serverError('55006', 'replication slot "s" is active for PID 42', { hint: 'Wait.' }), 'streaming').message).toBe('streaming: replication slot "s" is active for PID 42 (Wait.)');
    expect(asCdcError(new Error('connect ECONNREFUSED'), 'connecting')).toMatchObject({ code: 'PG_CONNECTION', retryable: true, message: 'connecting: connect ECONNREFUSED' });
  });

  it('does not retry a slot the server invalidated, and names the fix', () => {
    const error = asCdcError(serverError('55000', 'can no longer get changes from replication slot "s"', { detail: 'This slot has been invalidated because it exceeded the maximum reserved size.' }), 'streaming from slot s');
    expect(error).toMatchObject({ code: 'PG_SLOT_INVALIDATED', retryable: false });
    expect(error.message).toMatch(/exceeded the maximum reserved size.*Drop the slot/);
  });

  it('still retries other SQLSTATE 55000 errors, such as a standby in recovery', () => {
    expect(asCdcError(serverError('55000', 'logical decoding cannot be used while in recovery'), 'streaming')).toMatchObject({ code: 'PG_CONNECTION', retryable: true });
    expect(asCdcError(serverError('55000', 'logical decoding requires wal_level >= logical'), 'streaming')).toMatchObject({ code: 'PG_NOT_LOGICAL', retryable: false });
  });
});
