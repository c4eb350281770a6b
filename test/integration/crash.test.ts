// Crash safety of the embedded engine: SIGKILL during a burst of reservations loses nothing that was answered,
// whether answers wait for the disk (the default) or only for the operating system (`ledger.durability: none`).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { replay, snapshotFormat, toSnapshot } from '../../src/core/index.js';
import type { InventoryEvent } from '../../src/core/index.js';
import { readPlainSnapshot } from '../support/snapshot-file.js';
import { adminHeaders, startStockline } from '../support/stockline-process.js';

const stock = 300;
const root = mkdtempSync(join(tmpdir(), 'stockline-crash-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface SkuView { onHand: number; reserved: number; available: number }

describe.each(['fsync', 'none'])('a SIGKILL during a burst of reservations, ledger.durability %s', (durability) => {
  it('keeps every answered reservation, none beyond stock, and a state equal to a replay of the log', async () => {
    const dataDir = join(root, durability);
    const config = join(root, `${durability}.yaml`);
    writeFileSync(config, `ledger: { durability: ${durability} }\n`);
    const args = ['--data-dir', dataDir, '--config', config];
    const first = await startStockline(args);
    const base = `${first.url}/v1/tenants/crash`;
    const stocked = await fetch(`${base}/adjustments`, { method: 'POST', headers: adminHeaders(), body: JSON.stringify({ sku: 'HOT-1', set: stock }) });
    expect(stocked.status).toBe(200);

    const answered: string[] = [];
    let cut = 0;
    // Each worker reserves without pause until a request fails: the SIGKILL always lands mid-burst,
    // and every worker ends on a request the crash cut off.
    const workerCount = 32;
    const worker = async (worker: number): Promise<void> => {
      for (let index = 0; ; index += 1) {
        try {
          const response = await fetch(`${base}/reservations`, {
            method: 'POST', headers: adminHeaders(),
            body: JSON.stringify({ reservationId: `cart-${worker}-${index}`, channel: 'web', lines: [{ sku: 'HOT-1', quantity: 1 }] }),
          });
          if (response.status === 201) answered.push(((await response.json()) as { id: string }).id);
          else await response.body?.cancel();
        } catch {
          cut += 1;
          return;
        }
      }
    };
    const burst = Array.from({ length: workerCount }, (_, index) => worker(index));
    const deadline = Date.now() + 20_000;
    while (answered.length < 50 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
    await first.stop('SIGKILL');
    await Promise.all(burst);
    expect(answered.length).toBeGreaterThanOrEqual(50);
    expect(cut).toBe(workerCount);

    const second = await startStockline(args);
    try {
      for (const id of answered) {
        const response = await fetch(`${second.url}/v1/tenants/crash/reservations/${id}`, { headers: adminHeaders() });
        expect(response.status, `reservation ${id} was answered 201 before the crash`).toBe(200);
      }
      const sku = (await (await fetch(`${second.url}/v1/tenants/crash/skus/HOT-1`, { headers: adminHeaders() })).json()) as SkuView;
      expect(sku.reserved).toBeGreaterThanOrEqual(answered.length);
      expect(sku.reserved).toBeLessThanOrEqual(stock);
      expect(sku.available).toBe(stock - sku.reserved);
    } finally {
      await second.stop('SIGTERM');
    }

    // The restored state (snapshot written at the graceful stop) equals a full replay of the log.
    const db = new Database(join(dataDir, 'stockline.db'), { readonly: true });
    const events = (db.prepare('SELECT json FROM events ORDER BY position').pluck().all() as string[]).map((json) => JSON.parse(json) as InventoryEvent);
    db.close();
    const { format, position, ...restored } = readPlainSnapshot(join(dataDir, 'stockline.db')) ?? { format: undefined, position: 0, tenants: {} };
    expect(format).toBe(snapshotFormat);
    expect(position).toBe(events.length);
    expect(restored).toEqual(toSnapshot(replay(events)));
  }, 90_000);
});
