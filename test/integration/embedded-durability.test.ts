// With the WAL synced in the background, no answer may overtake the sync of what it rests on; a restart
// restores from a snapshot of its own format that the log reaches; snapshots are written beside the traffic.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';
import type { Projection } from '../../src/adapters/sqlite/embedded-engine.js';
import { snapshotPathOf } from '../../src/adapters/sqlite/snapshot-file.js';
import { fromSnapshot, packState, replay, snapshotFormat, toSnapshot } from '../../src/core/index.js';
import type { InventoryEvent, StateSnapshot } from '../../src/core/index.js';
import { readPlainSnapshot, writePackedSnapshot } from '../support/snapshot-file.js';

const dirs: string[] = [];
afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }); });

type Stored = StateSnapshot & { position: number };

/** The snapshot file, of this version's format, as plain data. */
function readStored(path: string): Stored {
  const stored = readPlainSnapshot(path);
  if (stored === undefined) throw new Error('no snapshot file');
  expect(stored.format).toBe(snapshotFormat);
  return stored;
}

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

  it('decides no more commands while as many as allowed wait for the writer, and answers them all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-durability-'));
    dirs.push(dir);
    const awaitingCommandsMax = 20;
    const batchCommandsMax = 10;
    const engine = new EmbeddedEngine({ path: join(dir, 'stockline.db'), expiryIntervalMs: 0, batchCommandsMax, awaitingCommandsMax });
    try {
      let answered = 0;
      const all = Promise.all(Array.from({ length: 500 }, () => engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 }).then(() => { answered += 1; })));
      // A SKU's version counts the events decided on it: decided minus answered is what waits for the writer.
      let waitingMax = 0;
      while (answered < 500) {
        await new Promise((resolve) => setImmediate(resolve));
        waitingMax = Math.max(waitingMax, (engine.tenant('t')?.skus.get('A')?.version ?? 0) - answered);
      }
      await all;
      expect(waitingMax).toBeGreaterThan(0);
      // Checked before each batch is decided: one batch may take it past the limit.
      expect(waitingMax).toBeLessThanOrEqual(awaitingCommandsMax + batchCommandsMax - 1);
      expect(engine.tenant('t')?.skus.get('A')?.locations.get('wh')?.onHand).toBe(500);
    } finally {
      await engine.close();
    }
  });
});

/** A row no transaction can write: the writer's commit of any batch carrying it fails and rolls back. */
const unwritable = { sql: 'INSERT INTO no_such_table (x) VALUES (:x)', params: { x: 1 } };

describe.each([
  ['in a file', 'its projection throws'], ['in memory', 'its projection throws'],
  ['in a file', 'the writer cannot commit it'], ['in memory', 'the writer cannot commit it'],
  ['in a file', 'its rows are not plain data'], ['in memory', 'its rows are not plain data'],
])('a batch that cannot be written, %s, when %s', (where, how) => {
  it('refuses its commands with STORAGE_FAILED, keeps none of them, and hands them back as they were sent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-durability-'));
    dirs.push(dir);
    let failing = false;
    const diskFull: Projection = () => {
      if (!failing) return [];
      if (how === 'its projection throws') throw new Error('disk full');
      // A function can be neither copied to the writer thread nor bound to a statement.
      if (how === 'its rows are not plain data') return [{ sql: 'SELECT :x', params: { x: (() => 1) as unknown as number } }];
      return [unwritable];
    };
    const path = where === 'in memory' ? ':memory:' : join(dir, 'stockline.db');
    const told: Array<[retryable: boolean, commands: number]> = [];
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0, projections: [diskFull], onStorageFailed: (error, commands) => told.push([error.retryable, commands]) });
    try {
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 });
      const reserve = { type: 'reserve' as const, tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000 };
      const dated = { type: 'adjust_stock' as const, tenant: 't', sku: 'A', location: 'wh', delta: 1, timeMs: 1_000 };
      const asSent = structuredClone([reserve, dated]);
      failing = true;
      const refused = await Promise.allSettled([engine.submit(reserve), engine.submit(dated)]);
      expect(refused.map((result) => (result.status === 'rejected' ? (result.reason as { code: string }).code : 'accepted'))).toEqual(['STORAGE_FAILED', 'STORAGE_FAILED']);
      expect(told, 'told of the failure, as retryable, with the commands refused').toEqual([[true, 2]]);
      expect(engine.ready()).toBe(true);
      // No stamped id or time is left on them: a retry is decided afresh, at its own time.
      expect([reserve, dated]).toStrictEqual(asSent);
      expect(engine.tenant('t')?.reservations.has('r1')).toBe(false);
      expect(engine.tenant('t')?.skus.get('A')?.locations.get('wh')?.onHand).toBe(5);
      failing = false;
      const before = Date.now();
      expect((await engine.submit(reserve)).outcome.rejection).toBeUndefined();
      expect(engine.tenant('t')?.reservations.get('r1')?.createdAtMs).toBeGreaterThanOrEqual(before);
      expect(engine.position()).toBe(2);
    } finally {
      await engine.close();
    }
  });
});

