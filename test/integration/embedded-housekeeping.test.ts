// The embedded engine's ticker forgets idempotency records past their retention even when no hold is
// left to expire, in memory and in the file; and clears a backlog of due holds without waiting a second a tick.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { limits } from '../../src/core/index.js';
import type { CommandInput } from '../../src/app/ports.js';

const dir = mkdtempSync(join(tmpdir(), 'stockline-housekeeping-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the expiry ticker', () => {
  it('forgets an idempotency record past its retention though every hold was committed in time', async () => {
    let nowMs = Date.UTC(2026, 10, 27, 9);
    const engine = new EmbeddedEngine({ path: join(dir, 'stockline.db'), clock: () => nowMs, expiryIntervalMs: 5 });
    try {
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 });
      await engine.submit({ type: 'reserve', tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000, idempotencyKey: 'k1' });
      await engine.submit({ type: 'commit', tenant: 't', reservationId: 'r1' });
      const storedKeys = (): number => (engine.db.prepare('SELECT COUNT(*) AS count FROM idempotency').get() as { count: number }).count;
      expect(engine.tenant('t')?.idempotency.has('k1')).toBe(true);
      expect(storedKeys()).toBe(1);

      nowMs += limits.idempotencyRetentionMs + 1_000;
      const deadline = Date.now() + 5_000;
      while (engine.tenant('t')?.idempotency.has('k1') === true && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(engine.tenant('t')?.idempotency.has('k1')).toBe(false);
      // The record leaves the file with the same batch (answered once durable).
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 });
      expect(storedKeys()).toBe(0);
    } finally {
      await engine.close();
    }
  });

  it('ticks again at once while a tick releases as many holds as one may, until the backlog is gone', async () => {
    let nowMs = Date.UTC(2026, 10, 27, 9);
    const holds = 2 * limits.expirationsPerTickMax + 7;
    // Only the interval is faked: it fires when the test says, so every tick after the first is one the
    // engine sent itself. Batches, the writer and the test's waits run on real time.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const engine = new EmbeddedEngine({ path: ':memory:', clock: () => nowMs, expiryIntervalMs: 1_000 });
    try {
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: holds });
      await Promise.all(Array.from({ length: holds }, (_, index) => engine.submit({
        type: 'reserve', tenant: 't', reservationId: `r${index}`, channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000,
      })));
      nowMs += 120_000;
      vi.advanceTimersByTime(1_000);
      const reserved = (): number | undefined => engine.tenant('t')?.skus.get('A')?.locations.get('wh')?.reserved;
      const deadline = Date.now() + 5_000;
      while (reserved() !== 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(reserved(), 'every due hold released after one firing of the interval').toBe(0);
      expect(engine.tenant('t')?.reservations.get(`r${holds - 1}`)?.status).toBe('expired');
    } finally {
      vi.useRealTimers();
      await engine.close();
    }
  });

  it('forgets a backlog of idempotency records past their retention after one firing of the interval', async () => {
    let nowMs = Date.UTC(2026, 10, 27, 9);
    const keys = limits.idempotencyForgetsPerTickMax + 7;
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const path = join(dir, 'forgetting.db');
    const engine = new EmbeddedEngine({ path, clock: () => nowMs, expiryIntervalMs: 1_000 });
    try {
      await Promise.all(Array.from({ length: keys }, (_, index) => engine.submit({
        type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1, idempotencyKey: `k${index}`,
      })));
      nowMs += limits.idempotencyRetentionMs + 1_000;
      vi.advanceTimersByTime(1_000);
      const kept = (): number => engine.tenant('t')?.idempotency.size ?? 0;
      const deadline = Date.now() + 5_000;
      while (kept() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(kept(), 'every record past its retention forgotten').toBe(0);
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 });
      expect((engine.db.prepare('SELECT COUNT(*) AS count FROM idempotency').get() as { count: number }).count).toBe(0);
    } finally {
      vi.useRealTimers();
      await engine.close();
    }
  });

  it('keeps in the file a key used again in the batch that forgot its old record', async () => {
    let nowMs = Date.UTC(2026, 10, 27, 9);
    const path = join(dir, 'reused.db');
    const engine = new EmbeddedEngine({ path, clock: () => nowMs, expiryIntervalMs: 0 });
    // A new object each time: the engine stamps its time on what it is given.
    const adjust = (): CommandInput => ({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1, idempotencyKey: 'k1' });
    try {
      await engine.submit(adjust());
      nowMs += limits.idempotencyRetentionMs + 1_000;
      // One turn, so one batch: the housekeeping forgets k1, then the same request under k1 is new again.
      const [, again] = await Promise.all([engine.submit({ type: 'expire_due', tenant: 't', nowMs }), engine.submit(adjust())]);
      expect(again?.outcome.rejection).toBeUndefined();
    } finally {
      await engine.close();
    }
    const reopened = new EmbeddedEngine({ path, clock: () => nowMs, expiryIntervalMs: 0 });
    try {
      expect(reopened.tenant('t')?.idempotency.get('k1')?.timeMs, 'the new record, restored from the file').toBe(nowMs);
      expect((await reopened.submit(adjust())).outcome.rejection?.code, 'a retry of it is still a duplicate').toBe('DUPLICATE');
      expect(reopened.tenant('t')?.skus.get('A')?.locations.get('wh')?.onHand).toBe(2);
    } finally {
      await reopened.close();
    }
  });

  it('keeps each tenant\'s records in the order they were made, through a restart, an upgrade and forgetting', async () => {
    let nowMs = Date.UTC(2026, 10, 27, 9);
    const path = join(dir, 'by-age.db');
    const adjust = (tenant: string, key: string): CommandInput => ({ type: 'adjust_stock', tenant, sku: 'A', location: 'wh', delta: 1, idempotencyKey: key });
    const first = new EmbeddedEngine({ path, clock: () => nowMs, expiryIntervalMs: 0 });
    try {
      // Keys out of alphabetical order, tenants interleaved, a second apart.
      for (const [tenant, key] of [['a', 'z1'], ['b', 'y1'], ['a', 'm2'], ['b', 'c2'], ['a', 'b3']] as const) {
        await first.submit(adjust(tenant, key));
        nowMs += 1_000;
      }
    } finally {
      await first.close();
    }
    // The file as versions before wrote it: records ordered by (tenant, key), schema version 1.
    const old = new Database(path);
    const rows = old.prepare('SELECT tenant, key, json, time_ms FROM idempotency').all() as Array<{ tenant: string; key: string; json: string; time_ms: number }>;
    old.exec(`DROP TABLE idempotency;
      CREATE TABLE idempotency (tenant TEXT NOT NULL, key TEXT NOT NULL, json TEXT NOT NULL, time_ms INTEGER NOT NULL, PRIMARY KEY (tenant, key)) WITHOUT ROWID;
      UPDATE schema_version SET version = 1;`);
    for (const row of rows) old.prepare('INSERT INTO idempotency (tenant, key, json, time_ms) VALUES (?, ?, ?, ?)').run(row.tenant, row.key, row.json, row.time_ms);
    old.close();
    const stored = (db: Database.Database): string[] => (db.prepare('SELECT tenant, seq, key FROM idempotency ORDER BY tenant, seq').all() as Array<{ tenant: string; seq: number; key: string }>)
      .map((row) => `${row.tenant}${row.seq}:${row.key}`);
    const reopened = new EmbeddedEngine({ path, clock: () => nowMs, expiryIntervalMs: 0 });
    try {
      expect(stored(reopened.db), 'ordered by age after the upgrade').toEqual(['a1:z1', 'a2:m2', 'a3:b3', 'b1:y1', 'b2:c2']);
      expect([...(reopened.tenant('a')?.idempotency.keys() ?? [])]).toEqual(['z1', 'm2', 'b3']);
      expect((await reopened.submit(adjust('a', 'm2'))).outcome.rejection?.code, 'a retry after the upgrade').toBe('DUPLICATE');
      await reopened.submit(adjust('a', 'n4'));
      // Past the retention of the first two of tenant a (made at +0 s and +2 s), not of the others.
      nowMs = Date.UTC(2026, 10, 27, 9) + limits.idempotencyRetentionMs + 2_500;
      await reopened.submit({ type: 'expire_due', tenant: 'a', nowMs });
      expect(stored(reopened.db)).toEqual(['a3:b3', 'a4:n4', 'b1:y1', 'b2:c2']);
    } finally {
      await reopened.close();
    }
    const again = new EmbeddedEngine({ path, clock: () => nowMs, expiryIntervalMs: 0 });
    try {
      expect([...(again.tenant('a')?.idempotency.keys() ?? [])]).toEqual(['b3', 'n4']);
      await again.submit(adjust('a', 'p5'));
      expect(stored(again.db), 'places go on from the last one kept').toEqual(['a3:b3', 'a4:n4', 'a5:p5', 'b1:y1', 'b2:c2']);
    } finally {
      await again.close();
    }
  });

  it('keeps at most its bound of records a tenant, forgetting the oldest first, and reads back no more after a restart', async () => {
    const path = join(dir, 'bounded.db');
    const adjust = (tenant: string, key: string): CommandInput => ({ type: 'adjust_stock', tenant, sku: 'A', location: 'wh', delta: 1, idempotencyKey: key });
    const stored = (db: Database.Database, tenant: string): string[] => (db.prepare('SELECT key FROM idempotency WHERE tenant = ? ORDER BY seq').all(tenant) as Array<{ key: string }>).map((row) => row.key);
    const keys = (engine: EmbeddedEngine, tenant: string): string[] => [...(engine.tenant(tenant)?.idempotency.keys() ?? [])];
    const first = new EmbeddedEngine({ path, expiryIntervalMs: 0, idempotencyRecordsMax: 4 });
    try {
      for (let index = 1; index <= 6; index += 1) await first.submit(adjust('a', `k${index}`));
      await first.submit(adjust('b', 'only'));
      expect(keys(first, 'a'), 'the two oldest forgotten to make room').toEqual(['k3', 'k4', 'k5', 'k6']);
      expect(stored(first.db, 'a')).toEqual(['k3', 'k4', 'k5', 'k6']);
      expect((await first.submit(adjust('a', 'k1'))).outcome.rejection, 'a forgotten key is a new command').toBeUndefined();
      expect(keys(first, 'a')).toEqual(['k4', 'k5', 'k6', 'k1']);
    } finally {
      await first.close();
    }
    // A smaller heap after the restart: each tenant's newest records within the bound are read back, and the
    // rest leave the file before the engine takes commands.
    const reopened = new EmbeddedEngine({ path, expiryIntervalMs: 0, idempotencyRecordsMax: 2 });
    try {
      expect(keys(reopened, 'a')).toEqual(['k6', 'k1']);
      expect(stored(reopened.db, 'a')).toEqual(['k6', 'k1']);
      expect(keys(reopened, 'b')).toEqual(['only']);
      expect((await reopened.submit(adjust('a', 'k6'))).outcome.rejection?.code).toBe('DUPLICATE');
      await reopened.submit(adjust('a', 'k7'));
      expect(stored(reopened.db, 'a'), 'places go on past the deleted ones').toEqual(['k1', 'k7']);
    } finally {
      await reopened.close();
    }
  });
});
