// What the ledger keeps in memory for a hold made under an Idempotency-Key: its record is kept a day, and a busy
// tenant keeps millions. Measured by bench/memory.ts in a process of its own (heap bytes after full
// collections, which do not vary between runs by more than a few bytes a hold).

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

interface Measured { bytesPerHold: { hold: number; keyedHold: number; keyedHoldRestored: number; keyedHoldFingerprintAsBuilt: number } }

describe('memory held per idempotency record', () => {
  it('stays under a kilobyte, live and once read back from the file', () => {
    const output = execFileSync(process.execPath, ['--import', 'tsx', 'bench/memory.ts', '--holds', '50000', '--json'], { encoding: 'utf8' });
    const { bytesPerHold } = JSON.parse(output) as Measured;
    const record = bytesPerHold.keyedHold - bytesPerHold.hold;
    // About 700 bytes live and 850 read back; a fingerprint kept as it was built (in pieces) adds about 1,100.
    expect(record).toBeLessThan(1_000);
    expect(bytesPerHold.keyedHoldRestored - bytesPerHold.hold).toBeLessThan(1_000);
    // The measure sees the difference it guards: the same records with their fingerprints in pieces.
    expect(bytesPerHold.keyedHoldFingerprintAsBuilt - bytesPerHold.hold).toBeGreaterThan(record + 800);
  }, 60_000);
});
