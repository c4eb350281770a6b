// `stockline replay <events file> [--expect <state file>]`: folds events into a state and prints or checks it.

import { evolve, initialState, toSnapshot } from '../core/index.js';
import type { InventoryEvent } from '../core/index.js';
import { validateEvent } from '../app/event-validation.js';
import { formatDiff, jsonDiff } from '../app/json-diff.js';
import { eventsFileForms, InputError, inputLimits, readEvents, readJson } from './input.js';
import type { InputLimits } from './input.js';
import { parseArgs, refuseExtraArguments, UsageError } from './io.js';
import type { CliIo } from './io.js';

const progressEveryEvents = 100_000;

export const replayUsage = `usage: stockline replay <events file|-> [--expect <state file>] [--progress]
  ${eventsFileForms}
  --expect    compare the state with this one (or with the expectedState of a worked example)
  --progress  a line on stderr every ${progressEveryEvents} events
  exit status: 0 replayed (and the state matches), 1 an invalid event or a state that differs, 2 unreadable input or bad usage
`;

function expectedStateOf(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && 'expectedState' in value) return (value as { expectedState: unknown }).expectedState;
  return value;
}

/** Events are folded as they are read, so NDJSON of any size is replayed without holding it. */
export async function replayCommand(args: string[], io: CliIo, limits: InputLimits = inputLimits): Promise<number> {
  let file: string;
  let options: Record<string, string | boolean>;
  try {
    const parsed = parseArgs(args, { string: ['expect'], boolean: ['progress'] });
    if (parsed.positional.length === 0) throw new UsageError('one events file is needed (- reads stdin)');
    refuseExtraArguments(parsed.positional, 1);
    file = parsed.positional[0] as string;
    options = parsed.options;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`stockline replay: ${error.message}\n${replayUsage}`);
    return 2;
  }
  const state = initialState();
  let count = 0;
  let expected: unknown;
  try {
    // The expected state first: a file that cannot be read is found before any replaying.
    if (typeof options.expect === 'string') expected = expectedStateOf(await readJson(options.expect, io.stdin, limits));
    for await (const event of readEvents(file, io.stdin, limits)) {
      const violations = validateEvent(event);
      if (violations.length > 0) {
        io.stderr(violations.map((v) => `event ${count}: ${v.pointer}: ${v.message}\n`).join(''));
        io.stderr('stockline replay: stopped at the first invalid event; nothing was replayed past it\n');
        return 1;
      }
      evolve(state, event as InventoryEvent);
      count += 1;
      if (options.progress === true && count % progressEveryEvents === 0) io.stderr(`replayed ${count} events\n`);
    }
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    io.stderr(`stockline replay: ${error.message}\n`);
    return 2;
  }
  const snapshot = toSnapshot(state);
  if (expected === undefined) {
    io.stdout(`${JSON.stringify(snapshot, null, 2)}\n`);
    return 0;
  }
  const differences = jsonDiff(expected, snapshot);
  if (differences.length === 0) {
    io.stdout(`replayed ${count} events: the state matches ${String(options.expect)}\n`);
    return 0;
  }
  io.stdout(`replayed ${count} events: the state differs from ${String(options.expect)} at ${differences.length} places\n${formatDiff(differences)}`);
  return 1;
}
