// A repair must reach receivers that keep only higher versions: a drifted row is pushed under a new version.

import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ChannelOutbox } from '../../src/adapters/sqlite/channel-outbox.js';

describe('reconciliation repair', () => {
  it('gives a drifted row a new version, and leaves a row in step as it is', () => {
    const db = new Database(':memory:');
    const outbox = new ChannelOutbox(db);
    outbox.migrate();
    const key = { tenant: 'acme', channel: 'b2b', sku: 'TEE' };
    outbox.upsertDesired([{ ...key, quantity: 10, changedAtMs: 1_000, position: 1 }]);
    const pushed = outbox.get('acme', 'b2b', 'TEE');
    if (pushed === undefined) throw new Error('the row was not written');
    outbox.markAcked(pushed, pushed.version, 10, 2_000);

    outbox.setAcknowledged(key, 10, 3_000);
    expect(outbox.get('acme', 'b2b', 'TEE')?.version).toBe(pushed.version);

    outbox.setAcknowledged(key, 7, 4_000);
    const repaired = outbox.get('acme', 'b2b', 'TEE');
    expect(repaired?.version).toBe(pushed.version + 1);
    expect(repaired?.nextAttemptMs).toBe(4_000);
    db.close();
  });
});
