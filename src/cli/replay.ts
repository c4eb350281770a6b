// `stockline replay <events file> [--expect <state file>]`: folds events into a state and prints or checks it.

import { evolve, initialState, toSnapshot } from '../core/index.js';
import type { InventoryEvent } from '../core/index.js';
import { validateEvent } from '../app/event-validation.js';
import { formatDiff, jsonDiff } from '../app/json-diff.js';
import { eventsOf, InputError, readDocuments, readJson } from './input.js';
import { parseArgs, UsageError } from './io.js';
import type { CliIo } from './io.js';

export const replayUsage = 'usage: stockline replay <events file|-> [--expect <state file>] [--progress]\n';
const progressEveryEvents = 100_000;

function expectedStateOf(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && 'expectedState' in value) return (value as { expectedState: unknown }).expectedState;
  return value;
}

export async function replayCommand(args: string[], io: CliIo): Promise<number> {
  let file: string;
  let options: Record<string, string | boolean>;
  try {
    const parsed = parseArgs(args, { string: ['expect'], boolean: ['progress'] });
    if (parsed.positional.length !== 1) throw new UsageError('one events file is needed');
    file = parsed.positional[0] as string;
    options = parsed.options;
  } catch (error) {
    io.stderr(`stockline replay: ${(error as Error).message}\n${replayUsage}`);
    return 2;
  }
  let events: unknown[];
  let expected: unknown;
  try {
    events = eventsOf(await readDocuments(file, io.stdin));
    if (typeof options.expect === 'string') expected = expectedStateOf(await readJson(options.expect, io.stdin));
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    io.stderr(`stockline replay: ${error.message}\n`);
    return 2;
  }
  const state = initialState();
  for (let index = 0; index < events.length; index += 1) {
    const violations = validateEvent(events[index]);
    if (violations.length > 0) {
      io.stderr(violations.map((v) => `event ${index}: ${v.pointer}: ${v.message}\n`).join(''));
      io.stderr('stockline replay: stopped at the first invalid event; nothing was replayed past it\n');
      return 1;
    }
    evolve(state, events[index] as InventoryEvent);
    if (options.progress === true && (index + 1) % progressEveryEvents === 0) io.stderr(`replayed ${index + 1} of ${events.length} events\n`);
  }
  const snapshot = toSnapshot(state);
  if (expected === undefined) {
    io.stdout(`${JSON.stringify(snapshot, null, 2)}\n`);
    return 0;
  }
  const differences = jsonDiff(expected, snapshot);
  if (differences.length === 0) {
    io.stdout(`replayed ${events.length} events: the state matches ${String(options.expect)}\n`);
    return 0;
  }
  io.stdout(`replayed ${events.length} events: the state differs from ${String(options.expect)} at ${differences.length} places\n${formatDiff(differences)}`);
  return 1;
}
