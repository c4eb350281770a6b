// How much of V8's heap can hold the engine's state: the old generation, where objects that live longer
// than a few collections (holds, reservations, idempotency records) are kept.

import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';

const mebibyte = 2 ** 20;

/** V8's semi-space size when no flag sets it, on 64-bit Node 20. */
const defaultSemiSpaceMb = 16;

/**
 * The `--max-semi-space-size` given to this process (on its command line, as bin/stockline.js's shebang
 * does, or in NODE_OPTIONS; the last one counts), in MiB.
 */
export function semiSpaceMb(flags: readonly string[]): number {
  let found = defaultSemiSpaceMb;
  flags.forEach((flag, index) => {
    const match = /^--max[-_]semi[-_]space[-_]size(?:=(\d+))?$/.exec(flag);
    if (match === null) return;
    const value = Number(match[1] ?? flags[index + 1]);
    if (Number.isInteger(value) && value > 0) found = value;
  });
  return found;
}

/** This process's semi-space size, in MiB. */
export function processSemiSpaceMb(): number {
  return semiSpaceMb([...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/).filter((flag) => flag !== '')]);
}

/**
 * The old generation's limit, in bytes: V8's heap limit less the young generation (three semi-spaces: two
 * for scavenging and one for large new objects). With bin/stockline.js's 64 MiB semi-spaces that is 192 MiB
 * of the limit, most of it on a small heap.
 */
export function oldGenerationLimitBytes(): number {
  const limit = getHeapStatistics().heap_size_limit;
  return Math.max(limit / 4, limit - 3 * processSemiSpaceMb() * mebibyte);
}

/**
 * A warning when the old generation is smaller than the young one: V8 then collects the old generation
 * instead of the young one whenever the old has less room left than a semi-space, and under load spends
 * most of its time doing so (a 128 MiB old generation with 64 MiB semi-spaces made 2,300 keyed commands a
 * second against 12,100 with 16 MiB ones, BENCHMARKS.md).
 */
export function youngGenerationWarning(oldBytes = oldGenerationLimitBytes(), semiMb = processSemiSpaceMb()): string | undefined {
  const oldMb = Math.round(oldBytes / mebibyte);
  if (oldMb >= 3 * semiMb) return undefined;
  return `the heap's old generation (${oldMb} MiB) is smaller than its young one (3 × ${semiMb} MiB semi-spaces): `
    + `give it more memory (NODE_OPTIONS=--max-old-space-size=MiB), or start it with smaller semi-spaces (node --max-semi-space-size=16 bin/stockline.js serve)`;
}

/** The young generation's spaces: what they hold is garbage or about to move to the old generation. */
const youngSpaces = new Set(['new_space', 'new_large_object_space']);

/** What the old generation holds now, in bytes, garbage not yet collected included. */
export function oldGenerationUsedBytes(): number {
  let used = 0;
  for (const space of getHeapSpaceStatistics()) if (!youngSpaces.has(space.space_name)) used += space.space_used_size;
  return used;
}

export interface HeapWatchOptions {
  /** The old generation's limit; default oldGenerationLimitBytes(). */
  limitBytes?: number;
  /** What the old generation holds after a full collection; default oldGenerationUsedBytes(). */
  liveBytes?: () => number;
  /** Told when new holds and imports start being refused, and when they are taken again. */
  onChange?: (refusing: boolean, liveBytes: number) => void;
  /** Told when recorded sales and adjustments start being refused too, and when they are taken again. */
  onChangeAll?: (refusing: boolean, liveBytes: number) => void;
}

/**
 * New holds and imports are refused once a full collection leaves the old generation at least this full, and
 * taken again once one leaves it below `acceptBelow`: the gap keeps the answer from flapping with each collection.
 */
export const heapGuard = {
  /** Holds and imports are refused from here, taken again below `acceptBelow`. */
  refuseAt: 0.9, acceptBelow: 0.85,
  /** Recorded sales and adjustments are refused too from here, taken again below `acceptAllBelow`. */
  refuseAllAt: 0.95, acceptAllBelow: 0.9,
} as const;