describe.each(['in a file', 'in memory'])('batches decided while an unwritable one is with the writer, %s', (where) => {
  it('are answered only if written, and memory ends as a replay of the log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-durability-'));
    dirs.push(dir);
    // One command per batch, so the batches after the bad one are decided while it is being written.
    const badOrder: Projection = (batch) => (batch.events.some(({ event }) => event.type === 'order_reserved' && event.data.reservationId === 'r5') ? [unwritable] : []);
    const path = where === 'in memory' ? ':memory:' : join(dir, 'stockline.db');
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0, batchCommandsMax: 1, projections: [badOrder] });
    try {
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 100 });
      const ids = Array.from({ length: 20 }, (_, index) => `r${index}`);
      const results = await Promise.allSettled(ids.map((reservationId) => engine.submit({ type: 'reserve', tenant: 't', reservationId, channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000 })));
      const outcomes = results.map((result) => (result.status === 'rejected' ? (result.reason as { code: string }).code : 'held'));
      // The writer commits the batches that reach it together: those sharing the bad one's transaction fail with it.
      expect(outcomes[5]).toBe('STORAGE_FAILED');
      expect(outcomes.every((outcome) => outcome === 'held' || outcome === 'STORAGE_FAILED')).toBe(true);
      const held = ids.filter((_, index) => outcomes[index] === 'held');
      const logged = (engine.db.prepare('SELECT json FROM events ORDER BY position').pluck().all() as string[]).map((json) => JSON.parse(json) as InventoryEvent);
      expect(logged.flatMap((event) => (event.type === 'order_reserved' ? [event.data.reservationId] : []))).toEqual(held);
      expect(toSnapshot(engine.state())).toEqual(toSnapshot(replay(logged)));
      expect(engine.tenant('t')?.skus.get('A')?.locations.get('wh')?.reserved).toBe(held.length);
    } finally {
      await engine.close();
    }
  });
});

describe('a writer thread that stops', () => {
  it('fails the engine for good: what it held is refused as uncertain, everything after with STORAGE_FAILED, and close still finishes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-durability-'));
    dirs.push(dir);
    const told: boolean[] = [];
    const engine = new EmbeddedEngine({ path: join(dir, 'stockline.db'), expiryIntervalMs: 0, onStorageFailed: (error) => told.push(error.retryable) });
    await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 });
    const thread = (engine as unknown as { writer: { worker: { terminate(): Promise<number> } } }).writer.worker;
    const held = engine.submit({ type: 'reserve', tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 60_000 });
    await thread.terminate();
    // The thread may have committed it before it stopped: only a restart can tell.
    await expect(held).rejects.toMatchObject({ code: 'STORAGE_UNCERTAIN', retryable: false });
    await expect(engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 })).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(engine.ready()).toBe(false);
    expect(told, 'told once, as not retryable').toEqual([false]);
    await engine.close();
    const db = new Database(join(dir, 'stockline.db'), { readonly: true });
    expect(db.prepare('SELECT COUNT(*) FROM events').pluck().get(), 'only the adjustment answered before').toBe(1);
    db.close();
  });
});

