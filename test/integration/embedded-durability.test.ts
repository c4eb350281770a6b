// With the WAL synced in the background, no answer may overtake the sync of what it rests on; a restart
// restores from a snapshot of its own format only.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import { replay, snapshotFormat, toSnapshot } from '../../src/core/index.js';
import type { InventoryEvent, StateSnapshot } from '../../src/core/index.js';

const dirs: string[] = [];
afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }); });

describe('background durability', () => {
  it('answers a retry (DUPLICATE of a not yet synced reservation) only after the first answer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-durability-'));
    dirs.push(dir);
    const engine = new EmbeddedEngine({ path: join(dir, 'stockline.db'), expiryIntervalMs: 0, durability: 'background' });
    try {
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 });
      const order: string[] = [];
      const reserve = { type: 'reserve' as const, tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000, idempotencyKey: 'k1' };
      const first = engine.submit(reserve).then((submitted) => { order.push('first'); return submitted; });
      // The retry arrives in the next turn, while the first batch's WAL sync is in flight.
      await new Promise((resolve) => setImmediate(resolve));
      const retry = engine.submit(reserve).then((submitted) => { order.push('retry'); return submitted; });
      const [firstAnswer, retryAnswer] = await Promise.all([first, retry]);
      expect(firstAnswer.outcome.rejection).toBeUndefined();
      expect(retryAnswer.outcome.rejection?.code).toBe('DUPLICATE');
      expect(order).toEqual(['first', 'retry']);
    } finally {
      await engine.close();
    }
  });
});

describe('restore', () => {
  /** A file with a few events and the snapshot written at close; then its snapshot replaced by `tamper`'s. */
  async function fileWithSnapshot(tamper: (snapshot: StateSnapshot) => StateSnapshot): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-restore-'));
    dirs.push(dir);
    const path = join(dir, 'stockline.db');
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
    await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 });
    await engine.submit({ type: 'reserve', tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 2 }], ttlMs: 60_000 });
    await engine.submit({ type: 'release', tenant: 't', reservationId: 'r1', reason: 'released' });
    await engine.close();
    const db = new Database(path);
    const row = db.prepare('SELECT position, json FROM snapshots').get() as { position: number; json: string };
    expect(JSON.parse(row.json).format).toBe(snapshotFormat);
    db.prepare('UPDATE snapshots SET json = ? WHERE position = ?').run(JSON.stringify(tamper(JSON.parse(row.json) as StateSnapshot)), row.position);
    db.close();
    return path;
  }

  function withOnHand(snapshot: StateSnapshot, onHand: number): StateSnapshot {
    const stock = snapshot.tenants.t?.skus.A?.locations.wh;
    if (stock === undefined) throw new Error('the snapshot has no stock of A at wh');
    stock.onHand = onHand;
    return snapshot;
  }

  it('starts from a snapshot of its own format', async () => {
    const path = await fileWithSnapshot((snapshot) => withOnHand(snapshot, 999));
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
    try {
      expect(engine.tenant('t')?.skus.get('A')?.locations.get('wh')?.onHand, 'what the snapshot says, not the log').toBe(999);
    } finally {
      await engine.close();
    }
  });

  it('passes over a snapshot of another format and replays the whole log', async () => {
    const path = await fileWithSnapshot((snapshot) => {
      const older = withOnHand(snapshot, 999);
      delete older.format;
      return older;
    });
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
    try {
      const db = new Database(path, { readonly: true });
      const events = (db.prepare('SELECT json FROM events ORDER BY position').pluck().all() as string[]).map((json) => JSON.parse(json) as InventoryEvent);
      db.close();
      expect(toSnapshot(engine.state())).toEqual(toSnapshot(replay(events)));
      expect(engine.tenant('t')?.skus.get('A')?.locations.get('wh')?.onHand).toBe(5);
    } finally {
      await engine.close();
    }
  });
});

describe('snapshots during traffic', () => {
  function engineAt(options: { snapshotEveryEvents: number; snapshotQuietMs: number }): EmbeddedEngine {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-snapshots-'));
    dirs.push(dir);
    return new EmbeddedEngine({ path: join(dir, 'stockline.db'), expiryIntervalMs: 0, ...options });
  }

  function snapshotPosition(engine: EmbeddedEngine): number | null {
    return (engine.db.prepare('SELECT MAX(position) AS position FROM snapshots').get() as { position: number | null }).position;
  }

  async function adjustments(engine: EmbeddedEngine, count: number): Promise<void> {
    for (let index = 0; index < count; index += 1) await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 });
  }

  it('waits for a quiet moment once due, then writes one', async () => {
    const engine = engineAt({ snapshotEveryEvents: 100, snapshotQuietMs: 20 });
    try {
      await adjustments(engine, 150);
      const deadline = Date.now() + 5_000;
      while (snapshotPosition(engine) === null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(snapshotPosition(engine)).toBe(150);
    } finally {
      await engine.close();
    }
  });

  it('writes none while commands keep coming, until five times the interval has passed', async () => {
    // Quiet would take ten seconds: only the bound can write a snapshot here.
    const engine = engineAt({ snapshotEveryEvents: 100, snapshotQuietMs: 10_000 });
    try {
      await adjustments(engine, 499);
      expect(snapshotPosition(engine), 'due since event 100, but never quiet').toBeNull();
      await adjustments(engine, 1);
      expect(snapshotPosition(engine)).toBe(500);
    } finally {
      await engine.close();
    }
  });
});
