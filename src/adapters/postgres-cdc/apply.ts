// Submits row changes to the bus: every row's stock first, then the soft-delete flags of rows that were not stale.

import type { CommandBus, CommandInput, Submitted } from '../../app/ports.js';
import type { Rejection } from '../../core/index.js';
import { cdcLimits } from './limits.js';
import type { RowChange } from './row-mapping.js';

export interface ApplyCounts {
  /** Row changes whose stock the ledger took. */
  applied: number;
  /** Row changes the ledger had already seen a newer (or the same) sequence for: redelivery, absorbed. */
  stale: number;
  /** Row changes refused for any other reason (logged by the caller). */
  rejected: number;
  rejections: Rejection[];
}

export function emptyCounts(): ApplyCounts {
  return { applied: 0, stale: 0, rejected: 0, rejections: [] };
}

export function addCounts(total: ApplyCounts, more: ApplyCounts): void {
  total.applied += more.applied;
  total.stale += more.stale;
  total.rejected += more.rejected;
  total.rejections.push(...more.rejections);
}

async function submitInBatches(bus: CommandBus, commands: CommandInput[]): Promise<Submitted[]> {
  const results: Submitted[] = [];
  for (let start = 0; start < commands.length; start += cdcLimits.submitBatchCommandsMax) {
    results.push(...await bus.submitMany(commands.slice(start, start + cdcLimits.submitBatchCommandsMax)));
  }
  return results;
}

/**
 * A delete/restore carries no sequence of its own, so it rides on its row's: it is sent only when the
 * row's stock was taken, or was refused as the exact same sequence (a redelivery after a crash that may
 * have come between the stock and the flag). An older redelivered row cannot flip the flag back.
 */
function flagGoesThrough(outcome: Submitted['outcome']): boolean {
  const rejection = outcome.rejection;
  if (rejection === undefined) return true;
  return rejection.code === 'STALE_SEQUENCE' && rejection.appliedSeq === rejection.incomingSeq;
}

/** Resolves once everything is durable; throws whatever the bus throws (nothing is then acknowledged). */
export async function applyChanges(bus: CommandBus, changes: RowChange[]): Promise<ApplyCounts> {
  const counts = emptyCounts();
  if (changes.length === 0) return counts;
  const results = await submitInBatches(bus, changes.map((change) => change.set));
  const flags: CommandInput[] = [];
  changes.forEach((change, index) => {
    const outcome = (results[index] as Submitted).outcome;
    const rejection = outcome.rejection;
    if (rejection === undefined) counts.applied += 1;
    else if (rejection.code === 'STALE_SEQUENCE') counts.stale += 1;
    else {
      counts.rejected += 1;
      counts.rejections.push(rejection);
    }
    if (change.flag !== undefined && flagGoesThrough(outcome)) flags.push(change.flag);
  });
  if (flags.length > 0) await submitInBatches(bus, flags);
  return counts;
}