describe('a writer thread that stops while memory waits to be rebuilt', () => {
  it('refuses what was waiting and still closes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-durability-'));
    dirs.push(dir);
    // The second batch cannot be written, while the first is still with the writer: memory waits for the writer.
    const badSecond: Projection = (batch) => {
      if (batch.events.some(({ event }) => event.type === 'stock_adjustment' && event.data.sku === 'B')) throw new Error('disk full');
      return [];
    };
    const engine = new EmbeddedEngine({ path: join(dir, 'stockline.db'), expiryIntervalMs: 0, batchCommandsMax: 1, projections: [badSecond] });
    const thread = (engine as unknown as { writer: { worker: { terminate(): Promise<number> } } }).writer.worker;
    const results = Promise.allSettled([
      engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 }),
      engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'B', location: 'wh', delta: 5 }),
    ]);
    await thread.terminate();
    const codes = (await results).map((result) => (result.status === 'rejected' ? (result.reason as { code: string }).code : 'accepted'));
    // The first was with the thread when it stopped; the second could not be written and was never handed over.
    expect(codes).toEqual(['STORAGE_UNCERTAIN', 'STORAGE_FAILED']);
    await expect(engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 })).rejects.toMatchObject({ code: 'STORAGE_FAILED', retryable: false });
    await engine.close();
  });
});

describe('checkpoints', () => {
  it('moves what the engine\'s own connection wrote into the database file while no batch comes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-durability-'));
    dirs.push(dir);
    const path = join(dir, 'stockline.db');
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
    /**
     * Dead letters in the database file alone, without its WAL: what has been checkpointed. A copy taken while a
     * checkpoint writes the file may be torn: then undefined, and the next copy is read.
     */
    let copies = 0;
    const checkpointed = (): number | undefined => {
      copies += 1;
      const copy = join(dir, `copy-${copies}.db`);
      copyFileSync(path, copy);
      try {
        const db = new Database(copy, { readonly: true });
        try {
          const created = db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'dead_letters'").pluck().get() === 1;
          return created ? db.prepare('SELECT COUNT(*) FROM dead_letters').pluck().get() as number : 0;
        } finally {
          db.close();
        }
      } catch {
        return undefined;
      }
    };
    try {
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 });
      // Far below the 1,000 pages at which a commit checkpoints: only the idle checkpoint moves them.
      for (let index = 0; index < 50; index += 1) engine.deadLetter({ source: 'test', reason: 'BAD', payload: { index }, timeMs: index });
      const deadline = Date.now() + 5_000;
      let seen = checkpointed();
      while (seen !== 50 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        seen = checkpointed();
      }
      expect(seen).toBe(50);
    } finally {
      await engine.close();
    }
  });
});

