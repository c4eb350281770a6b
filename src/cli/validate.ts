// `stockline validate <file|->`: checks events against the contract; exit 0 valid, 1 invalid, 2 unreadable or bad usage.

import { validateEvent } from '../app/event-validation.js';
import { eventsFileForms, InputError, inputLimits, readEvents } from './input.js';
import type { InputLimits } from './input.js';
import { parseArgs, refuseExtraArguments, UsageError } from './io.js';
import type { CliIo } from './io.js';

export const validateUsage = `usage: stockline validate <file|->
  ${eventsFileForms}
  exit status: 0 all valid, 1 some invalid, 2 unreadable input or bad usage
`;

/** Events are checked as they are read, so NDJSON of any size is checked in bounded memory. */
export async function validateCommand(args: string[], io: CliIo, limits: InputLimits = inputLimits): Promise<number> {
  let file: string;
  try {
    const { positional } = parseArgs(args, {});
    if (positional.length === 0) throw new UsageError('one events file is needed (- reads stdin)');
    refuseExtraArguments(positional, 1);
    file = positional[0] as string;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`stockline validate: ${error.message}\n${validateUsage}`);
    return 2;
  }
  let count = 0;
  let invalid = 0;
  try {
    for await (const document of readEvents(file, io.stdin, limits)) {
      const violations = validateEvent(document);
      if (violations.length > 0) {
        invalid += 1;
        for (const violation of violations) io.stdout(`event ${count}: ${violation.pointer}: ${violation.message}\n`);
      }
      count += 1;
    }
  } catch (error) {
    if (error instanceof InputError) {
      io.stderr(`stockline validate: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const summary = `${count - invalid} valid, ${invalid} invalid (of ${count} events)\n`;
  if (invalid > 0) io.stderr(summary);
  else io.stdout(summary);
  return invalid > 0 ? 1 : 0;
}
