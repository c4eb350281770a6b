// A manual clock for the channel push worker: its timers fire only when a test advances it, so runs repeat exactly.

import type { SyncTimer } from '../../src/app/channel-sync.js';

/** Where every manual clock starts. */
export const clockStartMs = 1_700_000_000_000;
/** setImmediate rounds after each timer, for queued promise callbacks to run; a fixed count, no wall-clock wait. */
const settleTurnsDefault = 30;

/** Timers fire only when the test advances the clock, in time order. */
export class ManualClock implements SyncTimer {
  now = clockStartMs;
  private readonly timers = new Map<number, { atMs: number; callback: () => void }>();
  private nextId = 1;

  constructor(private readonly settleTurns = settleTurnsDefault) {}

  nowMs(): number { return this.now; }

  set(callback: () => void, delayMs: number): number {
    const id = this.nextId++;
    this.timers.set(id, { atMs: this.now + Math.max(0, delayMs), callback });
    return id;
  }

  clear(handle: unknown): void { this.timers.delete(handle as number); }

  async advance(ms: number): Promise<void> {
    const targetMs = this.now + ms;
    await this.settle();
    for (;;) {
      let next: [number, { atMs: number; callback: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].atMs <= targetMs && (next === undefined || entry[1].atMs < next[1].atMs)) next = entry;
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.now = Math.max(this.now, next[1].atMs);
      next[1].callback();
      await this.settle();
    }
    this.now = targetMs;
    await this.settle();
  }

  private async settle(): Promise<void> {
    for (let turn = 0; turn < this.settleTurns; turn += 1) await new Promise((resolve) => setImmediate(resolve));
  }
}