describe('restore', () => {
  /** A file with a few events and the snapshot written at close. */
  async function fileWithSnapshot(): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-restore-'));
    dirs.push(dir);
    const path = join(dir, 'stockline.db');
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
    await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 5 });
    await engine.submit({ type: 'reserve', tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 2 }], ttlMs: 60_000 });
    await engine.submit({ type: 'release', tenant: 't', reservationId: 'r1', reason: 'released' });
    await engine.close();
    return path;
  }

  /** Replaces the snapshot file by `tamper`'s version of it, stored packed as this version writes it. */
  function tamperFile(path: string, tamper: (snapshot: Stored) => Stored): void {
    const stored = readStored(path);
    expect(stored.position).toBe(3);
    writePackedSnapshot(path, tamper(stored));
  }

  function withOnHand<T extends StateSnapshot>(snapshot: T, onHand: number): T {
    const stock = snapshot.tenants.t?.skus.A?.locations.wh;
    if (stock === undefined) throw new Error('the snapshot has no stock of A at wh');
    stock.onHand = onHand;
    return snapshot;
  }

  function replayOf(path: string): StateSnapshot {
    const db = new Database(path, { readonly: true });
    const events = (db.prepare('SELECT json FROM events ORDER BY position').pluck().all() as string[]).map((json) => JSON.parse(json) as InventoryEvent);
    db.close();
    return toSnapshot(replay(events));
  }

  async function onHandAfterOpen(path: string): Promise<{ onHand: number | undefined; state: StateSnapshot; passedOver: string[] }> {
    const passedOver: string[] = [];
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0, onSnapshotPassedOver: (reason) => passedOver.push(reason) });
    try {
      return { onHand: engine.tenant('t')?.skus.get('A')?.locations.get('wh')?.onHand, state: toSnapshot(engine.state()), passedOver };
    } finally {
      await engine.close();
    }
  }

  it('starts from a snapshot of its own format', async () => {
    const path = await fileWithSnapshot();
    tamperFile(path, (snapshot) => withOnHand(snapshot, 999));
    const opened = await onHandAfterOpen(path);
    expect(opened.onHand, 'what the snapshot says, not the log').toBe(999);
    expect(opened.passedOver).toEqual([]);
  });

  it('passes over a snapshot whose state is not what its digest was made of, and says why', async () => {
    const path = await fileWithSnapshot();
    const digestOf = (text: string): string => (JSON.parse(text) as { sha256: string }).sha256;
    const whole = readFileSync(snapshotPathOf(path), 'utf8');
    // The same layout with one number changed, as a bit flipped on the disk leaves it: it parses and fits the format.
    tamperFile(path, (snapshot) => withOnHand(snapshot, 999));
    const changed = readFileSync(snapshotPathOf(path), 'utf8');
    expect(digestOf(changed)).not.toBe(digestOf(whole));
    writeFileSync(snapshotPathOf(path), changed.replace(digestOf(changed), digestOf(whole)));
    const opened = await onHandAfterOpen(path);
    expect(opened.onHand, 'the log, not the damaged snapshot').toBe(5);
    expect(opened.state).toEqual(replayOf(path));
    expect(opened.passedOver).toEqual(['its state does not match its SHA-256 digest']);
  });

  it('starts from a snapshot written before snapshots had a digest', async () => {
    const path = await fileWithSnapshot();
    tamperFile(path, (snapshot) => withOnHand(snapshot, 999));
    const { sha256, ...undigested } = JSON.parse(readFileSync(snapshotPathOf(path), 'utf8')) as { sha256: string };
    expect(sha256).toMatch(/^[\w-]{43}$/);
    writeFileSync(snapshotPathOf(path), JSON.stringify(undigested));
    const opened = await onHandAfterOpen(path);
    expect(opened.onHand, 'what the snapshot says').toBe(999);
    expect(opened.passedOver).toEqual([]);
  });

  it('passes over snapshots of formats 2 and 3, derived by versions that forgot finished reservations all at once', async () => {
    const path = await fileWithSnapshot();
    const { position, tenants } = withOnHand(readStored(path), 999);
    // Format 2: the plain-data form; format 3: the packed form of the same state.
    for (const older of [{ format: 2, position, createdMs: 0, tenants }, { format: 3, position, createdMs: 0, tenants: packState(fromSnapshot({ tenants })) }]) {
      writeFileSync(snapshotPathOf(path), JSON.stringify(older));
      const opened = await onHandAfterOpen(path);
      expect(opened.onHand, `format ${older.format}: the log, not the snapshot`).toBe(5);
      expect(opened.state).toEqual(replayOf(path));
    }
  });

  it('passes over a snapshot of another format and replays the whole log', async () => {
    const path = await fileWithSnapshot();
    const older = withOnHand(readStored(path), 999);
    // Written before format 2: the plain-data form with no format.
    writeFileSync(snapshotPathOf(path), JSON.stringify({ position: older.position, tenants: older.tenants }));
    let opened = await onHandAfterOpen(path);
    expect(opened.state).toEqual(replayOf(path));
    expect(opened.onHand).toBe(5);
    // And one of a later format.
    writeFileSync(snapshotPathOf(path), JSON.stringify({ format: snapshotFormat + 1, position: 3, tenants: [] }));
    opened = await onHandAfterOpen(path);
    expect(opened.state).toEqual(replayOf(path));
    expect(opened.passedOver).toEqual([`it is of format ${snapshotFormat + 1}, which this version does not start from (${snapshotFormat})`]);
  });

  it('passes over a snapshot that cannot be read', async () => {
    const path = await fileWithSnapshot();
    writeFileSync(snapshotPathOf(path), '{"format":2,"position":3,"tenants":{"t":');
    const opened = await onHandAfterOpen(path);
    expect(opened.state).toEqual(replayOf(path));
    expect(opened.passedOver).toEqual([expect.stringMatching(/^it is not JSON: /) as unknown]);
  });

  it('passes over a snapshot that parses but does not fit its format', async () => {
    const path = await fileWithSnapshot();
    for (const damaged of [
      { format: snapshotFormat, position: 3, tenants: {} },
      { format: snapshotFormat, position: 3, tenants: [['t', { skus: null }]] },
      { format: snapshotFormat, position: 3, tenants: [['t', 7]] },
    ]) {
      writeFileSync(snapshotPathOf(path), JSON.stringify(damaged));
      expect((await onHandAfterOpen(path)).state).toEqual(replayOf(path));
    }
  });

  it('deletes a snapshot that is ahead of the log (its events were lost), so it can never pass for later events', async () => {
    const path = await fileWithSnapshot();
    tamperFile(path, (snapshot) => ({ ...withOnHand(snapshot, 999), position: 4 }));
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
    try {
      expect(existsSync(snapshotPathOf(path))).toBe(false);
      expect(engine.tenant('t')?.skus.get('A')?.locations.get('wh')?.onHand).toBe(5);
      expect(toSnapshot(engine.state())).toEqual(replayOf(path));
    } finally {
      await engine.close();
    }
    // Closing wrote a fresh snapshot at the log's real end.
    expect(readStored(path).position).toBe(3);
  });

  it('removes what a snapshot write interrupted by a crash left behind', async () => {
    const path = await fileWithSnapshot();
    const leftover = `${snapshotPathOf(path)}.4242-1.tmp`;
    writeFileSync(leftover, '{"format":2,"posi');
    expect((await onHandAfterOpen(path)).onHand).toBe(5);
    expect(existsSync(leftover)).toBe(false);
    expect(existsSync(snapshotPathOf(path))).toBe(true);
  });

  it('passes over a snapshot kept in the table by an earlier version, and drops it once the file has one', async () => {
    const path = await fileWithSnapshot();
    const stored = readStored(path);
    rmSync(snapshotPathOf(path));
    const db = new Database(path);
    const { position, tenants } = withOnHand(stored, 999);
    db.prepare('INSERT INTO snapshots (position, json, created_ms) VALUES (?, ?, ?)').run(position, JSON.stringify({ format: 2, tenants }), 0);
    db.close();
    const engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
    try {
      expect(engine.tenant('t')?.skus.get('A')?.locations.get('wh')?.onHand, 'the log, not the table').toBe(5);
      expect(toSnapshot(engine.state())).toEqual(replayOf(path));
      await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 });
    } finally {
      await engine.close();
    }
    const after = new Database(path, { readonly: true });
    expect(after.prepare('SELECT COUNT(*) FROM snapshots').pluck().get()).toBe(0);
    after.close();
    expect(readStored(path).position).toBe(4);
  });
});