/**
 * What the old generation holds after each full collection, when it holds only what is live: about what
 * the engine's state needs. Once that nears the limit, Node would soon stop the process with "JavaScript
 * heap out of memory", and every restart, reading the same state back, would stop again. Refusing new holds
 * (the state's growth at a shop's pace) and imports (its growth in bulk) keeps the process up: reads, commits,
 * releases, fulfilments, adjustments and sales recorded by marketplaces go on, and finished reservations leave
 * the state 25 hours after they finish. Those go on while the state still fits: past `refuseAllAt`, sales and
 * adjustments too are refused (their senders are asked to try again, and a marketplace does), since a caller
 * sending sales of new SKUs without end would otherwise fill the heap as surely.
 */
export class HeapWatch {
  readonly limitBytes: number;
  private readonly liveBytesNow: () => number;
  private readonly onChange: HeapWatchOptions['onChange'];
  private readonly onChangeAll: HeapWatchOptions['onChangeAll'];
  private observer: PerformanceObserver | undefined;
  private live: number | undefined;
  private refusing = false;
  private refusingAll = false;

  constructor(options: HeapWatchOptions = {}) {
    this.limitBytes = options.limitBytes ?? oldGenerationLimitBytes();
    this.liveBytesNow = options.liveBytes ?? oldGenerationUsedBytes;
    this.onChange = options.onChange;
    this.onChangeAll = options.onChangeAll;
  }

  /** Reads the old generation after every full collection from now on. */
  start(): this {
    this.observer ??= new PerformanceObserver((entries) => {
      if (entries.getEntries().some((entry) => (entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)) this.collected();
    });
    this.observer.observe({ entryTypes: ['gc'] });
    return this;
  }

  stop(): void {
    this.observer?.disconnect();
    this.observer = undefined;
  }

  /**
   * After a full collection: what is left is live, the state and the work in flight when it ran (a request's
   * parsed body, say). Both are in the heap; when they fill 90 % of it, the next large request may not fit.
   */
  collected(): void {
    const live = this.liveBytesNow();
    this.live = live;
    const was = this.refusing;
    if (live >= heapGuard.refuseAt * this.limitBytes) this.refusing = true;
    else if (live < heapGuard.acceptBelow * this.limitBytes) this.refusing = false;
    if (this.refusing !== was) this.onChange?.(this.refusing, live);
    const wasAll = this.refusingAll;
    if (live >= heapGuard.refuseAllAt * this.limitBytes) this.refusingAll = true;
    else if (live < heapGuard.acceptAllBelow * this.limitBytes) this.refusingAll = false;
    if (this.refusingAll !== wasAll) this.onChangeAll?.(this.refusingAll, live);
  }

  /** Whether the heap is nearly full: new holds and imports are refused now. */
  full(): boolean {
    return this.refusing;
  }

  /** What the last full collection left in the old generation; undefined before the first. */
  liveBytes(): number | undefined {
    return this.live;
  }

  /** Why recorded sales and adjustments are refused too now, or undefined when they are taken. */
  heapExhaustedReason(): string | undefined {
    if (!this.refusingAll) return undefined;
    const mib = (bytes: number): number => Math.round(bytes / mebibyte);
    return `the heap is almost out (${mib(this.live ?? 0)} of ${mib(this.limitBytes)} MiB live after the last full collection): `
      + 'recorded sales and adjustments are refused too, so that the process stays up; send them again once the heap is raised';
  }

  /** Why new holds and imports are refused now, or undefined when they are taken. */
  heapFullReason(): string | undefined {
    if (!this.refusing) return undefined;
    const mib = (bytes: number): number => Math.round(bytes / mebibyte);
    return `the heap is nearly full (${mib(this.live ?? 0)} of ${mib(this.limitBytes)} MiB live after the last full collection): `
      + 'new holds and imports are refused until finished reservations are forgotten (25 hours after they finish) or the heap is raised';
  }
}
