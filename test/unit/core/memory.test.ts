// What the ledger keeps in memory for a reservation, and for a hold made under an Idempotency-Key (its record is
// kept a day, and a busy tenant keeps millions). Measured by bench/memory.ts in a process of its own (heap bytes
// after full collections, which do not vary between runs by more than a few bytes a hold).

import { execFileSync } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { idempotencyDue, remember } from '../../../src/core/ledger.js';
import { tenantOf } from '../../../src/core/evolve.js';
import { initialState } from '../../../src/core/state.js';
import type { IdempotencyRecord } from '../../../src/core/state.js';

interface Measured {
  bytesPerHold: { hold: number; releasedHold: number; order: number; keyedHold: number; keyedHoldRestored: number; keyedHoldFingerprintAsBuilt: number };
}

let bytesPerHold: Measured['bytesPerHold'] | undefined;

/** One run of bench/memory.ts, shared by the tests below (it takes some seconds). */
function measured(): Measured['bytesPerHold'] {
  bytesPerHold ??= (JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', 'bench/memory.ts', '--holds', '50000', '--json'], { encoding: 'utf8' })) as Measured).bytesPerHold;
  return bytesPerHold;
}

describe('memory held per reservation', () => {
  it('a hold, a released hold and an order each stay near the size of their fields', () => {
    const { hold, releasedHold, order } = measured();
    // About 385, 400 and 350 bytes. Lines filled by push kept room for 17 items (128 bytes more each), and a
    // field added after a reservation was made (its order reference, its finishing time) took a store of its
    // own (about 24 bytes more in a released hold or an order).
    expect(hold).toBeLessThan(410);
    expect(releasedHold).toBeLessThan(415);
    expect(order).toBeLessThan(365);
  }, 60_000);
});

describe('memory held per idempotency record', () => {
  it('stays under a kilobyte, live and once read back from the file', () => {
    const { hold, keyedHold, keyedHoldRestored, keyedHoldFingerprintAsBuilt } = measured();
    const record = keyedHold - hold;
    // About 700 bytes live and 850 read back; a fingerprint kept as it was built (in pieces) adds about 1,100.
    expect(record).toBeLessThan(1_000);
    expect(keyedHoldRestored - hold).toBeLessThan(1_000);
    // The measure sees the difference it guards: the same records with their fingerprints in pieces.
    expect(keyedHoldFingerprintAsBuilt - hold).toBeGreaterThan(record + 800);
  }, 60_000);
});

describe('finding the oldest record', () => {
  it('keeps no table a growing map of records has outgrown', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heapUsed = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const keys = Array.from({ length: 500_000 }, (_, index) => `key-${index}`);
    const record: IdempotencyRecord = { fingerprint: '{}', outcome: { events: [] }, timeMs: 0 };
    // The bytes a tenant's records map grows by, asked for its oldest record every 1,000 records (as each
    // expiry tick asks) or never.
    const growth = (asked: boolean): number => {
      const before = heapUsed();
      const tenant = tenantOf(initialState(), 't');
      keys.forEach((key, index) => {
        remember(tenant.idempotency, key, record, Number.MAX_SAFE_INTEGER);
        if (asked && index % 1_000 === 0) idempotencyDue(tenant, 0);
      });
      const grown = heapUsed() - before;
      expect(tenant.idempotency.size).toBe(keys.length);
      return grown;
    };
    const never = growth(false);
    // An iterator started on the small map and kept would hold every table since: about 1.4 times more.
    expect(growth(true)).toBeLessThan(never * 1.2);
  }, 60_000);
});