describe('snapshots during traffic', () => {
  /** An engine on a file whose event loop reads as idle unless `eventLoopLoad` says otherwise. */
  function engineAt(options: { snapshotEveryEvents: number; onSnapshotFailed?: (error: Error) => void; eventLoopLoad?: () => number }): { engine: EmbeddedEngine; path: string } {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-snapshots-'));
    dirs.push(dir);
    const path = join(dir, 'stockline.db');
    return { engine: new EmbeddedEngine({ path, expiryIntervalMs: 0, eventLoopLoad: () => 0, ...options }), path };
  }

  async function adjustments(engine: EmbeddedEngine, count: number): Promise<void> {
    for (let index = 0; index < count; index += 1) await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 });
  }

  it('writes one on another thread once due, while commands go on, holding the state at a durable position', async () => {
    const { engine, path } = engineAt({ snapshotEveryEvents: 100 });
    try {
      await adjustments(engine, 99);
      expect(engine.snapshotStatus()).toEqual({ position: 0, writing: undefined });
      await adjustments(engine, 1);
      const { writing } = engine.snapshotStatus();
      expect(writing, 'started at the hundredth durable event').toBeDefined();
      // Commands are answered while it is written.
      await adjustments(engine, 20);
      await writing;
      expect(engine.snapshotStatus().position).toBe(100);
      const stored = readStored(path);
      expect(stored.position).toBe(100);
      expect(stored.tenants.t?.skus.A?.locations.wh?.onHand, 'the state after event 100, not after the ones that followed').toBe(100);
      const events = (engine.db.prepare('SELECT json FROM events WHERE position <= 100 ORDER BY position').pluck().all() as string[]).map((json) => JSON.parse(json) as InventoryEvent);
      expect(stored.tenants).toEqual(toSnapshot(replay(events)).tenants);
    } finally {
      await engine.close();
    }
  });

  it('waits while the event loop is busy, for at most one more interval', async () => {
    let load = 0.9;
    const { engine } = engineAt({ snapshotEveryEvents: 100, eventLoopLoad: () => load });
    try {
      await adjustments(engine, 199);
      expect(engine.snapshotStatus().writing, 'due at 100, but the event loop is busy').toBeUndefined();
      await adjustments(engine, 1);
      const { writing } = engine.snapshotStatus();
      expect(writing, 'a second interval has passed: written however busy').toBeDefined();
      await writing;
      expect(engine.snapshotStatus().position).toBe(200);

      await adjustments(engine, 100);
      expect(engine.snapshotStatus().writing).toBeUndefined();
      // Once it is quieter, the waiting snapshot starts without another command.
      load = 0.2;
      const deadline = Date.now() + 5_000;
      while (engine.snapshotStatus().writing === undefined && engine.snapshotStatus().position === 200 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await engine.snapshotStatus().writing;
      expect(engine.snapshotStatus().position).toBe(300);
    } finally {
      await engine.close();
    }
  });

  it('stops a snapshot in progress at close and writes its own, newer one, leaving nothing behind', async () => {
    const failures: Error[] = [];
    const { engine, path } = engineAt({ snapshotEveryEvents: 100, onSnapshotFailed: (error) => failures.push(error) });
    await adjustments(engine, 100);
    expect(engine.snapshotStatus().writing).toBeDefined();
    await engine.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 });
    await engine.close();
    expect(failures, 'stopping it is not a failure').toEqual([]);
    expect(readStored(path).position).toBe(101);
    expect(readdirSync(dirname(path)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('reports a snapshot that fails, goes on taking commands, and tries again an interval later', async () => {
    const failures: Error[] = [];
    const { engine, path } = engineAt({ snapshotEveryEvents: 10, onSnapshotFailed: (error) => failures.push(error) });
    // A directory where the file should be: the rename over it fails.
    mkdirSync(snapshotPathOf(path));
    try {
      await adjustments(engine, 10);
      await engine.snapshotStatus().writing;
      expect(failures).toHaveLength(1);
      expect(readdirSync(dirname(path)).filter((name) => name.endsWith('.tmp')), 'the failed write cleaned up after itself').toEqual([]);
      await adjustments(engine, 9);
      expect(engine.snapshotStatus().writing, 'not retried before another interval').toBeUndefined();
      rmSync(snapshotPathOf(path), { recursive: true });
      await adjustments(engine, 1);
      await engine.snapshotStatus().writing;
      expect(engine.snapshotStatus().position).toBe(20);
      expect(failures).toHaveLength(1);
    } finally {
      await engine.close();
    }
  });
});

describe('a restart with the clock stepped back', () => {
  it('keeps the ledger\'s time from going back more than an import may date an event ahead', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stockline-clock-'));
    dirs.push(dir);
    const path = join(dir, 'stockline.db');
    const madeAtMs = Date.parse('2026-12-07T12:00:00.000Z');
    let nowMs = madeAtMs;
    const before = new EmbeddedEngine({ path, expiryIntervalMs: 0, clock: () => nowMs });
    await before.submit({ type: 'adjust_stock', tenant: 't', sku: 'A', location: 'wh', delta: 1 });
    await before.submit({ type: 'reserve', tenant: 't', reservationId: 'r1', channel: 'web', lines: [{ sku: 'A', quantity: 1 }], ttlMs: 3_000 });
    await before.close();
    // Restarted with its clock an hour behind (an NTP step, a machine booted with a wrong clock).
    nowMs = madeAtMs - 3_600_000;
    const after = new EmbeddedEngine({ path, expiryIntervalMs: 0, clock: () => nowMs });
    try {
      const committed = await after.submit({ type: 'commit', tenant: 't', reservationId: 'r1' });
      const time = Date.parse(committed.outcome.events[0]?.time ?? '');
      // Not an hour before the hold it commits: at most the five minutes an import may be dated ahead of a clock.
      expect(time).toBeGreaterThanOrEqual(madeAtMs - 5 * 60_000);
    } finally {
      await after.close();
    }
  });
});
