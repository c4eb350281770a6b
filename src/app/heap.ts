// How much of V8's heap can hold the engine's state: the old generation, where objects that live longer
// than a few collections (holds, reservations, idempotency records) are kept.

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
