// PostgreSQL change data capture after a move to another server (dump/restore, blue/green): the offset records which
// server the snapshot came from, and positions of another server, which the ledger cannot compare, are refused.

import { beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/pg.js';
import { startError, useCdcDatabase } from '../support/postgres-cdc.js';

const cdc = useCdcDatabase('cdcfix_server', 'cdcfix');
const { sql } = cdc;
let systemId: string;

async function slotExists(slot: string): Promise<boolean> {
  return (await cdc.database.client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount === 1;
}

beforeAll(async () => {
  systemId = String((await sql('SELECT system_identifier FROM pg_control_system()'))[0]?.system_identifier);
});

describe('the server a source streams from', () => {
  it('is recorded with the snapshot: system identifier and timeline', async () => {
    const h = await cdc.seededSource();
    const source = h.newSource();
    await source.start();
    const offset = JSON.parse(h.offsets.get(source.source) ?? '{}') as Record<string, unknown>;
    expect(offset).toMatchObject({ snapshotDone: true, systemId, timeline: expect.any(Number) as unknown });
    await source.stop();
  });

  it('refuses, without retrying or creating a slot, a server other than the one the snapshot came from', async () => {
    const h = await cdc.seededSource();
    // What the offset says after the table moved here from another cluster, whose positions ran far ahead.
    h.offsets.set(`pg:${h.config.slot}`, JSON.stringify({ snapshotDone: true, consistentPoint: '98765432100', systemId: '7000000000000000001', timeline: 1 }));
    const source = h.newSource();
    const error = await startError(source);
    expect(error).toMatchObject({ code: 'PG_SERVER_CHANGED', retryable: false });
    expect(error.message).toMatch(/system 7000000000000000001.*new slot name/);
    expect(source.status()).toMatchObject({ state: 'failed', applied: 0, stale: 0 });
    expect(await slotExists(h.config.slot)).toBe(false);
    expect(h.bus.onHand('A')).toBeUndefined();
  });

  it('refuses an offset of an earlier version (no system identifier) whose slot is gone and whose positions are ahead of this server', async () => {
    const h = await cdc.seededSource();
    h.offsets.set(`pg:${h.config.slot}`, JSON.stringify({ snapshotDone: true, consistentPoint: '18446744073709551000' }));
    const source = h.newSource();
    expect(await startError(source)).toMatchObject({ code: 'PG_SERVER_CHANGED', retryable: false });
    expect(await slotExists(h.config.slot)).toBe(false);
  });

  it('keeps an offset of an earlier version working where its slot is, and records the server in it', async () => {
    const h = await cdc.seededSource();
    const first = h.newSource();
    await first.start();
    await first.stop();
    const key = `pg:${h.config.slot}`;
    const { consistentPoint } = JSON.parse(h.offsets.get(key) ?? '{}') as { consistentPoint: string };
    h.offsets.set(key, JSON.stringify({ snapshotDone: true, consistentPoint }));
    expect(await eventually(async () => (await cdc.database.client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [h.config.slot])).rowCount === 0)).toBe(true);
    const again = h.newSource();
    await again.start();
    expect(JSON.parse(h.offsets.get(key) ?? '{}')).toMatchObject({ snapshotDone: true, consistentPoint, systemId });
    await sql(`UPDATE ${h.config.table} SET qty = 2`);
    expect(await eventually(() => h.bus.onHand('A') === 2)).toBe(true);
    await again.stop();
  });
});
