// A served Stockline, as built, writes its snapshot on its own thread while it takes changes, and a restart
// after a crash starts from that snapshot and the log after it.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { replay, snapshotFormat, toSnapshot } from '../../src/core/index.js';
import type { InventoryEvent, StateSnapshot } from '../../src/core/index.js';
import { readPlainSnapshot, writePackedSnapshot } from '../support/snapshot-file.js';
import { adminHeaders, startStockline } from '../support/stockline-process.js';

const root = mkdtempSync(join(tmpdir(), 'stockline-snapshot-process-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

type Stored = StateSnapshot & { position: number };

/** The snapshot file, of this version's format, as plain data; undefined until one is written whole. */
function storedSnapshot(dataDir: string): Stored | undefined {
  const stored = readPlainSnapshot(join(dataDir, 'stockline.db'));
  if (stored !== undefined) expect(stored.format).toBe(snapshotFormat);
  return stored;
}

describe('snapshots of a running server', () => {
  it('are written in the background once due, and a restart after SIGKILL starts from one', async () => {
    const dataDir = join(root, 'data');
    const config = join(root, 'stockline.yaml');
    writeFileSync(config, 'ledger: { snapshotEveryEvents: 1000 }\n');
    const args = ['--data-dir', dataDir, '--config', config];
    const first = await startStockline(args);
    const batches = 3;
    try {
      for (let batch = 0; batch < batches; batch += 1) {
        const adjustments = Array.from({ length: 500 }, (_, index) => ({ sku: `SKU-${index % 50}`, delta: 1 }));
        const response = await fetch(`${first.url}/v1/tenants/snap/adjustments`, { method: 'POST', headers: adminHeaders(), body: JSON.stringify({ adjustments }) });
        expect(response.status).toBe(200);
      }
      // Only the background worker can have written it: the one written at a graceful stop never happens here.
      const deadline = Date.now() + 20_000;
      while ((storedSnapshot(dataDir)?.position ?? 0) < 1000 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(storedSnapshot(dataDir)?.position).toBeGreaterThanOrEqual(1000);
    } finally {
      await first.stop('SIGKILL');
    }
    const stored = storedSnapshot(dataDir) as Stored;
    expect(stored.position, 'a snapshot covers durable events only').toBeLessThanOrEqual(batches * 500);

    const db = new Database(join(dataDir, 'stockline.db'), { readonly: true });
    const events = (db.prepare('SELECT json FROM events ORDER BY position').pluck().all() as string[]).map((json) => JSON.parse(json) as InventoryEvent);
    db.close();
    expect(events).toHaveLength(batches * 500);
    expect(stored.tenants, 'the snapshot is the state after its position').toEqual(toSnapshot(replay(events.slice(0, stored.position))).tenants);

    // Marked, so the restart shows whether it started from the snapshot: a SKU's version counts its events,
    // and the events after the snapshot add to it, so the mark survives only if the restart began there.
    const marked = stored.tenants.snap?.skus['SKU-7'];
    if (marked === undefined) throw new Error('the snapshot has no SKU-7');
    marked.version += 1000;
    writePackedSnapshot(join(dataDir, 'stockline.db'), stored);
    const second = await startStockline(args);
    try {
      const sku = (await (await fetch(`${second.url}/v1/tenants/snap/skus/SKU-7`, { headers: adminHeaders() })).json()) as { onHand: number; version: number };
      expect(sku.onHand).toBe(batches * 10);
      expect(sku.version).toBe(batches * 10 + 1000);
    } finally {
      await second.stop('SIGTERM');
    }
  }, 60_000);
});
